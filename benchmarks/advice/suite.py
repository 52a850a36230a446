"""Advice quality: the advisor's pick against every strategy trained with the same budget.

One *unit* is a (task, seed): write the task's images, run the advice exactly as ``tladvisor analyze``
does (``Advisor.load``, the ``profile_dataset`` hook, ``Advisor.measure``, the ``recommend`` hook), then
train the exhaustive grid with the product's own trainer (:func:`tladvisor.tuning.trainer.train_trial`
on :class:`tladvisor.tuning.data.TuningData`):

    feature_extraction, partial_freeze@2, partial_freeze@4, full_finetune, from_scratch

plus the recommended partial-freeze depth when it is neither 2 nor 4. Every config gets the same
budget: the same epochs and batch size, weight decay the tuner's default, no early stopping, and the
same two learning-rate settings (``RATE_SETTINGS``): fixed base rates per strategy
(``GRID_BASE_RATES``, the product's first starting rates) and a faster pair (head x3, backbone x10,
capped at the head's rate). A config's score is the better of the two, each the best validation accuracy over
the epochs (what a tuning trial reports): a two-point learning-rate search per strategy, so no
strategy loses only because its starting rates suit the budget badly.

Compute is measured per unit in its own process: wall seconds and CPU seconds (user + system of the
process, so other processes on a shared machine do not count), for the advice and for each trial.
"""

from __future__ import annotations

import math
import resource
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.common.stats import config_name
from benchmarks.tasks.registry import task_by_name
from benchmarks.tasks.suite import write_task

BACKBONE = "efficientnet_lite0"
GRID_DEPTHS = (2, 4)  # partial-freeze depths of the grid: stem+stride2, and up to stride8 (of 6 stages)


@dataclass(frozen=True)
class Settings:
    work_dir: str
    image_size: int = 64
    batch_size: int = 32
    target_steps: int = 60  # optimiser steps a config should get: sets the epochs of small tasks
    min_epochs: int = 3
    max_epochs: int = 12
    device: str = "cpu"
    threads: int = 1
    train_per_class: int | None = None  # overrides the task's (quick mode)
    val_per_class: int | None = None
    max_train_per_class: int | None = None  # caps large tasks (quick mode)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Clock:
    """``with Clock() as c: ...`` then ``c.wall`` and ``c.cpu`` (seconds)."""

    def __enter__(self) -> Clock:
        self._wall, self._cpu = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = cpu_seconds() - self._cpu


def epochs_for(n_train: int, settings: Settings) -> int:
    """The same epochs for every config of a task: about ``target_steps`` optimiser steps, clipped."""
    steps_per_epoch = max(1, math.ceil(n_train / settings.batch_size))
    wanted = math.ceil(settings.target_steps / steps_per_epoch)
    return int(min(max(wanted, settings.min_epochs), settings.max_epochs))


# The grid's learning rates are fixed numbers, so the yardstick does not move when the product's starting
# rates (tladvisor.advice.recommend.LEARNING_RATES) are recalibrated: each config is trained at the base rates
# below (the product's first starting rates) and at a faster pair, (head factor, backbone factor) on them.
GRID_BASE_RATES = {
    "feature_extraction": {"head": 3e-3, "backbone": 0.0, "layer_decay": 1.0},
    "partial_freeze": {"head": 1e-3, "backbone": 1e-4, "layer_decay": 0.8},
    "full_finetune": {"head": 1e-3, "backbone": 1e-4, "layer_decay": 0.7},
    "from_scratch": {"head": 1e-3, "backbone": 1e-3, "layer_decay": 1.0},
}
RATE_SETTINGS = {"base": (1.0, 1.0), "fast": (3.0, 10.0)}
# Bumped when a unit's results stop being comparable with older ones (run_all --resume keeps only equal).
# 2: two rate settings per config, precise BN in the trainer, random copy with re-estimated statistics.
# 3: settings named base/fast over fixed GRID_BASE_RATES; the product's own setting recorded per config.
RESULTS_FORMAT = 3


def rates_for(strategy: str, setting: str) -> dict[str, float]:
    rates = dict(GRID_BASE_RATES[strategy])
    head_factor, backbone_factor = RATE_SETTINGS[setting]
    rates["head"] *= head_factor
    rates["backbone"] = min(rates["backbone"] * backbone_factor, rates["head"])
    return rates


def product_setting(strategy: str) -> str | None:
    """The grid setting whose rates are the product's starting rates for ``strategy`` (None: neither)."""
    import math

    from tladvisor.advice.recommend import LEARNING_RATES

    wanted = LEARNING_RATES[strategy]
    for setting in RATE_SETTINGS:
        rates = rates_for(strategy, setting)
        if all(math.isclose(rates[k], wanted[k], rel_tol=1e-9, abs_tol=1e-12) for k in ("head", "backbone")):
            return setting
    return None


def trial_config(strategy: str, freeze_depth: int, epochs: int, settings: Settings, rate_setting: str = "base"):
    from tladvisor.tuning.search import DEFAULT_WEIGHT_DECAY
    from tladvisor.tuning.strategies import TrialConfig

    rates = rates_for(strategy, rate_setting)
    return TrialConfig(backbone=BACKBONE, strategy=strategy, freeze_depth=freeze_depth, lr_head=rates["head"],
                       lr_backbone=rates["backbone"], layer_decay=rates["layer_decay"],
                       weight_decay=DEFAULT_WEIGHT_DECAY, epochs=epochs, patience=epochs,
                       batch_size=settings.batch_size, image_size=settings.image_size)


def train_config(spec, strategy: str, depth: int, epochs: int, settings: Settings, data, device, seed: int) -> dict:
    """One config of the grid: trained at every rate setting, scored by the better one."""
    from tladvisor.tuning.trainer import train_trial

    runs = {}
    for setting in RATE_SETTINGS:
        config = trial_config(strategy, depth, epochs, settings, setting)
        with Clock() as clock:
            trained = train_trial(spec, config, data, device, seed=seed)
        runs[setting] = {
            "accuracy": float(trained.accuracy), "lr_head": config.lr_head, "lr_backbone": config.lr_backbone,
            "learning_curve": [round(v, 4) for v in trained.learning_curve],
            "best_epoch": trained.best_epoch + 1, "wall_s": round(clock.wall, 3), "cpu_s": round(clock.cpu, 3)}
    best = max(runs, key=lambda k: runs[k]["accuracy"])  # ties: the base rates (dict order)
    own = product_setting(strategy)
    return {"accuracy": runs[best]["accuracy"], "best_rates": best, "learning_curve": runs[best]["learning_curve"],
            "best_epoch": runs[best]["best_epoch"], "wall_s": round(sum(r["wall_s"] for r in runs.values()), 3),
            "cpu_s": round(sum(r["cpu_s"] for r in runs.values()), 3), "product_setting": own,
            "product_cpu_s": runs[own]["cpu_s"] if own else None, "by_rates": runs}


def grid(n_stages: int) -> list[tuple[str, int]]:
    return ([("feature_extraction", n_stages)] + [("partial_freeze", d) for d in GRID_DEPTHS]
            + [("full_finetune", 0), ("from_scratch", 0)])


def _set_threads(threads: int) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)


def advise(folder: Path, seed: int, settings: Settings, host) -> dict[str, Any]:
    """The advice, stage by stage as Advisor.run does it; returns the records and the clock."""
    from tladvisor.advisor import Advisor
    from tladvisor.records import AnalysisOptions

    options = AnalysisOptions(source=folder, backbones=(BACKBONE,), image_size=settings.image_size, seed=seed,
                              batch_size=settings.batch_size, device=settings.device,
                              cache_dir=folder.parent / f"{folder.name}-cache", out_dir=folder.parent / "reports")
    advisor = Advisor(options, host=host)
    with Clock() as clock:
        dataset = advisor.load(options)
        profile = host.call_first("profile_dataset", dataset=dataset, options=options)
        spec = host.backbone(BACKBONE)
        measurement = advisor.measure(spec, dataset, options)
        recommendation = host.call_first("recommend", profile=profile, measurements=[measurement], options=options)
    return {"options": options, "dataset": dataset, "profile": profile, "measurement": measurement,
            "recommendation": recommendation, "spec": spec, "clock": clock}


# Values each constant of the rule is re-run at (one constant at a time, the others as they are).
SWEEPS = {
    "SMALL_PER_CLASS": (5, 10, 20, 50, 100, 150, 200, 300, 400, 500),
    "SIMILARITY_THRESHOLD": (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8),
    "PROBE_ENOUGH": (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.01),
    "GAIN_MARGIN": (0.0, 0.02, 0.05, 0.1, 0.2),
}


def rule_constants() -> dict[str, Any]:
    """The recommendation rule's constants now, recorded with each unit: --resume may keep units that an
    older rule advised, and the report says so."""
    from tladvisor.advice import recommend as rules

    return {name: getattr(rules, name) for name in SWEEPS}


def counterfactual_picks(profile, measurement, val_fraction: float = 0.2) -> dict[str, dict[str, str]]:
    """The config the product's rule picks for this measurement with each swept constant changed.

    Done in the worker, right after the advice, with the code that made it: the records need not
    survive a pickle round trip, and an edit to the rule during a long run cannot mix versions.
    """
    import contextlib
    from unittest import mock

    from tladvisor.advice import recommend as rules

    def pick(**constants) -> str:
        with contextlib.ExitStack() as patches:
            for name, value in constants.items():
                patches.enter_context(mock.patch.object(rules, name, value))
            rec = rules.recommend(profile, [measurement], val_fraction=val_fraction)
        return config_name(rec.strategy, rec.freeze_depth)

    picks: dict[str, dict[str, str]] = {}
    for constant, values in SWEEPS.items():
        current = getattr(rules, constant)
        picks[constant] = {repr(value): pick(**{constant: value}) for value in sorted(set(values) | {current})}
        picks[constant]["current"] = repr(current)
    # The two constants that interact on the suite (a 200-per-class task is small or large by the
    # first, and then small-and-different ones turn on the second), swept jointly.
    picks["joint"] = {f"{small}|{probe}": pick(SMALL_PER_CLASS=small, PROBE_ENOUGH=probe)
                      for small in SWEEPS["SMALL_PER_CLASS"] for probe in SWEEPS["PROBE_ENOUGH"]}
    return picks


def measurement_summary(measurement, recommendation) -> dict[str, Any]:
    """What an advice unit keeps of a measurement: the facts the gain prior reads (the product's own
    :func:`~tladvisor.advice.prior.measurement_facts`, so the grid and a user's run compute them one way)
    and more, for the reports."""
    from tladvisor.advice.prior import measurement_facts

    def score(name: str) -> float | None:
        found = measurement.scores.get(name)
        return None if found is None else float(found.value)

    return {
        **measurement_facts(measurement),
        "similarity_spread": float(measurement.similarity.spread or 0.0),
        "linear_probe": score("linear_probe_accuracy"),
        "pretraining_gain_spread": (measurement.scores["pretraining_gain"].spread
                                    if "pretraining_gain" in measurement.scores else None),
        "leep": score("leep"), "nce": score("nce"), "hscore": score("hscore"),
        "samples_per_class": float(recommendation.size.get("samples_per_class", math.nan)),
        "confidence": float(recommendation.confidence),
        "rationale": list(recommendation.rationale),
    }


def run_unit(task_name: str, seed: int, settings: Settings) -> dict[str, Any]:
    """Advice and exhaustive grid for one task and seed (runs in a worker process)."""
    _set_threads(settings.threads)
    import torch

    from tladvisor.plugins import PluginHost
    from tladvisor.tuning.data import TuningData

    task = task_by_name(task_name, "suite")
    train_per_class = settings.train_per_class or task.train_per_class
    if settings.max_train_per_class:
        train_per_class = min(train_per_class, settings.max_train_per_class)
    folder = Path(settings.work_dir) / "advice" / f"{task.name}-seed{seed}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with Clock() as writing:
        write_task(task, folder, seed, train_per_class=train_per_class, val_per_class=settings.val_per_class)

    host = PluginHost()
    advice = advise(folder, seed, settings, host)
    recommendation, spec = advice["recommendation"], advice["spec"]
    recommended = config_name(recommendation.strategy, recommendation.freeze_depth)

    device = torch.device(settings.device)
    data = TuningData(advice["dataset"], advice["options"], device)
    n_train = len(data.train_idx)
    epochs = epochs_for(n_train, settings)
    configs = grid(spec.n_stages)
    if config_name(recommendation.strategy, recommendation.freeze_depth) not in {config_name(*c) for c in configs}:
        configs.append((recommendation.strategy, recommendation.freeze_depth))
    trials = {config_name(strategy, depth): train_config(spec, strategy, depth, epochs, settings, data, device, seed)
              for strategy, depth in configs}

    advice_clock = advice["clock"]
    shutil.rmtree(folder.parent / f"{folder.name}-cache", ignore_errors=True)
    return {
        "format": RESULTS_FORMAT, "task": task.name, "seed": seed, "domain": task.domain, "size": task.size,
        "description": task.description, "n_classes": len(advice["dataset"].classes),
        "train_per_class": train_per_class, "n_train": n_train, "n_val": len(data.val_idx), "epochs": epochs,
        "recommended": recommended, "recommended_strategy": recommendation.strategy,
        "recommended_freeze_depth": recommendation.freeze_depth,
        "measures": measurement_summary(advice["measurement"], recommendation),
        "advice": {"wall_s": round(advice_clock.wall, 3), "cpu_s": round(advice_clock.cpu, 3)},
        "write_s": round(writing.wall, 3),
        "trials": trials,
        "settings": asdict(settings),
        "counterfactual_picks": counterfactual_picks(advice["profile"], advice["measurement"],
                                                     advice["options"].val_fraction),
        "rule": rule_constants(),
    }
