"""Shared fixtures. Kept small: most tests build what they need in their own file."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tladvisor.plugins import PLUGINS_DIR_ENV

# pytest-xdist runs one worker per core: more than one torch thread each oversubscribes the machine,
# and tiny models then spend their time in thread hand-offs (seen: 50x slower convolutions).
torch.set_num_threads(1)
# The CLI's thread plan (tladvisor.runtime.threads) must keep that when a test calls the CLI in-process, and
# the suite must not count in (or be counted by) real runs' process registry.
os.environ.setdefault("TLADVISOR_THREADS", "1")
os.environ.setdefault("TLADVISOR_RUNTIME_DIR", os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                                            f"tladvisor-tests-{os.getpid()}"))


@pytest.fixture(autouse=True)
def no_user_plugins_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugins folder set in the developer's shell must not leak into every PluginHost() of the suite."""
    monkeypatch.delenv(PLUGINS_DIR_ENV, raising=False)


@pytest.fixture
def write_plugin(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a one-file plugin ``<name>.py`` into ``tmp_path/plugins`` and return that folder."""
    folder = tmp_path / "plugins"
    folder.mkdir(exist_ok=True)

    def write(name: str, source: str) -> Path:
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
        return folder

    return write


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """A learnable generated dataset (3 classes x 12 coloured shapes, 32 px) shared by tuning tests."""
    from tladvisor.tuning.synthetic import write_shapes_dataset

    return write_shapes_dataset(tmp_path_factory.mktemp("shapes"), n_classes=3, per_class=12, size=32)


@pytest.fixture
def decodes(monkeypatch) -> list[Path]:
    """Every image the decoded-image store decodes, in order (a counter for "decode once" tests)."""
    from tladvisor.data import decoded_store

    seen: list[Path] = []
    original = decoded_store.decode

    def counting(path):
        seen.append(Path(path))
        return original(path)

    monkeypatch.setattr(decoded_store, "decode", counting)
    return seen


@pytest.fixture
def benchmark_module(monkeypatch) -> Callable[..., object]:
    """Imports a module of the benchmarks package afresh (``benchmark_module("benchmarks.ranking.logic")``; the
    repository root is on sys.path through pytest's ``pythonpath``); names in ``fresh`` are dropped from
    sys.modules first as well."""
    import importlib
    import sys

    def load(name: str, *fresh: str):
        for module in (name, *fresh):
            sys.modules.pop(module, None)
        return importlib.import_module(name)

    return load
