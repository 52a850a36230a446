"""How much of the honest grid is left, and what it will cost: from the units already made, not from a guess.

    .venv/bin/python -m benchmarks.grid.estimate benchmarks/results/honest_grid --key 9e331263e33015b9

Per task of the corpus: the units finished, and for a task not finished the CPU its training units should
cost, at the median CPU per training image per epoch each strategy took in the finished units (validation,
the BatchNorm re-estimate and the test pass included, so small tasks, where those weigh more, make it an
upper bound for large ones) times the task's training images, its schedule's epochs and the rates searched
(3 per network config plus one step out in a third of them, as in the finished units; 6 for feature
extraction). The total is divided by ``--jobs`` for wall time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from benchmarks.grid.plan import CONFIGS, LADDER, multipliers_of, resolved_configs
from benchmarks.grid.summary import load_units
from benchmarks.grid.logic import Schedule, steps_per_epoch
from benchmarks.ranking.logic import next_multiplier
from benchmarks.common.record import add_record_option, recorded

NETWORK_CONFIGS = 4.5  # top stage, half, full FT, scratch, and the shift depth on about half the tasks
RATES_PER_CONFIG = 3 + 1 / 3  # three, and a step out in about a third of the searches


def cost_per_image_epoch(trained: list[dict]) -> dict[str, float]:
    """Median CPU seconds per training image per epoch, by strategy, over the finished (not 2x) units."""
    costs: dict[str, list[float]] = defaultdict(list)
    for unit in trained:
        if unit.get("long") or not unit.get("epochs") or not unit.get("n_train"):
            continue
        costs[unit["config"].split("@")[0]].append(unit["cpu_s"] / (unit["epochs"] * unit["n_train"]))
    return {strategy: statistics.median(values) for strategy, values in costs.items()}


def estimate(units_dir: Path, key: str, tasks, schedule: Schedule, batch_size: int) -> list[dict]:
    trained, advice = load_units(units_dir, key)
    per_strategy = cost_per_image_epoch(trained)
    network = statistics.median([v for s, v in per_strategy.items() if s != "feature_extraction"] or [0.0])
    done = defaultdict(int)
    tried: dict[tuple[str, str], dict[float, float]] = defaultdict(dict)
    for unit in trained:
        done[unit["task"]] += 1
        if unit.get("seed") == 0 and not unit.get("long"):
            tried[(unit["task"], unit["config"])][float(unit["multiplier"])] = unit["val_best"]
    rows = []
    for task in tasks:
        n_train = task.n_classes * task.train_per_class
        epochs = schedule.epochs(steps_per_epoch(n_train, batch_size))
        unit = advice.get((task.name, 0))
        # finished: every config has its base rates and no step out pending (seed 0)
        finished = unit is not None and all(
            set(multipliers_of(c)) <= set(tried[(task.name, c)]) and next_multiplier(tried[(task.name, c)], LADDER) is None
            for c in resolved_configs(list(CONFIGS), unit.get("n_stages", 6), unit.get("shift_depth")))
        share = 0.5 if done[task.name] and not finished else 1.0  # a started task: about half left
        cpu = 0.0 if finished else share * epochs * n_train * (
            NETWORK_CONFIGS * RATES_PER_CONFIG * network + 6 * per_strategy.get("feature_extraction", 0.0))
        rows.append({"task": task.name, "train_images": n_train, "epochs": epochs, "units_done": done[task.name],
                     "finished": finished, "cpu_s_left": cpu})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the grid's --out folder")
    parser.add_argument("--key", required=True, help="settings_key of the units")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    add_record_option(parser, "grid/estimate.md")
    args = parser.parse_args(argv)
    with recorded(args.record, "benchmarks.grid.estimate"):
        from benchmarks.tasks.registry import select

        tasks, _skipped = select()
        rows = estimate(args.out / "units", args.key, tasks, Schedule(), args.batch_size)
        print("| task | training images | epochs | units done | CPU s left (estimate) |\n|---|---|---|---|---|")
        for row in rows:
            left = "finished" if row["finished"] else f"{row['cpu_s_left']:,.0f}" + (" (started)" if row["units_done"] else "")
            print(f"| {row['task']} | {row['train_images']} | {row['epochs']} | {row['units_done']} | {left} |")
        total = sum(row["cpu_s_left"] for row in rows)
        print(f"\n{total:,.0f} CPU s left: about {total / args.jobs / 3600:.1f} h of wall time with {args.jobs} jobs")
        return 0


if __name__ == "__main__":
    sys.exit(main())
