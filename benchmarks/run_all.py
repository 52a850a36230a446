"""The benchmark suite: is the advice right, and what does it cost?

    .venv/bin/python -m benchmarks.run_all            # the full suite (about 70 min on a 2-core CPU)
    .venv/bin/python -m benchmarks.run_all --quick    # a few minutes: 3 small tasks, fewer epochs

Offline, on CPU (``--device auto`` uses CUDA when present). Four sections:

1. Advice quality: for each target task (benchmarks.tasks.registry.SUITE) and seed, the advisor's recommendation
   (exactly as ``tladvisor analyze`` makes it) against every strategy trained with the same budget
   (benchmarks/advice/suite.py): best strategy, regret, compute of the advice against the exhaustive grid; then the
   recommendation's thresholds swept over the same measurements (what would other constants pick?).
2. Similarity under controlled shift (benchmarks/similarity/shift.py): each measure against blur/noise
   severity, Spearman per measure.
3. Tuning efficiency (benchmarks/speed/tuning.py): trials and seconds to reach within 0.5 point of the exhaustive
   best, recommendation-seeded pruned search against plain TPE.
4. Throughput (benchmarks/speed/throughput.py): feature extraction against a bare forward loop, cache speed-up,
   cached against forward-pass feature-extraction trials.

Work units run in ``--jobs`` worker processes with ``--threads`` torch threads each (default: one
process per core, one thread each: on a shared machine, several threads per process spend their time
waiting for each other). Compute is compared in CPU seconds of the worker (wall seconds are recorded
too, with the load average, since other processes on the machine stretch them).

Writes ``results.json``, ``.md`` and ``index.html`` (self-contained) to ``--out``: ``benchmarks/results/suite/``
(committed: the numbers docs quote) for a full run, ``reports/benchmarks/suite-quick/`` (git-ignored) with
``--quick``, whose numbers no document quotes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from benchmarks.advice.suite_summary import advised_by_another_rule, joint_sweep, summarise_advice, sweep_thresholds
from benchmarks.common.paths import RESULTS, SCRATCH


TUNING_TASKS = ("photos-small", "digits-small")
QUICK_TUNING_TASKS = ("digits-small",)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 small tasks, 2 seeds, short training (minutes)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (CUDA when present)")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: CPU cores; 1 on CUDA)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker (default 1)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per small task (default 3; quick 2)")
    parser.add_argument("--large-seeds", type=int, default=None, help="seeds per large task (default 2)")
    parser.add_argument("--seed-offset", type=int, default=0,
                        help="first seed (seeds are offset..offset+n-1); the thresholds were calibrated on offset 100")
    parser.add_argument("--tasks", nargs="*", help="only these tasks (names from benchmarks.tasks.registry.SUITE)")
    parser.add_argument("--sections", default="advice,similarity,tuning,throughput",
                        help="comma-separated subset of advice,similarity,tuning,throughput")
    parser.add_argument("--tuning-trials", type=int, default=None, help="trials per tuning arm (default 8; quick 4)")
    parser.add_argument("--image-size", type=int, default=64, help="training and measuring size (px)")
    parser.add_argument("--similarity-size", type=int, default=None,
                        help="image size of the similarity section (default 128, the calibration size; quick 64)")
    parser.add_argument("--out", type=Path, default=None,
                        help="default: benchmarks/results/suite, or reports/benchmarks/suite-quick with --quick")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder for images (default: a temp folder)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the units an interrupted run with the same settings finished "
                             "(results[-quick].partial.jsonl) and run only the rest")
    return parser.parse_args(argv)


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


# --- section 1 aggregation ---------------------------------------------------------------------------


def unit_key(kind: str, result: dict[str, Any]) -> Any:
    if kind == "advice":
        return (result["task"], result["seed"])
    if kind == "tuning":
        return (result["task"], result["seed"], result["arm"])
    return None


def load_finished(partial: Path, settings, similarity_size: int,
                  tuning_trials: int) -> dict[tuple[str, Any], dict[str, Any]]:
    """Units an interrupted run finished with the same settings (the scratch folder aside), by (kind, key)."""
    from dataclasses import asdict

    from benchmarks.similarity.shift import ROWS_FORMAT
    from benchmarks.advice.suite import RESULTS_FORMAT

    if not partial.exists():
        return {}
    wanted = {k: v for k, v in asdict(settings).items() if k != "work_dir"}
    finished = {}
    for line in partial.read_text().splitlines():
        try:
            record = json.loads(line)
            kind, result = record["kind"], record["result"]
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line cut short by the interruption
        if kind == "similarity":  # same size, same meaning of a row
            if result and all(row.get("image_size") == similarity_size and row.get("format") == ROWS_FORMAT
                              for row in result):
                finished[(kind, None)] = result
            continue
        used = {k: v for k, v in (result.get("settings") or {}).items() if k != "work_dir"}
        if (used != wanted or result.get("format") != RESULTS_FORMAT
                or (kind == "tuning" and result.get("budget") != tuning_trials)):
            continue  # made with other settings: run it again
        finished[(kind, unit_key(kind, result))] = result
    return finished


def main(argv=None) -> int:
    args = parse_args(argv)
    # Before torch is imported anywhere (workers inherit it): one OpenMP/BLAS thread pool per worker.
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(args.threads)
    from benchmarks.common import report
    from benchmarks.advice.suite import Settings, run_unit
    from benchmarks.similarity.suite import run_similarity
    from benchmarks.common.stats import config_name
    from benchmarks.tasks.suite import QUICK_TASKS, TASKS
    from benchmarks.speed.throughput import run_throughput
    from benchmarks.speed.tuning import TARGET_MARGIN, run_tuning_unit
    from benchmarks.common.workers import worker_pool

    started_wall, started_load = time.perf_counter(), load_average()
    sections = set(args.sections.split(","))
    device = args.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    jobs = args.jobs or (1 if device == "cuda" else max(1, os.cpu_count() or 1))
    quick = args.quick
    work = args.work or Path(__import__("tempfile").mkdtemp(prefix="tladvisor-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    settings = Settings(work_dir=str(work), image_size=args.image_size, device=device, threads=args.threads)
    if quick:
        settings = replace(settings, train_per_class=10, val_per_class=10, max_epochs=6)
    seeds = args.seeds or (2 if quick else 3)
    large_seeds = args.large_seeds or 2
    tasks = [t for t in TASKS if (t.name in args.tasks if args.tasks else (t.name in QUICK_TASKS if quick else True))]
    tuning_tasks = [t for t in (QUICK_TUNING_TASKS if quick else TUNING_TASKS) if t in {x.name for x in tasks}]
    tuning_trials = args.tuning_trials or (4 if quick else 8)
    similarity_size = args.similarity_size or (64 if quick else 128)
    suffix = "-quick" if quick else ""
    args.out = args.out or (SCRATCH / "suite-quick" if quick else RESULTS / "suite")
    args.out.mkdir(parents=True, exist_ok=True)

    print(f"tladvisor benchmarks{' (quick)' if quick else ''}: {len(tasks)} tasks, device {device}, {jobs} workers "
          f"x {args.threads} threads, load average {started_load}, scratch {work}", flush=True)

    units: list[dict[str, Any]] = []
    tuning: list[dict[str, Any]] = []
    similarity_rows: list[dict[str, Any]] = []
    loads: list[list[float]] = [started_load]
    pending: dict[Future, tuple[str, Any]] = {}
    partial = args.out / f"results{suffix}.partial.jsonl"
    finished = load_finished(partial, settings, similarity_size, tuning_trials) if args.resume else {}
    if partial.exists():  # never deleted: what a run finished stays in .bak until the next run replaces it
        partial.replace(partial.with_name(partial.name + ".bak"))
    if finished:
        print(f"resuming: {len(finished)} finished units kept from {partial} (all of it in {partial.name}.bak)",
              flush=True)
        # Start the new file with exactly the kept units, so a second interruption resumes from them too.
        partial.write_text("".join(json.dumps({"kind": k, "result": r}, default=str) + "\n"
                                   for (k, _), r in finished.items()))

    def elapsed() -> str:
        return f"{time.perf_counter() - started_wall:7.0f} s"

    with worker_pool(jobs) as pool:
        def submit(kind: str, key: Any, function, *arguments) -> None:
            if (kind, key) in finished:
                done_before.append((kind, key, finished[(kind, key)]))
                kept.append((kind, key))
            else:
                pending[pool.submit(function, *arguments)] = (kind, key)

        done_before: list[tuple[str, Any, dict]] = []
        kept: list[tuple[str, Any]] = []  # units taken from the earlier run (--resume), not run here
        if "advice" in sections:
            # Large tasks first: the most expensive units should not be the last ones to start.
            work_items = [(t, args.seed_offset + s) for t in tasks
                          for s in range(large_seeds if t.size == "large" else seeds)]
            work_items.sort(key=lambda item: item[0].size != "large")
            for task, seed in work_items:
                submit("advice", (task.name, seed), run_unit, task.name, seed, settings)
        if "similarity" in sections:
            submit("similarity", None, run_similarity, work / "similarity", similarity_size, args.threads, quick)
        while pending or done_before:
            if done_before:
                completed = [(kind, key, result, False) for kind, key, result in done_before]
                done_before.clear()
            else:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                completed = [(*pending.pop(future), future.result(), True) for future in done]
            for kind, _key, result, fresh in completed:
                loads.append(load_average())
                if fresh:
                    with partial.open("a") as stream:  # raw results survive a failure in the aggregation
                        stream.write(json.dumps({"kind": kind, "result": result}, default=str) + "\n")
                if kind == "advice":
                    units.append(result)
                    trials = " ".join(f"{report.short(c)} {100 * t['accuracy']:.1f}" for c, t in result["trials"].items())
                    print(f"{elapsed()}  {result['task']} seed {result['seed']}: advice {report.short(result['recommended'])} "
                          f"(similarity {result['measures']['similarity']:.2f}, {result['train_per_class']}/class) | "
                          f"{trials} | advice {result['advice']['cpu_s']:.0f} CPU s, grid "
                          f"{sum(t['cpu_s'] for t in result['trials'].values()):.0f} CPU s | load {loads[-1]}", flush=True)
                    if "tuning" in sections and result["task"] in tuning_tasks and result["seed"] == args.seed_offset:
                        target = max(t["accuracy"] for t in result["trials"].values()) - TARGET_MARGIN
                        for arm in ("seeded", "plain"):
                            submit("tuning", (result["task"], result["seed"], arm), run_tuning_unit, result["task"],
                                   result["seed"], arm, tuning_trials, target, settings)
                elif kind == "similarity":
                    similarity_rows = result
                    print(f"{elapsed()}  similarity: {len(result)} conditions measured", flush=True)
                else:
                    tuning.append(result)
                    print(f"{elapsed()}  tuning {result['task']} {result['arm']}: target {100 * result['target']:.1f} "
                          f"reached after {result['trials_to_target']} trials, best {result['best']}", flush=True)

    throughput = None
    if "throughput" in sections:
        throughput = run_throughput(settings, per_class=20 if quick else 80)  # alone: nothing else of ours running
        print(f"{elapsed()}  throughput: extraction {throughput['extraction_images_per_s']:.0f} img/s, bare "
              f"{throughput['bare_forward_images_per_s']:.0f} img/s", flush=True)

    # --- aggregate -----------------------------------------------------------------------------------
    from benchmarks.similarity.shift import severity_correlations
    from benchmarks.advice.suite import GRID_DEPTHS, grid

    grid_configs = {config_name(s, d) for s, d in grid(6)} | {config_name("partial_freeze", d) for d in GRID_DEPTHS}
    summaries, overall, sweeps, correlations, errors = [], {}, [], {}, []
    joint: dict[str, Any] = {}
    for name, step in (("advice", lambda: summarise_advice(units, grid_configs)),
                       ("sweeps", lambda: sweep_thresholds(units)),
                       ("joint", lambda: joint_sweep(units)),
                       ("similarity", lambda: severity_correlations(similarity_rows))):
        if (name == "similarity" and not similarity_rows) or (name != "similarity" and not units):
            continue
        try:
            found = step()
        except Exception as error:  # keep the raw results and report what could not be summarised
            errors.append(f"{name}: {type(error).__name__}: {error}")
            print(f"could not summarise {name}: {error}", file=sys.stderr)
            continue
        if name == "advice":
            summaries, overall = found
        elif name == "sweeps":
            sweeps = found
        elif name == "joint":
            joint = found
        else:
            correlations = found
    tuning.sort(key=lambda r: (r["task"], r["arm"] != "seeded"))

    total_wall = time.perf_counter() - started_wall
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    total_cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    from importlib.metadata import version

    environment = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "-m", "benchmarks.run_all", *(argv if argv is not None else sys.argv[1:])]),
        "python": sys.version.split()[0], "torch": version("torch"), "optuna": version("optuna"),
        "cpu_count": os.cpu_count(), "device": device, "jobs": jobs, "threads_per_job": args.threads,
        "load_average_start": started_load, "load_average_end": load_average(),
        "load_average_samples": loads, "total_wall_s": round(total_wall, 1), "total_cpu_s": round(total_cpu, 1),
        "units_kept_from_earlier_run": len(kept),  # with --resume: their time is not in the totals
    }
    results = {"environment": environment, "settings": asdict(settings), "quick": quick, "errors": errors,
               "advice": {"overall": overall, "tasks": summaries, "units": units,
                          "threshold_sweeps": sweeps, "joint_sweep": joint},
               "similarity": {"image_size": similarity_size, "rows": similarity_rows, "spearman": correlations},
               "tuning": tuning, "throughput": throughput}
    (args.out / f"results{suffix}.json").write_text(json.dumps(results, indent=1, default=str))

    # --- tables --------------------------------------------------------------------------------------
    md, html_sections = [], []

    def add(title: str, header: list[str], rows: list[list[str]], note: str = "") -> None:
        md.append(f"### {title}\n\n{report.markdown(header, rows)}\n" + (f"\n{note}\n" if note else ""))
        html_sections.append((title, report.html_table(header, rows) + (f"<p>{note}</p>" if note else "")))

    if summaries:
        add("Advice against the exhaustive grid", *report.advice_rows(summaries),
            note=(f"{overall['runs']} runs ({overall['tasks']} tasks x seeds). Median regret "
                  f"{100 * overall['median_regret']:.1f} points (mean {100 * overall['mean_regret']:.1f}; at the product's "
                  f"starting rates alone, untuned: median {100 * overall['median_regret_at_start_rates']:.1f}, mean "
                  f"{100 * overall['mean_regret_at_start_rates']:.1f}); the advice "
                  f"was the best config in {overall['hits']} of {overall['runs']} runs; mean regret within seed noise "
                  f"on {overall['tasks_within_noise']} of {overall['tasks']} tasks. Advice / grid compute (CPU s): "
                  f"{overall['compute_ratio']:.3f} ({overall['compute_ratio_with_trial']:.3f} including training the "
                  f"recommended config once)."))
        add("Validation accuracy per strategy (mean ± seed spread, %)", *report.strategy_rows(summaries))
        html_sections.insert(1, ("Regret per task", report.regret_svg(summaries)))
        add("Thresholds swept over the same measurements (current value in bold)", *report.sweep_rows(sweeps))
        if joint:
            add("SMALL_PER_CLASS x PROBE_ENOUGH swept jointly: mean regret (points), advice = best in n runs",
                *report.joint_rows(joint))
    if similarity_rows:
        add(f"Similarity under controlled shift (efficientnet_lite0, {similarity_size} px)",
            *report.similarity_rows(similarity_rows))
        if correlations:
            add("Spearman correlation with corruption severity", *report.spearman_rows(correlations))
    if tuning:
        add("Tuning: trials to within 0.5 point of the exhaustive best", *report.tuning_rows(tuning))
    if throughput:
        add("Throughput", *report.throughput_rows(throughput))
    meta = [f"command: {environment['command']}", f"device {device}, {jobs} workers x {args.threads} threads, "
            f"{os.cpu_count()} CPUs; load average start {started_load}, end {environment['load_average_end']}",
            f"total {total_wall / 60:.1f} min wall, {total_cpu / 60:.1f} min CPU; created {environment['created']}"
            + (f" (--resume: {len(kept)} units kept from an earlier run, whose time is not in these totals)"
               if kept else "")]
    stale = advised_by_another_rule(units)
    if stale:
        meta.append(f"{stale} of {len(units)} advice units were advised with other rule constants than "
                    f"tladvisor/advice/recommend.py's now, or did not record them (kept by --resume): run without "
                    f"--resume for advice made by one rule")
    (args.out / f"results{suffix}.md").write_text("\n".join(md) + "\n" + "\n".join(f"- {m}" for m in meta) + "\n")
    (args.out / f"index{suffix}.html").write_text(
        report.html_page("tladvisor benchmarks" + (" (quick)" if quick else ""), html_sections, meta))
    print("\n" + "\n".join(md))
    print("\n".join(meta))
    print(f"wrote {args.out / f'results{suffix}.json'}, results{suffix}.md and index{suffix}.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
