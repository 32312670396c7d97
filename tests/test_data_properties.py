"""Property tests: valid tables round-trip; damaged files fail only cleanly."""

from __future__ import annotations

import gzip
import io
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from noisy_mnist import N_CLASSES, N_PIXELS
from noisy_mnist.data import DataFormatError, read_kaggle_csv, write_kaggle_csv

# tmp_path_factory is session-scoped, so hypothesis may reuse it across examples.
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

row_counts = st.integers(min_value=1, max_value=30)


@st.composite
def digit_tables(draw):
    n_rows = draw(row_counts)
    images = draw(hnp.arrays(np.uint8, (n_rows, N_PIXELS)))
    labels = draw(hnp.arrays(np.uint8, n_rows, elements=st.integers(0, N_CLASSES - 1)))
    return images, labels


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("properties")


@SETTINGS
@given(table=digit_tables())
def test_train_table_round_trips(workdir, table):
    images, labels = table
    path = workdir / "train.csv"
    write_kaggle_csv(path, images, labels)
    got_images, got_labels = read_kaggle_csv(path)
    assert got_images.dtype == np.uint8 and got_labels.dtype == np.uint8
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


@SETTINGS
@given(table=digit_tables())
def test_test_table_round_trips(workdir, table):
    images, _ = table
    path = workdir / "test.csv"
    write_kaggle_csv(path, images)
    got_images, got_labels = read_kaggle_csv(path, kind="test")
    assert got_labels is None
    np.testing.assert_array_equal(got_images, images)


def _small_valid_files() -> dict[tuple[str, str], bytes]:
    """Valid train and test files, plain, gzip-compressed and zipped."""
    rng = np.random.default_rng(11)
    images = rng.integers(0, 256, size=(3, N_PIXELS), dtype=np.uint8)
    images[:, : N_PIXELS // 2] = 0  # many short cells, like real digits
    pixel_names = [f"pixel{i}" for i in range(N_PIXELS)]
    texts = {
        "train": [",".join(["label", *pixel_names])]
        + [
            ",".join(map(str, [label, *row]))
            for label, row in zip([3, 0, 9], images, strict=True)
        ],
        "test": [",".join(pixel_names)] + [",".join(map(str, row)) for row in images],
    }
    files = {}
    for kind, lines in texts.items():
        plain = ("\n".join(lines) + "\n").encode()
        files[kind, "plain"] = plain
        files[kind, "gzip"] = gzip.compress(plain, mtime=0)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(f"{kind}.csv", plain)
        files[kind, "zip"] = buffer.getvalue()
    return files


VALID_FILES = _small_valid_files()
LONGEST = max(len(content) for content in VALID_FILES.values())

# Bytes that matter to a CSV reader are drawn more often than arbitrary ones.
interesting_bytes = st.one_of(
    st.sampled_from(list(b',\n\r.-+eE0123456789 "\x00\xff')),
    st.integers(0, 255),
)
edits = st.lists(
    st.tuples(
        st.sampled_from(["replace", "delete", "insert"]),
        st.integers(min_value=0, max_value=LONGEST),
        st.lists(interesting_bytes, min_size=1, max_size=4).map(bytes),
    ),
    min_size=1,
    max_size=6,
)


def _apply(content: bytes, changes) -> bytes:
    for action, position, chunk in changes:
        position = min(position, len(content))
        if action == "replace":
            content = content[:position] + chunk + content[position + len(chunk) :]
        elif action == "delete":
            content = content[:position] + content[position + len(chunk) :]
        else:
            content = content[:position] + chunk + content[position:]
    return content


@settings(max_examples=100, deadline=None)
@given(
    changes=edits,
    kind=st.sampled_from(["train", "test"]),
    packing=st.sampled_from(["plain", "plain", "gzip", "zip"]),
)
def test_damaged_file_fails_only_with_data_format_error(
    workdir, changes, kind, packing
):
    path = workdir / "damaged.csv"
    path.write_bytes(_apply(VALID_FILES[kind, packing], changes))
    try:
        images, labels = read_kaggle_csv(path, kind=kind)
    except DataFormatError as error:
        assert str(path) in str(error)
        return
    # Some edits leave a valid file (e.g. a digit replaced by a digit).
    assert images.dtype == np.uint8 and images.shape[1] == N_PIXELS
    if kind == "train":
        assert labels.dtype == np.uint8 and labels.shape == (images.shape[0],)
        assert labels.max() < N_CLASSES
    else:
        assert labels is None
