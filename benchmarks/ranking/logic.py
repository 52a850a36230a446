"""The backbone-ranking benchmark's pure logic: agreement of a measure with training, what following it
costs, and the out-of-task choice of a measure (issue #14 item 3).

Everything here takes plain numbers so it is tested without training anything
(tests/test_benchmarks_ranking.py). A *unit* is one (task, seed): per backbone, a value per measure (higher is
better) and the tuned accuracy training reached.
"""

from __future__ import annotations

import math
from statistics import mean, stdev


def weighted_tau(measure: list[float], accuracy: list[float]) -> float:
    """scipy's weighted Kendall tau with its default hyperbolic weigher; nan when either side is constant."""
    from scipy.stats import weightedtau

    finite = [(m, a) for m, a in zip(measure, accuracy) if math.isfinite(m) and math.isfinite(a)]
    if len(finite) < 2 or len({m for m, _ in finite}) < 2 or len({a for _, a in finite}) < 2:
        return math.nan
    xs, ys = zip(*finite)
    return float(weightedtau(list(xs), list(ys)).statistic)


def _columns(unit: dict, key: str) -> tuple[list[float], list[float]]:
    names = list(unit["backbones"])
    values = [unit["backbones"][n]["measures"].get(key, math.nan) for n in names]
    return values, [unit["backbones"][n]["tuned_accuracy"] for n in names]


def unit_tau(unit: dict, key: str) -> float:
    return weighted_tau(*_columns(unit, key))


def top_pick_regret(unit: dict, key: str) -> float:
    """Accuracy points lost by training the backbone the measure ranks first instead of the best one
    (0 when it picks the best; ties in the measure take the worst of the tied, so a tie is no free pass).
    nan when the measure has no finite value on this unit."""
    values, accuracy = _columns(unit, key)
    finite = [(v, a) for v, a in zip(values, accuracy) if math.isfinite(v)]
    if not finite:
        return math.nan
    top = max(v for v, _ in finite)
    picked = min(a for v, a in finite if v == top)
    return max(accuracy) - picked


def choose_out_of_task(per_task: dict[str, dict[str, float]], candidates: tuple[str, ...]) -> dict[str, dict]:
    """Leave one task out: for each task, the candidate with the best mean score on the *other* tasks (the
    first candidate on a tie), and the score that choice gets on the held-out task.

    ``per_task[task][candidate]`` is a score where higher is better (a tau; pass a negated regret). A
    candidate's nan on a task is left out of its mean; a candidate undefined on every other task is not
    chosen. Returns ``{task: {"chosen": name, "score": held-out score}}``; ``chosen`` None when no
    candidate has a score on the other tasks."""
    chosen: dict[str, dict] = {}
    for held_out in per_task:
        best_name, best_mean = None, -math.inf
        for name in candidates:
            seen = [row[name] for task, row in per_task.items()
                    if task != held_out and math.isfinite(row.get(name, math.nan))]
            if seen and mean(seen) > best_mean:
                best_name, best_mean = name, mean(seen)
        score = per_task[held_out].get(best_name, math.nan) if best_name else math.nan
        chosen[held_out] = {"chosen": best_name, "score": score}
    return chosen


def paired_difference(a: list[float], b: list[float]) -> dict[str, float]:
    """Mean of a - b over the pairs where both are defined, its standard error across pairs, and the count.
    A difference is called real only beyond 2 standard errors (``clear``)."""
    diffs = [x - y for x, y in zip(a, b) if math.isfinite(x) and math.isfinite(y)]
    if not diffs:
        return {"mean": math.nan, "se": math.nan, "n": 0, "clear": False}
    se = stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else math.inf
    m = mean(diffs)
    return {"mean": m, "se": se, "n": len(diffs), "clear": bool(se > 0 and abs(m) > 2 * se) or (se == 0 and m != 0)}


# Learning-rate multipliers the grid may reach, half a decade apart (the starting grid is 0.3, 1, 3).
LADDER = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


def next_multiplier(tried: dict[float, float], ladder: tuple[float, ...] = LADDER) -> float | None:
    """The next learning-rate multiplier to train one (strategy, backbone) at, or None when done.

    ``tried`` maps each multiplier trained to its best validation accuracy. When every best one sits at an
    edge of what was tried, the grid takes the next ``ladder`` step out on that side (the low side first
    when both edges tie; none past the ladder's ends), so no backbone loses for its rates (the issue #13
    rule for fair ground truth); a tie with an inner multiplier counts as inside; nan (a failed run) is
    never the best."""
    finite = {m: v for m, v in tried.items() if math.isfinite(v)}
    if not finite:
        return None
    top = max(finite.values())
    best = {m for m, v in finite.items() if v == top}
    lowest, highest = min(tried), max(tried)
    below = [m for m in ladder if m < lowest * (1 - 1e-6)]
    above = [m for m in ladder if m > highest * (1 + 1e-6)]
    if best <= {lowest, highest}:  # no inner rate as good: go out, the low side first
        if lowest in best and below:
            return max(below)
        if highest in best and above:
            return min(above)
    return None
