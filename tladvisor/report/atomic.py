"""Atomic file writes: a reader sees the old file or the new one, never half of one.

The text goes to a temporary file in the destination folder (same file system, so the final
``os.replace`` is a rename), is flushed to disk, then renamed over the target. If anything fails on
the way (including the caller's generator raising half-way through serialising), the temporary file
is removed and the old file, if any, is left untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from tladvisor.errors import OutputError

NEW_FILE_MODE = 0o644  # reports are meant to be shared; mkstemp's 0600 would hide them from a web server


def write_text_atomic(path: str | Path, text: str | Iterable[str], encoding: str = "utf-8") -> Path:
    """Write ``text`` (a string, or an iterable of string chunks written as they come) to ``path``."""
    chunks = [text] if isinstance(text, str) else text
    return _write_atomic(Path(path), (chunk.encode(encoding) for chunk in chunks))


def write_bytes_atomic(path: str | Path, data: bytes | Iterable[bytes]) -> Path:
    """Write ``data`` (bytes, or an iterable of byte chunks) to ``path``."""
    chunks = [data] if isinstance(data, (bytes, bytearray, memoryview)) else data
    return _write_atomic(Path(path), chunks)


def _write_atomic(path: Path, chunks: Iterable[bytes]) -> Path:
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as error:
        raise _output_error(path, folder, error) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), _mode_for(path))
        os.replace(temp_name, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        if isinstance(error, OSError):
            raise _output_error(path, folder, error) from None
        raise
    _fsync_folder(folder)
    return path


def _mode_for(path: Path) -> int:
    """Keep the permissions of the file being replaced; new files get NEW_FILE_MODE."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        return NEW_FILE_MODE


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable; not supported everywhere (Windows), so best effort.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _output_error(path: Path, folder: Path, error: OSError) -> OutputError:
    reason = error.strerror or type(error).__name__
    return OutputError(f"cannot write {path.name} in folder {folder}: {reason}; "
                       "choose another output folder (--out) or fix its permissions")
