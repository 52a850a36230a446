"""Where does fine-tuning start to beat feature extraction? Both trained at growing training-set sizes.

    .venv/bin/python -m benchmarks.advice.size_sweep [--tasks photos-large text-small] [--sizes 25 50 100 200 400]
        [--epochs 0] [--seeds 2] [--jobs 2]

The evidence behind ``SMALL_PER_CLASS`` (tladvisor/advice/recommend.py): for each task, seed and training size
per class, ``feature_extraction`` and ``full_finetune`` (and optionally more configs) are trained by the
product's trainer with the same epochs and batch size at the suite's two learning-rate settings
(benchmarks.advice.suite.RATE_SETTINGS; the better counts), and scored on the task's fixed validation images. Prints one row per
(task, size): mean ± seed spread of each config and the difference FT - FE. Fixed *epochs* means a
larger set also gets proportionally more optimiser steps, as it would in a real run.
Not part of run_all.py (about 35 CPU minutes of training with the defaults, 31 min wall with 2 jobs); results go to
reports/benchmarks/size_sweep.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from benchmarks.common.paths import RESULTS



def run_point(task_name: str, seed: int, per_class: int, epochs: int, configs: list[str], work: str) -> dict:
    import torch

    torch.set_num_threads(1)
    from benchmarks.advice.suite import BACKBONE, Settings, epochs_for, train_config
    from benchmarks.tasks.registry import task_by_name
    from benchmarks.tasks.suite import write_task
    from tladvisor.data.imagefolder import load_image_folder
    from tladvisor.plugins import PluginHost
    from tladvisor.records import AnalysisOptions
    from tladvisor.tuning.data import TuningData

    task = task_by_name(task_name, "suite")
    folder = Path(work) / f"{task.name}-{per_class}-seed{seed}"
    shutil.rmtree(folder, ignore_errors=True)
    write_task(task, folder, seed, train_per_class=per_class)
    settings = Settings(work_dir=work)
    dataset = load_image_folder(folder)
    options = AnalysisOptions(source=folder, backbones=(BACKBONE,), image_size=settings.image_size, seed=seed,
                              batch_size=settings.batch_size, device="cpu", cache_dir=folder.parent / f"{folder.name}-cache")
    data = TuningData(dataset, options, torch.device("cpu"))
    epochs = epochs or epochs_for(len(data.train_idx), settings)  # 0: the suite's rule (about 60 steps, 3..12)
    spec = PluginHost().backbone(BACKBONE)
    result = {"task": task.name, "seed": seed, "per_class": per_class, "epochs": epochs, "configs": {}}
    for name in configs:
        strategy, _, depth = name.partition("@")
        depth = int(depth) if depth else (spec.n_stages if strategy == "feature_extraction" else 0)
        trained = train_config(spec, strategy, depth, epochs, settings, data, torch.device("cpu"), seed)
        result["configs"][name] = {k: trained[k] for k in ("accuracy", "best_rates", "cpu_s", "by_rates")}
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(folder.parent / f"{folder.name}-cache", ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["photos-large", "text-small"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[25, 50, 100, 200, 400])
    parser.add_argument("--configs", nargs="+", default=["feature_extraction", "full_finetune"])
    parser.add_argument("--epochs", type=int, default=0,
                        help="epochs for every config; 0 (default): run_all's rule, about 60 optimiser steps within 3..12")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--seed-offset", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--work", default="/tmp/tladvisor-size-sweep")
    parser.add_argument("--out", type=Path, default=RESULTS / "size_sweep.json")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"

    from benchmarks.common.stats import mean_spread
    from benchmarks.common.workers import worker_pool

    points = [(t, args.seed_offset + s, n) for n in sorted(args.sizes, reverse=True) for t in args.tasks
              for s in range(args.seeds)]
    with worker_pool(args.jobs) as pool:
        results = list(pool.map(run_point, *zip(*[(t, s, n, args.epochs, args.configs, args.work) for t, s, n in points])))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))

    header = ["task", "train/class", "epochs"] + [c for c in args.configs] + ["FT - FE (points)", "CPU s (FT)"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for task in args.tasks:
        for n in sorted(args.sizes):
            runs = [r for r in results if r["task"] == task and r["per_class"] == n]
            cells = []
            for c in args.configs:
                m, s = mean_spread(r["configs"][c]["accuracy"] for r in runs)
                cells.append(f"{100 * m:.1f} ± {100 * s:.1f}")
            diff = ""
            if "full_finetune" in args.configs and "feature_extraction" in args.configs:
                m, s = mean_spread(r["configs"]["full_finetune"]["accuracy"] - r["configs"]["feature_extraction"]["accuracy"]
                                   for r in runs)
                diff = f"{100 * m:+.1f} ± {100 * s:.1f}"
            cpu = mean_spread(r["configs"].get("full_finetune", {}).get("cpu_s", 0) for r in runs)[0]
            print(f"| {task} | {n} | {runs[0]['epochs']} | " + " | ".join(cells) + f" | {diff} | {cpu:.0f} |")


if __name__ == "__main__":
    main()
