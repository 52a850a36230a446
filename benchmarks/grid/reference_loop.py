"""The product's trainer against a plain reference loop (issue #13 item 1), per strategy.

    nice .venv/bin/python -m benchmarks.grid.reference_loop --tasks vtab-position --max-epochs 2 \\
        --min-epochs 1 --min-steps 0 --max-train-per-class 5 --configs full_finetune --out /tmp/r  # smoke
    nice .venv/bin/python -m benchmarks.grid.reference_loop --jobs 1 --threads 2 \\
        --tasks photo-scenes digits-handwritten vtab-count glyph-font-identity      # the check (issue #22 item 4)

The reference is the loop a practitioner would write first: the same model, split, augmentation
and learning-rate grid, but AdamW with one rate for the head and one for the body (no layer-wise
decay), a OneCycle schedule, plain cross-entropy (no label smoothing), BatchNorm running statistics
as training leaves them (no precise BN), feature extraction through the frozen network on augmented
images every epoch (no cached features), and the same fixed schedule length, best-validation epoch and
test scoring as the honest grid. Each config's rate multiplier is chosen on validation for both. A strategy where the reference
beats the product by more than the noise (the binomial standard error of the difference of the
two test accuracies) is listed as a finding to explain and fix in the product.

Units are written like the grid's (``OUT/units/<task>/seed<k>/{product,reference}-<config>__x<m>.json``),
atomically, and a rerun skips those already written. ``reference_summary.md`` holds the comparison.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any

from benchmarks.grid.run import (
    held_out_loader,
    product_unit,
    schedule_of,
    start_run,
    unit_settings,
    write_grid_task,
)
from benchmarks.grid.plan import CONFIGS, multipliers_of, rates_at, resolved_configs
from benchmarks.grid.logic import read_finished, settings_key, steps_per_epoch, write_json_atomic
from benchmarks.common.stats import config_rank

REFERENCE_CONFIGS = ("feature_extraction", "partial_freeze@top1", "partial_freeze@half", "full_finetune",
                     "from_scratch")


def parse_args(argv=None) -> argparse.Namespace:
    from benchmarks.grid.run import parse_args as grid_args

    args = grid_args(argv)
    args.out = args.out.parent / "reference_loop" if args.out.name == "honest_grid" else args.out
    if args.configs == list(CONFIGS):
        args.configs = list(REFERENCE_CONFIGS)
    return args


def _evaluate(model, loader, device) -> float:
    import torch

    model.eval()
    right = total = 0
    with torch.inference_mode():
        for images, labels in loader:
            right += int((model(images.to(device)).argmax(1).cpu() == labels).sum())
            total += len(labels)
    return right / max(1, total)


def reference_unit(spec, data, test_loader, config: str, multiplier: float, epochs: int, args: argparse.Namespace,
                   seed: int, device) -> dict[str, Any]:
    """The plain loop: see the module docstring for every way it differs from the product's trainer."""
    import torch
    import torch.nn.functional as F

    from benchmarks.advice.suite import Clock
    from tladvisor.modeling import head_module, replace_head, resolve_member

    strategy, _, depth = config.partition("@")
    rates = rates_at(strategy, multiplier)
    torch.manual_seed(seed)
    with Clock() as clock:
        model = spec.build(strategy != "from_scratch")
        replace_head(model, spec, data.n_classes)
        frozen = {"feature_extraction": spec.n_stages, "partial_freeze": int(depth or 0)}.get(strategy, 0)
        frozen_modules = [m for stage in spec.stages[:frozen] for p in stage.members
                          for m in [resolve_member(model, p)]]
        for member in frozen_modules:
            for param in ([member] if isinstance(member, torch.nn.Parameter) else member.parameters()):
                param.requires_grad_(False)
        model.to(device)
        head = list(head_module(model, spec).parameters())
        body = [p for p in model.parameters() if p.requires_grad and all(p is not h for h in head)]
        groups = [{"params": head, "lr": rates["head"]}] + ([{"params": body, "lr": rates["backbone"]}] if body else [])
        optimizer = torch.optim.AdamW(groups, weight_decay=1e-4)
        train_loader = data.train_loader(spec, args.batch_size, seed, augment=True)
        val_loader = data.val_loader(spec, args.batch_size)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in groups],
                                                       total_steps=epochs * max(1, len(train_loader)))
        curve, best_state = [], None
        for _epoch in range(epochs):
            model.train()
            for member in frozen_modules:
                if isinstance(member, torch.nn.Module):
                    member.eval()  # a frozen stage keeps its statistics, as any freezing recipe does
            for images, labels in train_loader:
                loss = F.cross_entropy(model(images.to(device)), labels.to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
            curve.append(round(_evaluate(model, val_loader, device), 4))
            if curve[-1] == max(curve):
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                best_at = len(curve)
        model.load_state_dict(best_state)
        test = _evaluate(model, test_loader, device)
    return {"seed": seed, "config": config, "strategy": strategy, "multiplier": multiplier,
            "rate": rates["backbone"] or rates["head"], "val_curve": curve, "best_epoch": best_at,
            "val_best": max(curve), "test_at_best": test, "epochs_run": len(curve), "epochs": epochs,
            "n_test": len(test_loader.dataset), "cpu_s": round(clock.cpu, 3),
            "wall_s": round(clock.wall, 3)}


def run_task(task_name: str, seed: int, args: argparse.Namespace) -> None:
    import torch

    from benchmarks.tasks.registry import task_by_name
    from benchmarks.advice.suite import BACKBONE
    from tladvisor.data.imagefolder import load_image_folder
    from tladvisor.plugins import PluginHost
    from tladvisor.records import AnalysisOptions
    from tladvisor.tuning.data import TuningData

    key = settings_key({**unit_settings(args), "loop": "reference-comparison"})
    task = task_by_name(task_name)
    per_class = min(task.train_per_class, args.max_train_per_class or task.train_per_class)
    folder = Path(args.work) / f"{task.name}-seed{seed}-n{per_class}-t{args.test_images}"
    if not folder.exists():
        write_grid_task(task, folder, seed, per_class, args.test_images)
    device = torch.device(args.device)
    spec = PluginHost().backbone(BACKBONE)
    dataset = load_image_folder(folder)
    options = AnalysisOptions(source=folder, backbones=(BACKBONE,), image_size=args.image_size, seed=seed,
                              batch_size=args.batch_size, device=args.device,
                              cache_dir=folder.parent / f"{folder.name}-cache")
    data = TuningData(dataset, options, device)
    test_loader = held_out_loader(folder, dataset.classes, spec, args.image_size, args.batch_size)
    epochs = schedule_of(args).epochs(steps_per_epoch(len(data.train_idx), args.batch_size))
    for config in resolved_configs(args.configs, spec.n_stages, None):
        for m in multipliers_of(config):
            for loop, train in (("product", product_unit), ("reference", reference_unit)):
                path = args.out / "units" / task.name / f"seed{seed}" / f"{loop}-{config.replace('@', '-')}__x{m:g}.json"
                if read_finished(path, key) is not None:
                    continue
                result = train(spec, data, test_loader, config, m, epochs, args, seed, device)
                result.update({"settings_key": key, "task": task.name, "loop": loop})
                result.pop("test_correct", None)
                write_json_atomic(path, result)
                print(f"  {task.name} seed {seed} {loop:9s} {config} x{m:g}: val {result.get('val_best')} "
                      f"test {result.get('test_at_best')} ({result.get('epochs_run')} epochs, {result['cpu_s']:.0f} CPU s)",
                      flush=True)


def compare(units_dir: Path, key: str) -> list[dict[str, Any]]:
    """Per task, config and loop: the rate chosen on validation, its test accuracy averaged over seeds."""
    import json

    best: dict[tuple[str, int, str, str], dict] = {}
    spent: dict[tuple[str, str, str], float] = {}  # CPU of the whole rate search, per task, config and loop
    for path in sorted(Path(units_dir).rglob("*.json")):
        unit = json.loads(path.read_text())
        if unit.get("settings_key") != key or "val_best" not in unit:
            continue
        cost_key = (unit["task"], unit["config"], unit["loop"])
        spent[cost_key] = spent.get(cost_key, 0.0) + unit["cpu_s"]
        k = (unit["task"], unit["seed"], unit["config"], unit["loop"])
        m = unit.get("multiplier", unit["rate"])
        if k not in best or (unit["val_best"], -m) > (best[k]["val_best"], -best[k].get("multiplier", best[k]["rate"])):
            best[k] = unit
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for (task, _seed, config, loop), unit in best.items():
        row = rows.setdefault((task, config), {"task": task, "config": config, "product": [], "reference": [],
                                               "cpu": {"product": 0.0, "reference": 0.0}, "n_test": unit["n_test"]})
        row[loop].append(unit["test_at_best"])
        row["cpu"][loop] = spent[(task, config, loop)]
    out = []
    for row in rows.values():
        if not row["product"] or not row["reference"]:
            continue
        p, r = sum(row["product"]) / len(row["product"]), sum(row["reference"]) / len(row["reference"])
        # standard error of a difference of two test accuracies (binomial, seeds pooled)
        noise = math.sqrt(sum(max(a * (1 - a), 1e-12) / (row["n_test"] * len(row[k]))
                              for a, k in ((p, "product"), (r, "reference"))))
        out.append({**row, "product_mean": p, "reference_mean": r, "difference": p - r, "noise": noise,
                    "reference_better": r - p > noise})
    return sorted(out, key=lambda x: (x["task"], config_rank(x["config"])))


def main(argv=None) -> int:
    args = parse_args(argv)
    tasks, _skipped = start_run(args)
    if tasks is None:
        return 2
    import torch

    torch.set_num_threads(args.threads)
    for task in tasks:
        run_task(task.name, args.seed, args)
    rows = compare(args.out / "units", settings_key({**unit_settings(args), "loop": "reference-comparison"}))
    lines = ["| task | config | product test % | reference test % | product - reference | noise | reference better | "
             "CPU s product / reference |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['config']} | {100 * r['product_mean']:.1f} | {100 * r['reference_mean']:.1f} | "
                     f"{100 * r['difference']:+.1f} | {100 * r['noise']:.1f} | {'YES' if r['reference_better'] else 'no'} | "
                     f"{r['cpu']['product']:.0f} / {r['cpu']['reference']:.0f} |")
    (args.out / "reference_summary.md").write_text("\n".join(lines) + "\n")
    write_json_atomic(args.out / "reference_summary.json", rows)
    print("\n".join(lines))
    worse = [f"{r['task']} {r['config']}" for r in rows if r["reference_better"]]
    print(f"reference beats the product beyond noise on: {', '.join(worse) or 'none'}; load {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
