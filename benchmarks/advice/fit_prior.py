"""Fit the gain prior on every finished task of the honest grid and keep it as a data file with its provenance.

    .venv/bin/python -m benchmarks.advice.fit_prior benchmarks/results/honest_grid --key 9e331263e33015b9

The same fit the out-of-task evaluation makes on each fold (:func:`benchmarks.advice.loto.fit_gain_prior`),
on all tasks at once: what the product would ship if the evaluation chose a method that uses it (issue #22
item 6). Writes ``gain_prior.json`` beside the units (``--out`` to change); the provenance names the settings
key, the tasks and seeds, the commit of the code and units, and the command. ``tladvisor.advice.prior.load``
reads it.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.advice.loto import BASELINE, common_configs, evaluated_rows, fit_gain_prior
from benchmarks.common.record import code_version
from tladvisor.advice.prior import save


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("grid", type=Path, help="the honest grid's --out folder")
    parser.add_argument("--key", default=None, help="settings_key of the units (default: grid_summary.json's)")
    parser.add_argument("--alpha", type=float, default=1.0, help="ridge penalty (the evaluation's default)")
    parser.add_argument("--out", type=Path, default=None, help="default: GRID/gain_prior.json")
    args = parser.parse_args(argv)
    if not (args.grid / "units").is_dir():
        print(f"error: {args.grid / 'units'} not found: not an honest grid's --out folder", file=sys.stderr)
        return 2
    rows, key, dropped = evaluated_rows(args.grid, args.key)
    if len({r["task"] for r in rows}) < 2:
        print("error: fewer than 2 tasks with a full grid and advice; nothing to fit", file=sys.stderr)
        return 2
    configs = [c for c in common_configs(rows) if c != BASELINE]
    predictor = fit_gain_prior(rows, configs, args.alpha)
    predictor.provenance = {
        "grid_settings_key": key, "tasks": sorted({r["task"] for r in rows}),
        "seeds": sorted({r["seed"] for r in rows}), "runs": len(rows), "dropped_at_ceiling": dropped,
        "code_and_units_commit": code_version(), "fitted": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join([".venv/bin/python", "-m", "benchmarks.advice.fit_prior",
                             *(argv if argv is not None else sys.argv[1:])]),
        "gain_of": f"test accuracy of each config minus {BASELINE}'s, at its validation-chosen rate"}
    out = args.out or args.grid / "gain_prior.json"
    save(predictor, out)
    print(f"gain prior over {len(configs)} configs from {len(rows)} runs of {len(predictor.provenance['tasks'])} "
          f"tasks; residual (accuracy) per config: "
          + ", ".join(f"{c} {r:.3f}" for c, r in predictor.residual_.items()))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
