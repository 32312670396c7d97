"""The stratified split and the noisy training sets."""

import numpy as np
import pytest

from noisy_mnist.datasets import (
    DatasetFileError,
    add_noise,
    format_level,
    load_dataset,
    noise_generator,
    noisy_training_set,
    save_dataset,
    stratified_split,
)
from noisy_mnist.files import save_npz_atomic


@pytest.fixture
def digits():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), [50, 40, 30, 60, 50, 45, 55, 35, 65, 70])
    rng.shuffle(labels)
    images = rng.integers(0, 256, size=(len(labels), 784), dtype=np.uint8)
    return images, labels


def test_split_is_stratified(digits):
    _, labels = digits
    train_idx, eval_idx = stratified_split(labels, 0.2, seed=1)
    counts = np.bincount(labels, minlength=10)
    eval_counts = np.bincount(labels[eval_idx], minlength=10)
    # each digit contributes round(20 %) of its rows, computed here independently
    assert eval_counts.tolist() == [round(0.2 * c) for c in counts]
    assert np.intersect1d(train_idx, eval_idx).size == 0
    assert np.union1d(train_idx, eval_idx).tolist() == list(range(len(labels)))


def test_split_is_deterministic_and_seed_dependent(digits):
    _, labels = digits
    first = stratified_split(labels, 0.25, seed=3)
    again = stratified_split(labels, 0.25, seed=3)
    other = stratified_split(labels, 0.25, seed=4)
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5])
def test_split_refuses_fraction_outside_open_interval(digits, fraction):
    with pytest.raises(ValueError, match=r"eval_fraction must lie in \(0, 1\)"):
        stratified_split(digits[1], fraction, seed=0)


def test_split_refuses_empty_part():
    with pytest.raises(ValueError, match="leaves 2 training and 0 eval rows"):
        stratified_split(np.array([3, 5]), 0.2, seed=0)  # round(0.4) = 0 eval rows


def test_level_zero_is_the_clean_set(digits):
    images, _ = digits
    clean = add_noise(images, 0.0, 0.1, noise_generator(7, 0.0))
    assert clean.dtype == np.float32
    np.testing.assert_array_equal(clean, images.astype(np.float32) / 255)


def test_noise_is_clipped_to_unit_interval(digits):
    images, _ = digits
    noisy = add_noise(images, 3.0, 0.5, noise_generator(7, 3.0))
    assert noisy.min() == 0.0 and noisy.max() == 1.0


def test_noise_has_the_configured_std_where_nothing_is_clipped():
    # mid-grey pixels: with std 0.03 virtually no value reaches 0 or 1
    images = np.full((400, 784), 128, dtype=np.uint8)
    level, base_std = 0.3, 0.1
    noisy = add_noise(images, level, base_std, noise_generator(7, level))
    added = noisy.astype(np.float64) - 128 / 255
    assert (noisy > 0).all() and (noisy < 1).all()
    # 313,600 draws: the sample std is within 0.5 % of the truth
    assert added.std() == pytest.approx(level * base_std, rel=5e-3)
    assert added.mean() == pytest.approx(0, abs=3e-4)


def test_same_seed_same_noise_and_levels_are_independent(digits):
    images, _ = digits
    a = add_noise(images, 0.2, 0.1, noise_generator(7, 0.2))
    b = add_noise(images, 0.2, 0.1, noise_generator(7, 0.2))
    c = add_noise(images, 0.2, 0.1, noise_generator(8, 0.2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_chunking_does_not_change_the_draws(digits):
    images, _ = digits
    whole = add_noise(images, 0.2, 0.1, noise_generator(7, 0.2), chunk_rows=10_000)
    chunked = add_noise(images, 0.2, 0.1, noise_generator(7, 0.2), chunk_rows=7)
    np.testing.assert_array_equal(whole, chunked)


def test_augment_stacks_clean_and_noisy(digits):
    images, labels = digits
    noisy, noisy_labels = noisy_training_set(images, labels, 0.2, 0.1, "augment", 7)
    replaced, _ = noisy_training_set(images, labels, 0.2, 0.1, "replace", 7)
    n = len(images)
    assert noisy.shape == (2 * n, 784)
    np.testing.assert_array_equal(noisy[:n], images / np.float32(255))
    np.testing.assert_array_equal(noisy[n:], replaced)
    np.testing.assert_array_equal(noisy_labels, np.concatenate([labels, labels]))


def test_unknown_mode_is_refused(digits):
    with pytest.raises(ValueError, match="noise mode must be one of"):
        noisy_training_set(*digits, 0.1, 0.1, "mix", 7)


def test_dataset_round_trip(tmp_path, digits):
    images, labels = digits
    save_dataset(tmp_path / "d.npz", images, labels, part="train")
    got_images, got_labels, info = load_dataset(tmp_path / "d.npz")
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert info == {"part": "train"}


def test_dataset_with_wrong_shape_is_refused(tmp_path):
    save_npz_atomic(tmp_path / "d.npz", images=np.zeros((3, 10)), info=np.array("{}"))
    with pytest.raises(DatasetFileError, match=r"d.npz: images have shape \(3, 10\)"):
        load_dataset(tmp_path / "d.npz")


def test_corrupt_dataset_file_is_refused(tmp_path):
    (tmp_path / "d.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DatasetFileError, match="d.npz: not a readable dataset file"):
        load_dataset(tmp_path / "d.npz")


@pytest.mark.parametrize(
    "level, text", [(0, "0"), (0.1, "0.1"), (0.25, "0.25"), (1.0, "1"), (0.10, "0.1")]
)
def test_format_level(level, text):
    assert format_level(level) == text


def test_preview_rows_cycle_through_the_digits_present():
    from noisy_mnist.steps import preview_rows

    labels = np.array([3, 1, 3, 1, 3, 7])
    assert preview_rows(labels, 5) == [1, 0, 5, 3, 2]
    assert sorted(preview_rows(labels, 50)) == list(range(6))


def test_small_files_still_get_their_share_of_eval_rows():
    from noisy_mnist.datasets import eval_counts

    # 15 rows, at most 2 per digit: rounding per digit would give 0 eval rows
    counts = np.array([2, 2, 2, 2, 2, 1, 1, 1, 1, 1])
    n_eval = eval_counts(counts, 0.2)
    assert n_eval.sum() == 3  # round(0.2 * 15)
    assert (n_eval <= counts).all()
    # the shares follow the largest remainders: 0.4 for the digits with 2 rows
    assert n_eval.tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]


def test_split_warns_about_missing_digits():
    from noisy_mnist.datasets import split_warnings

    labels = np.array([1, 1, 1, 2, 2, 3])
    train_idx, eval_idx = np.array([0, 1, 3, 4]), np.array([2, 5])
    assert split_warnings(labels, train_idx, eval_idx) == [
        "the data has no digit 0, 4, 5, 6, 7, 8, 9",
        "the training part has no digit 0, 3, 4, 5, 6, 7, 8, 9",
        "the eval part has no digit 0, 2, 4, 5, 6, 7, 8, 9",
    ]
