"""Where the benchmarks put things: one folder for results, one for scratch.

``RESULTS`` (committed) holds every result file a document quotes: small JSON, Markdown and unit files, each
with the command that made it. ``SCRATCH`` (git-ignored) holds what is only needed while a run goes on or to
re-run it fast: work folders of generated tasks, caches, logs.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
RESULTS = BENCHMARKS / "results"
SCRATCH = ROOT / "reports" / "benchmarks"
