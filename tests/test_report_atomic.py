"""Atomic writes: the old file or the new one, never half of one; unwritable folders in one line."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tladvisor.errors import OutputError
from tladvisor.runtime import atomic
from tladvisor.report.analysis_json import analysis_json_chunks
from tladvisor.runtime.atomic import write_bytes_atomic, write_text_atomic


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_writes_text_and_bytes_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    assert write_text_atomic(path, "first ünïcode") == path
    assert path.read_text(encoding="utf-8") == "first ünïcode"
    write_text_atomic(path, iter(["sec", "ond"]))
    assert path.read_text() == "second"
    write_bytes_atomic(tmp_path / "blob.bin", [b"\x00\x01", b"\x02"])
    assert (tmp_path / "blob.bin").read_bytes() == b"\x00\x01\x02"
    assert leftovers(tmp_path) == []


def test_serialisation_failing_half_way_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "analysis.json"
    path.write_text('{"old": true}')
    # allow_nan=False: the encoder has already produced the first chunks when it meets the NaN
    analysis = {"schema_version": 1, "padding": ["x" * 100] * 50, "late": float("nan")}
    chunks = analysis_json_chunks(analysis)
    with pytest.raises(ValueError, match="Out of range float"):
        write_text_atomic(path, chunks)
    assert path.read_text() == '{"old": true}'
    assert leftovers(tmp_path) == []


def test_a_failed_first_write_creates_nothing(tmp_path: Path) -> None:
    def chunks():
        yield "<html>"
        raise RuntimeError("template blew up")

    with pytest.raises(RuntimeError, match="template blew up"):
        write_text_atomic(tmp_path / "index.html", chunks())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("make_folder", ["missing", "a_file"])
def test_unwritable_folder_is_an_output_error_naming_it(tmp_path: Path, make_folder: str) -> None:
    folder = tmp_path / make_folder
    if make_folder == "a_file":
        folder.write_text("not a folder")
    with pytest.raises(OutputError) as error:
        write_text_atomic(folder / "index.html", "x")
    message = str(error.value)
    assert str(folder) in message and "index.html" in message and "\n" not in message


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders anyway")
def test_read_only_folder_is_an_output_error(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="Permission denied"):
            write_text_atomic(folder / "index.html", "x")
    finally:
        folder.chmod(0o700)


def test_failing_rename_is_an_output_error_and_removes_the_temp(tmp_path: Path, monkeypatch) -> None:
    def refuse(source, target):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(OutputError, match=f"in folder {tmp_path}: Permission denied"):
        write_text_atomic(tmp_path / "index.html", "x")
    assert list(tmp_path.iterdir()) == []


def test_new_files_are_readable_by_others_and_replaced_files_keep_their_mode(tmp_path: Path) -> None:
    path = tmp_path / "index.html"
    write_text_atomic(path, "a")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # mkstemp's 0600 would hide a shared report
    path.chmod(0o600)
    write_text_atomic(path, "b")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_file_lock_excludes_other_holders_and_leaves_no_lock_file(tmp_path: Path) -> None:
    """Each holder removes the lock file when done; one that locked a file removed meanwhile starts again
    on the new one, so two holders are never inside at once (a lost update would show in the count)."""
    import threading
    import time

    lock, counter = tmp_path / "run" / "best_model.lock", tmp_path / "count"
    counter.write_text("0")

    def add_one_twenty_times() -> None:
        for _ in range(20):
            with atomic.file_lock(lock):
                value = int(counter.read_text())
                time.sleep(0.0005)  # widen the window in which an unguarded holder would interleave
                counter.write_text(str(value + 1))

    threads = [threading.Thread(target=add_one_twenty_times) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert int(counter.read_text()) == 6 * 20
    assert not lock.exists() and lock.parent.is_dir()
