"""Pruning that is fair to slow starters: a trial is judged against finished trials of its own strategy.

Strategies learn at different paces. A head on frozen features is near its best after an epoch or two;
a fine-tuned network starts lower (its warm-up moves pretrained weights it must first recover from) and
often ends higher. Optuna's MedianPruner pools every finished trial, so in a study with a few feature-
extraction trials the fine-tuning trials met their fast curves at epoch 3 and were pruned, most of them,
before they could overtake (14 of 16 in the study of issue #13). :class:`StrategyMedianPruner` applies the
median rule within one strategy: a trial is stopped when its best validation accuracy so far is below the
median, at the same epoch, of the COMPLETE trials that trained with the same strategy, and only once
``n_startup_trials`` of them exist. A strategy's first trials therefore always run to their end.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

N_STARTUP_TRIALS = 2  # finished trials of the same strategy before any of its trials is judged
N_WARMUP_STEPS = 2  # epochs 1-2 are learning-rate warm-up for every trial: judged from epoch 3


def trial_strategy(trial: FrozenTrial) -> Any:
    """The strategy the trial trained with (resolved parameters first, then Optuna's drawn ones)."""
    resolved = trial.user_attrs.get("params")
    if isinstance(resolved, dict) and "strategy" in resolved:
        return resolved["strategy"]
    return trial.params.get("strategy")


class StrategyMedianPruner(optuna.pruners.BasePruner):
    """The median rule of ``MedianPruner(n_startup_trials, n_warmup_steps)``, within each strategy."""

    def __init__(self, n_startup_trials: int = N_STARTUP_TRIALS, n_warmup_steps: int = N_WARMUP_STEPS):
        self.n_startup_trials = n_startup_trials
        self.n_warmup_steps = n_warmup_steps

    def peers(self, study: optuna.Study, trial: FrozenTrial) -> list[FrozenTrial]:
        strategy = trial_strategy(trial)
        return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.number != trial.number and trial_strategy(t) == strategy]

    def bar(self, study: optuna.Study, trial: FrozenTrial) -> float | None:
        """The median a trial must reach at its last step, or None when it is not judged there."""
        step = trial.last_step
        if step is None or step < self.n_warmup_steps:
            return None
        peers = self.peers(study, trial)
        if len(peers) < self.n_startup_trials:
            return None
        values = [t.intermediate_values[step] for t in peers if step in t.intermediate_values]
        values = [v for v in values if v is not None and math.isfinite(v)]
        if len(values) < self.n_startup_trials:
            return None  # too few peers ran this long to say what is typical here
        return float(statistics.median(values))

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        bar = self.bar(study, trial)
        if bar is None:
            return False
        reached = [v for v in trial.intermediate_values.values() if v is not None and math.isfinite(v)]
        return not reached or max(reached) < bar


def make_pruner() -> optuna.pruners.BasePruner:
    return StrategyMedianPruner()
