"""Tuning efficiency: the product's search (recommendation enqueued first, median pruning) against plain
TPE (Optuna's defaults: no seeding, no pruning), both with the product's search space and trainer.

Both arms run :class:`tladvisor.tuning.study.Tuner` on the same task, split and seed; the plain arm only
replaces the study's sampler and pruner and skips the enqueued recommendation. The target is the best
accuracy of the exhaustive grid on the same task and seed minus half a point; reported are the trials
and the seconds (wall and CPU, summed over trials in order) until a finished trial first reaches it.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from benchmarks.advice.suite import BACKBONE, RESULTS_FORMAT, Clock, Settings, _set_threads, advise, cpu_seconds
from benchmarks.common.stats import first_reach
from benchmarks.tasks.registry import task_by_name
from benchmarks.tasks.suite import write_task

TARGET_MARGIN = 0.005  # "within 0.5 point of the exhaustive best"


def _metered_tuner_class():
    import optuna

    from tladvisor.tuning.study import Tuner

    class MeteredTuner(Tuner):
        """The product's Tuner, timing each trial in CPU seconds; ``plain`` turns it into plain TPE."""

        def __init__(self, *args, plain: bool = False, **kwargs):
            super().__init__(*args, **kwargs)
            self.plain = plain
            self.costs: dict[int, tuple[float, float]] = {}

        def open_study(self, *, sampler_offset: int = 0):
            if not self.plain:
                return super().open_study(sampler_offset=sampler_offset)
            return optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner(),
                                       sampler=optuna.samplers.TPESampler(seed=self.options.seed))

        def enqueue_recommendation(self, study, recommendation, backbones) -> None:
            if not self.plain:
                super().enqueue_recommendation(study, recommendation, backbones)

        def run_trial(self, study, trial, *args, **kwargs):
            wall, cpu = time.perf_counter(), cpu_seconds()
            try:
                return super().run_trial(study, trial, *args, **kwargs)
            finally:
                self.costs[trial.number] = (time.perf_counter() - wall, cpu_seconds() - cpu)

    return MeteredTuner


def run_tuning_unit(task_name: str, seed: int, arm: str, trials: int, target: float,
                    settings: Settings) -> dict[str, Any]:
    """One arm ("seeded" or "plain") of the tuning comparison on one task and seed."""
    _set_threads(settings.threads)
    import optuna

    from tladvisor.plugins import PluginHost

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    task = task_by_name(task_name, "suite")
    folder = Path(settings.work_dir) / "tuning" / f"{task.name}-seed{seed}-{arm}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    train_per_class = settings.train_per_class or task.train_per_class
    if settings.max_train_per_class:
        train_per_class = min(train_per_class, settings.max_train_per_class)
    write_task(task, folder, seed, train_per_class=train_per_class, val_per_class=settings.val_per_class)

    host = PluginHost()
    advice = advise(folder, seed, settings, host)
    options = replace(advice["options"], trials=trials, run_dir=None, storage=None, study_name=f"bench-{arm}")
    tuner = _metered_tuner_class()(options, host=host, plain=(arm == "plain"))
    with Clock() as clock:
        result = tuner.run(advice["dataset"], advice["recommendation"], [advice["spec"]])
    records = sorted(result.trials, key=lambda t: t.number)
    values = [t.value if t.state == "COMPLETE" else None for t in records]
    walls = [tuner.costs.get(t.number, (0.0, 0.0))[0] for t in records]
    cpus = [tuner.costs.get(t.number, (0.0, 0.0))[1] for t in records]
    n_trials, wall_to_target = first_reach(values, walls, target)
    _, cpu_to_target = first_reach(values, cpus, target)
    shutil.rmtree(folder.parent / f"{folder.name}-cache", ignore_errors=True)
    complete = [v for v in values if v is not None]
    return {
        "format": RESULTS_FORMAT, "task": task.name, "seed": seed, "arm": arm, "budget": trials, "target": target,
        "trials_to_target": n_trials, "wall_to_target_s": wall_to_target, "cpu_to_target_s": cpu_to_target,
        "best": max(complete) if complete else None,
        "advice_cpu_s": round(advice["clock"].cpu, 3), "advice_wall_s": round(advice["clock"].wall, 3),
        "search_wall_s": round(clock.wall, 3), "search_cpu_s": round(clock.cpu, 3),
        "n_pruned": sum(t.state == "PRUNED" for t in records), "n_failed": sum(t.state == "FAIL" for t in records),
        "trials": [{"number": t.number, "state": t.state, "value": t.value, "strategy": t.params.get("strategy"),
                    "epochs": t.params.get("epochs"), "wall_s": round(w, 3), "cpu_s": round(c, 3)}
                   for t, w, c in zip(records, walls, cpus)],
        "recommended": advice["recommendation"].strategy, "backbone": BACKBONE, "settings": asdict(settings),
    }
