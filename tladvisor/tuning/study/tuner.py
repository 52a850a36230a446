"""The :class:`Tuner`: the search loop that opens (or joins) a study, claims trials within its budget and
runs them until the study holds its budget of finished trials, counting every worker's.

The budget is ``--trials`` (finished trials), ``--timeout`` (wall-clock seconds from the start of the
search; the trial running at the deadline is stopped and kept as pruned with its curve so far), or both,
whichever ends first; ``--timeout`` alone runs as many trials as fit. Why the search stopped, and how to
continue, is :attr:`Tuner.stop_reason` and the result's ``stop_reason``.
"""

from __future__ import annotations

import gc
import logging
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from tladvisor.backbones import BackboneSpec
from tladvisor.runtime.device import describe, pick_device
from tladvisor.errors import TLAdvisorError
from tladvisor.plugins import strategy_registry
from tladvisor.strategies import strategies_for
from tladvisor.tuning.search import run_modality
from tladvisor.records import AnalysisOptions, Dataset, Recommendation, TuningResult
from tladvisor.tuning.data import TuningData
from tladvisor.tuning.imbalance import unbalanced
from tladvisor.tuning.strategies import TrialConfig
from tladvisor.tuning.study import claims, description, recovery, trial_run
from tladvisor.tuning.study.best_model import BestModel, model_dir_of
from tladvisor.tuning.study.claims import FINISHED, fills_place, holds_place
from tladvisor.tuning.study.optuna_access import storage_of
from tladvisor.tuning.study.storage import load_existing_study
from tladvisor.tuning.study.liveness import (GRACE_PERIOD, HEARTBEAT_INTERVAL, PROCESS, process_identity,
                                             worker_label)
from tladvisor.tuning.study.result import tuning_result
from tladvisor.tuning.study.storage import (DEFAULT_STUDY_NAME, display_url, heartbeat_enabled, make_pruner,
                                            make_sampler, open_storage, storage_url)
from tladvisor.tuning.study.trial_progress import TrialProgress
from tladvisor.tuning.trainer import TrainedModel
from tladvisor.tuning.folds import CROSS_VALIDATION, cv_description

log = logging.getLogger(__name__)

MAX_POLL_INTERVAL = 5.0  # seconds a worker waits between looks while the last trials run elsewhere


class Tuner:
    """Runs (or continues, or joins) the study described by ``options``; ``run`` returns a TuningResult.

    ``host`` is the run's PluginHost, whose ``search_space`` hook draws each trial. ``max_failures``
    caps the FAIL trials of one run (default: ``max(5, budget)``); ``patience`` is the early-stopping
    patience in epochs. ``heartbeat_interval`` and ``grace_period`` (seconds) are stored in a study
    this Tuner describes, so every worker judges the others by the same clock; ``poll_interval`` is
    how often a worker with nothing to run looks again (default: the heartbeat interval, at most 5 s).
    ``max_trials`` caps the trials this process runs (None: until the study's budget is met);
    ``on_trial`` is called with each trial's number as this process starts training it.
    """

    def __init__(self, options: AnalysisOptions, *, host, patience: int = 3, max_failures: int | None = None,
                 heartbeat_interval: int | None = HEARTBEAT_INTERVAL, grace_period: int | None = GRACE_PERIOD,
                 poll_interval: float | None = None, max_trials: int | None = None,
                 on_trial: Callable[[int], None] | None = None):
        self.options = options
        self.host = host
        self.patience = patience
        self.max_failures = max_failures
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.poll_interval = poll_interval
        self.max_trials = max_trials
        self.on_trial = on_trial
        self.best_model = BestModel(self.model_dir)
        self.identity = process_identity()
        self.trials_run: list[int] = []  # numbers of the trials this process trained (any final state)
        self.stop_reason: str | None = None  # why the last search stopped, and how to continue
        self.deadline: float | None = None  # time.monotonic() at which --timeout ends the search
        self.progress_view: TrialProgress | None = None

    # --- the study -------------------------------------------------------------------------------------

    def open_study(self, *, sampler_offset: int = 0) -> optuna.Study:
        url = storage_url(self.options)
        storage = open_storage(url, heartbeat_interval=self.heartbeat_interval, grace_period=self.grace_period)
        study = optuna.create_study(storage=storage, study_name=self.options.study_name or DEFAULT_STUDY_NAME,
                                    direction="maximize", load_if_exists=True, pruner=make_pruner())
        study.sampler = make_sampler(self.options.seed + sampler_offset, len(study.get_trials(deepcopy=False)),
                                     self.options.trials)
        return study

    @classmethod
    def joining(cls, options: AnalysisOptions, *, host, **kwargs) -> Tuner:
        """A Tuner for a worker joining the study ``options`` names (``run(..., join=True)``): it judges the
        other workers by the heartbeat settings stored in the study, not by its own defaults."""
        url = storage_url(options)
        study = load_existing_study(url, options.study_name or DEFAULT_STUDY_NAME) if url else None
        if study is None:
            raise TLAdvisorError(f"no study '{options.study_name}' in {display_url(url)} to join")
        stored = description.read_description(study)
        return cls(options, host=host, heartbeat_interval=stored.heartbeat_interval,
                   grace_period=stored.grace_period, **kwargs)

    @property
    def model_dir(self) -> Path | None:
        return model_dir_of(self.options)

    def describe(self, study: optuna.Study, dataset: Dataset, recommendation: Recommendation,
                 backbones: Sequence[BackboneSpec]) -> None:
        """Store in the study what a worker needs to join it (options with the budget, advice, data)."""
        description.describe_study(study, self.options, dataset, recommendation, backbones,
                                   heartbeat_interval=self.heartbeat_interval, grace_period=self.grace_period,
                                   strategies=list(searched_strategies(self.host, backbones)))

    def budget(self, study: optuna.Study) -> int:
        """The study's budget as stored now (a later ``analyze --trials N`` may raise it), else the options'."""
        return description.stored_budget(study, self.options)

    def settle_interrupted(self, study: optuna.Study) -> None:
        """Close the RUNNING trials of workers that are gone (see :func:`.recovery.settle_interrupted`)."""
        recovery.settle_interrupted(study, model_dir=self.model_dir, heartbeat_interval=self.heartbeat_interval,
                                    grace_period=self.grace_period)

    def enqueue_recommendation(self, study: optuna.Study, recommendation: Recommendation,
                               backbones: Sequence[BackboneSpec]) -> None:
        """The recommendation is the first trial, the race's other contenders the next (within the budget);
        each enqueued again only if it never ran to an end."""
        claims.enqueue_recommendation(study, recommendation, backbones, strategy_registry(self.host),
                                      budget=self.budget(study))

    def _claim(self, study: optuna.Study, budget: int) -> optuna.Trial | None:
        """A trial this process may run, or None when the ask lost the race for the last places."""
        return claims.claim(study, budget, self.identity)

    # --- one trial -------------------------------------------------------------------------------------

    def run_trial(self, study: optuna.Study, trial: optuna.Trial, data: TuningData, recommendation: Recommendation,
                  by_name: dict[str, BackboneSpec], device: torch.device) -> TrialState | None:
        """Run and record one trial (see :func:`.trial_run.run_trial`); None when its result was dropped."""
        self.trials_run.append(trial.number)
        if self.on_trial is not None:
            self.on_trial(trial.number)
        return trial_run.run_trial(study, trial, data, recommendation, by_name, device, host=self.host,
                                   options=self.options, patience=self.patience, identity=self.identity,
                                   heartbeat_interval=self.heartbeat_interval, save_if_best=self._save_if_best,
                                   deadline=self.deadline, progress_view=self.progress_view)

    def _save_if_best(self, study: optuna.Study, trial: optuna.Trial, spec: BackboneSpec, config: TrialConfig,
                      data: TuningData, trained: TrainedModel, params: dict[str, Any]) -> bool:
        saved = self.best_model.save_if_best(study, trial, spec, config, data, trained, params,
                                             image_size=self.options.image_size)
        if saved:
            trial.set_user_attr("model_saved_by", worker_label(self.identity))
        return saved

    # --- the whole search ------------------------------------------------------------------------------

    def start(self, dataset: Dataset, recommendation: Recommendation, backbones: Sequence[BackboneSpec], *,
              join: bool = False) -> optuna.Study:
        """Open the study and make it ready for workers; no trial runs yet.

        ``join=False`` (``tladvisor analyze``): create or continue the study, store its description
        (:meth:`describe`) and enqueue the recommendation. ``join=True`` (``tladvisor worker``): open a
        study another process described, without changing what it stores.
        """
        if not backbones:
            raise TLAdvisorError("no backbone to tune; check --backbones and `tladvisor backbones`")
        # A joining worker draws from its own random stream: workers started together must not propose
        # the same start-up points.
        offset = zlib.crc32(worker_label(self.identity).encode()) % 1_000_003 if join else 0
        study = self.open_study(sampler_offset=offset)
        description.check_same_backbones(study, backbones)
        description.check_same_strategies(study, list(searched_strategies(self.host, backbones)))
        if not join:
            self.describe(study, dataset, recommendation, backbones)
        self.settle_interrupted(study)
        if not join:
            self.enqueue_recommendation(study, recommendation, backbones)
        return study

    def run(self, dataset: Dataset, recommendation: Recommendation, backbones: Sequence[BackboneSpec], *,
            join: bool = False) -> TuningResult:
        """Tune until the study holds its budget of finished trials (every worker's count); return the
        whole study's result. ``join`` as in :meth:`start`."""
        device = pick_device(self.options.device)
        study = self.start(dataset, recommendation, backbones, join=join)
        data = TuningData(dataset, self.options, device)
        scoring = cv_description(data.fold_plan, data.cv_reason, len(data.val_idx), data.unit)
        before = study.user_attrs.get(CROSS_VALIDATION)
        if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) and (before or {}).get("folds", 1) != scoring["folds"]:
            log.warning("study %s holds trials scored %s; new trials are scored on %s",
                        study.study_name, f"on {before['folds']} folds" if before else "on one validation split",
                        f"{scoring['folds']} folds" if scoring["folds"] > 1 else "one validation split")
        if not join:  # the study's describer says how its trials are scored; a worker changes nothing stored
            study.set_user_attr(CROSS_VALIDATION, scoring)
        by_name = {spec.name: spec for spec in backbones}

        self.best_model.reset_bar(study.study_name)
        self._search(study, data, recommendation, by_name, device)
        return self.result(study, device)

    def _wait_time(self) -> float:
        if self.poll_interval is not None:
            return self.poll_interval
        return min(MAX_POLL_INTERVAL, float(self.heartbeat_interval or MAX_POLL_INTERVAL))

    def _can_wait_for(self, study: optuna.Study, running: list[FrozenTrial]) -> bool:
        """Whether a lost worker among those running would be noticed from here (else waiting may never end)."""
        if heartbeat_enabled(storage_of(study)):
            return True
        me = self.identity
        return all(isinstance(t.system_attrs.get(PROCESS), dict)
                   and all(t.system_attrs[PROCESS].get(k) == me[k] for k in ("host", "boot", "pidns"))
                   for t in running)

    def _search(self, study: optuna.Study, data: TuningData, recommendation: Recommendation,
                by_name: dict[str, BackboneSpec], device: torch.device) -> None:
        options = self.options
        deadline = self.deadline = time.monotonic() + options.timeout if options.timeout else None
        val_counts = [int(c) for c in torch.bincount(torch.as_tensor(data.dataset.labels[data.val_idx]))]
        self.progress_view = TrialProgress(budget=self.budget(study), deadline=deadline,
                                           several_backbones=len(by_name) > 1, show_metrics=unbalanced(val_counts))
        failures = 0
        while True:
            self.settle_interrupted(study)
            budget = self.budget(study)
            self.progress_view.budget = budget
            max_failures = self.max_failures if self.max_failures is not None else max(5, budget)
            trials = study.get_trials(deepcopy=False)
            finished = sum(t.state in FINISHED for t in trials)
            if budget and sum(fills_place(t) for t in trials) >= budget:  # a trial the deadline cut fills none
                self.stop_reason = (f"the budget of {budget} finished trials is met; a larger --trials continues "
                                    "the same study")
                break
            if not budget and deadline is None:
                self.stop_reason = "no budget: neither --trials nor --timeout was given"
                break
            if deadline is not None and time.monotonic() >= deadline:
                so_far = (f"{finished} of {budget} trials" if budget else
                          f"{finished} trial{'' if finished == 1 else 's'}")
                self.stop_reason = (f"the --timeout of {options.timeout:g} s ran out: {so_far} finished in the study "
                                    f"({len(self.trials_run)} run now); the same command continues it")
                break
            if failures >= max_failures:
                log.warning("stopping the search after %d failed trials in this run", failures)
                self.stop_reason = (f"stopped after {failures} failed trials in this run (their reasons are in the "
                                    "trial table); once the cause is fixed the same command continues the study")
                break
            if self.max_trials is not None and len(self.trials_run) >= self.max_trials:
                self.stop_reason = f"this process ran the {self.max_trials} trials it was allowed"
                break
            claimed = sum(holds_place(t) for t in trials)
            waiting = sum(t.state == TrialState.WAITING for t in trials)
            if budget and claimed >= budget and not waiting:
                # Every place is taken by running trials: stay, to retry any whose worker is lost.
                running = [t for t in trials if t.state == TrialState.RUNNING]
                if not self._can_wait_for(study, running):
                    log.info("the last %d trials run on other machines; leaving them to their workers", len(running))
                    self.stop_reason = (f"the last {len(running)} trials of the budget run on other machines; "
                                        "their workers finish them")
                    break
                pause = self._wait_time()
                if deadline is not None:
                    pause = max(0.0, min(pause, deadline - time.monotonic()))
                time.sleep(pause)
                continue
            trial = self._claim(study, budget)
            if trial is None:
                continue
            if self.run_trial(study, trial, data, recommendation, by_name, device) == TrialState.FAIL:
                failures += 1
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()

    def result(self, study: optuna.Study, device: torch.device) -> TuningResult:
        return tuning_result(study, storage=display_url(storage_url(self.options)),
                             requested_trials=self.budget(study), device=describe(device), model_dir=self.model_dir,
                             stop_reason=self.stop_reason)


def searched_strategies(host, backbones: Sequence[BackboneSpec]):
    """The strategies a study over ``backbones`` searches: the registry's that apply to their modality (what
    :func:`tladvisor.tuning.search.suggest_params` draws from), stored with the study and checked on resume."""
    return strategies_for(strategy_registry(host), run_modality(backbones))
