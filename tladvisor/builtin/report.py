"""Built-in plugin: write ``analysis.json`` and the HTML report of a run, and the runs index above it
(the work lives in :mod:`tladvisor.report.writer`)."""

from __future__ import annotations

from pathlib import Path

from tladvisor import hookimpl
from tladvisor.records import AnalysisRun, ReportSection
from tladvisor.report.writer import render_index, write_run


@hookimpl
def write_report(run: AnalysisRun | None, out_dir: Path, sections: list[ReportSection],
                 analysis: dict | None = None) -> list[Path]:
    if run is None:  # a re-render from the stored analysis.json
        return [render_index(out_dir, analysis or {}, sections or ())]
    return write_run(run, out_dir, sections or (), analysis=analysis)
