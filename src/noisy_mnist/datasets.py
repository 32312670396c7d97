"""The stratified split, the noisy training sets and their ``.npz`` files.

Digits are kept as uint8 (n_samples, 784) until a model needs them; noisy training
sets are float32 in [0, 1] because the added noise is finer than 1/255.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np

from noisy_mnist import N_CLASSES, N_PIXELS
from noisy_mnist.files import save_npz_atomic
from noisy_mnist.mlp import DTYPE

NOISE_MODES = ("replace", "augment")


class DatasetFileError(ValueError):
    """A dataset ``.npz`` that is corrupt, foreign, or has the wrong shapes."""


def eval_counts(class_counts: np.ndarray, eval_fraction: float) -> np.ndarray:
    """How many rows of each digit go to eval: ``round(eval_fraction * n)`` in all,
    shared out in proportion to the digits' counts (largest remainder first, then
    the lower digit), so small files are not rounded down to no eval rows."""
    ideal = eval_fraction * class_counts
    counts = np.floor(ideal).astype(int)
    missing = int(round(eval_fraction * class_counts.sum())) - counts.sum()
    order = sorted(range(len(ideal)), key=lambda d: (-(ideal[d] - counts[d]), d))
    for digit in order[:missing]:
        counts[digit] += 1
    return np.minimum(counts, class_counts)


def stratified_split(
    labels: np.ndarray, eval_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a train part and an eval part with the same label proportions.

    Each digit's rows are shuffled by a generator seeded with ``seed`` and the first
    :func:`eval_counts` of them go to eval. Both index arrays come back sorted, so
    the parts keep the file's row order.

    Returns
    -------
    train_idx, eval_idx : ndarray of shape (n_train,), (n_eval,)
    """
    if not 0 < eval_fraction < 1:
        raise ValueError(f"eval_fraction must lie in (0, 1), got {eval_fraction}")
    rng = np.random.default_rng(seed)
    n_eval = eval_counts(np.bincount(labels, minlength=N_CLASSES), eval_fraction)
    eval_parts = []
    for digit in range(N_CLASSES):
        rows = np.flatnonzero(labels == digit)
        eval_parts.append(rng.permutation(rows)[: n_eval[digit]])
    eval_idx = np.sort(np.concatenate(eval_parts))
    train_idx = np.setdiff1d(np.arange(len(labels)), eval_idx, assume_unique=True)
    if len(eval_idx) == 0 or len(train_idx) == 0:
        raise ValueError(
            f"splitting {len(labels)} rows with split.eval_fraction {eval_fraction} "
            f"leaves {len(train_idx)} training and {len(eval_idx)} eval rows; both "
            "need at least one: use more data or another split.eval_fraction"
        )
    return train_idx, eval_idx


def split_warnings(labels: np.ndarray, train_idx, eval_idx) -> list[str]:
    """Plain warnings about digits missing from the data, the train or eval part."""
    warnings = []
    for part, rows in (
        ("data", np.arange(len(labels))),
        ("training part", train_idx),
        ("eval part", eval_idx),
    ):
        absent = np.flatnonzero(np.bincount(labels[rows], minlength=N_CLASSES) == 0)
        if len(absent):
            digits = ", ".join(map(str, absent))
            warnings.append(f"the {part} has no digit {digits}")
    return warnings


NOISE_PURPOSES = {"train": 0, "eval": 1}


def noise_generator(seed: int, level: float, purpose: str = "train"):
    """The generator for one noise level and purpose ("train" or "eval").

    Independent per level, the same on every run, and never the same stream for
    training and eval noise, even when both seeds are set equal.
    """
    key = int(round(level * 1_000_000))
    return np.random.default_rng([seed, key, NOISE_PURPOSES[purpose]])


def add_noise(
    images: np.ndarray,
    level: float,
    base_std: float,
    rng: np.random.Generator,
    chunk_rows: int = 4096,
) -> np.ndarray:
    """Noisy copies: ``clip(x + level * e, 0, 1)``, ``x = images / 255``.

    Parameters
    ----------
    images : ndarray of uint8, shape (n_samples, n_pixels)
    level : float
        The noise parameter; 0 returns the clean pixels scaled to [0, 1].
    base_std : float
        Standard deviation of ``e`` before it is scaled by ``level``.

    Returns
    -------
    ndarray of float32, shape (n_samples, n_pixels), values in [0, 1]
    """
    if level < 0 or base_std < 0:
        raise ValueError(f"level and base_std must be >= 0, got {level} and {base_std}")
    out = np.empty(images.shape, dtype=DTYPE)
    scale = DTYPE(level * base_std)
    # in chunks, so that no float64 (or second float32) copy of the set exists
    for start in range(0, len(images), chunk_rows):
        block = out[start : start + chunk_rows]
        np.divide(
            images[start : start + chunk_rows], DTYPE(255), out=block, dtype=DTYPE
        )
        if level > 0:
            noise = rng.standard_normal(block.shape, dtype=DTYPE)
            noise *= scale
            block += noise
            np.clip(block, 0, 1, out=block)
    return out


def noisy_training_set(
    images: np.ndarray,
    labels: np.ndarray,
    level: float,
    base_std: float,
    mode: str,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The training images and labels a model of this noise level trains on.

    ``replace`` swaps every image for its noisy copy; ``augment`` stacks the clean
    images on top of the noisy copies, so the set is twice as long. At level 0 the
    "noisy" copy is the clean image, so every level sees the same number of samples.
    """
    if mode not in NOISE_MODES:
        raise ValueError(f"noise mode must be one of {NOISE_MODES}, got {mode!r}")
    noisy = add_noise(images, level, base_std, noise_generator(seed, level, "train"))
    if mode == "replace":
        return noisy, labels
    clean = add_noise(images, 0.0, base_std, noise_generator(seed, 0.0, "train"))
    return np.concatenate([clean, noisy]), np.concatenate([labels, labels])


def save_dataset(path, images: np.ndarray, labels: np.ndarray | None, **info) -> None:
    """Write images, optional labels and a JSON ``info`` record to ``path`` (.npz)."""
    arrays = {"images": images, "info": np.array(json.dumps(info, sort_keys=True))}
    if labels is not None:
        arrays["labels"] = labels.astype(np.uint8)
    save_npz_atomic(path, **arrays)


def load_dataset(path, dtype=None) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Read a dataset written by :func:`save_dataset` and check its shapes.

    Returns ``images`` (n, 784), ``labels`` (n,) or None, and the info dict.
    """
    with open(path, "rb") as handle:
        is_archive = handle.read(4) == b"PK\x03\x04"  # npz files are zips
    if not is_archive:
        raise DatasetFileError(
            f"{path}: not a dataset file (no .npz archive); delete it and rerun"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetFileError(
            f"{path}: not a readable dataset file ({exc}); delete it and rerun"
        ) from None
    if "images" not in arrays or "info" not in arrays:
        raise DatasetFileError(f"{path}: not a noisy-mnist dataset (no images/info)")
    images, labels = arrays["images"], arrays.get("labels")
    if images.ndim != 2 or images.shape[1] != N_PIXELS:
        raise DatasetFileError(
            f"{path}: images have shape {images.shape}, expected (n, {N_PIXELS})"
        )
    if labels is not None and labels.shape != (len(images),):
        raise DatasetFileError(
            f"{path}: {labels.shape[0]} labels for {len(images)} images"
        )
    if labels is not None and len(labels) and labels.max() >= N_CLASSES:
        raise DatasetFileError(f"{path}: labels outside 0-{N_CLASSES - 1}")
    if dtype is not None and images.dtype != dtype:
        images = images.astype(dtype)
    return images, labels, json.loads(str(arrays["info"]))


def format_level(level: float) -> str:
    """The noise level as written in file names: ``0``, ``0.1``, ``0.25``."""
    return np.format_float_positional(float(level), trim="-")
