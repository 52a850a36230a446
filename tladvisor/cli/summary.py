"""What ``tladvisor analyze`` prints when it ends: the backbone table, the advice, the best trial, and
a short block of the warnings the report holds (so a terminal user does not miss them)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tladvisor.measures import names
from tladvisor.records import AnalysisRun
from tladvisor.strategies import FREEZE_ALL
from tladvisor.text import printable


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def learning_rate_text(rates: dict, strategy: dict | None = None) -> str:
    """``lr head 3e-03, backbone frozen``: a backbone with rate 0, or under a strategy that freezes every
    stage (``strategy``: its entry in the run's registry, ``AnalysisRun.strategies``), is not trained."""
    backbone = rates.get("backbone", 0)
    frozen = not backbone or (strategy or {}).get("freeze") == FREEZE_ALL
    return f"lr head {rates.get('head', 0):.0e}, backbone {'frozen' if frozen else f'{backbone:.0e}'}"


def run_warnings(run: AnalysisRun) -> list[str]:
    """The report's warnings (:func:`tladvisor.report.view.collect_warnings` of what analysis.json holds),
    one line each, less the plugin failures: those go to stderr, one line each, as they always did."""
    from tladvisor.report.analysis_json import ANALYSIS_FILENAME, load_analysis
    from tladvisor.report.sections import stored_analysis
    from tladvisor.report.view import collect_warnings

    written = Path(run.out_dir) / ANALYSIS_FILENAME if run.out_dir is not None else None
    try:  # what the run wrote, rather than building the whole analysis once more
        analysis = load_analysis(written) if written is not None and written.is_file() else stored_analysis(run)
    except Exception:  # noqa: BLE001 -- an unreadable file: the records still say it
        analysis = stored_analysis(run)
    return [item["text"] for item in collect_warnings(analysis) if item["kind"] != "plugin failure"]


def print_summary(run: AnalysisRun, out: Console, err: Console) -> None:
    rec = run.recommendation
    table = Table(title="Backbones", show_lines=False)
    table.add_column("backbone", no_wrap=True)
    for column in ("similarity", "linear probe", "pretraining gain", "LogME", "measured in"):
        table.add_column(column, justify="right")

    def fmt(m, name, digits=3):
        score = m.scores.get(name)
        return "-" if score is None else f"{score.value:.{digits}f}"

    for m in run.measurements:
        sim = m.similarity
        table.add_row(m.backbone, f"{sim.value:.2f} ± {sim.spread or 0:.2f}", fmt(m, names.LINEAR_PROBE_ACCURACY),
                      fmt(m, names.PRETRAINING_GAIN), fmt(m, names.LOGME),
                      "cache" if m.from_cache else f"{m.seconds:.1f} s")
    out.print(table)
    if rec is not None:
        # Two short lines rather than one the terminal breaks anywhere (it left "confidence 0.42" alone)
        out.print(f"[bold]Recommendation:[/] {rec.backbone}: {rec.strategy} "
                  f"(freeze {rec.freeze_depth} of {rec.n_stages} stages), confidence {rec.confidence:.2f}")
        out.print(printable(f"  starting rates: {learning_rate_text(rec.learning_rates, run.strategies.get(rec.strategy))}"),
                  markup=False, highlight=False)
        width = max(40, (out.width or 100) - 1)
        for sentence in rec.rationale:  # wrapped here, continuation lines indented under the sentence
            out.print(textwrap.fill(printable(sentence), width=width, initial_indent="  - ", subsequent_indent="    ",
                                    break_on_hyphens=False), markup=False, highlight=False, soft_wrap=True)
    if run.tuning is not None and run.tuning.best is not None:
        best = run.tuning.best
        n_val = run.profile.split_counts.get("val") if run.profile is not None else None
        noun = "text" if getattr(run.profile, "modality", "image") == "text" else "image"
        on = f" on {_count(n_val, noun)}" if n_val else ""
        accuracy = f"{best.value:.3f}{on}"
        from tladvisor.tuning.results import config_label

        if best.folds:  # cross-validated: the mean, its spread over the folds, and the images they cover
            from tladvisor.tuning.folds import cv_accuracy_text

            accuracy = cv_accuracy_text(best.value, best.folds)
        out.print(printable(f"[bold]Best trial:[/] #{best.number} val accuracy {accuracy} "
                            f"{config_label(best.params)}; "
                            f"model in {run.tuning.best_model_dir}"))
    if run.tuning is not None:
        from tladvisor.report.tuning_notes import class_weights_text
        from tladvisor.tuning.results import summary_lines

        weighted = class_weights_text({"class_weights": getattr(run.options, "class_weights", "none")})
        if weighted:
            out.print(printable(weighted[0].upper() + weighted[1:] + "."), markup=False, highlight=False)
        for line in summary_lines(run.tuning):
            out.print(printable(line), markup=False, highlight=False)
    for failure in run.plugin_failures:
        err.print(printable(f"plugin '{failure.plugin}' failed in {failure.hook}: {failure.error}"), markup=False)
    warnings = run_warnings(run)
    if warnings:
        out.print(f"[bold yellow]Warnings ({len(warnings)}):[/]")
        for line in warnings:
            out.print(printable(f"  ! {line}"), markup=False, highlight=False, soft_wrap=True)
    out.print(printable(f"Report: {run.out_dir / 'index.html'}"), markup=False)
