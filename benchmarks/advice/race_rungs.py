"""How the race's first rung moves the shipped method's out-of-task regret (issue #22): the evaluation of
benchmarks/advice/loto.py with the first rung at 2, 3, 4 and 6 epochs, both holdouts, on the stored grid.

    .venv/bin/python -m benchmarks.advice.race_rungs benchmarks/results/honest_grid --key 9e331263e33015b9 \\
        --record benchmarks/results/honest_grid/race_rungs.md

Prints per first rung the median, mean, tasks within 2 points and compute of ``prior+race``, then the regret
per task wherever some rung changes it. Writes no loto_*.json (those hold the shipped rung's numbers).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.advice.loto import evaluate, evaluated_rows, report
from benchmarks.common.record import add_record_option, recorded

RUNGS = (2, 3, 4, 6)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("grid", type=Path, help="the honest grid's --out folder")
    parser.add_argument("--key", default=None, help="settings_key of the units (default: grid_summary.json's)")
    add_record_option(parser, "honest_grid/race_rungs.md")
    args = parser.parse_args(argv)
    if not (args.grid / "units").is_dir():
        print(f"error: {args.grid / 'units'} not found: not an honest grid's --out folder", file=sys.stderr)
        return 2
    with recorded(args.record, "benchmarks.advice.race_rungs", argv):
        rows, key, _ = evaluated_rows(args.grid, args.key)
        print(f"{len(rows)} runs of {len(dict.fromkeys(r['task'] for r in rows))} tasks, settings {key}\n")
        print("| holdout | first rung | median | mean | within 2 points | compute / grid, median (max) |")
        print("|---|---|---|---|---|---|")
        per_task = {}
        for holdout in ("family", "task"):
            for rung in RUNGS:
                shipped = report(rows, evaluate(rows, holdout, None, rung, None))["methods"]["prior+race"]
                per_task[(holdout, rung)] = shipped["regret_per_task"]
                print(f"| {holdout} | {rung} | {100 * shipped['median']:.1f} | {100 * shipped['mean']:.1f} | "
                      f"{shipped['within_2_points']} of {shipped['tasks']} | {100 * shipped['compute_ratio_median']:.1f} % "
                      f"({100 * shipped['compute_ratio_max']:.1f} %) |")
        print("\nRegret per task (points, leave one family out) where the first rung changes it:\n")
        print("| task | " + " | ".join(f"rung {r}" for r in RUNGS) + " |")
        print("|---|" + "---|" * len(RUNGS))
        for task in sorted(per_task[("family", RUNGS[0])]):
            values = [per_task[("family", r)][task] for r in RUNGS]
            if max(values) - min(values) > 1e-9:
                print(f"| {task} | " + " | ".join(f"{100 * v:.1f}" for v in values) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
