"""What ``tladvisor analyze`` prints when it ends: the backbone table, the advice, the best trial, and
a short block of the warnings the report holds (so a terminal user does not miss them)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from tladvisor.data.assemble import skip_summary
from tladvisor import measure_names as names
from tladvisor.records import AnalysisRun
from tladvisor.strategies import FREEZE_ALL
from tladvisor.text import printable

GREYSCALE_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def learning_rate_text(rates: dict, strategy: dict | None = None) -> str:
    """``lr head 3e-03, backbone frozen``: a backbone with rate 0, or under a strategy that freezes every
    stage (``strategy``: its entry in the run's registry, ``AnalysisRun.strategies``), is not trained."""
    backbone = rates.get("backbone", 0)
    frozen = not backbone or (strategy or {}).get("freeze") == FREEZE_ALL
    return f"lr head {rates.get('head', 0):.0e}, backbone {'frozen' if frozen else f'{backbone:.0e}'}"


def run_warnings(run: AnalysisRun) -> list[str]:
    """Every warning of the run, one line each, duplicates dropped, in the order a reader needs them.

    Plugin failures are not among them: they go to stderr, one line each, as they always did."""
    lines: list[str] = []
    rec, profile, dataset = run.recommendation, run.profile, run.dataset
    for name, reason in run.backbones_left_out.items():
        lines.append(f"backbone {name} left out: {reason}")
    if dataset is not None and dataset.skipped and not any("files skipped" in w for w in (profile.warnings
                                                                                          if profile else ())):
        lines.append(f"{_count(len(dataset.skipped), 'file')} skipped ({skip_summary(dataset.skipped)}); "
                     "the list with reasons is in the report")
    if profile is not None and profile.modes:
        grey = sum(n for mode, n in profile.modes.items() if mode in GREYSCALE_MODES)
        if grey:
            share = grey / max(profile.n_samples, 1)
            lines.append(f"{share:.0%} of the images ({grey:,} of {profile.n_samples:,}) are greyscale, "
                         "fed to the backbones as 3 equal RGB channels")
    if dataset is not None:
        for m in run.measurements:
            if m.n_measured < len(dataset.samples):
                lines.append(f"measured {m.n_measured:,} of {len(dataset.samples):,} images per backbone "
                             "(a stratified sample; --max-samples raises it)")
                break
    lines.extend(rec.warnings if rec is not None else (profile.warnings if profile is not None else ()))
    for m in run.measurements:
        lines.extend(m.warnings)
    return list(dict.fromkeys(lines))


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
        out.print(f"[bold]Recommendation:[/] {rec.backbone}: {rec.strategy} "
                  f"(freeze {rec.freeze_depth} of {rec.n_stages} stages), "
                  f"{learning_rate_text(rec.learning_rates, run.strategies.get(rec.strategy))}, confidence {rec.confidence:.2f}")
        for sentence in rec.rationale:
            out.print(printable(f"  - {sentence}"), markup=False, highlight=False)
    if run.tuning is not None and run.tuning.best is not None:
        best = run.tuning.best
        n_val = run.profile.split_counts.get("val") if run.profile is not None else None
        on = f" on {_count(n_val, 'image')}" if n_val else ""
        out.print(printable(f"[bold]Best trial:[/] #{best.number} val accuracy {best.value:.3f}{on} "
                            f"{best.params.get('backbone')} {best.params.get('strategy')}; "
                            f"model in {run.tuning.best_model_dir}"))
    if run.tuning is not None:
        from tladvisor.tuning.results import summary_lines

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
