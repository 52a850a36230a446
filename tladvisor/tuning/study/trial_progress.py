"""What the tuning says while it runs: the epoch of the running trial, one line per finished trial, an ETA.

``trial #3 partial_freeze@4 val 0.912 (best 0.930) 41 s; 3/5 finished, about 1 min 20 s left``. A trial is
named by its number in the study (``#3``), the number the summary, the report, analysis.json and a worker's
output use too (Optuna's, from 0); ``3/5 finished`` counts what the study holds against the budget (finished
trials, every worker's). The ETA counts folds and epochs: the running trial's own total is extrapolated
from its finished epochs (of its planned epochs, times its folds) or, from its second fold on, from its
first fold's duration times the folds; trials still to come take the mean duration of the trials this
process finished (the running one's estimate before any has). It is capped by the ``--timeout`` deadline
and said only where it can be known (a budget of trials, or a deadline).
"""

from __future__ import annotations

import time
from typing import Any

from tladvisor.runtime import progress
from tladvisor.tuning.folds import fold_standard_error
from tladvisor.tuning.imbalance import METRICS
from tladvisor.tuning.results import config_label

STOPPED_BY_DEADLINE = "stopped by the --timeout deadline"  # how trial_run words such a trial's reason


class TrialProgress:
    """Feeds :func:`tladvisor.runtime.progress.current` with one search's trials."""

    def __init__(self, *, budget: int, deadline: float | None, several_backbones: bool, show_metrics: bool,
                 clock=time.monotonic):
        self.budget, self.deadline, self.clock = budget, deadline, clock
        self.several_backbones, self.show_metrics = several_backbones, show_metrics
        self.durations: list[float] = []
        self.number: int | None = None  # the running trial's number in the study
        self.finished_before = 0
        self.label = ""
        self.epochs = 0
        self.trial_started = clock()
        self.folds, self.fold_now = 1, 0  # a cross-validated trial trains once per fold
        self.epochs_done = 0  # epochs finished of the running trial's first fold
        self.second_fold_started: float | None = None

    def _name(self) -> str:
        return f"trial #{self.number}" if self.number is not None else "trial"

    def _count(self, finished: int) -> str:
        """``; 3/5 finished``: what the study holds against the budget (none without one)."""
        return f"; {finished}/{self.budget} finished" if self.budget else ""

    def started(self, finished_before: int, params: dict[str, Any], number: int | None = None) -> None:
        self.number, self.finished_before = number, finished_before
        self.trial_started = self.clock()
        self.folds, self.fold_now, self.epochs_done, self.second_fold_started = 1, 0, 0, None
        self.label = config_label(params if self.several_backbones else {k: v for k, v in params.items()
                                                                        if k != "backbone"})
        self.epochs = int(params.get("epochs") or 0)
        epochs = f", up to {self.epochs} epochs" if self.epochs else ""
        progress.current().stage(f"{self._name()} {self.label}: training{epochs}{self._count(finished_before)}")

    def epoch(self, epoch: int, value: float) -> None:
        self.epochs_done = epoch + 1
        of = f"/{self.epochs}" if self.epochs else ""
        fold = f" fold 1/{self.folds}" if self.folds > 1 else ""
        progress.current().status(f"{self._name()} {self.label}:{fold} epoch {epoch + 1}{of} val {value:.3f}"
                                  + self._left(finished=self.finished_before, running=True))

    def fold(self, fold: int, folds: int) -> None:
        """A cross-validated trial starts training fold ``fold`` (0-based) of ``folds``."""
        self.folds, self.fold_now = folds, fold
        if fold == 1:
            self.second_fold_started = self.clock()
        if fold > 0:
            progress.current().status(f"{self._name()} {self.label}: fold {fold + 1}/{folds}"
                                      + self._left(finished=self.finished_before, running=True))

    def finished(self, state: str, *, value: float | None, curve: list[float], best: float | None,
                 seconds: float, reason: str | None, metrics: dict[str, float], finished_now: int) -> None:
        self.durations.append(seconds)
        best_text = f" (best {best:.3f})" if best is not None else ""
        if state == "COMPLETE" and value is not None:
            folds = metrics.get("folds") if isinstance(metrics.get("folds"), dict) else None
            spread = (f" ± {fold_standard_error(folds):.3f} SE over {folds['k']} folds" if folds and folds.get("k")
                      else "")
            what = f"val {value:.3f}{spread}" + self._metrics(metrics) + best_text
        elif state == "PRUNED" and (reason or "").startswith(STOPPED_BY_DEADLINE):
            # Not beaten and not a winner: it did not finish. Its best epoch so far, then the finished best.
            reached = f", best epoch so far val {max(curve):.3f}" if curve else ""
            finished_best = f" (best finished trial {best:.3f})" if best is not None else ""
            what = f"{reason}{reached}; not finished{finished_best}"
        elif state == "PRUNED":
            reached = f", val {max(curve):.3f}" if curve else ""
            what = f"{_short(reason) or 'pruned'}{reached}{best_text}"
        else:
            what = f"failed: {reason or 'no reason recorded'}"
        left = self._left(finished=finished_now, running=False)
        progress.current().line(f"{self._name()} {self.label} {what} {progress.duration_text(seconds)}"
                                + self._count(finished_now) + (left.replace(";", ",", 1) if self.budget else left))

    def _metrics(self, metrics: dict[str, float]) -> str:
        if not self.show_metrics:
            return ""
        names = {"balanced_accuracy": "balanced", "macro_f1": "macro-F1"}
        return "".join(f", {names[name]} {metrics[name]:.3f}" for name in METRICS if name in metrics)

    def running_total(self, elapsed: float) -> float | None:
        """The running trial's whole duration, from its folds and epochs so far (None before it can tell)."""
        if self.folds > 1 and self.second_fold_started is not None:
            return (self.second_fold_started - self.trial_started) * self.folds  # every fold like the first
        if self.epochs and self.epochs_done:
            return elapsed * self.epochs / self.epochs_done * self.folds
        return None

    def _left(self, *, finished: int, running: bool) -> str:
        """``; about 3 min left``: the running trial's rest (from its folds and epochs) plus the budget's
        trials still to come at this run's mean pace, capped by the deadline."""
        estimates = []
        elapsed = self.clock() - self.trial_started if running else 0.0
        known = self.running_total(elapsed) if running else None
        if self.budget and (self.durations or known is not None):  # else nothing yet to extrapolate from
            now_total = max(known or 0.0, elapsed) if running else 0.0
            pace = sum(self.durations) / len(self.durations) if self.durations else now_total
            after = max(0, self.budget - finished - (1 if running else 0))
            if pace > 0 or now_total > elapsed:
                estimates.append((now_total - elapsed) + after * pace)
        if self.deadline is not None:
            estimates.append(max(0.0, self.deadline - self.clock()))
        if not estimates or min(estimates) < 1 or (not running and self.budget and finished >= self.budget):
            return ""
        return f"; about {progress.duration_text(min(estimates))} left"


def _short(reason: str | None) -> str:
    """The pruning reason up to its colon: ``pruned at epoch 3``."""
    return (reason or "").split(":", 1)[0]
