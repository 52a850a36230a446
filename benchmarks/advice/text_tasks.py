"""The strategies on the text tasks, once, and the advice against them (issue #23 item 6).

    nice .venv/bin/python -m benchmarks.advice.text_tasks --threads 2

For each task of ``benchmarks/tasks/text.py`` (a manifest built from its source): a stratified held-out test set
(``--test-fraction``) is set aside; the advisor measures the rest and recommends (the product's advice, as
``tladvisor analyze`` gives it); then every config trains on the same train/validation split with the
product's trainer (``train_trial``) at each rate multiplier of its starting rates, a fixed number of epochs
without early stopping, the best validation epoch kept, and is scored on the test set. The config's rate is
the one its validation accuracy chose. Each (task, config, multiplier) is one resumable unit in
``--out/units``; ``--out/summary.md`` has the test accuracy of each config, the advised one, and its regret
(the best config's test accuracy minus the advised config's), with the runs still climbing at the end and
the rates chosen at an edge, so the reader can see whether the schedule and the rates were fair.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.tasks import text as text_corpus

CONFIGS = ("feature_extraction", "partial_freeze@half", "full_finetune", "from_scratch", "lora", "lp_ft")
MULTIPLIERS = (0.3, 1.0, 3.0)
LORA_PARAMS = {"lora_rank": 8, "lora_targets": "qv"}


def split_test(labels: np.ndarray, fraction: float, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """A stratified, seeded set of test indices (at least one per class with three or more members). ``groups``
    (one key per row, e.g. the duplicate digest) keeps a group wholly on one side, so test never holds a
    near-copy of a training text."""
    rng = np.random.default_rng(seed)
    groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
    test: list[int] = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        keys = list(dict.fromkeys(groups[rows].tolist()))  # the class's groups, in first-seen order
        target = int(round(fraction * len(rows))) if len(rows) >= 3 else 0
        taken = 0
        for position in rng.permutation(len(keys)):
            if taken >= max(target, 1 if len(rows) >= 3 else 0):
                break
            members = rows[groups[rows] == keys[position]]
            test += members.tolist()
            taken += len(members)
    return np.sort(np.array(test, dtype=np.int64))


def config_params(name: str, n_stages: int, registry) -> tuple[str, int, dict]:
    """(strategy, freeze depth, extra parameters) of a config name."""
    if name == "partial_freeze@half":
        return "partial_freeze", n_stages // 2, {}
    if name == "lora":
        return "lora", 0, dict(LORA_PARAMS)
    return name, 0, {}


def advised_config(recommendation, n_stages: int) -> str:
    """The config the advice amounts to (partial freeze at any depth counts as the half-depth config)."""
    return "partial_freeze@half" if recommendation.strategy == "partial_freeze" else recommendation.strategy


def run_task(task: str, args, host, spec) -> None:
    import torch

    from tladvisor.advisor import Advisor
    from tladvisor.data.sources import load_source
    from tladvisor.data.token_store import TokenBatches, tokenize
    from tladvisor.plugins import strategy_registry
    from tladvisor.records import AnalysisOptions
    from tladvisor.tuning.data import TuningData
    from tladvisor.tuning.inference import predict_probabilities
    from tladvisor.tuning.strategies import TrialConfig
    from tladvisor.tuning.trainer import train_trial

    units = args.out / "units" / task
    units.mkdir(parents=True, exist_ok=True)
    manifest = text_corpus.build(task, args.work, per_class=args.per_class, seed=args.seed)
    full = load_source(manifest)
    test_idx = split_test(full.labels, args.test_fraction, args.seed, np.array([s.digest for s in full.samples]))
    keep = np.setdiff1d(np.arange(len(full.samples)), test_idx)
    dataset = replace(full, samples=tuple(full.samples[i] for i in keep))
    test_texts = [full.samples[i].text for i in test_idx]
    test_labels = full.labels[test_idx]
    options = AnalysisOptions(source=manifest, backbones=(spec.name,), seed=args.seed, device="cpu",
                              cache_dir=args.cache, cv_folds="1", out_dir=args.work / "runs")
    advice_path = units / "advice.json"
    if not advice_path.is_file():
        advisor = Advisor(replace(options, run_dir=args.work / "runs" / task), host=host)
        profile = host.call("profile_dataset", dataset=dataset, options=options)
        measurement = advisor.measure(spec, dataset, options)
        recommendation = host.call("recommend", profile=profile, measurements=[measurement], options=options)
        advice_path.write_text(json.dumps({
            "strategy": recommendation.strategy, "freeze_depth": recommendation.freeze_depth,
            "config": advised_config(recommendation, spec.n_stages), "rationale": list(recommendation.rationale),
            "probe": getattr(measurement.scores.get("linear_probe_accuracy"), "value", None),
            "n_train_val": len(dataset.samples), "n_test": len(test_idx), "classes": list(full.classes)}, indent=2))
    registry = strategy_registry(host)
    data = TuningData(dataset, options, torch.device("cpu"))
    test_tokens = tokenize(spec.text, test_texts)
    for name in args.configs:
        strategy, depth, extra = config_params(name, spec.n_stages, registry)
        plan = registry[strategy]
        for multiplier in args.multipliers:
            path = units / f"{name}__x{multiplier:g}.json"
            if path.is_file():
                continue
            started = time.process_time()
            rates = plan.learning_rates
            config = TrialConfig(backbone=spec.name, strategy=strategy, plan=plan, freeze_depth=depth,
                                 lr_head=rates["head"] * multiplier, lr_backbone=max(rates["backbone"], 1e-5) * multiplier,
                                 layer_decay=rates.get("layer_decay", 1.0), epochs=args.epochs, patience=args.epochs,
                                 batch_size=args.batch_size, extra=extra)
            trained = train_trial(spec, config, data, torch.device("cpu"), seed=args.seed)
            batches = TokenBatches(test_tokens, np.arange(len(test_texts)), test_labels, spec.text.pad_id,
                                   args.batch_size, torch.device("cpu"))
            predicted = predict_probabilities(trained.model, batches, torch.device("cpu")).argmax(1).numpy()
            curve = list(trained.learning_curve)
            path.write_text(json.dumps({
                "task": task, "config": name, "multiplier": multiplier, "val": trained.accuracy,
                "test": float(np.mean(predicted == test_labels)), "best_epoch": trained.best_epoch,
                "epochs": len(curve), "curve": curve, "climbing": trained.best_epoch >= len(curve) - max(1, len(curve) // 5),
                "cpu_s": round(time.process_time() - started, 1)}, indent=1))
            print(f"  {task} {name} x{multiplier:g}: val {trained.accuracy:.3f} test "
                  f"{float(np.mean(predicted == test_labels)):.3f}", flush=True)


def summarise(out: Path, configs, multipliers) -> str:
    lines = ["| task | " + " | ".join(configs) + " | advised | regret (points) |",
             "|---|" + "---|" * (len(configs) + 2)]
    regrets, climbing, edges, total = [], 0, 0, 0
    for task_dir in sorted(p for p in (out / "units").iterdir() if p.is_dir()):
        advice_file = task_dir / "advice.json"
        if not advice_file.is_file():
            continue
        advice = json.loads(advice_file.read_text())
        chosen = {}
        for name in configs:
            runs = [json.loads(p.read_text()) for p in sorted(task_dir.glob(f"{name}__x*.json"))]
            if len(runs) == len(multipliers):
                best = max(runs, key=lambda r: (r["val"], -abs(np.log(r["multiplier"]))))
                chosen[name] = best
                total += 1
                climbing += best["climbing"]
                edges += best["multiplier"] in (min(multipliers), max(multipliers))
        cells = [f"{100 * chosen[c]['test']:.1f}" if c in chosen else "–" for c in configs]
        regret = "–"
        if len(chosen) == len(configs) and advice["config"] in chosen:
            value = 100 * (max(r["test"] for r in chosen.values()) - chosen[advice["config"]]["test"])
            regrets.append(value)
            regret = f"{value:.1f}"
        lines.append(f"| {task_dir.name} | " + " | ".join(cells) + f" | {advice['config']} | {regret} |")
    lines.append("")
    if regrets:
        lines.append(f"Regret of the advice over {len(regrets)} tasks: median {np.median(regrets):.1f} points, "
                     f"{sum(r <= 2 for r in regrets)} of {len(regrets)} within 2 points (one seed; test accuracy).")
    if total:
        lines.append(f"Chosen runs still climbing at the end: {climbing} of {total}; rates chosen at an edge of "
                     f"{', '.join(f'{m:g}x' for m in multipliers)}: {edges} of {total}.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(text_corpus.TASKS))
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--multipliers", nargs="+", type=float, default=list(MULTIPLIERS))
    parser.add_argument("--backbone", default="all-minilm-l6-v2")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--test-fraction", type=float, default=0.3)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/text_tasks"))
    parser.add_argument("--work", type=Path, default=Path("reports/benchmarks/text_tasks"))
    parser.add_argument("--cache", type=Path, default=Path("reports/benchmarks/text_tasks/cache"))
    parser.add_argument("--plugins-dir", type=Path)
    args = parser.parse_args(argv)
    import torch

    from tladvisor.plugins import PluginHost

    torch.set_num_threads(args.threads)
    host = PluginHost(plugins_dir=args.plugins_dir) if args.plugins_dir else PluginHost()
    spec = host.backbone(args.backbone)
    for task in args.tasks:
        print(f"{task}:", flush=True)
        run_task(task, args, host, spec)
    summary = summarise(args.out, args.configs, args.multipliers)
    (args.out / "summary.md").write_text(summary, encoding="utf-8")
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
