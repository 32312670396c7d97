"""benchmarks/train_speed.py: pure helpers and the profile's copy of fit (no timing)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_speed.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("train_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _one_pixel_image(row, col):
    image = np.zeros((1, 784), dtype=np.uint8)
    image[0, row * 28 + col] = 200
    return image


@pytest.mark.parametrize(
    ("dy", "dx"), [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1), (1, 1), (-2, 1), (3, -3)]
)
def test_shift_moves_a_pixel_by_dy_rows_and_dx_columns(bench, dy, dx):
    shifted = bench.shift_images(_one_pixel_image(10, 12), dy, dx).reshape(28, 28)
    assert shifted.dtype == np.uint8
    assert np.argwhere(shifted).tolist() == [[10 + dy, 12 + dx]]
    assert shifted[10 + dy, 12 + dx] == 200


@pytest.mark.parametrize(("dy", "dx"), [(-1, 0), (1, 0), (0, -1), (0, 1), (1, -1)])
def test_shift_drops_pixels_at_the_border_instead_of_wrapping(bench, dy, dx):
    # a pixel on the edge that the shift pushes outwards disappears
    row = 0 if dy < 0 else 27 if dy > 0 else 5
    col = 0 if dx < 0 else 27 if dx > 0 else 5
    shifted = bench.shift_images(_one_pixel_image(row, col), dy, dx)
    assert not shifted.any()


def test_shift_fills_the_uncovered_border_with_zeros(bench):
    images = np.full((3, 784), 7, dtype=np.float32)
    shifted = bench.shift_images(images, 1, -2).reshape(3, 28, 28)
    assert (shifted[:, 0, :] == 0).all()  # top row uncovered by moving down
    assert (shifted[:, :, -2:] == 0).all()  # right columns uncovered by moving left
    assert (shifted[:, 1:, :-2] == 7).all()
    assert bench.shift_images(images, 28, 0).sum() == 0


def test_shift_rejects_images_that_are_not_flat_28_by_28(bench):
    with pytest.raises(ValueError, match="784"):
        bench.shift_images(np.zeros((2, 28, 28)), 1, 0)


def test_shift_order_starts_with_original_axes_then_diagonals(bench):
    order = bench.shift_order(2)
    assert order[:9] == [
        (0, 0),
        (-1, 0),
        (1, 0),
        (0, -1),
        (0, 1),
        (-1, -1),
        (-1, 1),
        (1, -1),
        (1, 1),
    ]
    assert len(order) == 25 and len(set(order)) == 25
    assert all(max(abs(dy), abs(dx)) == 2 for dy, dx in order[9:])


def test_tiling_reaches_kaggle_size_from_4000_digits(bench):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(4000, 784), dtype=np.uint8)
    labels = np.repeat(np.arange(10), 400)
    x, y, plan = bench.tile_with_shifts(images, labels, 42000, seed=1)
    assert x.shape == (42000, 784) and x.dtype == np.uint8 and y.shape == (42000,)
    assert sum(step["rows"] for step in plan) == 42000
    # 9 whole versions with at most one-pixel shifts, then two-pixel ones
    assert [step["rows"] for step in plan] == [4000] * 10 + [2000]
    assert [(s["dy"], s["dx"]) for s in plan][:9] == bench.shift_order(1)
    assert (plan[9]["dy"], plan[9]["dx"]) == (-2, 0)
    np.testing.assert_array_equal(x[:4000], images)
    np.testing.assert_array_equal(x[4000:8000], bench.shift_images(images, -1, 0))
    np.testing.assert_array_equal(y[:4000], labels)
    # the partial last version: distinct base digits, each with its own label
    tail_labels = y[40000:]
    assert len(tail_labels) == 2000
    description = bench.describe_plan(plan, 4000)
    assert (
        "42,000 rows" in description and "up" in description and "x2,000" in description
    )


def test_tiling_fewer_rows_than_the_base_takes_a_subset(bench):
    images = np.arange(10 * 784, dtype=np.uint8).reshape(10, 784)
    x, y, plan = bench.tile_with_shifts(images, np.arange(10), 4, seed=0)
    assert x.shape == (4, 784) and plan == [{"dy": 0, "dx": 0, "rows": 4}]
    for image, label in zip(x, y, strict=True):
        np.testing.assert_array_equal(image, images[label])


def test_stratified_holdout_is_even_and_disjoint(bench):
    labels = np.repeat(np.arange(10), 500)
    train, hold = bench.stratified_holdout(labels, 1000, seed=0)
    assert len(hold) == 1000 and len(train) == 4000
    assert np.bincount(labels[hold]).tolist() == [100] * 10
    assert not set(train) & set(hold)
    again, _ = bench.stratified_holdout(labels, 1000, seed=0)
    np.testing.assert_array_equal(train, again)


def test_epoch_flops_counts_what_our_mlp_multiplies(bench):
    n, h = 42000, 128
    forward = 2 * n * (784 * h + h * 10)
    backward = 2 * n * h * 10 + 2 * n * 10 * h + 2 * n * 784 * h
    assert bench.epoch_flops(n, h) == forward + backward


def test_markdown_table_and_list_parsing(bench):
    table = bench.markdown_table(
        ["engine", "s"], [["ours", "0.250"], ["torch", "0.500"]]
    )
    lines = table.splitlines()
    assert len(lines) == 4 and lines[1].endswith(":|")
    assert lines[2] == "| ours   | 0.250 |"
    assert bench.parse_list("2, 1,,") == ["2", "1"]
    assert bench.parse_list("2,1", int) == [2, 1]


def test_summary_pools_seeds_and_separates_quiet_epochs(bench):
    def run(seconds, others, accuracy):
        return {
            "threads": 2,
            "epoch_seconds": seconds,
            "others_cpu": others,
            "accuracy": accuracy,
            "final_loss": 0.1,
            "peak_rss": 100,
            "rss_after_imports": 10,
            "rss_after_data": 50,
            "timing": "t",
            "backend": "b",
        }

    summary = bench.summarize(
        [run([1.0, 2.0, 9.0], [0.0, 0.01, 0.6], 0.95), run([3.0], [None], 0.97)],
        cpus=2,
    )
    assert summary["seconds_per_epoch"] == 2.5
    assert summary["first_epoch"] == 2.0
    assert summary["quiet_epochs"] == 2 and summary["quiet_seconds_per_epoch"] == 1.5
    assert summary["others_cpu"] == 0.01
    assert summary["accuracy"] == pytest.approx(96.0)
    assert summary["accuracy_sd"] == pytest.approx(2**0.5)


def test_an_epoch_is_quiet_when_others_leave_it_its_cores(bench):
    # 2 threads on 2 CPUs: others may take only the margin
    assert bench.is_quiet(0.04, threads=2, cpus=2)
    assert not bench.is_quiet(0.3, threads=2, cpus=2)
    # 1 thread on 2 CPUs: another process may keep the other core busy
    assert bench.is_quiet(0.52, threads=1, cpus=2)
    assert not bench.is_quiet(0.7, threads=1, cpus=2)
    assert not bench.is_quiet(None, threads=1, cpus=2)


def test_the_profiles_timed_copy_of_fit_trains_bit_identically(bench):
    # the profile is only trustworthy while timed_fit does exactly what fit does
    from noisy_mnist import mlp

    rng = np.random.default_rng(1)
    images = rng.uniform(0, 1, size=(50, 16)).astype(np.float32)
    labels = rng.integers(0, 3, size=50)
    options = {"epochs": 2, "batch_size": 8, "learning_rate": 0.01}
    plain = mlp.MLP(n_hidden=5, n_inputs=16, n_classes=3, seed=4)
    plain.fit(images, labels, rng=np.random.default_rng(6), **options)
    timed = mlp.MLP(n_hidden=5, n_inputs=16, n_classes=3, seed=4)
    parts, epoch_seconds = bench.timed_fit(
        mlp,
        timed,
        images,
        labels,
        rng=np.random.default_rng(6),
        take_kwargs={},
        **options,
    )
    assert len(epoch_seconds) == 2
    assert "Adam (all parameters, one flat vector)" in parts
    for key in mlp.PARAM_NAMES:
        np.testing.assert_array_equal(timed.params[key], plain.params[key])
