"""Outputs are written atomically and caches distrust what they read.

A failed write (disk full, simulated by ``os.replace`` raising ENOSPC) is one error line and leaves the
previous analysis.json, report and caches exactly as they were, with no temporary file behind. A corrupt
entry in the feature cache or the measurement cache (truncated, random bytes, the right container with
the wrong content, a pickle) is detected, never executed, measured again and rewritten.
"""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tladvisor.measures import cache as measurement_cache

from helpers import TINY_PLUGIN, analyze_tiny, write_image_folder


@pytest.fixture
def plugins(write_plugin):
    return write_plugin("tiny_plugin", TINY_PLUGIN)


@pytest.fixture
def data(tmp_path):
    return write_image_folder(tmp_path / "data", n_classes=3, per_class=8)


analyze = analyze_tiny


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("[")]


class CreatesMarkerWhenUnpickled:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


# --- disk full ---------------------------------------------------------------------------------------


def test_disk_full_while_writing_keeps_the_previous_outputs_and_caches(plugins, data, tmp_path, capsys, monkeypatch):
    assert analyze(plugins, data, tmp_path) == 0
    before = snapshot(tmp_path / "reports"), snapshot(tmp_path / "cache")
    capsys.readouterr()

    def disk_full(source, target, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", disk_full)
    assert analyze(plugins, data, tmp_path, "--seed", "1") == 2  # new numbers to write, nowhere to put them
    monkeypatch.undo()

    lines = error_lines(capsys.readouterr().err)
    (line,) = [line for line in lines if not line.startswith("WARNING")]  # the cache's warning may come first
    assert line.startswith("error: cannot write analysis.json in folder") and "No space left on device" in line
    assert (snapshot(tmp_path / "reports"), snapshot(tmp_path / "cache")) == before  # and no temporary files
    assert analyze(plugins, data, tmp_path) == 0  # the caches from before still serve
    analysis = json.loads((tmp_path / "reports" / "run" / "analysis.json").read_text())
    assert analysis["backbones"][0]["from_cache"] is True


def test_a_cache_that_cannot_be_written_costs_time_not_the_result(plugins, data, tmp_path, caplog):
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    assert analyze(plugins, data, tmp_path) == 0
    analysis = json.loads((tmp_path / "reports" / "run" / "analysis.json").read_text())
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and str(tmp_path / "cache") in r.getMessage()]
    assert any(m.startswith("features not cached in") for m in warned)  # said, one line each, and the run went on
    assert any(m.startswith("measurement not cached in") for m in warned) and all("\n" not in m for m in warned)
    assert analysis["backbones"][0]["from_cache"] is False
    # the same result as with a cache that works: the cache costs time, never the numbers
    (tmp_path / "cache").unlink()
    assert analyze(plugins, data, tmp_path, run_name="cached") == 0
    cached = json.loads((tmp_path / "reports" / "cached" / "analysis.json").read_text())
    assert (tmp_path / "cache").is_dir() and any((tmp_path / "cache").rglob("*.npz"))
    assert cached["recommendation"]["strategy"] == analysis["recommendation"]["strategy"]
    assert cached["backbones"][0]["scores"] == analysis["backbones"][0]["scores"]


# --- corrupt cache entries ---------------------------------------------------------------------------


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _pickled_npz(marker: Path) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, features=np.array([CreatesMarkerWhenUnpickled(marker)], dtype=object))
    return buffer.getvalue()


def _meta(value) -> np.ndarray:
    return np.frombuffer(json.dumps(value).encode(), dtype=np.uint8)


FEATURE_CORRUPTIONS = {
    "empty": lambda good, marker: b"",
    "truncated": lambda good, marker: good[: len(good) // 2],
    "random bytes": lambda good, marker: os.urandom(300),
    "a zip of something else": lambda good, marker: _zip({"readme.txt": b"hello"}),
    "pickled object array": lambda good, marker: _pickled_npz(marker),
    "meta not an object": lambda good, marker: _replace_npz(good, meta=_meta([1, 2])),
    "stage shift malformed": lambda good, marker: _replace_npz(good, meta=_meta({"stage_shift": 5})),
    "features of the wrong shape": lambda good, marker: _replace_npz(good, features=np.zeros(3, np.float32)),
}


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _replace_npz(good: bytes, **changes) -> bytes:
    with np.load(io.BytesIO(good)) as stored:
        arrays = {name: stored[name] for name in stored.files}
    return _npz(**{**arrays, **changes})


@pytest.mark.parametrize("corruption", sorted(FEATURE_CORRUPTIONS))
def test_a_corrupt_feature_cache_entry_is_never_trusted_and_is_rebuilt(corruption, plugins, data, tmp_path):
    assert analyze(plugins, data, tmp_path) == 0
    first = json.loads((tmp_path / "reports" / "run" / "analysis.json").read_text())["backbones"][0]
    for entry in (tmp_path / "cache").glob("*.measurement.json"):
        entry.unlink()  # so that the features are read again
    (entry,) = (tmp_path / "cache").glob("*.npz")
    marker = tmp_path / "code-ran"
    entry.write_bytes(FEATURE_CORRUPTIONS[corruption](entry.read_bytes(), marker))

    assert analyze(plugins, data, tmp_path) == 0

    assert not marker.exists()
    again = json.loads((tmp_path / "reports" / "run" / "analysis.json").read_text())["backbones"][0]
    assert again["from_cache"] is False  # measured again...
    assert again["scores"] == first["scores"] and again["similarity"] == first["similarity"]  # ...to the same numbers
    with np.load(entry) as rebuilt:  # ...and the entry rewritten whole
        assert rebuilt["features"].shape[0] == 24


MEASUREMENT_CORRUPTIONS = {
    "empty": "",
    "truncated": None,  # the first half of the good entry
    "not JSON": "\x00\x01 not json",
    "a list": "[1, 2, 3]",
    "scores not a mapping": lambda good: {**good, "scores": [1, 2]},
    "similarity missing": lambda good: {k: v for k, v in good.items() if k != "similarity"},
    "similarity a string": lambda good: {**good, "similarity": "high"},
    "stage shift of strings": lambda good: {**good, "stage_shift": ["a", "b"]},
    "embedding not numbers": lambda good: {**good, "embedding_2d": [["x", "y", "z"]]},
}


@pytest.mark.parametrize("corruption", sorted(MEASUREMENT_CORRUPTIONS))
def test_a_corrupt_measurement_cache_entry_is_measured_again_and_rewritten(corruption, plugins, data, tmp_path):
    assert analyze(plugins, data, tmp_path) == 0
    first = json.loads((tmp_path / "reports" / "run" / "analysis.json").read_text())["backbones"][0]
    (entry,) = (tmp_path / "cache").glob("*.measurement.json")
    good_text = entry.read_text()
    change = MEASUREMENT_CORRUPTIONS[corruption]
    if change is None:
        entry.write_text(good_text[: len(good_text) // 2])
    elif callable(change):
        entry.write_text(json.dumps(change(json.loads(good_text))))
    else:
        entry.write_text(change)
    assert measurement_cache.read(entry) is None

    assert analyze(plugins, data, tmp_path) == 0

    again = json.loads((tmp_path / "reports" / "run" / "analysis.json").read_text())["backbones"][0]
    assert again["scores"] == first["scores"] and again["similarity"] == first["similarity"]
    def without_origin(text):  # measured again from the cached features, so from_cache differs
        return {k: v for k, v in json.loads(text).items() if k != "from_cache"}

    assert without_origin(entry.read_text()) == without_origin(good_text)  # rewritten whole
    assert measurement_cache.read(entry) is not None


def test_the_measurement_cache_never_unpickles(tmp_path):
    marker = tmp_path / "code-ran"
    entry = tmp_path / "x.measurement.json"
    entry.write_bytes(pickle.dumps(CreatesMarkerWhenUnpickled(marker)))
    assert measurement_cache.read(entry) is None and not marker.exists()
