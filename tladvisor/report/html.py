"""The HTML report: one self-contained file rendered from analysis.json data (Jinja2, autoescape on).

Built-in sections come first in a fixed order; sections from the ``report_sections`` hook slot in by
their ``order`` (built-ins use 10..60, so a plugin's default 100 lands after Reproduce).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path

import jinja2
from markupsafe import Markup

from tladvisor import __version__
from tladvisor.records import ReportSection
from tladvisor.report import tuning_view, view
from tladvisor.report.analysis_json import SCHEMA_VERSION
from tladvisor.text import printable

BUILTIN_SECTIONS: tuple[tuple[str, str, int, Callable[[dict], object]], ...] = (
    ("verdict", "Verdict", 10, view.verdict_view),
    ("dataset", "Dataset", 20, view.dataset_view),
    ("similarity", "Similarity and transferability", 30, view.similarity_view),
    ("scenarios", "Four-scenario map", 40, view.scenario_view),
    ("tuning", "Tuning", 50, tuning_view.tuning_view),
    ("reproduce", "Reproduce", 60, view.reproduce_view),
)
OPTIONAL_SECTIONS = {"tuning"}  # left out entirely when there is nothing to show


@lru_cache(maxsize=1)
def template_environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("tladvisor.report", "templates"),
        autoescape=True,  # every template, whatever its name: class names and paths come from users
        undefined=jinja2.StrictUndefined,  # a misspelt variable is a bug, not an empty string
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_report(analysis: dict, sections: Iterable[ReportSection] = ()) -> str:
    """The report page for ``analysis`` (the analysis.json data), plugin ``sections`` inserted by order."""
    environment = template_environment()
    built = []
    for section_id, title, order, build in BUILTIN_SECTIONS:
        data = build(analysis)
        if data is None and section_id in OPTIONAL_SECTIONS:
            continue
        html = environment.get_template(f"section_{section_id}.html.j2").render(v=data)
        built.append(ReportSection(section_id, title, Markup(html), order))
    plugin_sections = [ReportSection(s.id, s.title, Markup(s.html), s.order) for s in sections]
    ordered = sorted([*built, *plugin_sections], key=lambda section: section.order)  # stable: built-ins first
    script = sort_script()
    return printable(environment.get_template("report.html.j2").render(
        title=_title(analysis),
        run_id=analysis.get("run_id"),
        created=analysis.get("created"),
        dataset_root=(analysis.get("dataset") or {}).get("root"),
        sections=ordered,
        script=Markup(script),
        script_hash=script_hash(script),
        version=_version(analysis),
        schema_version=analysis.get("schema_version", SCHEMA_VERSION),
    ))


def sort_script() -> str:
    return _template_source("sortable.js")


def page_style() -> Markup:
    return Markup(_template_source("report.css"))


def script_hash(script: str) -> str:
    """The Content-Security-Policy source that lets exactly this inline script run."""
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")


def _template_source(name: str) -> str:
    source, _, _ = template_environment().loader.get_source(template_environment(), name)
    return source


def _title(analysis: dict) -> str:
    root = (analysis.get("dataset") or {}).get("root")
    return f"Transfer-learning advice for {Path(root).name or root}" if root else "Transfer-learning advice"


def _version(analysis: dict) -> str:
    versions = (analysis.get("environment") or {}).get("versions") or {}
    return str(versions.get("tladvisor") or __version__)
