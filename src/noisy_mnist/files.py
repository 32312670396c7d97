"""Writing files so that a killed run never leaves a truncated one behind.

Everything is written to a temporary name in the target's folder and then renamed
into place; a rename within one file system is atomic, so a reader (or the next
Snakemake run) sees either the old file, the complete new one, or none.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

_UMASK = os.umask(0)  # read the umask (there is no way to read it but setting it)
os.umask(_UMASK)


def write_bytes_atomic(path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        # mkstemp makes the file private (0600); give it the usual permissions
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_text_atomic(path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path, data) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def save_npz_atomic(path, **arrays: np.ndarray) -> None:
    """``np.savez`` (uncompressed, no pickled objects) written atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())


def save_figure(fig, path) -> None:
    """A matplotlib figure as PNG, without the metadata that changes from run to run."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    write_bytes_atomic(path, buffer.getvalue())
