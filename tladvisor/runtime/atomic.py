"""Files other processes may read or write at the same time: atomic writes and advisory file locks.

Atomic writes: a reader sees the old file or the new one, never half of one. The content goes to a
temporary file in the destination folder (same file system, so the final ``os.replace`` is a rename),
is flushed to disk, then renamed over the target. If anything fails on the way (including the
caller's generator raising half-way through serialising), the temporary file is removed and the old
file, if any, is left untouched. :func:`write_text_atomic` and :func:`write_bytes_atomic` (reports)
turn an ``OSError`` into a one-line :class:`~tladvisor.errors.OutputError`; :func:`write_atomic`
(caches, which warn and go on) lets it through.

Locks: :func:`file_lock` holds an exclusive ``flock`` on a lock file and removes the file when done,
so a run folder is not left with empty ``*.lock`` files.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from tladvisor.errors import OutputError

try:
    import fcntl
except ImportError:  # Windows: one process per run folder there
    fcntl = None

NEW_FILE_MODE = 0o644  # reports are meant to be shared; mkstemp's 0600 would hide them from a web server


# --- atomic writes ---------------------------------------------------------------------------------------


def write_text_atomic(path: str | Path, text: str | Iterable[str], encoding: str = "utf-8") -> Path:
    """Write ``text`` (a string, or an iterable of string chunks written as they come) to ``path``."""
    chunks = [text] if isinstance(text, str) else text
    return _write_report_file(Path(path), (chunk.encode(encoding) for chunk in chunks))


def write_bytes_atomic(path: str | Path, data: bytes | Iterable[bytes]) -> Path:
    """Write ``data`` (bytes, or an iterable of byte chunks) to ``path``."""
    chunks = [data] if isinstance(data, (bytes, bytearray, memoryview)) else data
    return _write_report_file(Path(path), chunks)


def _write_report_file(path: Path, chunks: Iterable[bytes]) -> Path:
    def write(handle: BinaryIO) -> None:
        for chunk in chunks:
            handle.write(chunk)

    try:
        return write_atomic(path, write, mode=_mode_for(path))
    except OSError as error:
        raise _output_error(path, error) from None


def write_atomic(path: str | Path, write: Callable[[BinaryIO], object], *, mode: int | None = None) -> Path:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it over ``path``.

    ``mode``: the new file's permissions (None: mkstemp's 0600, for private caches). Errors are the
    ``OSError`` (or whatever ``write`` raised) as it came, with no temporary file left behind.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
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


def _output_error(path: Path, error: OSError) -> OutputError:
    folder = path.parent if str(path.parent) else Path(".")
    reason = error.strerror or type(error).__name__
    return OutputError(f"cannot write {path.name} in folder {folder}: {reason}; "
                       "choose another output folder (--out) or fix its permissions")


def current_umask() -> int:
    """The process's umask (read from /proc where possible: setting it to read it races other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: str | Path) -> None:
    """Give ``path`` (and, for a folder, everything in it) the permissions a plain ``open``/``mkdir``
    would have: 0666 or 0777 less the umask (mkdtemp and mkstemp make them private)."""
    mask = current_umask()
    path = Path(path)
    targets = [path, *path.rglob("*")] if path.is_dir() else [path]
    for target in targets:
        os.chmod(target, (0o777 if target.is_dir() else 0o666) & ~mask)


# --- locks -----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created if missing), held for the ``with`` block.

    The lock file is removed when the block ends. That is safe with other processes waiting on it:
    a process that gets the lock checks that ``path`` still names the file it locked, and starts again
    on the new file when the holder before it removed the old one meanwhile.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(path, "a+b")
        try:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            if _still_names(path, handle):
                break
        except BaseException:
            handle.close()
            raise
        handle.close()  # removed by the holder before this one: lock the file now at ``path``
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # unlinked while held, so no waiter can lock it afterwards
            path.unlink()
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()


def _still_names(path: Path, handle: BinaryIO) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(handle.fileno())
    return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)
