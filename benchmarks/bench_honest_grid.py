"""The honest grid (issue #13 item 1): every strategy trained until its validation curve is flat, at
several learning rates, on the corpus (benchmarks/corpus), scored on untouched test images.

    nice .venv/bin/python benchmarks/bench_honest_grid.py --tasks vtab-position glyph-scripts --seeds 1 \\
        --image-size 32 --cap 6 --patience 2 --max-train-per-class 10          # a smoke run (minutes)
    .venv/bin/python benchmarks/bench_honest_grid.py --device auto --seeds 3    # the real thing (a GPU)

One *unit* is (task, seed, config, learning rate): the product's trainer (``tuning.trainer.train_trial``)
with the epoch cap as its schedule length and ``--patience`` as its early stopping, so a run ends when
its validation curve has been flat for ``patience`` epochs (or at ``--cap``, flagged: raise the cap).
The checkpoint of the best validation epoch is then scored once on the task's test images, which
nothing else looks at. Per (task, seed) an *advice* unit records the advisor's measurements and the
rule's pick, exactly as ``tladvisor analyze`` makes them (suite_advice.advise); a pick the grid's configs
lack (a partial-freeze depth other than 2 or 4) is trained too, at every rate.

Each unit is written as JSON, atomically, as soon as it finishes (``OUT/units/<task>/seed<k>/<unit>.json``);
a rerun skips every unit already written with the same settings, so an interrupted run resumes where it
stopped. ``--jobs 1`` (the default) runs in this process; ``--jobs N`` runs N (task, seed) groups at once.
Then ``grid_summary.json``, ``grid_summary.md`` and ``curves.md`` (every learning curve) are written.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from honest_logic import Flatness, read_finished, settings_key, stop_reason, write_json_atomic  # noqa: E402

# Learning rates searched per strategy (AdamW): at least 3 each, spanning 30x or more around the product's
# starting rates; grid_summary flags a strategy whose best rate is at an edge (extend the grid there).
# Fine-tuning strategies search the backbone rate with the head at 3e-3 (the backbone's when that is higher).
# Feature extraction trains on cached features, so its search is wider: the corpus probe (docs/benchmarks.md)
# chose 1e-3 and 3e-2, the ends of a first 4-rate grid, on 7 of 25 tasks.
RATE_GRID: dict[str, tuple[float, ...]] = {
    "feature_extraction": (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
    "partial_freeze": (1e-4, 3e-4, 1e-3, 3e-3),
    "full_finetune": (1e-4, 3e-4, 1e-3, 3e-3),
    "from_scratch": (3e-4, 1e-3, 3e-3, 1e-2),
}
LAYER_DECAY = {"feature_extraction": 1.0, "partial_freeze": 0.8, "full_finetune": 0.7, "from_scratch": 1.0}
CONFIGS = ("feature_extraction", "partial_freeze@4", "partial_freeze@2", "full_finetune", "from_scratch")
GRID_FORMAT = 1


def rates_searched(strategy: str, limit: int | None = None) -> tuple[float, ...]:
    """RATE_GRID's rates for ``strategy``; with ``limit``, that many from the middle (the lower middle on a tie)."""
    grid = RATE_GRID[strategy]
    if limit is None or limit >= len(grid):
        return grid
    start = (len(grid) - limit) // 2
    return grid[start:start + limit]


def rates_of(strategy: str, rate: float) -> dict[str, float]:
    if strategy == "feature_extraction":
        return {"head": rate, "backbone": 0.0}
    if strategy == "from_scratch":
        return {"head": rate, "backbone": rate}
    return {"head": max(3e-3, rate), "backbone": rate}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="*", help="corpus task names (default: every task buildable here)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--seed-offset", type=int, default=0)
    p.add_argument("--configs", nargs="*", default=list(CONFIGS))
    p.add_argument("--rates", type=int, default=None,
                   help="at most this many rates per strategy, the middle ones of RATE_GRID (default all; at least 3)")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--patience", type=int, default=10, help="epochs without a better validation accuracy: flat")
    p.add_argument("--cap", type=int, default=100, help="epoch cap (also the cosine schedule's length)")
    p.add_argument("--max-train-per-class", type=int, default=None, help="cap the corpus sizes (smoke runs)")
    p.add_argument("--no-advice", action="store_true", help="skip the advice units (measurements, rule pick)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--nice", type=int, default=10, help="added niceness (0: none)")
    p.add_argument("--out", type=Path, default=HERE.parent / "reports" / "benchmarks" / "honest_grid")
    p.add_argument("--work", type=Path, default=None, help="where task images are written (default OUT/work)")
    args = p.parse_args(argv)
    if args.rates is not None and args.rates < 3:
        p.error("--rates must be at least 3: fewer cannot show a strategy did not lose for its rates")
    return args


def unit_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"format": GRID_FORMAT, "image_size": args.image_size, "batch_size": args.batch_size,
            "patience": args.patience, "cap": args.cap, "max_train_per_class": args.max_train_per_class,
            "device": args.device}


def plan(args: argparse.Namespace, tasks: list) -> list[tuple[str, int, list[tuple[str, float]]]]:
    """(task, seed, [(config, rate)...]) groups; each group shares its images and cached features."""
    groups = []
    for task in tasks:
        for s in range(args.seeds):
            units = [(c, r) for c in args.configs for r in rates_searched(c.split("@")[0], args.rates)]
            groups.append((task.name, args.seed_offset + s, units))
    return groups


def with_rule_pick(units: list[tuple[str, float]], recommended: str | None,
                   n_rates: int | None) -> list[tuple[str, float]]:
    """``units`` plus the rule's pick at every rate when it is a partial-freeze depth the grid lacks (its
    regret is then exact, not the nearest trained depth's). A run limited by --configs to other
    strategies stays limited."""
    configs = {c for c, _ in units}
    if (recommended and recommended.startswith("partial_freeze@") and recommended not in configs
            and any(c.startswith("partial_freeze@") for c in configs)):
        return list(units) + [(recommended, r) for r in rates_searched("partial_freeze", n_rates)]
    return list(units)


def unit_path(out: Path, task: str, seed: int, config: str, rate: float | None) -> Path:
    name = "advice" if config == "advice" else f"{config.replace('@', '-')}__lr{rate:g}"
    return out / "units" / task / f"seed{seed}" / f"{name}.json"


def held_out_loader(folder: Path, classes: tuple[str, ...], spec, image_size: int, batch_size: int):
    from torch.utils.data import DataLoader

    from tladvisor.transforms import ImageFiles, eval_transform

    paths, labels = [], []
    for index, label in enumerate(classes):
        for path in sorted((folder / "test" / label).glob("*.png")):
            paths.append(path)
            labels.append(index)
    return DataLoader(ImageFiles(paths, labels, eval_transform(spec.preprocessing_at(image_size))),
                      batch_size=batch_size, shuffle=False)


def trial_config(spec, config: str, rate: float, args: argparse.Namespace):
    from suite_advice import BACKBONE
    from tladvisor.tuning.search import DEFAULT_WEIGHT_DECAY
    from tladvisor.tuning.strategies import TrialConfig

    strategy, _, depth = config.partition("@")
    rates = rates_of(strategy, rate)
    return TrialConfig(backbone=BACKBONE, strategy=strategy,
                       freeze_depth=int(depth) if depth else (spec.n_stages if strategy == "feature_extraction" else 0),
                       lr_head=rates["head"], lr_backbone=rates["backbone"], layer_decay=LAYER_DECAY[strategy],
                       weight_decay=DEFAULT_WEIGHT_DECAY, epochs=args.cap, patience=args.patience,
                       batch_size=args.batch_size, image_size=args.image_size)


def product_unit(spec, data, test_loader, config: str, rate: float, args: argparse.Namespace, seed: int,
                 device) -> dict[str, Any]:
    """One unit with the product's trainer: stops when flat (its patience), the best epoch scored on test."""
    from suite_advice import Clock
    from tladvisor.tuning.inference import accuracy
    from tladvisor.tuning.trainer import TrialFailed, train_trial

    trial = trial_config(spec, config, rate, args)
    rule = Flatness(patience=args.patience, min_epochs=args.patience + 1, cap=args.cap)
    result: dict[str, Any] = {"seed": seed, "config": config, "strategy": trial.strategy, "rate": rate,
                              "lr_head": trial.lr_head, "lr_backbone": trial.lr_backbone,
                              "n_train": len(data.train_idx), "n_val": len(data.val_idx),
                              "n_test": len(test_loader.dataset)}
    with Clock() as clock:
        try:
            trained = train_trial(spec, trial, data, device, seed=seed)
            test = accuracy(trained.model, test_loader, device)
        except TrialFailed as error:
            trained, test, result["failed"] = None, None, str(error)
    if trained is not None:
        curve = [round(v, 4) for v in trained.learning_curve]
        result.update({"val_curve": curve, "best_epoch": trained.best_epoch + 1, "val_best": max(curve),
                       "test_at_best": test, "epochs_run": len(curve), "stop": stop_reason(curve, rule) or "cap"})
    result.update({"cpu_s": round(clock.cpu, 3), "wall_s": round(clock.wall, 3)})
    return result


def run_group(task_name: str, seed: int, units: list[tuple[str, float]], args_dict: dict[str, Any]) -> list[str]:
    """Every pending unit of one (task, seed), in one process; returns the unit files written."""
    import torch

    from corpus.common import write_task
    from corpus.registry import task_by_name
    from suite_advice import BACKBONE, Settings, advise, counterfactual_picks, measurement_summary
    from suite_stats import config_name
    from tladvisor.data.imagefolder import load_image_folder
    from tladvisor.plugins import PluginHost
    from tladvisor.records import AnalysisOptions
    from tladvisor.tuning.data import TuningData

    args = argparse.Namespace(**args_dict)
    torch.set_num_threads(args.threads)
    out, key = Path(args.out), settings_key(unit_settings(args))
    task = task_by_name(task_name)
    per_class = min(task.train_per_class, args.max_train_per_class or task.train_per_class)
    folder = Path(args.work) / f"{task.name}-seed{seed}-n{per_class}"
    advice_file = unit_path(out, task.name, seed, "advice", None)
    stored = read_finished(advice_file, key)
    needs_advice = not args.no_advice and stored is None

    def pending_for(recommended: str | None) -> list[tuple[str, float]]:
        todo = with_rule_pick(units, recommended, args.rates)
        return [(c, r) for c, r in todo if read_finished(unit_path(out, task.name, seed, c, r), key) is None]
    pending = pending_for(stored["recommended"] if stored else None)
    if not needs_advice and not pending:
        return []  # finished by an earlier run
    if not folder.exists():
        write_task(task, folder, seed, train_per_class=per_class)  # deterministic: rebuilding gives the same images
    device = torch.device(args.device)
    host = PluginHost()
    spec = host.backbone(BACKBONE)
    written = []
    if needs_advice:
        settings = Settings(work_dir=str(args.work), image_size=args.image_size, batch_size=args.batch_size,
                            device=args.device, threads=args.threads)
        advice = advise(folder, seed, settings, host)
        rec = advice["recommendation"]
        write_json_atomic(advice_file, {
            "settings_key": key, "task": task.name, "family": task.family, "kind": task.kind, "seed": seed,
            "n_classes": task.n_classes, "train_per_class": per_class,
            "recommended": config_name(rec.strategy, rec.freeze_depth),
            "measures": measurement_summary(advice["measurement"], rec),
            "counterfactual_picks": counterfactual_picks(advice["profile"], advice["measurement"],
                                                         advice["options"].val_fraction),
            "advice_cpu_s": round(advice["clock"].cpu, 3), "advice_wall_s": round(advice["clock"].wall, 3)})
        written.append(str(advice_file))
        pending = pending_for(config_name(rec.strategy, rec.freeze_depth))
    if not pending:
        return written
    options = AnalysisOptions(source=folder, backbones=(BACKBONE,), image_size=args.image_size, seed=seed,
                              batch_size=args.batch_size, device=args.device,
                              cache_dir=folder.parent / f"{folder.name}-cache")
    dataset = load_image_folder(folder)
    data = TuningData(dataset, options, device)
    test_loader = held_out_loader(folder, dataset.classes, spec, args.image_size, args.batch_size)
    for config, rate in pending:
        result = product_unit(spec, data, test_loader, config, rate, args, seed, device)
        result.update({"settings_key": key, "task": task.name, "family": task.family})
        path = unit_path(out, task.name, seed, config, rate)
        write_json_atomic(path, result)
        written.append(str(path))
        print(f"  {task.name} seed {seed} {config} lr {rate:g}: val {result.get('val_best')} test "
              f"{result.get('test_at_best')} after {result.get('epochs_run')} epochs ({result.get('stop')}), "
              f"{result['cpu_s']:.0f} CPU s", flush=True)
    shutil.rmtree(folder.parent / f"{folder.name}-cache", ignore_errors=True)
    return written


def start_run(args) -> tuple[list | None, dict[str, str]]:
    """What every corpus benchmark does first: niceness, the device, the tasks this machine can build
    and those it skips (named on stderr), the work folder. Tasks None when none can be built (said)."""
    if args.nice:
        os.nice(args.nice)
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    from corpus.registry import select

    tasks, skipped = select(args.tasks)
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason}", file=sys.stderr)
    if not tasks:
        print("error: no task can be built here", file=sys.stderr)
        return None, skipped
    args.work = args.work or args.out / "work"
    return tasks, skipped


def main(argv=None) -> int:
    args = parse_args(argv)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(args.threads)
    tasks, skipped = start_run(args)
    if tasks is None:
        return 2
    from grid_summary import summarise, write_summary

    groups = plan(args, tasks)
    print(f"honest grid: {len(tasks)} tasks x {args.seeds} seeds, {sum(len(u) for *_, u in groups)} training units, "
          f"cap {args.cap}, patience {args.patience}, {args.image_size} px, device {args.device}, "
          f"load {os.getloadavg()}", flush=True)
    started = time.perf_counter()
    payload = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    if args.jobs <= 1:
        for task_name, seed, units in groups:
            run_group(task_name, seed, units, payload)
    else:
        from suite_workers import worker_pool

        with worker_pool(args.jobs) as pool:
            for future in [pool.submit(run_group, t, s, u, payload) for t, s, u in groups]:
                future.result()
    summary = summarise(args.out / "units", settings_key(unit_settings(args)))
    summary["skipped_tasks"] = skipped
    summary["settings_key"] = settings_key(unit_settings(args))
    summary["wall_s"] = round(time.perf_counter() - started, 1)
    write_summary(args.out, summary)
    print(f"wrote {args.out / 'grid_summary.json'}, grid_summary.md and curves.md "
          f"({summary['wall_s']:.0f} s wall, load {os.getloadavg()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
