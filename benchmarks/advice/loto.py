"""Advice judged out of task (issue #13 items 3-4), over the honest grid's stored results.

    .venv/bin/python -m benchmarks.advice.loto reports/benchmarks/honest_grid [--holdout family]

For each held-out task (``--holdout task``) or source family (``--holdout family``), every method that
learns anything is fitted on the other tasks only (asserted: advice_methods.assert_out_of_task) and
scored on the held-out one. Methods:

- ``rule``: the product's rule as shipped (its constants were calibrated on benchmarks/tasks/suite.py,
  none of which is a corpus task, though some share sources: see docs/benchmarks.md);
- ``rule-refit``: the rule with SMALL_PER_CLASS x PROBE_ENOUGH chosen on the training tasks (from the
  picks each advice unit recorded for every pair);
- ``best-constant``: the one config with the best mean test accuracy on the training tasks;
- ``meta``: a ridge regression per config of its gain over feature extraction from the advisor's
  measurements (advice_methods.GainPredictor), the config with the highest predicted gain;
- ``prior+race``: the meta prior's contenders (predicted within ``--margin`` of its best, default its
  largest training residual) raced on the held-out task's own validation curves by the product's race
  (:func:`tladvisor.tuning.race.replay`: one after another, best predicted first, each stopped at a rung of
  2 x 2^k epochs unless in the top half there); the zero-shot pick of the same prior is ``meta``.

The ridge penalty of ``meta`` and ``prior+race`` is chosen inside each fold's training tasks (leave one of them
out, lowest squared error of the predicted gains; ``--alpha`` fixes it instead).

Learned methods choose among *roles*, the configs every task has whatever its backbone depth: feature
extraction, partial freeze of all but the top stage (``top1``), of half the stages (``half``), at the depth
the product's shift rule picks on that task (``shift``), full fine-tune, from scratch; so they choose the
freeze depth too. The rule's own pick is scored exactly (its partial-freeze depth is the shift depth).

Printed: regret per task (test points: the best config's test accuracy minus the pick's, each config at
the rate chosen on validation), its median and mean over tasks, the share of tasks within 2 points and
within noise (below the best config's seed spread, or its binomial standard error on the test images
when that is larger), and the compute of the advice (+ the race's epochs beyond training the winner once, which any pick pays)
against the whole grid (CPU seconds). The race replays each contender's curve at the rate the grid chose on
validation; the product races at its default rates and leaves the rate to the tuning that follows.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tladvisor.advice.prior import FACTS, fact_vector

from tladvisor.advice.learned import BASELINE, ROLES, contenders
from tladvisor.tuning.race import replay

from benchmarks.advice.methods import GainPredictor, assert_out_of_task, choose_alpha, pick, task_folds
from benchmarks.grid.logic import ceiling_filter
from benchmarks.common.stats import CONFIG_ORDER, mean_spread, median

WITHIN_POINTS = 0.02  # the bar: a pick within 2 test points of the best config
FEATURES = FACTS


def features_of(advice: dict[str, Any], stages: list[str]) -> list[float]:
    """An advice unit's row of the gain predictor's input: the product's own :func:`fact_vector`."""
    return fact_vector(advice["measures"], advice["train_per_class"], advice["n_classes"], stages)


def records(grid_dir: Path, key: str | None) -> tuple[list[dict[str, Any]], str]:
    """One record per (task, seed) with a full grid and an advice unit."""
    from benchmarks.grid.summary import load_units, select_rates

    if key is None:
        key = json.loads((grid_dir / "grid_summary.json").read_text()).get("settings_key")
    if key is None:  # a summary from before it recorded the key: the key most units carry
        from collections import Counter

        keys = Counter(json.loads(p.read_text()).get("settings_key") for p in (grid_dir / "units").rglob("*.json"))
        key = keys.most_common(1)[0][0] if keys else ""
    trained, advice = load_units(grid_dir / "units", key)
    chosen = select_rates(trained)
    grid_cost: dict[tuple[str, int], float] = {}
    for unit in trained:
        grid_cost[(unit["task"], unit["seed"])] = grid_cost.get((unit["task"], unit["seed"]), 0.0) + unit["cpu_s"]
    stages = sorted({s for a in advice.values() for s in a["measures"].get("stage_shift", {})})
    from benchmarks.grid.plan import resolve_config

    rows = []
    for (task, seed), configs in sorted(chosen.items()):
        if (task, seed) not in advice or BASELINE not in configs:
            continue
        a = advice[(task, seed)]
        actual = {role: resolve_config(role, a.get("n_stages", 6), a.get("shift_depth")) for role in ROLES}
        actual = {role: config for role, config in actual.items() if config in configs}
        if set(actual) != set(ROLES) or not all(search_closed(configs[c]["by_rate"], c) for c in configs):
            continue  # the grid of this (task, seed) is not finished: a config untrained or its rate search open
        rows.append({
            "task": task, "seed": seed, "family": a["family"], "features": features_of(a, stages), "stages": stages,
            "actual": actual, "all_tests": {c: u["test_at_best"] for c, u in configs.items()},
            "test": {role: configs[c]["test_at_best"] for role, c in actual.items()},
            "n_test": next(iter(configs.values()))["n_test"],
            "curves": {role: configs[c]["val_curve"] for role, c in actual.items()},
            "epoch_cost": {role: configs[c]["cpu_s"] / max(1, len(configs[c]["val_curve"]))
                           for role, c in actual.items()},
            "rule": a["recommended"], "joint": a["counterfactual_picks"].get("joint", {}),
            "advice_cpu_s": a["advice_cpu_s"], "grid_cpu_s": grid_cost[(task, seed)]})
    return rows, key


def search_closed(by_rate: dict[float, float], config: str) -> bool:
    """A config's rate search is over: its base multipliers trained and no step out pending. A unit chosen
    from a search still open may be overturned by the next rate, so its task is not scored yet. A search
    held to one rate (a later seed's ``--rates-from-seed``) is closed by design."""
    from benchmarks.grid.plan import LADDER, multipliers_of
    from benchmarks.ranking.logic import next_multiplier

    if len(by_rate) == 1:
        return True
    return set(multipliers_of(config)) <= set(by_rate) and next_multiplier(by_rate, LADDER) is None


def binomial_error(accuracy: float, n: int) -> float:
    """The standard error of an accuracy on ``n`` images, Agresti-Coull adjusted (two successes and two
    failures added), so a perfect score on 80 images has an error, not 0."""
    n = max(1, int(n))
    adjusted = (accuracy * n + 2) / (n + 4)
    return math.sqrt(adjusted * (1 - adjusted) / (n + 4))


def nearest_trained(config: str, trained: dict[str, float]) -> str:
    """A partial-freeze depth the grid did not train stands for the nearest one it did."""
    if config in trained or not config.startswith("partial_freeze@"):
        return config
    depths = [int(c.split("@")[1]) for c in trained if c.startswith("partial_freeze@")]
    if not depths:
        return config
    wanted = int(config.split("@")[1])
    return f"partial_freeze@{min(depths, key=lambda d: (abs(d - wanted), d))}"


def test_of(row: dict[str, Any], config: str) -> float:
    """The test accuracy of a role or of a config the grid trained on this row's task (nan when neither)."""
    tests = row.get("all_tests", row["test"])
    if config in row["test"]:
        return row["test"][config]
    config = nearest_trained(config, tests)
    return tests.get(config, math.nan)


def regret(row: dict[str, Any], config: str) -> float:
    """The best trained config's test accuracy minus the pick's (a role or a config name)."""
    return max(row.get("all_tests", row["test"]).values()) - test_of(row, config)


def config_of(row: dict[str, Any], pick: str) -> str:
    """A role as the config it trains on this row's task (``partial_freeze@half`` -> ``partial_freeze@3``)."""
    return row.get("actual", {}).get(pick, pick)


def fit_rule(train: list[dict[str, Any]]) -> str | None:
    """The SMALL_PER_CLASS|PROBE_ENOUGH pair with the lowest mean regret on the training rows."""
    pairs = sorted({p for r in train for p in r["joint"]})
    scored = [(np.nanmean([regret(r, r["joint"][p]) for r in train if p in r["joint"]]), p) for p in pairs]
    return min(scored)[1] if scored else None


def evaluate(rows: list[dict[str, Any]], holdout: str, margin: float | None, min_epochs: int,
             alpha: float | None) -> dict[str, dict[tuple[str, int], dict[str, float]]]:
    """Per method, per (task, seed): the pick's regret and its compute (advice + race), out of task."""
    groups = {r["task"]: (r["task"] if holdout == "task" else r["family"]) for r in rows}
    configs = common_configs(rows)
    others = [c for c in configs if c != BASELINE]
    results: dict[str, dict] = {m: {} for m in ("rule", "rule-refit", "best-constant", "meta", "prior+race")}
    for _group, train_tasks, held_tasks in task_folds(groups):
        train = [r for r in rows if r["task"] in train_tasks]
        held = [r for r in rows if r["task"] in held_tasks]
        assert_out_of_task(train_tasks, held_tasks)
        assert_out_of_task([r["task"] for r in train], [r["task"] for r in held])
        pair = fit_rule(train)
        constant = max(configs, key=lambda c: (np.nan_to_num(np.nanmean([r["test"].get(c, np.nan) for r in train]), nan=-1.0),
                                               -configs.index(c)))
        inner = {t: groups[t] for t in train_tasks}  # the penalty is chosen holding out what the fold holds out
        fold_alpha = alpha if alpha is not None else choose_train_alpha(train, others, inner)
        predictor = fit_gain_prior(train, others, fold_alpha)
        spread = margin if margin is not None else max(predictor.residual_.values(), default=0.0)
        for r in held:
            key = (r["task"], r["seed"])
            gains = predictor.predict(np.array(r["features"]), r["task"])
            results["rule"][key] = {"regret": regret(r, r["rule"]), "cpu": r["advice_cpu_s"], "pick": r["rule"]}
            refit = r["joint"].get(pair, r["rule"]) if pair else r["rule"]
            results["rule-refit"][key] = {"regret": regret(r, refit), "cpu": r["advice_cpu_s"], "pick": refit}
            results["best-constant"][key] = {"regret": regret(r, constant), "cpu": 0.0, "pick": config_of(r, constant)}
            meta = pick(gains, BASELINE)
            results["meta"][key] = {"regret": regret(r, meta), "cpu": r["advice_cpu_s"], "pick": config_of(r, meta),
                                    "predicted_gain": gains, "alpha": fold_alpha}
            racing = contenders({BASELINE: 0.0, **gains}, r["actual"], spread)
            race = replay(racing, r["curves"], r["epoch_cost"], min_epochs)
            results["prior+race"][key] = {"regret": regret(r, race.winner), "cpu": r["advice_cpu_s"] + race.overhead,
                                          "pick": config_of(r, race.winner), "raced": list(racing),
                                          "epochs": race.epochs, "alpha": fold_alpha}
    return results


def choose_train_alpha(train: list[dict[str, Any]], configs: list[str], groups: dict[str, str] | None = None) -> float:
    """The ridge penalty chosen by leaving one group of ``groups`` (task -> group; default each task its own) out
    within ``train`` (one outer fold's training rows)."""
    def fit(tasks: list[str], alpha: float) -> GainPredictor:
        return fit_gain_prior([r for r in train if r["task"] in tasks], configs, alpha)

    def error(predictor: GainPredictor, task: str) -> float:
        rows = [r for r in train if r["task"] == task]
        return float(np.mean([(predictor.predict(np.array(r["features"]), task)[c] - (r["test"][c] - r["test"][BASELINE])) ** 2
                              for r in rows for c in configs]))
    return choose_alpha(fit, error, groups or {r["task"]: r["task"] for r in train})


def fit_gain_prior(rows: list[dict[str, Any]], configs: list[str], alpha: float) -> GainPredictor:
    """The gain prior fitted on ``rows`` (one per task and seed): each config's test accuracy minus feature
    extraction's, on the facts the advisor measured. The one fit the evaluation and the shipped file share."""
    stages = tuple(rows[0].get("stages", ())) if rows else ()
    return GainPredictor(alpha, stages=stages).fit(
        np.array([r["features"] for r in rows]), {c: np.array([r["test"][c] - r["test"][BASELINE] for r in rows])
                                                   for c in configs}, [r["task"] for r in rows])


def common_configs(rows: list[dict[str, Any]]) -> list[str]:
    """The configs every run trained, in the grid's order (a rule's extra partial-freeze depth is trained on
    some runs only: it scores the rule exactly there, but the learned methods choose among what every run has)."""
    common = set.intersection(*(set(r["test"]) for r in rows))
    order = list(ROLES) + list(CONFIG_ORDER)
    return sorted(common, key=lambda c: order.index(c) if c in order else 99)


def report(rows: list[dict[str, Any]], results: dict[str, dict]) -> dict[str, Any]:
    """Per method: regret per task (mean over its seeds), median, mean, tasks within 2 points and within
    noise, compute against the grid; and a per-task table of the best config and each method's pick."""
    by_task: dict[str, list[dict]] = {}
    for r in rows:
        by_task.setdefault(r["task"], []).append(r)
    noise, best_config = {}, {}
    for task, runs in by_task.items():
        tests = runs[0].get("all_tests", runs[0]["test"])
        best = max(tests, key=lambda c: np.mean([x.get("all_tests", x["test"]).get(c, np.nan) for x in runs]))
        best_config[task] = best
        accs = [x.get("all_tests", x["test"])[best] for x in runs]
        p = float(np.mean(accs))
        noise[task] = max(mean_spread(accs)[1], binomial_error(p, runs[0]["n_test"]))
    # Against trying everything once: the full grid of one seed (seed 0's rate search; a later seed trains
    # only the rates seed 0 chose, so its cheaper grid is not what a user without advice would pay).
    grid_cpu = {t: len(runs) * max(x["grid_cpu_s"] for x in runs) for t, runs in by_task.items()}
    out: dict[str, Any] = {"noise": noise, "best_config": best_config, "methods": {}}
    lines = ["| method | median regret | mean regret | worst | within 2 points | within noise | compute / grid |",
             "|---|---|---|---|---|---|---|"]
    for method, per_run in results.items():
        task_regret = {t: float(np.nanmean([per_run[(x["task"], x["seed"])]["regret"] for x in runs]))
                       for t, runs in sorted(by_task.items())}
        values = list(task_regret.values())
        within = sum(task_regret[t] <= noise[t] for t in task_regret)
        close = sum(v <= WITHIN_POINTS + 1e-9 for v in values)
        ratios = [sum(per_run[(x["task"], x["seed"])]["cpu"] for x in runs) / max(grid_cpu[t], 1e-9)
                  for t, runs in sorted(by_task.items())]
        summary = {"regret_per_task": task_regret, "median": median(values), "mean": float(np.nanmean(values)),
                   "worst": max(values), "within_2_points": close, "within_noise": within, "tasks": len(values),
                   "compute_ratio_max": max(ratios), "compute_ratio_median": median(ratios),
                   "picks": {f"{t}/{s}": v["pick"] for (t, s), v in per_run.items()}}
        out["methods"][method] = summary
        lines.append(f"| {method} | {100 * summary['median']:.1f} | {100 * summary['mean']:.1f} | "
                     f"{100 * summary['worst']:.1f} | {close} of {len(values)} | {within} of {len(values)} | "
                     f"{summary['compute_ratio_median']:.3f} (max {summary['compute_ratio_max']:.3f}) |")
    methods = list(results)
    per_task = ["| task | family | best config | test % | noise | " + " | ".join(methods) + " |",
                "|---|---|---|---|---|" + "---|" * len(methods)]
    for task, runs in sorted(by_task.items()):
        best = best_config[task]
        accuracy = float(np.mean([x.get("all_tests", x["test"])[best] for x in runs]))
        cells = []
        for method in methods:
            picks = sorted({results[method][(x["task"], x["seed"])]["pick"] for x in runs})
            cells.append(f"{'/'.join(picks)} ({100 * out['methods'][method]['regret_per_task'][task]:.1f})")
        per_task.append(f"| {task} | {runs[0]['family']} | {best} | {100 * accuracy:.1f} | {100 * noise[task]:.1f} | "
                        + " | ".join(cells) + " |")
    out["table"] = "\n".join(lines)
    out["per_task_table"] = "\n".join(per_task)
    return out


def evaluated_rows(grid: Path, key: str | None, keep_ceiling: bool = False) -> tuple[list[dict[str, Any]], str, list[str]]:
    """The finished (task, seed) records of the grid, less the tasks where every config scores above the
    ceiling (unless ``keep_ceiling``); with the settings key and the tasks dropped."""
    rows, key = records(grid, key)
    means: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        for c, v in r["test"].items():
            means.setdefault(r["task"], {}).setdefault(c, []).append(v)
    kept, dropped = ceiling_filter({t: {c: float(np.mean(v)) for c, v in cs.items()} for t, cs in means.items()})
    return (rows if keep_ceiling else [r for r in rows if r["task"] in kept]), key, dropped


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("grid", type=Path, help="the honest grid's --out folder")
    parser.add_argument("--key", default=None, help="settings_key of the units (default: grid_summary.json's)")
    parser.add_argument("--holdout", choices=("task", "family"), default="task")
    parser.add_argument("--margin", type=float, default=None, help="prior margin (accuracy); default: its residual")
    parser.add_argument("--race-min-epochs", type=int, default=2)
    parser.add_argument("--alpha", type=float, default=None,
                        help="ridge penalty of the meta predictor (default: chosen inside each fold's training tasks)")
    parser.add_argument("--keep-ceiling", action="store_true", help="keep tasks where every config scores > 97 %%")
    args = parser.parse_args(argv)
    if not (args.grid / "grid_summary.json").exists():
        print(f"error: {args.grid / 'grid_summary.json'} not found; run python -m benchmarks.grid.run first", file=sys.stderr)
        return 2
    rows, key, dropped = evaluated_rows(args.grid, args.key, args.keep_ceiling)
    if dropped:
        print(f"at ceiling (every config > 97 %), {'kept' if args.keep_ceiling else 'dropped'}: {', '.join(dropped)}")
    if len({r["task"] for r in rows}) < 2:
        print("error: fewer than 2 tasks with a full grid and advice; nothing to hold out", file=sys.stderr)
        return 2
    results = evaluate(rows, args.holdout, args.margin, args.race_min_epochs, args.alpha)
    summary = report(rows, results)
    summary.update({"holdout": args.holdout, "settings_key": key, "dropped_at_ceiling": dropped,
                    "runs": len(rows), "tasks": len({r["task"] for r in rows})})
    (args.grid / f"loto_{args.holdout}.json").write_text(json.dumps(summary, indent=1, default=str))
    print(f"Regret (test points) per held-out task, leave-one-{args.holdout}-out, {summary['runs']} runs:\n")
    print(summary["table"])
    print("\nPer task: the best config (test %), the binomial or seed noise, each method's pick (regret, points)\n")
    print(summary["per_task_table"])
    print(f"\nwrote {args.grid / f'loto_{args.holdout}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
