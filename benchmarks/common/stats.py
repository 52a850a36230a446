"""Pure arithmetic of the benchmark suite: regret, seed spread, "within noise", time-to-target.

No torch, no tladvisor: these functions take plain numbers so they can be tested in milliseconds
(tests/test_benchmarks_stats.py) and reused by every section of ``run_all.py``.

Vocabulary
- A *config* is a strategy as trained by the exhaustive grid: ``feature_extraction``,
  ``partial_freeze@2`` (first 2 stages frozen), ``full_finetune``, ``from_scratch``.
- *Regret* of one (task, seed): best validation accuracy over the configs trained, minus the accuracy
  of the config the advisor recommended (0 when the advice was the best; never negative, since the
  recommended config is always among those trained).
- *Spread*: the sample standard deviation over seeds (0 with one seed).
- A difference is *within noise* when it is smaller than the seed spread it is compared with.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

# Cheapest first: when two configs tie exactly, the cheaper one is called best (a practitioner
# would pick it, and the advice is not penalised for choosing it).
CONFIG_ORDER = ("feature_extraction", "partial_freeze@5", "partial_freeze@4", "partial_freeze@3",
                "partial_freeze@2", "partial_freeze@1", "full_finetune", "from_scratch")


def config_name(strategy: str, freeze_depth: int | None = None) -> str:
    """``partial_freeze@k`` for partial freeze, else the strategy's own name."""
    return f"{strategy}@{int(freeze_depth)}" if strategy == "partial_freeze" else strategy


def strategy_of(config: str) -> str:
    return config.split("@", 1)[0]


def config_rank(config: str) -> int:
    """A config's place in tables: feature extraction, partial freeze from the deepest frozen prefix to the
    shallowest, full fine-tune, from scratch (CONFIG_ORDER); others after them."""
    return CONFIG_ORDER.index(config) if config in CONFIG_ORDER else len(CONFIG_ORDER)


def best_config(accuracies: Mapping[str, float]) -> str:
    """The config with the highest accuracy; exact ties go to the cheaper config (CONFIG_ORDER)."""
    if not accuracies:
        raise ValueError("no accuracies to choose from")
    return max(accuracies, key=lambda c: (accuracies[c], -config_rank(c)))


def regret(accuracies: Mapping[str, float], recommended: str) -> float:
    """Best accuracy minus the recommended config's; the recommended config must have been trained."""
    if recommended not in accuracies:
        raise KeyError(f"the recommended config '{recommended}' was not trained")
    return max(accuracies.values()) - accuracies[recommended]


def mean_spread(values: Iterable[float]) -> tuple[float, float]:
    """(mean, sample standard deviation); the spread is 0 for a single value, (nan, nan) for none."""
    values = [float(v) for v in values]
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(variance)


def within_noise(difference: float, spread: float) -> bool:
    """True when ``|difference|`` is smaller than ``spread`` (a zero difference is always within noise)."""
    return abs(difference) == 0 or abs(difference) < spread


def summarise_task(per_seed: Sequence[Mapping[str, float]], recommended: Sequence[str]) -> dict:
    """Aggregate one task over seeds.

    ``per_seed[i]`` maps config -> validation accuracy for seed i, ``recommended[i]`` is the config the
    advisor picked for that seed. Returns the per-config mean and spread (over the seeds that trained
    it), the best config by mean, each seed's regret, their mean and spread, and whether the mean
    regret is within noise: smaller than the larger seed spread of the best and the recommended configs
    (when the advice differs between seeds, the most often recommended config stands for it).
    """
    if len(per_seed) != len(recommended) or not per_seed:
        raise ValueError("need one recommendation per seed, and at least one seed")
    configs = sorted({c for accs in per_seed for c in accs}, key=config_rank)
    stats = {c: mean_spread(accs[c] for accs in per_seed if c in accs) for c in configs}
    means = {c: m for c, (m, _) in stats.items()}
    best = best_config(means)
    regrets = [regret(accs, rec) for accs, rec in zip(per_seed, recommended)]
    regret_mean, regret_spread = mean_spread(regrets)
    typical = max(set(recommended), key=lambda c: (recommended.count(c), -config_rank(c)))
    noise = max(stats[best][1], stats[typical][1])
    return {
        "configs": {c: {"mean": m, "spread": s} for c, (m, s) in stats.items()},
        "best": best,
        "best_per_seed": [best_config(accs) for accs in per_seed],
        "recommended": list(recommended),
        "typical_recommendation": typical,
        "regret_per_seed": regrets,
        "regret_mean": regret_mean,
        "regret_spread": regret_spread,
        "noise": noise,
        "within_noise": within_noise(regret_mean, noise),
        "hits": sum(r == 0 for r in regrets),
    }


def median(values: Iterable[float]) -> float:
    values = sorted(float(v) for v in values)
    if not values:
        return math.nan
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def first_reach(values: Sequence[float | None], costs: Sequence[float], target: float) -> tuple[int | None, float | None]:
    """Trials and summed cost until the first value >= ``target`` (None values never reach it).

    Returns ``(n_trials, cost)`` counting that trial itself, or ``(None, None)`` when no trial reached
    the target.
    """
    spent = 0.0
    for index, (value, cost) in enumerate(zip(values, costs), 1):
        spent += float(cost)
        if value is not None and value >= target:
            return index, spent
    return None, None


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan
