"""Advice methods evaluated out of task (issue #13 items 3-4, #22 item 5): pure numpy, no torch.

- :func:`task_folds` holds out one task (or one source family) at a time;
- :class:`GainPredictor` (the product's, :mod:`tladvisor.advice.prior`, re-exported here), a ridge regression
  per strategy of its gain over feature extraction from the advisor's measurements (fitted on the other tasks
  only), its penalty chosen inside the training tasks (:func:`choose_alpha`);
- the race over the strategies the prior cannot separate is the product's own
  (:func:`tladvisor.tuning.race.replay`), so what is evaluated is what ships.
Tested in tests/test_benchmarks_advice_methods.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from tladvisor.advice.prior import GainPredictor, Leak, assert_out_of_task  # noqa: F401  (one copy, re-exported)

ALPHAS = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)


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


def choose_alpha(fit: Callable[[list[str], float], GainPredictor],
                 error: Callable[[GainPredictor, str], float], groups: Mapping[str, str],
                 alphas: Sequence[float] = ALPHAS) -> float:
    """The ridge penalty with the lowest leave-one-group-out error *within* the tasks of ``groups`` (task ->
    group: the task itself, or its source family when the outer evaluation holds families out; these are the
    training tasks of one outer fold, so the held-out task never informs the choice): ``fit(train_tasks,
    alpha)`` fits a predictor, ``error(predictor, task)`` is its squared error on a task it was not fitted on.
    Ties go to the larger penalty (the predictor closer to the mean gain)."""
    if len(set(groups.values())) < 3:
        return max(alphas)
    scores = []
    for alpha in alphas:
        errors = [error(fit(train, alpha), task) for _group, train, held in task_folds(groups) for task in held]
        scores.append((float(np.mean(errors)), -alpha))
    return -min(scores)[1]
