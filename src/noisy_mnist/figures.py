"""The report's pictures; each function takes tidy tables and writes one PNG."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from noisy_mnist.datasets import format_level  # noqa: E402
from noisy_mnist.files import save_figure  # noqa: E402


def _mean_std(frame: pd.DataFrame, by: list[str], value: str) -> pd.DataFrame:
    stats = frame.groupby(by)[value].agg(["mean", "std"]).reset_index()
    stats["std"] = stats["std"].fillna(0.0)
    return stats


def accuracy_vs_noise(accuracy: pd.DataFrame, out_png) -> None:
    """Mean clean eval accuracy against training noise, error bars = std over seeds.

    ``accuracy`` has columns hidden, noise, seed, accuracy.
    """
    fig, ax = plt.subplots(figsize=(6, 4))
    stats = _mean_std(accuracy, ["hidden", "noise"], "accuracy")
    for hidden, group in stats.groupby("hidden"):
        ax.errorbar(
            group["noise"],
            100 * group["mean"],
            yerr=100 * group["std"],
            marker="o",
            capsize=4,
            label=f"{hidden} hidden",
        )
    ax.set_xlabel("training noise level")
    ax.set_ylabel("clean eval accuracy (%)")
    ax.set_title(
        "Eval accuracy against training noise (mean ± std over seeds)", fontsize=9
    )
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out_png)
    plt.close(fig)


def robustness_heatmaps(robustness: pd.DataFrame, out_png) -> None:
    """One heatmap per hidden size: training noise (rows) by test noise (columns),
    mean accuracy over seeds. ``robustness``: hidden, noise, seed, test_noise,
    accuracy."""
    stats = _mean_std(robustness, ["hidden", "noise", "test_noise"], "accuracy")
    hidden_sizes = sorted(stats["hidden"].unique())
    # one colour scale for all panels, spanning the data, so small gaps stay visible
    low, high = 100 * stats["mean"].min(), 100 * stats["mean"].max()
    fig, axes = plt.subplots(
        1,
        len(hidden_sizes),
        squeeze=False,
        figsize=(4.4 * len(hidden_sizes) + 1.2, 3.8),
        layout="constrained",
    )
    for ax, hidden in zip(axes[0], hidden_sizes, strict=True):
        grid = stats[stats["hidden"] == hidden].pivot(
            index="noise", columns="test_noise", values="mean"
        )
        values = 100 * grid.to_numpy()
        image = ax.imshow(values, cmap="viridis", vmin=low, vmax=high, aspect="auto")
        ax.set_xticks(range(grid.shape[1]), [format_level(v) for v in grid.columns])
        ax.set_yticks(range(grid.shape[0]), [format_level(v) for v in grid.index])
        ax.set_xlabel("test noise level")
        ax.set_ylabel("training noise level")
        ax.set_title(f"{hidden} hidden: mean accuracy (%)", fontsize=9)
        middle = (low + high) / 2
        for (i, j), value in np.ndenumerate(values):
            ax.text(
                j,
                i,
                f"{value:.1f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if value < middle else "black",
            )
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="accuracy (%)")
    save_figure(fig, out_png)
    plt.close(fig)


def adversarial_curves(adversarial: pd.DataFrame, out_png) -> None:
    """Accuracy against epsilon, one panel per (attack, hidden size), one line per
    training noise level, error bars = std over seeds. ``adversarial``: hidden,
    noise, seed, attack, epsilon, accuracy."""
    stats = _mean_std(adversarial, ["attack", "hidden", "noise", "epsilon"], "accuracy")
    attacks = sorted(stats["attack"].unique())
    hidden_sizes = sorted(stats["hidden"].unique())
    fig, axes = plt.subplots(
        len(attacks),
        len(hidden_sizes),
        squeeze=False,
        figsize=(4.5 * len(hidden_sizes), 3.3 * len(attacks)),
        sharey=True,
    )
    for row, attack in enumerate(attacks):
        for col, hidden in enumerate(hidden_sizes):
            ax = axes[row, col]
            part = stats[(stats["attack"] == attack) & (stats["hidden"] == hidden)]
            for noise, group in part.groupby("noise"):
                ax.errorbar(
                    group["epsilon"],
                    100 * group["mean"],
                    yerr=100 * group["std"],
                    marker=".",
                    capsize=3,
                    label=f"train noise {format_level(noise)}",
                )
            ax.set_title(f"{attack.upper()}, {hidden} hidden", fontsize=9)
            ax.set_xlabel("epsilon (L-inf, pixels in [0, 1])")
            ax.set_ylabel("accuracy (%)")
            ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out_png)
    plt.close(fig)


def learning_curves(histories: pd.DataFrame, out_png) -> None:
    """Training loss and accuracy per epoch, mean over seeds, one line per variant.
    ``histories``: hidden, noise, seed, epoch, loss, train_accuracy."""
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    for (hidden, noise), group in histories.groupby(["hidden", "noise"]):
        mean = group.groupby("epoch")[["loss", "train_accuracy"]].mean()
        label = f"{hidden} hidden, noise {format_level(noise)}"
        style = "-" if hidden == histories["hidden"].max() else "--"
        loss_ax.plot(mean.index, mean["loss"], style, label=label)
        acc_ax.plot(mean.index, 100 * mean["train_accuracy"], style, label=label)
    loss_ax.set_ylabel("training loss (cross-entropy)")
    acc_ax.set_ylabel("training accuracy (%)")
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    loss_ax.set_yscale("log")
    acc_ax.legend(fontsize=7)
    fig.suptitle("Learning curves (mean over seeds)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, out_png)
    plt.close(fig)


def confusion_matrix_plot(matrix, title: str, out_png) -> None:
    """A 10 x 10 confusion matrix (rows: true digit, columns: predicted) as counts."""
    matrix = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    image = ax.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            str(value),
            ha="center",
            va="center",
            fontsize=7,
            color="white" if value > matrix.max() / 2 else "black",
        )
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8)
    fig.tight_layout()
    save_figure(fig, out_png)
    plt.close(fig)
