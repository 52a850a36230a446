"""The honest grid (issue #22): every transfer config trained on a fixed schedule at several learning rates,
on the corpus (benchmarks/tasks), chosen on validation and scored on untouched test images.

    nice .venv/bin/python -m benchmarks.grid.run --seed 0 --jobs 2            # seed 0: the rate search
    nice .venv/bin/python -m benchmarks.grid.run --seed 1 --rates-from-seed 0 --jobs 2
    nice .venv/bin/python -m benchmarks.grid.run --seed 0 --image-size 128 --tasks ...  # resolution
    .venv/bin/python -m benchmarks.grid.run --tasks vtab-position --max-epochs 2 --min-epochs 1 \\
        --min-steps 0 --max-train-per-class 5 --configs feature_extraction full_finetune --out /tmp/g  # smoke

One *unit* is (task, seed, config, rate multiplier): the product's trainer (``tuning.trainer.train_trial``)
on a fixed schedule (benchmarks/grid/logic.py Schedule: max(12 epochs, 300 steps), at most 30; warm-up then cosine over
all of it, no early stop), keeping its best validation epoch, which is then scored once on the task's test
images (at least ``--test-images`` where the source has them), which nothing else looks at.

Configs (Lite0 has 6 stages): feature extraction (on cached features, at 6 rates), partial freeze training
only the top stage (``top1``), half the stages (``half``) and the depth the product's shift rule picks
(``shift``, added per task when it is neither), full fine-tune, from scratch; the top two stages (``top2``)
and LP-FT with ``--configs``. Rates are multipliers of the product's starting rates (head and backbone
together, tladvisor.strategies): 0.3x, 1x and 3x, and the next step out (0.1x, 10x, ...) while the best on
validation sits at an edge. ``--rates-from-seed K`` trains each network config only at the multiplier seed
K chose (feature extraction still at its six). ``--rerun-climbing`` trains each config whose chosen run
peaked in the last fifth of its schedule again at twice the length (stored beside it with ``__long``): the
evidence that the schedule did not cut it short.

Each unit is written as JSON, atomically, as soon as it finishes (``OUT/units/<task>/seed<k>/<unit>.json``);
a rerun skips every unit already written with the same settings, so an interrupted run resumes where it
stopped. ``--jobs N`` runs N (task, seed) groups at once, each on ``--threads`` threads. Then
``grid_summary.json``, ``grid_summary.md`` and ``curves.md`` are written (benchmarks/grid/summary.py).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any


from benchmarks.grid.logic import (
    Schedule,
    chosen_multiplier,
    read_finished,
    settings_key,
    steps_per_epoch,
    still_climbing,
    write_json_atomic,
)
from benchmarks.grid.plan import (
    CONFIGS,
    LADDER,
    check_out_folder,
    multipliers_of,
    rates_at,
    resolved_configs,
    unit_path,
)
from benchmarks.ranking.logic import next_multiplier
from benchmarks.common.paths import RESULTS, SCRATCH
from benchmarks.common.record import code_version

GRID_FORMAT = 2


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="*", help="corpus task names (default: every task buildable here)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rates-from-seed", type=int, default=None,
                   help="train each config only at the rate multiplier this seed chose on validation")
    p.add_argument("--configs", nargs="*", default=list(CONFIGS),
                   help="partial_freeze@K, @topK, @half or @shift (the rule's depth, when it is a new one)")
    p.add_argument("--no-extend", action="store_true", help="no extra rate when the best sits at an edge")
    p.add_argument("--rerun-climbing", action="store_true",
                   help="rerun chosen runs that peaked in their last fifth at twice the length")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--min-epochs", type=int, default=12)
    p.add_argument("--min-steps", type=int, default=300)
    p.add_argument("--max-epochs", type=int, default=30)
    p.add_argument("--test-images", type=int, default=500, help="test images per task where the source has them")
    p.add_argument("--max-train-per-class", type=int, default=None, help="cap the corpus sizes (smoke runs)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--nice", type=int, default=10, help="added niceness (0: none)")
    p.add_argument("--out", type=Path, default=RESULTS / "honest_grid")
    p.add_argument("--work", type=Path, default=SCRATCH / "honest_grid_work",
                   help="where task images are written (not committed)")
    return p.parse_args(argv)


def schedule_of(args: argparse.Namespace) -> Schedule:
    return Schedule(min_epochs=args.min_epochs, min_steps=args.min_steps, max_epochs=args.max_epochs)


def unit_settings(args: argparse.Namespace) -> dict[str, Any]:
    """What changes a unit's numbers: a unit made with other settings is not reused."""
    return {"format": GRID_FORMAT, "image_size": args.image_size, "batch_size": args.batch_size,
            "schedule": [args.min_epochs, args.min_steps, args.max_epochs], "test_images": args.test_images,
            "max_train_per_class": args.max_train_per_class, "device": args.device}


def test_per_class_for(task, wanted_images: int) -> int:
    return max(task.test_per_class, math.ceil(wanted_images / task.n_classes))


def write_grid_task(task, folder: Path, seed: int, per_class: int, wanted_test: int) -> int:
    """Write the task with at least ``wanted_test`` test images, or its own test count where the source
    holds too few (faces-lfw); returns the test images per class written."""
    from benchmarks.tasks.common import SourceMissing, write_task

    test = test_per_class_for(task, wanted_test)
    try:
        write_task(task, folder, seed, train_per_class=per_class, test_per_class=test)
        return test
    except SourceMissing as error:
        if "too few source images" not in str(error) or test == task.test_per_class:
            raise
    write_task(task, folder, seed, train_per_class=per_class)
    return task.test_per_class


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


def trial_config(config: str, multiplier: float, epochs: int, n_stages: int, args: argparse.Namespace):
    from benchmarks.advice.suite import BACKBONE
    from tladvisor.tuning.search import DEFAULT_WEIGHT_DECAY
    from tladvisor.tuning.strategies import TrialConfig

    strategy, _, depth = config.partition("@")
    rates = rates_at(strategy, multiplier)
    freeze = int(depth) if depth else (n_stages if strategy == "feature_extraction" else 0)
    return TrialConfig(backbone=BACKBONE, strategy=strategy, freeze_depth=freeze, lr_head=rates["head"],
                       lr_backbone=rates["backbone"], layer_decay=rates["layer_decay"],
                       weight_decay=DEFAULT_WEIGHT_DECAY, epochs=epochs, patience=epochs,
                       batch_size=args.batch_size, image_size=args.image_size)


def test_predictions(model, loader, device) -> tuple[float, str]:
    """Test accuracy and each test image's correctness as a '0'/'1' string (for paired tests later)."""
    import torch

    from tladvisor.tuning.inference import predict_probabilities

    predicted = predict_probabilities(model, loader, device).argmax(1).cpu()
    labels = torch.as_tensor(loader.dataset.labels)
    correct = (predicted == labels).tolist()
    return sum(correct) / max(1, len(correct)), "".join("1" if c else "0" for c in correct)


def product_unit(spec, data, test_loader, config: str, multiplier: float, epochs: int, args, seed: int,
                 device) -> dict[str, Any]:
    """One unit with the product's trainer on the fixed schedule; its best epoch scored on test."""
    from benchmarks.advice.suite import Clock
    from tladvisor.tuning.trainer import TrialFailed, train_trial

    trial = trial_config(config, multiplier, epochs, spec.n_stages, args)
    result: dict[str, Any] = {"seed": seed, "config": config, "strategy": trial.strategy, "multiplier": multiplier,
                              "rate": trial.lr_backbone or trial.lr_head, "lr_head": trial.lr_head,
                              "lr_backbone": trial.lr_backbone, "epochs": epochs,
                              "n_train": len(data.train_idx), "n_val": len(data.val_idx),
                              "n_test": len(test_loader.dataset)}
    with Clock() as clock:
        try:
            trained = train_trial(spec, trial, data, device, seed=seed)
            test, correct = test_predictions(trained.model, test_loader, device)
        except TrialFailed as error:
            trained, result["failed"] = None, str(error)
    if trained is not None:
        curve = [round(v, 4) for v in trained.learning_curve]
        result.update({"val_curve": curve, "best_epoch": trained.best_epoch + 1, "val_best": max(curve),
                       "test_at_best": test, "test_correct": correct, "epochs_run": len(curve),
                       "climbing": still_climbing(curve), "stop": "schedule"})
    result.update({"cpu_s": round(clock.cpu, 3), "wall_s": round(clock.wall, 3)})
    return result


class _NotYet(Exception):
    """The seed whose rate choice a later seed reuses has not finished its search of a config."""


def _val(unit: dict | None) -> float:
    return float(unit["val_best"]) if unit and "val_best" in unit else math.nan


def run_group(task_name: str, seed: int, args_dict: dict[str, Any]) -> list[str]:
    """Every pending unit of one (task, seed), in one process; returns the unit files written."""
    import torch

    from benchmarks.tasks.registry import task_by_name
    from benchmarks.advice.suite import BACKBONE, Settings, advise, counterfactual_picks, measurement_summary
    from benchmarks.common.stats import config_name
    from tladvisor.data.imagefolder import load_image_folder
    from tladvisor.plugins import PluginHost
    from tladvisor.records import AnalysisOptions
    from tladvisor.advice.learned import textbook_config
    from tladvisor.advice.recommend import freeze_depth_from_shift
    from tladvisor.tuning.data import TuningData

    args = argparse.Namespace(**args_dict)
    torch.set_num_threads(args.threads)
    out, key = Path(args.out), settings_key(unit_settings(args))
    task = task_by_name(task_name)
    per_class = min(task.train_per_class, args.max_train_per_class or task.train_per_class)
    # the size too: a 128 px run beside a 64 px one must not share (nor delete) a task's cache folder
    folder = Path(args.work) / f"{task.name}-seed{seed}-n{per_class}-t{args.test_images}-{args.image_size}px"
    if not folder.exists():  # deterministic: rebuilding gives the same images
        write_grid_task(task, folder, seed, per_class, args.test_images)
    host = PluginHost()
    spec = host.backbone(BACKBONE)
    written: list[str] = []
    advice_file = unit_path(out, task.name, seed, "advice", None)
    advice = read_finished(advice_file, key)
    if advice is None:
        settings = Settings(work_dir=str(args.work), image_size=args.image_size, batch_size=args.batch_size,
                            device=args.device, threads=args.threads)
        made = advise(folder, seed, settings, host)
        rec, measurement = made["recommendation"], made["measurement"]
        shift_depth, _ = freeze_depth_from_shift(measurement.stage_shift, spec.n_stages, measurement.stage_names)
        advice = {"settings_key": key, "task": task.name, "family": task.family, "kind": task.kind, "seed": seed,
                  "n_classes": task.n_classes, "train_per_class": per_class, "n_stages": spec.n_stages,
                  "recommended": config_name(*textbook_config(rec)), "shift_depth": shift_depth,
                  "measures": measurement_summary(measurement, rec),
                  "counterfactual_picks": counterfactual_picks(made["profile"], measurement,
                                                               made["options"].val_fraction),
                  "advice_cpu_s": round(made["clock"].cpu, 3), "advice_wall_s": round(made["clock"].wall, 3),
                  "commit": getattr(args, "commit", "unknown")}
        write_json_atomic(advice_file, advice)
        written.append(str(advice_file))
    configs = resolved_configs(args.configs, spec.n_stages, advice.get("shift_depth"))

    def stored(config: str, m: float, long: bool = False) -> dict | None:
        return read_finished(unit_path(out, task.name, seed, config, m, long), key)

    def chosen_for(config: str) -> float | None:
        """The multiplier seed K chose for ``config``, once its search there is complete (its base rates
        trained and no step out pending); None: search here (feature extraction always: it trains on
        cached features; a config seed K never trained, such as another shift depth). Raises _NotYet
        while seed K's search of the config is unfinished: a unit made now would fix a choice it may
        still revise."""
        if args.rates_from_seed is None or config == "feature_extraction":
            return None
        tried = {}
        for path in unit_path(out, task.name, args.rates_from_seed, config, 1.0).parent.glob(
                f"{config.replace('@', '-')}__x*.json"):
            unit = read_finished(path, key)
            if unit is not None and not path.stem.endswith("__long"):
                tried[unit["multiplier"]] = _val(unit)
        if not tried:
            return None
        if not set(multipliers_of(config)) <= set(tried) or next_multiplier(tried, LADDER) is not None:
            raise _NotYet(config)
        return chosen_multiplier(tried)

    state: dict[str, Any] = {}

    def prepared():
        if not state:
            options = AnalysisOptions(source=folder, backbones=(BACKBONE,), image_size=args.image_size, seed=seed,
                                      batch_size=args.batch_size, device=args.device,
                                      cache_dir=folder.parent / f"{folder.name}-cache")
            dataset = load_image_folder(folder)
            state["data"] = data = TuningData(dataset, options, torch.device(args.device))
            state["test"] = held_out_loader(folder, dataset.classes, spec, args.image_size, args.batch_size)
            state["epochs"] = schedule_of(args).epochs(steps_per_epoch(len(data.train_idx), args.batch_size))
        return state

    def train(config: str, m: float, long: bool = False) -> dict:
        s = prepared()
        epochs = s["epochs"] * (2 if long else 1)
        result = product_unit(spec, s["data"], s["test"], config, m, epochs, args, seed, torch.device(args.device))
        result.update({"settings_key": key, "task": task.name, "family": task.family, "long": long,
                       "commit": getattr(args, "commit", "unknown")})
        path = unit_path(out, task.name, seed, config, m, long)
        write_json_atomic(path, result)
        written.append(str(path))
        print(f"  {task.name} seed {seed} {config} x{m:g}{' long' if long else ''}: val {result.get('val_best')} "
              f"test {result.get('test_at_best')} best epoch {result.get('best_epoch')}/{epochs}, "
              f"{result['cpu_s']:.0f} CPU s", flush=True)
        return result

    for config in configs:
        try:
            fixed = chosen_for(config)
        except _NotYet:
            print(f"  {task.name} seed {seed} {config}: seed {args.rates_from_seed} has not finished its rate "
                  f"search; skipped (run seed {args.rates_from_seed} first)", flush=True)
            continue
        tried = {}
        for m in ([fixed] if fixed is not None else multipliers_of(config)):
            tried[m] = _val(stored(config, m) or train(config, m))
        while fixed is None and not args.no_extend:
            m = next_multiplier(tried, LADDER)
            if m is None:
                break
            tried[m] = _val(stored(config, m) or train(config, m))
        if args.rerun_climbing:
            best = chosen_multiplier(tried)
            unit = stored(config, best) if best is not None else None
            if unit and unit.get("climbing") and stored(config, best, long=True) is None:
                train(config, best, long=True)
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
    from benchmarks.tasks.registry import select

    tasks, skipped = select(args.tasks)
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason}", file=sys.stderr)
    if not tasks:
        print("error: no task can be built here", file=sys.stderr)
        return None, skipped
    args.work = getattr(args, "work", None) or args.out / "work"
    return tasks, skipped


def by_cost(tasks: list) -> list:
    """The smallest training sets first: a run that spans sessions has the most tasks finished (for the
    out-of-task evaluation) at each stop; the large ones come last."""
    return sorted(tasks, key=lambda t: (t.n_classes * t.train_per_class, t.name))


def main(argv=None) -> int:
    args = parse_args(argv)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(args.threads)
    tasks, skipped = start_run(args)
    if tasks is None:
        return 2
    from benchmarks.grid.summary import summarise, write_summary

    clash = check_out_folder(args.out, settings_key(unit_settings(args)))
    if clash:
        print(f"error: {clash}", file=sys.stderr)
        return 2

    print(f"honest grid: {len(tasks)} tasks, seed {args.seed}"
          + (f" at the rates seed {args.rates_from_seed} chose" if args.rates_from_seed is not None else "")
          + f", {args.image_size} px, schedule {schedule_of(args)}, batch {args.batch_size}, device {args.device}, "
          f"load {os.getloadavg()}", flush=True)
    started = time.perf_counter()
    args.commit = code_version()
    payload = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    names = [t.name for t in by_cost(tasks)]
    if args.jobs <= 1:
        for name in names:
            run_group(name, args.seed, payload)
    else:
        from benchmarks.common.workers import worker_pool

        with worker_pool(args.jobs) as pool:
            for future in [pool.submit(run_group, name, args.seed, payload) for name in names]:
                future.result()
    key = settings_key(unit_settings(args))
    summary = summarise(args.out / "units", key)
    summary.update({"skipped_tasks": skipped, "settings_key": key, "wall_s": round(time.perf_counter() - started, 1)})
    write_summary(args.out, summary)
    print(f"wrote {args.out / 'grid_summary.json'}, grid_summary.md and curves.md "
          f"({summary['wall_s']:.0f} s wall, load {os.getloadavg()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
