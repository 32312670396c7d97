"""Collect the per-model files into tables, a plot and ``results/report.md``."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from tabulate import tabulate

from noisy_mnist.datasets import format_level
from noisy_mnist.files import save_figure, write_bytes_atomic

ACCURACY_COLUMNS = ["hidden", "noise", "seed", "accuracy", "n_eval"]
TIMING_COLUMNS = [
    "hidden", "noise", "seed", "train_seconds", "job_seconds", "seconds_per_epoch",
    "samples_per_second", "max_rss_mb", "cpu_seconds",
]


def read_metrics(paths) -> pd.DataFrame:
    """One row per model: hidden, noise, seed, accuracy (a fraction), n_eval."""
    rows = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            m = json.load(handle)
        rows.append({"hidden": int(m["hidden"]), "noise": float(m["noise"]),
                     "seed": int(m["seed"]), "accuracy": float(m["accuracy"]),
                     "n_eval": int(m["n_samples"])})
    frame = pd.DataFrame(rows, columns=ACCURACY_COLUMNS)
    return frame.sort_values(["hidden", "noise", "seed"], ignore_index=True)


def read_benchmark(path) -> dict:
    """The one data row of a Snakemake ``benchmark:`` file as floats (NaN if absent),
    plus ``end``, the file's modification time, which is when the job finished."""
    frame = pd.read_csv(path, sep="\t")
    row = {col: pd.to_numeric(frame[col], errors="coerce").iloc[-1]
           for col in frame.columns if col != "h:m:s"}
    row["end"] = os.path.getmtime(path)
    return row


def read_history(path) -> pd.DataFrame:
    return pd.read_csv(path)


def timing_table(metrics: pd.DataFrame, histories, benchmarks) -> pd.DataFrame:
    """One row per model; ``histories`` and ``benchmarks`` are in ``metrics`` order."""
    rows = []
    for (_, m), history_path, bench_path in zip(
        metrics.iterrows(), histories, benchmarks, strict=True
    ):
        history = read_history(history_path)
        bench = read_benchmark(bench_path)
        train_seconds = float(history["seconds"].sum())
        rows.append({
            "hidden": int(m["hidden"]), "noise": float(m["noise"]), "seed": int(m["seed"]),
            "train_seconds": train_seconds,
            "job_seconds": float(bench["s"]),
            "seconds_per_epoch": float(history["seconds"].mean()),
            "samples_per_second": float(history["samples_per_second"].median()),
            "max_rss_mb": float(bench.get("max_rss", np.nan)),
            "cpu_seconds": float(bench.get("cpu_time", np.nan)),
        })
    return pd.DataFrame(rows, columns=TIMING_COLUMNS)


def mean_std(values: pd.Series) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; NaN for a single value)."""
    values = values.to_numpy(dtype=float)
    std = values.std(ddof=1) if len(values) > 1 else float("nan")
    return float(values.mean()), float(std)


def format_percent(mean: float, std: float) -> str:
    if np.isnan(std):
        return f"{100 * mean:.3f}"
    return f"{100 * mean:.3f} ± {100 * std:.3f}"


def accuracy_table(metrics: pd.DataFrame) -> str:
    """Markdown: one row per noise level, one column per hidden size, mean ± std (%)."""
    hidden_sizes = sorted(metrics["hidden"].unique())
    rows = []
    for noise, by_noise in metrics.groupby("noise", sort=True):
        row = [format_level(noise)]
        for hidden in hidden_sizes:
            cell = by_noise.loc[by_noise["hidden"] == hidden, "accuracy"]
            row.append(format_percent(*mean_std(cell)) if len(cell) else "")
        rows.append(row)
    headers = ["noise"] + [f"{h} hidden" for h in hidden_sizes]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def timing_summary(timing: pd.DataFrame) -> str:
    """Markdown: per variant, the means over seeds of the timing columns."""
    grouped = timing.groupby(["hidden", "noise"], sort=True)
    rows = []
    for (hidden, noise), group in grouped:
        rows.append([
            hidden, format_level(noise), len(group),
            f"{group['train_seconds'].mean():.2f}",
            f"{group['job_seconds'].mean():.2f}",
            f"{group['seconds_per_epoch'].mean():.3f}",
            f"{group['samples_per_second'].mean():,.0f}",
            f"{group['max_rss_mb'].max():.0f}",
        ])
    headers = ["hidden", "noise", "seeds", "train s (mean)", "job s (mean)",
               "s / epoch", "samples / s", "peak RSS MB (max)"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def run_span(benchmarks) -> tuple[float, float]:
    """Sum of the jobs' seconds and the wall-clock span from the first job's start
    to the last job's end, both from Snakemake's benchmark files."""
    records = [read_benchmark(p) for p in benchmarks]
    total = float(sum(r["s"] for r in records))
    start = min(r["end"] - r["s"] for r in records)
    end = max(r["end"] for r in records)
    return total, float(end - start)


def accuracy_plot(metrics: pd.DataFrame, out_png) -> None:
    """Mean eval accuracy against training noise, error bars = std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for hidden, group in metrics.groupby("hidden", sort=True):
        stats = group.groupby("noise")["accuracy"].agg(["mean", "std", "count"])
        ax.errorbar(stats.index, 100 * stats["mean"], yerr=100 * stats["std"].fillna(0),
                    marker="o", capsize=4, label=f"{hidden} hidden")
    ax.set_xlabel("training noise level")
    ax.set_ylabel("eval accuracy (%)")
    ax.set_title("Clean eval accuracy against training noise (mean ± std over seeds)")
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out_png)
    plt.close(fig)


def frame_to_csv(frame: pd.DataFrame, path, float_format="%.6f") -> None:
    """Write ``frame`` as CSV atomically; noise levels as in file names (0, 0.1)."""
    frame = frame.assign(noise=frame["noise"].map(format_level))
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, float_format=float_format, lineterminator="\n",
                 quoting=csv.QUOTE_MINIMAL)
    write_bytes_atomic(path, buffer.getvalue().encode())


def write_report(*, metrics_paths, history_paths, train_benchmarks, all_benchmarks,
                 provenance_path, settings: dict, preview_paths, out_md, out_accuracy,
                 out_timing, out_plot) -> str:
    """Write the report and its CSV and PNG companions; return the markdown text."""
    metrics = read_metrics(metrics_paths)
    # histories and benchmarks arrive in expand() order; sort them like ``metrics``
    order = _model_order(metrics_paths)
    timing = timing_table(metrics, [history_paths[i] for i in order],
                          [train_benchmarks[i] for i in order])
    with open(provenance_path, encoding="utf-8") as handle:
        provenance = json.load(handle)
    job_seconds, span_seconds = run_span(all_benchmarks)

    frame_to_csv(metrics[["hidden", "noise", "seed", "accuracy"]], out_accuracy)
    frame_to_csv(timing, out_timing, float_format="%.4f")
    accuracy_plot(metrics, out_plot)

    out_dir = Path(out_md).parent
    n_seeds = metrics.groupby(["hidden", "noise"]).size()
    lines = [
        "# Noisy-MNIST report",
        "",
        "One-hidden-layer MLPs (784 -> hidden, ReLU -> 10, softmax) trained on clean and",
        "noise-perturbed training digits, evaluated on the clean held-out eval split.",
        "",
        "## Eval accuracy (%)",
        "",
        f"Mean ± sample standard deviation over {_seed_phrase(n_seeds)}; eval split of "
        f"{metrics['n_eval'].iloc[0]} digits. Per-model values: "
        f"[{Path(out_accuracy).name}]({os.path.relpath(out_accuracy, out_dir)}).",
        "",
        accuracy_table(metrics),
        "",
        f"![accuracy against noise]({os.path.relpath(out_plot, out_dir)})",
        "",
        "## Timing",
        "",
        "Per variant, means over seeds. *train s*: the training loop alone (sum of the",
        "epochs); *job s*: the whole job as Snakemake's benchmark measured it (start-up,",
        "loading, training, saving); *samples / s*: median over epochs; peak RSS from the",
        f"benchmark files. Per-model values: [{Path(out_timing).name}]"
        f"({os.path.relpath(out_timing, out_dir)}).",
        "",
        timing_summary(timing),
        "",
        f"All {len(all_benchmarks)} jobs behind this report took {job_seconds:.1f} s of "
        f"job time; from the first job's start to the last one's end "
        f"{span_seconds:.1f} s of wall time passed (the report job itself not "
        "included; a rerun that reused earlier results counts their original times).",
        "",
        "## Data",
        "",
        tabulate(_provenance_rows(provenance), headers=["", ""], tablefmt="github",
                 disable_numparse=True),
        "",
        "Noise previews (top: clean, bottom: as trained): "
        + ", ".join(f"[{Path(p).stem}]({os.path.relpath(p, out_dir)})"
                    for p in preview_paths),
        "",
        "## Settings",
        "",
        "```yaml",
        yaml.safe_dump(settings, sort_keys=False).rstrip(),
        "```",
        "",
    ]
    text = "\n".join(lines)
    write_bytes_atomic(out_md, text.encode())
    return text


def _seed_phrase(n_seeds: pd.Series) -> str:
    counts = sorted(set(n_seeds.tolist()))
    if counts == [1]:
        return "1 seed (no spread can be given)"
    return " or ".join(str(c) for c in counts) + " seeds"


def _provenance_rows(provenance: dict) -> list[list[str]]:
    keys = [("source", "source"), ("origin", "from"), ("rows", "labelled rows"),
            ("origin_sha256", "SHA-256 of the origin file"),
            ("train_csv_sha256", "SHA-256 of data/raw/train.csv"),
            ("test_csv_sha256", "SHA-256 of data/raw/test.csv")]
    return [[label, str(provenance[key])] for key, label in keys if key in provenance]


def _model_order(metrics_paths) -> list[int]:
    """Positions that sort the per-model files by (hidden, noise, seed)."""
    keys = []
    for path in metrics_paths:
        with open(path, encoding="utf-8") as handle:
            m = json.load(handle)
        keys.append((int(m["hidden"]), float(m["noise"]), int(m["seed"])))
    return sorted(range(len(keys)), key=keys.__getitem__)
