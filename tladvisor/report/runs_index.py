"""The output folder's own ``index.html``: every run in it (one sub-folder with an analysis.json each)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from markupsafe import Markup

from tladvisor.errors import TLAdvisorError
from tladvisor.report.analysis_json import ANALYSIS_FILENAME, load_analysis
from tladvisor.runtime.atomic import write_text_atomic
from tladvisor.report.html import script_hash, sort_script, template_environment
from tladvisor.report.svg import fmt
from tladvisor.report.view import accuracy_text, strategy_label

INDEX_FILENAME = "index.html"
MARKER = "tladvisor runs index"  # in the page's <meta name="generator">: never overwrite someone else's index.html


def collect_runs(folder: Path) -> list[dict[str, Any]]:
    """One row per run folder, newest first. An unreadable analysis.json is listed with its error."""
    runs = []
    for analysis_path in sorted(Path(folder).glob(f"*/{ANALYSIS_FILENAME}")):
        run_dir = analysis_path.parent
        row: dict[str, Any] = {"folder": run_dir.name, "href": f"{quote(run_dir.name)}/{INDEX_FILENAME}",
                               "has_report": (run_dir / INDEX_FILENAME).is_file()}
        try:
            analysis = load_analysis(analysis_path)
        except TLAdvisorError as error:
            runs.append(row | {"run_id": run_dir.name, "created": "", "error": str(error)})
            continue
        dataset = analysis.get("dataset") or {}
        recommendation = analysis.get("recommendation") or {}
        best = (analysis.get("tuning") or {}).get("best") or {}
        runs.append(row | {
            "run_id": str(analysis.get("run_id") or run_dir.name),
            "created": str(analysis.get("created") or ""),
            "date": readable_date(analysis.get("created")),
            "dataset": Path(str(dataset.get("root"))).name if dataset.get("root") else "—",
            "dataset_root": dataset.get("root") or "",
            "size": f"{fmt(dataset.get('n_samples'))} images · {fmt(dataset.get('n_classes'))} classes" if dataset else "",
            "backbone": recommendation.get("backbone") or "—",
            "strategy": strategy_label(recommendation.get("strategy")) if recommendation else "—",
            "confidence": fmt(recommendation.get("confidence"), 2) if recommendation else "—",
            "best": accuracy_text(best.get("value")) if best else "—",  # 3 decimals: 1.000, 0.880, 0.873
            "error": None,
        })
    runs.sort(key=lambda run: run["created"], reverse=True)
    return runs


def readable_date(created) -> str:
    """``2025-01-15 10:24 UTC`` from analysis.json's ISO 8601 ``created`` (as given when it does not parse)."""
    try:
        moment = datetime.fromisoformat(str(created))
    except ValueError:
        return str(created or "")
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
        return moment.strftime("%Y-%m-%d %H:%M UTC")
    return moment.strftime("%Y-%m-%d %H:%M")


def render_runs_index(folder: Path) -> str:
    script = sort_script()
    return template_environment().get_template("runs_index.html.j2").render(
        folder=str(folder), runs=collect_runs(folder), marker=MARKER, script=Markup(script), script_hash=script_hash(script))


def write_runs_index(folder: str | Path) -> Path:
    """Write (atomically) ``folder/index.html`` listing every run under ``folder``."""
    folder = Path(folder)
    return write_text_atomic(folder / INDEX_FILENAME, render_runs_index(folder))


def is_runs_index(path: Path) -> bool:
    """Whether ``path`` is a runs index written by tladvisor (so it may be replaced)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return f'<meta name="generator" content="{MARKER}">' in head
