"""The benchmark suite's advice summary (a part of run_all.py): the advisor's regret and compute against the
exhaustive grid per task, and how the picks move when the rule's thresholds are swept, one by one and jointly.
Tested in tests/test_benchmarks_run_all.py."""

from __future__ import annotations

from collections import Counter
from typing import Any

def _one_training_cpu(trial: dict[str, Any]) -> float:
    """CPU seconds of training a config once, at the product's starting rates (the grid trains each setting)."""
    return trial["product_cpu_s"] if trial.get("product_cpu_s") is not None else trial["cpu_s"] / len(trial["by_rates"])


def _literal_regret(unit: dict[str, Any]) -> float | None:
    """Regret of the advice taken literally: the recommended config at the product's starting rates only."""
    trial = unit["trials"][unit["recommended"]]
    own = trial.get("product_setting")
    if own is None:
        return None
    return max(t["accuracy"] for t in unit["trials"].values()) - trial["by_rates"][own]["accuracy"]


def summarise_advice(units: list[dict[str, Any]], grid_configs: set[str]) -> tuple[list[dict], dict]:
    from benchmarks.common.stats import mean_spread, median, ratio, summarise_task

    by_task: dict[str, list[dict]] = {}
    for unit in units:
        by_task.setdefault(unit["task"], []).append(unit)
    summaries = []
    for task, runs in by_task.items():
        runs.sort(key=lambda u: u["seed"])
        per_seed = [{c: t["accuracy"] for c, t in u["trials"].items()} for u in runs]
        recommended = [u["recommended"] for u in runs]
        summary = summarise_task(per_seed, recommended)
        advice_cpu = [u["advice"]["cpu_s"] for u in runs]
        grid_cpu = [sum(t["cpu_s"] for c, t in u["trials"].items() if c in grid_configs) for u in runs]
        rec_cpu = [_one_training_cpu(u["trials"][u["recommended"]]) for u in runs]
        sim = mean_spread(u["measures"]["similarity"] for u in runs)
        summaries.append({
            "task": task, "size": runs[0]["size"], "domain": runs[0]["domain"], "description": runs[0]["description"],
            "n_classes": runs[0]["n_classes"], "train_per_class": runs[0]["train_per_class"],
            "epochs": runs[0]["epochs"], "seeds": [u["seed"] for u in runs],
            "similarity_mean": sim[0], "similarity_spread": sim[1],
            "linear_probe_mean": mean_spread(u["measures"]["linear_probe"] or 0 for u in runs)[0],
            "pretraining_gain_mean": mean_spread(u["measures"]["pretraining_gain"] or 0 for u in runs)[0],
            "recommended_counts": dict(Counter(recommended)),
            "summary": summary,
            "advice_cpu_mean": mean_spread(advice_cpu)[0], "grid_cpu_mean": mean_spread(grid_cpu)[0],
            "advice_wall_mean": mean_spread(u["advice"]["wall_s"] for u in runs)[0],
            "grid_wall_mean": mean_spread(sum(t["wall_s"] for c, t in u["trials"].items() if c in grid_configs)
                                          for u in runs)[0],
            "compute_ratio": ratio(sum(advice_cpu), sum(grid_cpu)),
            "compute_ratio_with_trial": ratio(sum(advice_cpu) + sum(rec_cpu), sum(grid_cpu)),
        })
    order = {name: i for i, name in enumerate(u["task"] for u in units)}
    summaries.sort(key=lambda s: (s["size"] != "small", order[s["task"]]))
    regrets = [r for s in summaries for r in s["summary"]["regret_per_seed"]]
    # The advice taken literally, untuned: the recommended config at its starting rates only.
    literal = [r for r in (_literal_regret(u) for u in units) if r is not None]
    all_advice = sum(u["advice"]["cpu_s"] for u in units)
    all_grid = sum(sum(t["cpu_s"] for c, t in u["trials"].items() if c in grid_configs) for u in units)
    all_rec = sum(_one_training_cpu(u["trials"][u["recommended"]]) for u in units)
    overall = {
        "runs": len(regrets), "tasks": len(summaries),
        "median_regret": median(regrets), "mean_regret": mean_spread(regrets)[0],
        "median_regret_at_start_rates": median(literal), "mean_regret_at_start_rates": mean_spread(literal)[0],
        "median_task_regret": median(s["summary"]["regret_mean"] for s in summaries),
        "hits": sum(r == 0 for r in regrets),
        "tasks_within_noise": sum(s["summary"]["within_noise"] for s in summaries),
        "advice_cpu_s": all_advice, "grid_cpu_s": all_grid,
        "compute_ratio": ratio(all_advice, all_grid),
        "compute_ratio_with_trial": ratio(all_advice + all_rec, all_grid),
        "median_task_compute_ratio": median(s["compute_ratio"] for s in summaries),
    }
    return summaries, overall


def sweep_thresholds(units: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Regret of the rule re-run with one constant changed (the picks were made in each worker)."""
    from benchmarks.common.stats import median

    rows = []
    # Values swept by any unit (units kept by --resume from before a value was added lack it: unknown there).
    constants: dict[str, dict[str, None]] = {}
    for unit in units:
        for constant, by_value in unit["counterfactual_picks"].items():
            if constant != "joint":
                constants.setdefault(constant, {}).update(dict.fromkeys(v for v in by_value if v != "current"))
    from benchmarks.advice.suite import rule_constants

    now = rule_constants()
    for constant, values in constants.items():
        current = repr(now[constant])  # the product's value now, which kept units may predate
        for value in sorted(values, key=float):
            regrets, unknown, picks = [], 0, Counter()
            for unit in units:
                config = unit["counterfactual_picks"].get(constant, {}).get(value)
                if config is None:
                    unknown += 1
                    continue
                picks[config] += 1
                accs = {c: t["accuracy"] for c, t in unit["trials"].items()}
                if config in accs:
                    regrets.append(max(accs.values()) - accs[config])
                else:
                    unknown += 1
            rows.append({"constant": constant, "value": value, "current": value == current,
                         "mean_regret": sum(regrets) / len(regrets) if regrets else float("nan"),
                         "median_regret": median(regrets), "hits": sum(r == 0 for r in regrets),
                         "known": len(regrets), "unknown": unknown, "picks": dict(picks)})
    return rows


def advised_by_another_rule(units: list[dict[str, Any]]) -> int:
    """How many advice units were advised with other rule constants than the product's now (or by a run
    that did not record them): --resume keeps them, and a changed constant may have changed their advice."""
    from benchmarks.advice.suite import rule_constants

    now = rule_constants()
    return sum(unit.get("rule") != now for unit in units)


def joint_sweep(units: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean regret (and the best-config hit count) for every SMALL_PER_CLASS x PROBE_ENOUGH pair."""
    cells = {}
    pairs = dict.fromkeys(pair for unit in units for pair in unit["counterfactual_picks"].get("joint", {}))
    for pair in pairs:
        regrets = []
        for unit in units:
            accs = {c: t["accuracy"] for c, t in unit["trials"].items()}
            config = unit["counterfactual_picks"].get("joint", {}).get(pair)  # None: a unit from before the pair
            if config in accs:
                regrets.append(max(accs.values()) - accs[config])
        small, probe = pair.split("|")
        cells[pair] = {"small_per_class": small, "probe_enough": probe, "known": len(regrets),
                       "mean_regret": sum(regrets) / len(regrets) if regrets else float("nan"),
                       "hits": sum(r == 0 for r in regrets), "runs": len(units)}
    return cells


# --- running -----------------------------------------------------------------------------------------
