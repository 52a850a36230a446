"""Do the measures rank backbones the way training does? Weighted Kendall tau and top-pick regret of each
measure against tuned accuracy, and an out-of-task choice of the ranking measure (issue #14 item 3).

    nice .venv/bin/python -m benchmarks.ranking.run --tasks photo-grey-scenes glyph-scripts ... \
        [--backbones efficientnet_lite0 efficientnet_lite1 efficientnet_lite2] [--seeds 1] [--epochs 20] \
        [--patience 5] [--lr-multipliers 0.3 1 3] [--image-size 64] [--resume]

A task is a corpus task (benchmarks/tasks, the corpus: train/val/test) or a suite task (benchmarks/tasks/suite.py:
train/val). For each task and seed, every backbone is measured exactly as ``tladvisor analyze`` measures
it (``Advisor.measure``: probes, LogME, H-score, LEEP, NCE) at one input size, and trained by the
product's trainer with feature extraction and with a full fine-tune, each at the product's starting rates
times each ``--lr-multipliers`` and then a half-decade further out while the best rate sits at an edge
(ranking/logic.py LADDER, 0.03x-30x), with early stopping (``--patience``, cap ``--epochs``). A backbone's
*tuned accuracy* is that of the run with the best validation accuracy, scored once on the corpus task's test
images (a suite task has none: there it is the validation accuracy itself, a selection bias).

Each measure, and the product's ranking score (``tladvisor.advice.recommend.rank_score``), is compared with the
tuned accuracy by the weighted Kendall tau of scipy.stats.weightedtau (hyperbolic weights: agreeing on the
top counts most; +1 = the measure orders the backbones as training does; nan when either side ties every
backbone) and by its *regret*: accuracy points lost by training the backbone the measure ranks first.
Per task, seeds are averaged. Then, leaving one task out, the measure with the best mean on the other
tasks is scored on the held-out one and compared with the rank score, pairwise over tasks; the rank score
should change only when that difference is clear (beyond 2 standard errors). Logic: benchmarks/ranking/logic.py.

One JSON per finished (task, seed) beside --out (``.units/``), so an interrupted run keeps its work and
``--resume`` goes on (``--resume --extend`` trains what a kept unit's rate grid still needs); two processes
may share --out with disjoint --tasks, then a last ``--resume --markdown`` with every task prints the whole
table and the docs' one. About 10-25 min per corpus task with 1 thread on this 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from pathlib import Path


from benchmarks.grid.logic import write_json_atomic
from benchmarks.ranking.logic import (choose_out_of_task, next_multiplier, paired_difference, top_pick_regret,
                           unit_tau)
from benchmarks.common.paths import RESULTS

MEASURES = ("linear_probe_accuracy", "knn_accuracy", "logme", "hscore", "leep", "nce")
RANK_SCORE = "rank_score"
STRATEGIES = ("feature_extraction", "full_finetune")
DEFAULT_TASKS = ("photos-small", "blur-photos-small", "textures-small", "digits-small", "text-small")
LITE = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def write_any_task(task_name: str, folder: Path, seed: int, args) -> tuple[str, bool]:
    """Write a suite task (train/val) or a corpus task (train/val/test) into ``folder``; returns the task's
    name and whether it has untouched test images."""
    from benchmarks.tasks.registry import write_image_task

    return task_name, write_image_task(task_name, folder, seed, train_per_class=args.train_per_class,
                                       val_per_class=args.val_per_class)


def rate_to_train(by_rate: dict[str, dict], strategy: str, multipliers: list[float]) -> float | None:
    """The next rate multiplier ``strategy`` needs: one of ``multipliers`` not trained yet, else a step past
    an edge where its best validation accuracy sits (benchmarks.ranking.logic.next_multiplier), else None."""
    missing = [m for m in multipliers if f"{strategy}@x{m:g}" not in by_rate]
    if missing:
        return missing[0]
    tried = {float(k.split("@x")[1]): v["val"] for k, v in by_rate.items() if k.startswith(strategy + "@")}
    return next_multiplier(tried)


def run_task(task_name: str, seed: int, backbones: tuple[str, ...], args, previous: dict | None = None) -> dict:
    """Measure and train every backbone on one task and seed; returns per-backbone measures and accuracies.
    With ``previous`` (this unit from an earlier run), its measures and trained rates are kept and only the
    rates the grid still needs are trained.

    A backbone's tuned accuracy is that of the (strategy, rate) run with the best validation accuracy: on a
    corpus task scored once on its test images (which nothing else looks at), on a suite task on validation."""
    import torch

    from benchmarks.grid.run import held_out_loader
    from tladvisor.advisor import Advisor
    from tladvisor.plugins import PluginHost
    from tladvisor.advice.recommend import LEARNING_RATES, rank_score
    from tladvisor.records import AnalysisOptions
    from tladvisor.tuning.data import TuningData
    from tladvisor.tuning.inference import accuracy as accuracy_on
    from tladvisor.tuning.strategies import TrialConfig
    from tladvisor.tuning.trainer import train_trial

    folder = Path(args.work) / f"{task_name}-seed{seed}"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(folder.with_name(folder.name + "-cache"), ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    name_written, has_test = write_any_task(task_name, folder, seed, args)

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
        test_loader = held_out_loader(folder, dataset.classes, spec, args.image_size, args.batch_size) if has_test else None
        started = time.perf_counter()
        kept = (previous or {}).get("backbones", {}).get(name)
        if kept is not None:
            values, measured_s, by_rate = kept["measures"], kept["measure_s"], dict(kept["by_rate"])
        else:
            measurement = advisor.measure(spec, dataset, options)
            measured_s = time.perf_counter() - started
            values = {}
            for key in MEASURES:
                score = measurement.scores.get(key)
                if score is not None and score.value is not None and math.isfinite(score.value):
                    values[key] = score.value if score.higher_is_better else -score.value
            values[RANK_SCORE] = rank_score(measurement)
            by_rate = {}
        for strategy in STRATEGIES:
            rates = LEARNING_RATES[strategy]
            # Several rates per strategy, early stopping on a flat curve, and more rates past an edge where
            # the best one sits: no backbone loses for its rates or for a budget cut short (the issue #13
            # rule for fair ground truth, applied to backbones).
            while (multiplier := rate_to_train(by_rate, strategy, args.lr_multipliers)) is not None:
                config = TrialConfig(backbone=name, strategy=strategy, lr_head=rates["head"] * multiplier,
                                     lr_backbone=rates["backbone"] * multiplier, layer_decay=rates["layer_decay"],
                                     epochs=args.epochs, patience=args.patience, batch_size=args.batch_size,
                                     image_size=args.image_size)
                trained = train_trial(spec, config, data, torch.device("cpu"), seed=seed)
                run = {"val": float(trained.accuracy), "curve": [round(float(v), 4) for v in trained.learning_curve]}
                if test_loader is not None:
                    run["test"] = accuracy_on(trained.model, test_loader, torch.device("cpu"))
                by_rate[f"{strategy}@x{multiplier:g}"] = run
                print(f"    {name} {strategy} x{multiplier:g}: val {run['val']:.3f}", flush=True)
        scored = "test" if has_test else "val"
        accuracies = {}
        for strategy in STRATEGIES:  # each strategy at its best rate, chosen on validation
            runs = [v for k, v in by_rate.items() if k.startswith(strategy + "@")]
            accuracies[strategy] = max(runs, key=lambda r: r["val"])[scored]
        best_run = max(by_rate.values(), key=lambda r: r["val"])  # the first on a tie: no peeking at test
        rows[name] = {"measures": values, "accuracy": accuracies, "by_rate": by_rate,
                      "tuned_accuracy": best_run[scored], "best_val": best_run["val"],
                      "measure_s": round(measured_s, 2), "seconds": round(time.perf_counter() - started, 2)}
        print(f"  {name_written} seed {seed} {name}: tuned {rows[name]['tuned_accuracy']:.3f} on {scored} "
              f"({', '.join(f'{s} {a:.3f}' for s, a in accuracies.items())}), "
              f"{rows[name]['seconds']:.0f} s", flush=True)
    shutil.rmtree(folder.with_name(folder.name + "-cache"), ignore_errors=True)
    return {"task": name_written, "seed": seed, "n_train": len(data.train_idx), "n_val": len(data.val_idx),
            "n_test": len(test_loader.dataset) if has_test else 0, "scored_on": "test" if has_test else "val",
            "backbones": rows}


def tuning_settings(args) -> dict:
    """What a kept tuning result must have been made with to count for this run."""
    return {"backbones": list(args.backbones), "trials": args.tune_trials, "image_size": args.image_size,
            "batch_size": args.batch_size, "max_samples": args.max_samples}


def same_tuning_settings(kept: dict | None, args) -> bool:
    """Whether a kept tuning result counts here: the same settings, its trial count aside when this run
    does not tune (it only prints)."""
    wanted = tuning_settings(args)
    if kept is None:
        return False
    if not args.tune_trials:
        kept, wanted = {k: v for k, v in kept.items() if k != "trials"}, {k: v for k, v in wanted.items() if k != "trials"}
    return kept == wanted


def tune_across_backbones(task_name: str, seed: int, backbones: tuple[str, ...], args) -> dict:
    """The product's tuner over every backbone (``--tune-trials`` trials, one validation split, the advice
    enqueued first): which backbone its best trial used (compared with the exhaustive best when printed)."""
    import dataclasses

    import optuna

    from tladvisor.advisor import Advisor
    from tladvisor.plugins import PluginHost
    from tladvisor.records import AnalysisOptions
    from tladvisor.tuning.study import Tuner

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder = Path(args.work) / f"{task_name}-seed{seed}-tune"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(folder.with_name(folder.name + "-cache"), ignore_errors=True)
    write_any_task(task_name, folder, seed, args)  # the same images as the exhaustive unit (deterministic)
    host = PluginHost()
    options = AnalysisOptions(source=folder, backbones=backbones, image_size=args.image_size, seed=seed,
                              batch_size=args.batch_size, device="cpu", max_samples=args.max_samples,
                              cache_dir=folder.with_name(folder.name + "-cache"), out_dir=Path(args.work) / "reports")
    advisor = Advisor(options, host=host)
    started = time.perf_counter()
    dataset = advisor.load(options)
    profile = host.call_first("profile_dataset", dataset=dataset, options=options)
    specs = [host.backbone(name) for name in backbones]
    measurements = [advisor.measure(spec, dataset, options) for spec in specs]
    recommendation = host.call_first("recommend", profile=profile, measurements=measurements, options=options)
    tuning = dataclasses.replace(options, trials=args.tune_trials, run_dir=None, storage=None, cv_folds="1",
                                 study_name=f"ranking-{task_name}-{seed}")
    result = Tuner(tuning, host=host).run(dataset, recommendation, specs)
    complete = [t for t in result.trials if t.state == "COMPLETE" and t.value is not None]
    best = max(complete, key=lambda t: t.value) if complete else None
    picked = best.params.get("backbone") if best else None
    shutil.rmtree(folder.with_name(folder.name + "-cache"), ignore_errors=True)
    return {"settings": tuning_settings(args), "trials": args.tune_trials,
            "advised_backbone": recommendation.backbone, "tuner_backbone": picked,
            "tuner_val": best.value if best else None,
            "backbones_tried": sorted({t.params.get("backbone") for t in result.trials}),
            "seconds": round(time.perf_counter() - started, 1)}


KEYS = (*MEASURES, RANK_SCORE)
SHORT = {"linear_probe_accuracy": "linear", "knn_accuracy": "k-NN", "logme": "LogME", "hscore": "H-score",
         "leep": "LEEP", "nce": "NCE", RANK_SCORE: "rank score"}


def per_task(units: list[dict], metric) -> dict[str, dict[str, float]]:
    """``metric(unit, key)`` for every key, averaged over a task's seeds (nan seeds left out)."""
    out: dict[str, dict[str, float]] = {}
    for task in dict.fromkeys(u["task"] for u in units):
        seeds = [u for u in units if u["task"] == task]
        row = {}
        for key in KEYS:
            values = [v for v in (metric(u, key) for u in seeds) if math.isfinite(v)]
            row[key] = sum(values) / len(values) if values else math.nan
        out[task] = row
    return out


def _mean(values) -> str:
    finite = [v for v in values if math.isfinite(v)]
    return f"{sum(finite) / len(finite):>7.2f} ({len(finite)})" if finite else f"{'-':>7} (0)"


def print_table(units: list[dict]) -> dict:
    """Per-task taus and top-pick regrets, their means, and the out-of-task choice of a measure; returns them."""
    taus = per_task(units, unit_tau)
    regrets = per_task(units, lambda unit, key: 100 * top_pick_regret(unit, key))  # in points
    print(f"\nweighted Kendall tau (hyperbolic) of each measure vs tuned accuracy, {len(units[0]['backbones'])} "
          f"backbones; regret = accuracy points lost by training the measure's top pick")
    print(f"{'task':<28}" + "".join(f"{SHORT[k]:>11}" for k in KEYS) + f"{'best-worst':>12}")
    for task, row in taus.items():
        spread = [max(b["tuned_accuracy"] for b in u["backbones"].values()) -
                  min(b["tuned_accuracy"] for b in u["backbones"].values()) for u in units if u["task"] == task]
        print(f"{task:<28}" + "".join(f"{row[k]:>11.2f}" for k in KEYS) + f"{100 * sum(spread) / len(spread):>12.1f}")
    print(f"{'tau: mean (n tasks)':<28}" + "".join(_mean(r[k] for r in taus.values()) for k in KEYS))
    print(f"{'regret, points: mean (n)':<28}" + "".join(_mean(r[k] for r in regrets.values()) for k in KEYS))
    # Out of task: a measure chosen on the other tasks, scored on the held-out one, against the shipped score.
    summary = {"taus": taus, "regrets": regrets}
    for label, table, sign in (("tau", taus, 1.0), ("regret", regrets, -1.0)):
        signed = {t: {k: sign * v for k, v in row.items()} for t, row in table.items()}
        chosen = choose_out_of_task(signed, KEYS)
        picked = [sign * c["score"] for c in chosen.values()]
        shipped = [table[t][RANK_SCORE] for t in chosen]
        diff = paired_difference([sign * v for v in picked], [sign * v for v in shipped])
        names = sorted({SHORT.get(c["chosen"], "-") for c in chosen.values()})
        verdict = ("within noise: keep the rank score" if not diff["clear"] else
                   "the choice out of task is clearly better: change the rank score" if diff["mean"] > 0 else
                   "the rank score is clearly better: keep it")
        print(f"leave one task out, by {label}: the measure chosen on the other tasks ({', '.join(names)}) "
              f"scores {_mean(picked).strip()} vs the rank score {_mean(shipped).strip()}; difference "
              f"{diff['mean']:+.3f} ± {diff['se']:.3f} (SE over {diff['n']} tasks, + = the choice is better): {verdict}")
        summary[f"out_of_task_{label}"] = {"chosen": chosen, "difference": diff}
    return summary


def print_markdown(units: list[dict]) -> None:
    """The docs' table: per task and seed, sizes, each backbone's tuned accuracy, the taus, the rank score's
    regret; then how often a chosen rate sat at the edge of --lr-multipliers (widen the grid if often)."""
    names = list(units[0]["backbones"])
    print("\n| task, seed (train / val / test) | tuned accuracy " + " / ".join(n.replace("efficientnet_", "")
          for n in names) + " | SE | " + " | ".join(SHORT[k] for k in KEYS) + " | rank-score regret |")
    print("|---" * (4 + len(KEYS)) + "|")
    edges = total = 0
    for unit in units:
        rows = unit["backbones"]
        n_scored = unit.get("n_test") or unit["n_val"]
        best = max(b["tuned_accuracy"] for b in rows.values())
        se = 100 * math.sqrt(max(best * (1 - best), 1e-12) / n_scored)
        accuracy = " / ".join(f"{100 * rows[n]['tuned_accuracy']:.1f}" for n in names)
        taus = " | ".join(f"{unit_tau(unit, k):.2f}" if math.isfinite(unit_tau(unit, k)) else "-" for k in KEYS)
        print(f"| {unit['task']}, {unit['seed']} ({unit['n_train']} / {unit['n_val']} / {unit.get('n_test') or '-'}) "
              f"| {accuracy} | {se:.1f} | {taus} | {100 * top_pick_regret(unit, RANK_SCORE):.1f} |")
        for row in rows.values():
            for strategy in STRATEGIES:
                runs = {k: v for k, v in row["by_rate"].items() if k.startswith(strategy + "@")}
                if len(runs) < 3:
                    continue
                chosen = max(runs, key=lambda k: runs[k].get("val", runs[k].get("accuracy", 0.0)))
                multipliers = sorted(float(k.split("@x")[1]) for k in runs)
                total += 1
                edges += float(chosen.split("@x")[1]) in (multipliers[0], multipliers[-1])
    if total:
        print(f"\nrate chosen at an edge of the multipliers: {edges} of {total} (strategy, backbone, task) runs")
    tuned = [u for u in units if u.get("tuning")]
    if tuned:
        print("\n| task, seed | advised backbone | tuner's best backbone (trials) | exhaustive best | regret, points |")
        print("|---|---|---|---|---|")
        agree = 0
        for unit in tuned:
            accuracy = {n: b["tuned_accuracy"] for n, b in unit["backbones"].items()}
            best, picked = max(accuracy, key=accuracy.get), unit["tuning"]["tuner_backbone"]
            regret = 100 * (accuracy[best] - accuracy[picked]) if picked in accuracy else math.nan
            agree += regret == 0
            short = {n: n.replace("efficientnet_", "") for n in accuracy}
            print(f"| {unit['task']}, {unit['seed']} | {short.get(unit['tuning']['advised_backbone'], '-')} | "
                  f"{short.get(picked, '-')} ({unit['tuning']['trials']}) | {short[best]} | {regret:.1f} |")
        print(f"\nthe tuner's best trial used the exhaustive best backbone (or one as good) on {agree} of {len(tuned)}")


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
    parser.add_argument("--markdown", action="store_true", help="also print the per-task table for the docs")
    parser.add_argument("--tune-trials", type=int, default=0,
                        help="also run the product's tuner over the backbones for this many trials, per unit")
    parser.add_argument("--extend", action="store_true",
                        help="with --resume: train what a kept unit's rate grid still needs (its measures kept)")
    parser.add_argument("--work", default="/tmp/tladvisor-backbone-ranking")
    parser.add_argument("--out", type=Path, default=RESULTS / "backbone_ranking.json")
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
            previous = json.loads(path.read_text()) if args.resume and path.exists() else None
            if previous is not None and not args.extend:
                unit = previous
                print(f"  {task} seed {seed}: kept from {path}", flush=True)
            else:
                unit = run_task(task, seed, tuple(args.backbones), args, previous)
                write_json_atomic(path, unit)
            # The tuner's result is a file of its own, so a tuning run and an --extend run of the same unit
            # (two processes) never overwrite each other's work.
            tuning_path = path.with_suffix(".tuning.json")
            tuning = json.loads(tuning_path.read_text()) if args.resume and tuning_path.exists() else None
            if tuning is not None and not same_tuning_settings(tuning.get("settings"), args):
                tuning = None  # made for other backbones, trials or sizes: not this run's
            if args.tune_trials and tuning is None:
                tuning = tune_across_backbones(task, seed, tuple(args.backbones), args)
                write_json_atomic(tuning_path, tuning)
                print(f"  {task} seed {seed}: tuner's best backbone {tuning['tuner_backbone']} (advised "
                      f"{tuning['advised_backbone']})", flush=True)
            if tuning is not None:
                unit = {**unit, "tuning": tuning}
            units.append(unit)
    summary = print_table(units)
    if args.markdown:
        print_markdown(units)
    print(f"\n{time.perf_counter() - started:.0f} s wall in all; load {os.getloadavg()[0]:.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "units": units, "summary": summary}
    args.out.write_text(json.dumps(payload, indent=2, allow_nan=True))
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
