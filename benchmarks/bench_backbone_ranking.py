"""Do the measures rank backbones the way training does? Weighted Kendall tau of each measure against tuned accuracy.

    .venv/bin/python benchmarks/bench_backbone_ranking.py [--tasks photos-small textures-small ...]
        [--backbones efficientnet_lite0 efficientnet_lite1 efficientnet_lite2] [--seeds 1] [--epochs 6]
        [--image-size 64] [--train-per-class N] [--val-per-class N]

For each task (benchmarks/suite_tasks.py) and seed, every backbone is measured exactly as ``tladvisor
analyze`` measures it (``Advisor.measure``: probes, LogME, H-score, LEEP, NCE) at one input size, and
trained by the product's trainer with feature extraction and with a full fine-tune (the product's
starting learning rates, the same short budget for every backbone); a backbone's *tuned accuracy* is the
better of the two on the task's fixed validation images. Each measure, and the product's ranking score
(``tladvisor.recommend.rank_score``), is then compared with the tuned accuracy by the weighted Kendall tau
of scipy.stats.weightedtau (hyperbolic weights 1/(r+1): agreeing on the top of the ranking counts most).
Sign: higher is better for every measure (the scores' ``higher_is_better``), so +1 = the measure orders
the backbones as training does. A tau is undefined (nan) when the measure or the accuracy ties every
backbone; "overall" is the mean of the defined per-task taus, with their count.

With three backbones a per-task tau takes few values and one swapped pair moves it far: read "overall".
Prints one table; the raw numbers go to --out (JSON). The full run (default five tasks at their own
sizes, 2 seeds; not timed yet: a tiny validation run, 2 tasks x 6 images per class, 1 epoch, 32 px, took
92 s wall on a shared 2-core machine under load 8):

    .venv/bin/python benchmarks/bench_backbone_ranking.py --seeds 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

MEASURES = ("linear_probe_accuracy", "knn_accuracy", "logme", "hscore", "leep", "nce")
RANK_SCORE = "rank_score"
STRATEGIES = ("feature_extraction", "full_finetune")
DEFAULT_TASKS = ("photos-small", "blur-photos-small", "textures-small", "digits-small", "text-small")
LITE = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def weighted_tau(measure: list[float], accuracy: list[float]) -> float:
    """scipy's weighted Kendall tau with its default hyperbolic weigher; nan when either side is constant."""
    from scipy.stats import weightedtau

    finite = [(m, a) for m, a in zip(measure, accuracy) if math.isfinite(m) and math.isfinite(a)]
    if len(finite) < 2 or len({m for m, _ in finite}) < 2 or len({a for _, a in finite}) < 2:
        return math.nan
    xs, ys = zip(*finite)
    return float(weightedtau(list(xs), list(ys)).statistic)


def run_task(task_name: str, seed: int, backbones: tuple[str, ...], args) -> dict:
    """Measure and train every backbone on one task and seed; returns per-backbone measures and accuracies."""
    import torch

    from suite_tasks import task_by_name, write_task
    from tladvisor.advisor import Advisor
    from tladvisor.plugins import PluginHost
    from tladvisor.recommend import LEARNING_RATES, rank_score
    from tladvisor.records import AnalysisOptions
    from tladvisor.tuning.data import TuningData
    from tladvisor.tuning.strategies import TrialConfig
    from tladvisor.tuning.trainer import train_trial

    task = task_by_name(task_name)
    folder = Path(args.work) / f"{task.name}-seed{seed}"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(folder.with_name(folder.name + "-cache"), ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    write_task(task, folder, seed, train_per_class=args.train_per_class, val_per_class=args.val_per_class)

    host = PluginHost()
    options = AnalysisOptions(source=folder, backbones=backbones, image_size=args.image_size, seed=seed,
                              batch_size=args.batch_size, device="cpu", max_samples=args.max_samples,
                              cache_dir=folder.with_name(folder.name + "-cache"), out_dir=Path(args.work) / "reports")
    advisor = Advisor(options, host=host)
    dataset = advisor.load(options)
    data = TuningData(dataset, options, torch.device("cpu"))
    rows = {}
    for name in backbones:
        spec = host.backbone(name)
        started = time.perf_counter()
        measurement = advisor.measure(spec, dataset, options)
        measured_s = time.perf_counter() - started
        values = {}
        for key in MEASURES:
            score = measurement.scores.get(key)
            if score is not None and score.value is not None and math.isfinite(score.value):
                values[key] = score.value if score.higher_is_better else -score.value
        values[RANK_SCORE] = rank_score(measurement)
        accuracies, by_rate = {}, {}
        for strategy in STRATEGIES:
            rates = LEARNING_RATES[strategy]
            # Several rates per strategy, early stopping on a flat curve: no backbone loses for its rates or
            # for a budget cut short (the issue #13 rule for fair ground truth, applied to backbones).
            for multiplier in args.lr_multipliers:
                config = TrialConfig(backbone=name, strategy=strategy, lr_head=rates["head"] * multiplier,
                                     lr_backbone=rates["backbone"] * multiplier, layer_decay=rates["layer_decay"],
                                     epochs=args.epochs, patience=args.patience, batch_size=args.batch_size,
                                     image_size=args.image_size)
                trained = train_trial(spec, config, data, torch.device("cpu"), seed=seed)
                by_rate[f"{strategy}@x{multiplier:g}"] = {"accuracy": float(trained.accuracy),
                                                          "curve": [float(v) for v in trained.learning_curve]}
            accuracies[strategy] = max(v["accuracy"] for k, v in by_rate.items() if k.startswith(strategy + "@"))
        rows[name] = {"measures": values, "accuracy": accuracies, "by_rate": by_rate, "tuned_accuracy": max(accuracies.values()),
                      "measure_s": round(measured_s, 2), "seconds": round(time.perf_counter() - started, 2)}
        print(f"  {task.name} seed {seed} {name}: tuned {rows[name]['tuned_accuracy']:.3f} "
              f"({', '.join(f'{s} {a:.3f}' for s, a in accuracies.items())}), "
              f"{rows[name]['seconds']:.0f} s", flush=True)
    shutil.rmtree(folder.with_name(folder.name + "-cache"), ignore_errors=True)
    return {"task": task.name, "seed": seed, "n_train": len(data.train_idx), "n_val": len(data.val_idx),
            "backbones": rows}


def taus(unit: dict) -> dict[str, float]:
    names = list(unit["backbones"])
    accuracy = [unit["backbones"][n]["tuned_accuracy"] for n in names]
    return {key: weighted_tau([unit["backbones"][n]["measures"].get(key, math.nan) for n in names], accuracy)
            for key in (*MEASURES, RANK_SCORE)}


def print_table(units: list[dict]) -> None:
    keys = (*MEASURES, RANK_SCORE)
    short = {"linear_probe_accuracy": "linear", "knn_accuracy": "k-NN", "logme": "LogME", "hscore": "H-score",
             "leep": "LEEP", "nce": "NCE", RANK_SCORE: "rank score"}
    print(f"\nweighted Kendall tau (hyperbolic) of each measure vs tuned accuracy, {len(units[0]['backbones'])} backbones")
    print(f"{'task':<24}" + "".join(f"{short[k]:>11}" for k in keys))
    per_key: dict[str, list[float]] = {k: [] for k in keys}
    for unit in units:
        row = taus(unit)
        for key, value in row.items():
            if math.isfinite(value):
                per_key[key].append(value)
        label = f"{unit['task']} s{unit['seed']}"
        print(f"{label:<24}" + "".join(f"{row[k]:>11.2f}" for k in keys))
    overall = "".join(f"{(sum(v) / len(v) if v else math.nan):>7.2f} ({len(v)})" for v in per_key.values())
    print(f"{'overall: mean (n)':<24}" + overall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS))
    parser.add_argument("--backbones", nargs="+", default=list(LITE))
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=20, help="epoch cap of each training run")
    parser.add_argument("--patience", type=int, default=5, help="stop after this many epochs without a better val")
    parser.add_argument("--lr-multipliers", type=float, nargs="+", default=[0.3, 1.0, 3.0],
                        help="each strategy trains at the product's starting rates times each of these")
    parser.add_argument("--image-size", type=int, default=64, help="one input size for every backbone")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-samples", type=int, default=2000)
    parser.add_argument("--train-per-class", type=int, help="override the task's training images per class")
    parser.add_argument("--val-per-class", type=int, help="override the task's validation images per class")
    parser.add_argument("--resume", action="store_true", help="keep finished units from an earlier run")
    parser.add_argument("--work", default="/tmp/tladvisor-backbone-ranking")
    parser.add_argument("--out", type=Path, default=HERE.parent / "reports" / "benchmarks" / "backbone_ranking.json")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

    started = time.perf_counter()
    # One JSON per finished unit beside --out, so an interrupted run keeps its work and --resume goes on.
    unit_dir = args.out.with_suffix(".units")
    unit_dir.mkdir(parents=True, exist_ok=True)
    units = []
    for seed in range(args.seeds):
        for task in args.tasks:
            path = unit_dir / f"{task}-seed{seed}.json"
            if args.resume and path.exists():
                units.append(json.loads(path.read_text()))
                print(f"  {task} seed {seed}: kept from {path}", flush=True)
                continue
            unit = run_task(task, seed, tuple(args.backbones), args)
            partial = path.with_suffix(".tmp")
            partial.write_text(json.dumps(unit, indent=2, allow_nan=True))
            partial.replace(path)
            units.append(unit)
    print_table(units)
    print(f"\n{time.perf_counter() - started:.0f} s wall in all; load {os.getloadavg()[0]:.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "units": units, "taus": [{"task": u["task"], "seed": u["seed"], **taus(u)} for u in units]}
    args.out.write_text(json.dumps(payload, indent=2, allow_nan=True))
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
