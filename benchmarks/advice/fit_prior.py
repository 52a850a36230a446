"""Fit the gain prior on every finished task of the honest grid and keep it as a data file with its provenance.

    .venv/bin/python -m benchmarks.advice.fit_prior benchmarks/results/honest_grid --key 9e331263e33015b9

The same fit the out-of-task evaluation makes on each fold (:func:`benchmarks.advice.loto.fit_gain_prior`),
on all tasks at once: what the product would ship if the evaluation chose a method that uses it (issue #22
item 6), its ridge penalty chosen by leaving one source family out over those tasks (as each fold of the
family evaluation chose its own). Writes ``gain_prior.json`` beside the units (``--out`` to change; the product ships
``tladvisor/advice/gain_prior.json``); the provenance names the grid's unit settings (backbone, resolution,
schedule), the tasks and seeds, the commit of the code and units, and the command.
``tladvisor.advice.prior.load`` reads it.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.advice.loto import BASELINE, choose_train_alpha, common_configs, evaluated_rows, fit_gain_prior
from benchmarks.advice.suite import BACKBONE
from benchmarks.common.record import code_version
from tladvisor.advice.prior import save


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("grid", type=Path, help="the honest grid's --out folder")
    parser.add_argument("--key", default=None, help="settings_key of the units (default: grid_summary.json's)")
    parser.add_argument("--alpha", type=float, default=None, help="ridge penalty (default: chosen by leave-one-family-out)")
    parser.add_argument("--image-size", type=int, default=64, help="the grid's --image-size (checked against its key)")
    parser.add_argument("--out", type=Path, default=None, help="default: GRID/gain_prior.json")
    args = parser.parse_args(argv)
    if not (args.grid / "units").is_dir():
        print(f"error: {args.grid / 'units'} not found: not an honest grid's --out folder", file=sys.stderr)
        return 2
    rows, key, dropped = evaluated_rows(args.grid, args.key)
    if len({r["task"] for r in rows}) < 2:
        print("error: fewer than 2 tasks with a full grid and advice; nothing to fit", file=sys.stderr)
        return 2
    from benchmarks.grid.run import parse_args, settings_key, unit_settings

    settings = unit_settings(parse_args(["--image-size", str(args.image_size)]))
    if settings_key(settings) != key:
        print(f"error: the units' settings key {key} is not the grid's defaults at {args.image_size} px "
              f"({settings_key(settings)}); pass the grid's --image-size", file=sys.stderr)
        return 2
    configs = [c for c in common_configs(rows) if c != BASELINE]
    families = {r["task"]: r["family"] for r in rows}  # a user's data comes from a family the prior has not seen
    alpha = args.alpha if args.alpha is not None else choose_train_alpha(rows, configs, families)
    predictor = fit_gain_prior(rows, configs, alpha)
    predictor.provenance = {
        "backbone": BACKBONE, "image_size": args.image_size, "modality": "image", "grid_settings": settings,
        "grid_settings_key": key, "tasks": sorted({r["task"] for r in rows}),
        "seeds": sorted({r["seed"] for r in rows}), "runs": len(rows), "dropped_at_ceiling": dropped,
        "code_and_units_commit": code_version(), "fitted": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join([".venv/bin/python", "-m", "benchmarks.advice.fit_prior",
                             *(argv if argv is not None else sys.argv[1:])]),
        "gain_of": f"test accuracy of each config minus {BASELINE}'s, at its validation-chosen rate"}
    out = args.out or args.grid / "gain_prior.json"
    save(predictor, out)
    tasks = len(predictor.provenance["tasks"])
    print(f"ridge penalty {alpha:g}; gain prior over {len(configs)} configs from {len(rows)} runs of {tasks} "
          f"tasks; residual (accuracy) per config: "
          + ", ".join(f"{c} {r:.3f}" for c, r in predictor.residual_.items()))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
