"""A benchmark's printed numbers kept as a result file, with what made them.

    with recorded(RESULTS / "speed" / "analyze.md", "benchmarks.speed.analyze", argv):
        ...  # everything printed to stdout is shown as usual and kept

The file holds the command (``python -m module args``), the commit (``+changes`` when the code differs from
it), the time, the machine (cores, torch, load before and after) and the output verbatim. It is written
atomically when the run ends without an error: a failed or interrupted run leaves the previous file.
"""

from __future__ import annotations

import io
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.common.paths import BENCHMARKS, ROOT, SCRATCH


def code_version() -> str:
    """The commit the benchmark runs (with '+changes' when tladvisor/ or benchmarks/ differ from it; result files
    under benchmarks/results are output, not code)."""

    def git(*words: str) -> str:
        return subprocess.run(["git", *words], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = bool(git("status", "--porcelain", "--", str(ROOT / "tladvisor"), str(BENCHMARKS),
                         f":(exclude){(BENCHMARKS / 'results').relative_to(ROOT)}"))
    except OSError:
        return "unknown"
    return (head or "unknown") + ("+changes" if dirty else "")


def machine() -> str:
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = "absent"
    return (f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}, "
            f"torch {torch_version}")


class _Tee(io.TextIOBase):
    def __init__(self, stream):
        self.stream, self.kept = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.kept.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


@contextmanager
def recorded(path: Path | None, module: str, argv: list[str] | None = None) -> Iterator[None]:
    """Keep what the block prints in ``path`` (nothing kept when ``path`` is None)."""
    if path is None:
        yield
        return
    words = list(sys.argv[1:] if argv is None else argv)
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_before = os.getloadavg()[0]
    tee, original = _Tee(sys.stdout), sys.stdout
    sys.stdout = tee
    try:
        yield
    finally:
        sys.stdout = original
    command = shlex.join([".venv/bin/python", "-m", module, *words])
    text = (f"# {module}\n\nCommand: `{command}`\n\nCode: {code_version()}; started {started}; machine: {machine()}; "
            f"load {load_before:.2f} before, {os.getloadavg()[0]:.2f} after.\n\n```\n{tee.kept.getvalue().rstrip()}\n```\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
    print(f"kept in {path}")


def add_record_option(parser, name: str) -> None:
    """``--record PATH``: where the output is kept, by default ``reports/benchmarks/<name>`` (git-ignored); a run
    that replaces a file the docs quote names it, ``--record benchmarks/results/<name>``, so no casual run with
    other arguments overwrites one. ``--no-record`` keeps nothing."""
    default = SCRATCH / name
    parser.add_argument("--record", type=Path, default=default,
                        help=f"keep the output and its provenance here (default {default.relative_to(ROOT)}; the "
                             f"committed result is benchmarks/results/{name})")
    parser.add_argument("--no-record", dest="record", action="store_const", const=None, help="keep nothing")
