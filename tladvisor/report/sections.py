"""Plugin report sections, collected from what analysis.json holds.

The first render (``analyze``) and every re-render (``tladvisor report RUN``, a tuning worker's refresh)
call ``report_sections`` with the same ``analysis`` dict, so a re-rendered report keeps the plugins'
sections and equals the first one. Only the first render also has the run's records (``run``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from tladvisor.records import AnalysisRun, ReportSection
from tladvisor.report.analysis_json import build_analysis, dumps_analysis

if TYPE_CHECKING:
    from tladvisor.plugins import PluginHost


def stored_analysis(run: AnalysisRun) -> dict[str, Any]:
    """``build_analysis(run)`` as it reads back from analysis.json (tuples as lists, NaN as null)."""
    return json.loads(dumps_analysis(build_analysis(run)))


def collect_sections(host: PluginHost, analysis: dict[str, Any], run: AnalysisRun | None = None) -> list[ReportSection]:
    """Every plugin's sections, ordered by their ``order`` field (a failing plugin is recorded and skipped)."""
    found = host.call("report_sections", run=run, analysis=analysis)
    sections = [section for part in found for section in part if isinstance(section, ReportSection)]
    return sorted(sections, key=lambda section: section.order)
