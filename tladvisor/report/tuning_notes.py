"""What the tuning section says beside the trials: the budget as given, and the metrics shown with accuracy."""

from __future__ import annotations

from tladvisor.report.svg import finite, fmt
from tladvisor.tuning.imbalance import unbalanced  # imports no torch

METRIC_LABELS = (("balanced_accuracy", "balanced accuracy"), ("macro_f1", "macro-F1"))


def budget_text(n_trials: int, requested, timeout) -> str:
    """``12 of 20 requested``, or ``31 trials (no trial cap; --timeout 20 s)`` for a time budget alone."""
    limit = f"--timeout {fmt(timeout)} s" if finite(timeout) and timeout else ""
    if requested:
        return f"{n_trials} of {requested} requested" + (f" ({limit})" if limit else "")
    return f"{n_trials} trial{'' if n_trials == 1 else 's'} (no trial cap" + (f"; {limit})" if limit else ")")


def class_weights_text(options: dict) -> str | None:
    """What ``--class-weights`` did to the training loss, or None when it was not used."""
    if (options or {}).get("class_weights") != "balanced":
        return None
    return ("loss weighted by inverse class frequency (--class-weights balanced); trials are still ranked, "
            "pruned and kept on plain accuracy")


def metric_columns(analysis: dict, trials: list[dict]) -> list[str]:
    """Balanced accuracy and macro-F1 beside accuracy, where the classes are unbalanced and trials have them."""
    profile = (analysis.get("dataset") or {}).get("profile") or {}
    counts = profile.get("train_class_counts") or (analysis.get("dataset") or {}).get("class_counts") or {}
    if not unbalanced(counts):
        return []
    return [name for name, _ in METRIC_LABELS if any(name in (t.get("metrics") or {}) for t in trials)]

