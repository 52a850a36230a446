"""Advice methods evaluated out of task (issue #13 items 3-4): pure numpy, no torch.

- :func:`task_folds` holds out one task (or one source family) at a time;
- :class:`GainPredictor` (the product's, :mod:`tladvisor.advice.prior`, re-exported here), a ridge regression
  per strategy of its gain over feature extraction from the advisor's measurements (fitted on the other tasks
  only);
- :func:`successive_halving`, the short race over the strategies the prior cannot separate.
Tested in tests/test_benchmarks_advice_methods.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from tladvisor.advice.prior import GainPredictor, Leak, assert_out_of_task  # noqa: F401  (one copy, re-exported)


def task_folds(groups: Mapping[str, str]) -> list[tuple[str, list[str], list[str]]]:
    """``groups`` maps task -> group (the task itself for leave-one-task-out, its family for
    leave-one-family-out). Returns (held-out group, training tasks, held-out tasks) per fold."""
    folds = []
    for group in sorted(set(groups.values())):
        held = sorted(t for t, g in groups.items() if g == group)
        train = sorted(t for t, g in groups.items() if g != group)
        folds.append((group, train, held))
    return folds


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
