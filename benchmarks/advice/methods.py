"""Advice methods evaluated out of task (issue #13 items 3-4): pure numpy, no torch.

- :func:`task_folds` holds out one task (or one source family) at a time;
- :class:`GainPredictor`, a ridge regression per strategy of its gain over feature extraction from the
  advisor's measurements (fitted on the other tasks only);
- :func:`successive_halving`, the short race over the strategies the prior cannot separate.
Tested in tests/test_benchmarks_advice_methods.py.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np


class Leak(AssertionError):
    """A model was about to be scored on a task it was fitted on."""


def task_folds(groups: Mapping[str, str]) -> list[tuple[str, list[str], list[str]]]:
    """``groups`` maps task -> group (the task itself for leave-one-task-out, its family for
    leave-one-family-out). Returns (held-out group, training tasks, held-out tasks) per fold."""
    folds = []
    for group in sorted(set(groups.values())):
        held = sorted(t for t, g in groups.items() if g == group)
        train = sorted(t for t, g in groups.items() if g != group)
        folds.append((group, train, held))
    return folds


def assert_out_of_task(fitted_on: Sequence[str], scored_on: Sequence[str]) -> None:
    overlap = set(fitted_on) & set(scored_on)
    if overlap:
        raise Leak(f"fitted on the task(s) it is scored on: {', '.join(sorted(overlap))}")


@dataclass
class GainPredictor:
    """Per strategy, ridge regression of ``accuracy(strategy) - accuracy(feature_extraction)`` on
    standardised features; features are standardised with the training rows' mean and spread only."""

    alpha: float = 1.0

    def fit(self, features: np.ndarray, gains: Mapping[str, np.ndarray], tasks: Sequence[str]) -> GainPredictor:
        x = np.asarray(features, dtype=float)
        self.tasks_ = list(tasks)
        with warnings.catch_warnings():  # a measure no training task has: mean and spread are nan, handled below
            warnings.simplefilter("ignore", RuntimeWarning)
            self.mean_ = np.nanmean(x, axis=0) if len(x) else np.zeros(x.shape[1])
            self.scale_ = np.nanstd(x, axis=0)
        self.scale_[~np.isfinite(self.scale_) | (self.scale_ < 1e-12)] = 1.0
        self.mean_[~np.isfinite(self.mean_)] = 0.0
        z = self._standardise(x)
        self.coef_, self.intercept_, self.residual_ = {}, {}, {}
        for strategy, y in gains.items():
            y = np.asarray(y, dtype=float)
            centre = float(y.mean()) if len(y) else 0.0
            a = z.T @ z + self.alpha * np.eye(z.shape[1])
            coef = np.linalg.solve(a, z.T @ (y - centre))
            self.coef_[strategy], self.intercept_[strategy] = coef, centre
            fitted = z @ coef + centre
            self.residual_[strategy] = float(np.sqrt(np.mean((y - fitted) ** 2))) if len(y) else math.inf
        return self

    def _standardise(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=float) - self.mean_) / self.scale_
        return np.where(np.isfinite(z), z, 0.0)  # a measure the advisor could not make counts as average

    def predict(self, features: np.ndarray, task: str) -> dict[str, float]:
        """Predicted gain of each strategy over feature extraction (0 for feature extraction itself)."""
        assert_out_of_task(self.tasks_, [task])
        z = self._standardise(np.asarray(features, dtype=float)[None, :])[0]
        return {s: float(z @ c + self.intercept_[s]) for s, c in self.coef_.items()}


def pick(predicted_gain: Mapping[str, float], baseline: str = "feature_extraction") -> str:
    """The strategy with the highest predicted gain; the baseline (gain 0) wins ties."""
    best, value = baseline, 0.0
    for strategy, gain in predicted_gain.items():
        if gain > value:
            best, value = strategy, gain
    return best


def contenders(predicted_gain: Mapping[str, float], margin: float, baseline: str = "feature_extraction") -> list[str]:
    """Strategies within ``margin`` of the predicted best (the baseline included at gain 0): those the
    prior cannot separate, which the race decides."""
    gains = {baseline: 0.0, **predicted_gain}
    top = max(gains.values())
    return sorted(s for s, g in gains.items() if g >= top - margin)


@dataclass(frozen=True)
class Race:
    winner: str
    rungs: list[dict[str, float]]  # per rung: candidate -> score at that rung's budget
    cost: float


def successive_halving(candidates: Sequence[str], score_at: Callable[[str, int], float],
                       cost_of: Callable[[str, int], float], min_budget: int, eta: int = 2,
                       max_budget: int | None = None) -> Race:
    """Successive halving (Jamieson & Talwalkar 2016): every candidate gets ``min_budget`` epochs; the best
    1/eta go on with eta times the budget, until one is left (or ``max_budget`` is reached; then the
    best there wins); the survivor is not trained further here. ``score_at(c, budget)`` is the
    validation score after ``budget`` epochs,
    ``cost_of(c, budget)`` what those epochs cost; a candidate continued from a rung pays only the
    extra epochs. Ties keep the earlier candidate (list order: put the cheapest first)."""
    if not candidates:
        raise ValueError("no candidates to race")
    alive, budget, spent, trained = list(candidates), max(1, int(min_budget)), 0.0, {}
    rungs = []
    while True:
        if max_budget is not None:
            budget = min(budget, max_budget)
        scores = {}
        for c in alive:
            spent += cost_of(c, budget) - cost_of(c, trained.get(c, 0)) if c in trained else cost_of(c, budget)
            trained[c] = budget
            scores[c] = score_at(c, budget)
        rungs.append(scores)
        order = sorted(alive, key=lambda c: (-scores[c], alive.index(c)))
        alive = order[:max(1, len(alive) // eta)]
        if len(alive) == 1 or (max_budget is not None and budget >= max_budget):
            return Race(order[0], rungs, spent)  # the survivor is not trained further for the race
        budget *= eta
