"""A run's files: ``analysis.json``, the HTML report, and the runs index in the folder above.

:func:`write_run` is what the built-in ``write_report`` plugin does; :func:`rerender` is the library side
of ``tladvisor report DIR`` and of a tuning worker's refresh: a report is rendered from analysis.json
alone, so it can be redrawn after an upgrade without the dataset or the models.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

from tladvisor.runtime.atomic import write_text_atomic
from tladvisor.errors import OutputError
from tladvisor.records import AnalysisRun, ReportSection
from tladvisor.report.analysis_json import ANALYSIS_FILENAME, analysis_json_chunks, build_analysis, load_analysis
from tladvisor.report.html import render_report
from tladvisor.report.sections import collect_sections
from tladvisor.report.runs_index import INDEX_FILENAME, is_runs_index, write_runs_index

log = logging.getLogger(__name__)


def write_run(run: AnalysisRun, out_dir: Path, sections: Iterable[ReportSection] = (), *,
              analysis: dict | None = None) -> list[Path]:
    """Write ``analysis.json`` and ``index.html`` of ``run`` into ``out_dir``, and the runs index above it.
    ``analysis``: ``run``'s analysis when the caller built it already (else it is built here)."""
    out_dir = _ensure_folder(Path(out_dir))
    analysis_path = write_text_atomic(out_dir / ANALYSIS_FILENAME,
                                      analysis_json_chunks(analysis if analysis is not None else build_analysis(run)))
    # Render from what was stored, not from the records: `tladvisor report` then redraws the same page.
    stored = json.loads(analysis_path.read_text(encoding="utf-8"))
    report_path = write_text_atomic(out_dir / INDEX_FILENAME, render_report(stored, sections or ()))
    # The runs index goes in the output folder the user chose (--out), holding one folder per run.
    runs_folder = Path(run.options.out_dir).resolve()
    _update_runs_index(out_dir, create=out_dir.resolve().parent == runs_folder)
    return [analysis_path, report_path]


def rerender(run_dir: str | Path, sections: Iterable[ReportSection] | None = None, *, host=None) -> Path:
    """Re-render ``run_dir/index.html`` from ``run_dir/analysis.json``; return the report's path.

    ``sections``: the plugin sections to show; by default collected from ``host``'s ``report_sections``
    plugins (a fresh :class:`~tladvisor.plugins.PluginHost` when none is given) over the stored analysis,
    as the first render did.
    """
    run_dir = Path(run_dir)
    analysis = load_analysis(run_dir / ANALYSIS_FILENAME)
    if host is None:
        from tladvisor.plugins import PluginHost

        host = PluginHost()
    if sections is None:
        sections = collect_sections(host, analysis)
    # Through the write_report hook, as the first write went: another plugin's own output is refreshed too.
    # Only writers that name `analysis` are called: one written before re-renders went through the hook
    # expects a run and would fail on None.
    written = [p for _plugin, paths in host.call_each("write_report", accepting="analysis", run=None,
                                                       out_dir=run_dir, sections=list(sections), analysis=analysis)
               for p in paths or ()]
    report_path = run_dir / INDEX_FILENAME
    if report_path not in [Path(p) for p in written]:  # a host without the built-in report writer
        report_path = render_index(run_dir, analysis, sections)
    return report_path


def render_index(run_dir: Path, analysis: dict, sections: Iterable[ReportSection]) -> Path:
    """``run_dir/index.html`` from a stored analysis, and the runs index above it refreshed."""
    report_path = write_text_atomic(Path(run_dir) / INDEX_FILENAME, render_report(analysis, list(sections)))
    _update_runs_index(Path(run_dir), create=False)
    return report_path


def _ensure_folder(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create output folder {folder}: {error.strerror or error}; "
                          "choose another output folder (--out)") from None
    return folder


def _update_runs_index(run_dir: Path, create: bool) -> None:
    """Refresh the runs index in the folder above ``run_dir``.

    Created only in the run's own output folder; elsewhere (a run written straight into a home folder,
    say) only a runs index tladvisor wrote before is replaced, never someone else's index.html.
    """
    folder = run_dir.resolve().parent
    existing = folder / INDEX_FILENAME
    if folder == run_dir.resolve() or not (is_runs_index(existing) or (create and not existing.exists())):
        return
    try:  # the run's own files are what matters; a read-only parent folder only costs the listing
        write_runs_index(folder)
    except OutputError as error:
        log.warning("runs index not updated: %s", error)
