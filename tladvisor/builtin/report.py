"""Built-in plugin: write ``analysis.json`` and the HTML report of a run, and the runs index above it
(the work lives in :mod:`tladvisor.report.writer`)."""

from __future__ import annotations

from pathlib import Path

from tladvisor import hookimpl
from tladvisor.records import AnalysisRun, ReportSection
from tladvisor.report.writer import write_run


@hookimpl
def write_report(run: AnalysisRun, out_dir: Path, sections: list[ReportSection]) -> list[Path]:
    return write_run(run, out_dir, sections or ())
