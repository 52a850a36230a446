"""The Optuna study: resumable search from the recommendation, failures kept as data, best model saved.

Re-running the same command continues the same study (``load_if_exists``) until it holds the requested
number of finished trials (COMPLETE and PRUNED count; FAIL does not, up to a cap so a broken setup
cannot loop). Finished trials are never repeated: the sampler is seeded with the seed plus the number
of trials already stored, so a resumed run draws new points instead of replaying the first run's.
"""

from __future__ import annotations

import gc
import logging
import math
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from tladvisor.backbones import BackboneSpec
from tladvisor.device import describe, pick_device
from tladvisor import interrupts
from tladvisor.errors import TLAdvisorError
from tladvisor.plugins import one_line
from tladvisor.records import AnalysisOptions, Dataset, Recommendation, TuningResult
from tladvisor.tuning import model_io, results
from tladvisor.tuning.data import TuningData
from tladvisor.tuning.search import backbone_choices, recommendation_params
from tladvisor.tuning.strategies import TrialConfig
from tladvisor.tuning.trainer import TrainedModel, TrialFailed, train_trial

log = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
DEFAULT_STUDY_NAME = "tladvisor"


def storage_url(options: AnalysisOptions) -> str | None:
    """``options.storage``, else SQLite in the run folder, else None (in memory: nothing to resume)."""
    if options.storage:
        return options.storage
    if options.run_dir is not None:
        return f"sqlite:///{(Path(options.run_dir) / 'study.db').resolve()}"
    return None


def display_url(url: str | None) -> str:
    """The storage URL without its password: it ends up in analysis.json and the report."""
    if url is None:
        return "in-memory"
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL: show only its scheme
        return url.split("://", 1)[0] + "://..."


def _ensure_sqlite_folder(url: str | None) -> None:
    prefix = "sqlite:///"
    if url and url.startswith(prefix) and url[len(prefix):] not in ("", ":memory:"):
        Path(url[len(prefix):]).parent.mkdir(parents=True, exist_ok=True)


def make_pruner() -> optuna.pruners.BasePruner:
    # Median rather than Hyperband: Hyperband's brackets pay off over many trials of one fixed
    # length, while a CPU budget here is tens of trials whose lengths (``epochs``) vary. A trial is
    # stopped when its best accuracy so far is below the median of the finished trials at the same
    # epoch; judging starts once two trials have finished, and not before the third epoch, as the
    # first epochs are learning-rate warm-up for every trial.
    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)


def make_sampler(seed: int, n_existing: int, budget: int) -> optuna.samplers.TPESampler:
    # Offsetting the seed by the stored trial count keeps a resumed study reproducible without
    # replaying the random start-up points of the run before it.
    startup = max(3, min(10, budget // 3 if budget else 10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # group=True: the space is conditional (freeze_depth only for partial_freeze...); grouping
        # models each sub-space jointly instead of falling back to independent sampling.
        return optuna.samplers.TPESampler(seed=seed + n_existing, n_startup_trials=startup,
                                          multivariate=True, group=True)


class Tuner:
    """Runs (or continues) the study described by ``options``; ``run`` returns a TuningResult.

    ``host`` is the PluginHost whose ``search_space`` hook draws each trial (a fresh one from
    ``options.plugins_dir`` when None). ``max_failures`` caps the FAIL trials of one run (default:
    ``max(5, options.trials)``); ``patience`` is the early-stopping patience in epochs.
    """

    def __init__(self, options: AnalysisOptions, *, host=None, patience: int = 3, max_failures: int | None = None):
        self.options = options
        self.host = host
        self.patience = patience
        self.max_failures = max_failures
        self.best_saved = -math.inf

    # --- the study -------------------------------------------------------------------------------------

    def open_study(self) -> optuna.Study:
        url = storage_url(self.options)
        _ensure_sqlite_folder(url)
        study = optuna.create_study(storage=url, study_name=self.options.study_name or DEFAULT_STUDY_NAME,
                                    direction="maximize", load_if_exists=True, pruner=make_pruner())
        study.sampler = make_sampler(self.options.seed, len(study.get_trials(deepcopy=False)), self.options.trials)
        return study

    @property
    def model_dir(self) -> Path | None:
        return Path(self.options.run_dir) / "best_model" if self.options.run_dir is not None else None

    def _check_same_backbones(self, study: optuna.Study, backbones: Sequence[BackboneSpec]) -> None:
        choices = backbone_choices(backbones)
        for trial in study.get_trials(deepcopy=False):
            stored = trial.distributions.get("backbone")
            if stored is not None and list(stored.choices) != choices:
                raise TLAdvisorError(
                    f"study '{study.study_name}' was searched over backbones {list(stored.choices)}, not {choices}; "
                    "use the same --backbones or another --study name")

    def settle_interrupted(self, study: optuna.Study) -> None:
        """Close trials a killed run left RUNNING: FAIL "interrupted", unless its model was fully saved.

        Single-process assumption: every RUNNING trial is an orphan. With several workers sharing a
        storage a RUNNING trial may be alive; that case needs RDBStorage heartbeats
        (``heartbeat_interval``/``grace_period`` with ``optuna.storages.fail_stale_trials``) instead.
        """
        saved = model_io.read_config(self.model_dir) if self.model_dir else None
        storage = study._storage  # Optuna has no public setter for another process's trial attributes
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if (saved and saved.get("study_name") == study.study_name and saved.get("trial_number") == trial.number):
                # Killed between saving the model and recording the value: the work is complete.
                storage.set_trial_user_attr(trial._trial_id, "learning_curve", saved.get("learning_curve", []))
                study.tell(trial.number, float(saved["val_accuracy"]))
                continue
            storage.set_trial_user_attr(trial._trial_id, "reason", "interrupted")
            storage.set_trial_user_attr(trial._trial_id, "learning_curve", list(results.learning_curve(trial)))
            study.tell(trial.number, state=TrialState.FAIL)

    def enqueue_recommendation(self, study: optuna.Study, recommendation: Recommendation,
                               backbones: Sequence[BackboneSpec]) -> None:
        """The recommendation is the first trial; enqueued again only if it never ran to an end."""
        params = recommendation_params(recommendation, backbones)
        for trial in study.get_trials(deepcopy=False):
            if trial.system_attrs.get("fixed_params") == params and trial.state != TrialState.FAIL:
                return
        study.enqueue_trial(params, user_attrs={"source": "recommendation"})

    # --- one trial -------------------------------------------------------------------------------------

    def _suggest(self, trial: optuna.Trial, recommendation: Recommendation,
                 backbones: Sequence[BackboneSpec]) -> dict[str, Any]:
        params = self.host.call_first("search_space", trial=trial, recommendation=recommendation,
                                      backbones=list(backbones), options=self.options)
        if params is None:
            failures = [f.error for f in self.host.failures if f.hook == "search_space"]
            detail = f": {failures[-1]}" if failures else ""
            raise TrialFailed(f"no search_space plugin returned parameters{detail}")
        return dict(params)

    def run_trial(self, study: optuna.Study, trial: optuna.Trial, data: TuningData, recommendation: Recommendation,
                  by_name: dict[str, BackboneSpec], device: torch.device) -> TrialState:
        """Run and record one trial (saving its model when it beats the saved one); return its final state."""
        started = time.perf_counter()
        curve: list[float] = []
        reported: set[int] = set()

        def on_epoch(epoch: int, value: float) -> None:
            del curve[epoch:]  # an out-of-memory retry starts again at epoch 0
            curve.append(value)
            if epoch not in reported:  # stored as intermediate values: a killed trial keeps its curve
                reported.add(epoch)
                trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch + 1}: best val accuracy {max(curve):.3f} "
                                         "is below the median of finished trials")

        closed: list[TrialState] = []

        def finish(state: TrialState, reason: str | None = None, value: float | None = None) -> TrialState:
            with interrupts.deferred():  # a stop signal waits until the trial is recorded whole
                trial.set_user_attr("duration", round(time.perf_counter() - started, 3))
                trial.set_user_attr("learning_curve", list(curve))
                if reason:
                    trial.set_user_attr("reason", reason)
                study.tell(trial, value, state=state)
                closed.append(state)
            return state

        try:
            params = self._suggest(trial, recommendation, list(by_name.values()))
            trial.set_user_attr("params", params)
            if params.get("backbone") not in by_name:
                raise TrialFailed(f"backbone '{params.get('backbone')}' is not among those tuned ({', '.join(by_name)})")
            config = TrialConfig.from_params(params, batch_size=self.options.batch_size, patience=self.patience,
                                             image_size=self.options.image_size)
            spec = by_name[config.backbone]
            trained = train_trial(spec, config, data, device, seed=self.options.seed + trial.number,
                                  on_epoch=on_epoch)
            curve[:] = trained.learning_curve
            self._record_success(trial, trained)
            with interrupts.deferred():  # trained: a stop signal waits until the result is kept
                if trained.accuracy > self.best_saved and self.model_dir is not None:
                    # Saved before the value is recorded: a kill in between is recovered by settle_interrupted.
                    self._save(study, trial, spec, config, data, trained, params)
                    self.best_saved = trained.accuracy
                return finish(TrialState.COMPLETE, value=trained.accuracy)
        except optuna.TrialPruned as pruned:
            return finish(TrialState.PRUNED, str(pruned) or "pruned")
        except TrialFailed as failed:
            return finish(TrialState.FAIL, str(failed))
        except Exception as error:  # failures are data: record why, keep searching
            log.debug("trial %d failed", trial.number, exc_info=True)
            return finish(TrialState.FAIL, one_line(error))
        except BaseException as stop:  # SIGINT/SIGTERM: close the trial honestly, then stop
            if not closed:  # (a signal held back until the trial was recorded arrives here after it)
                try:
                    finish(TrialState.FAIL, interrupts.reason(stop))
                except Exception:  # the stop matters more than this record: the next run settles the trial
                    log.warning("trial %d left open; the next run closes it", trial.number, exc_info=True)
            raise

    @staticmethod
    def _record_success(trial: optuna.Trial, trained: TrainedModel) -> None:
        trial.set_user_attr("best_epoch", trained.best_epoch + 1)
        trial.set_user_attr("batch_size", trained.batch_size)
        trial.set_user_attr("stopped_early", trained.stopped_early)
        for key, value in trained.extras.items():
            trial.set_user_attr(key, value)

    def _save(self, study: optuna.Study, trial: optuna.Trial, spec: BackboneSpec, config: TrialConfig,
              data: TuningData, trained: TrainedModel, params: dict[str, Any]) -> None:
        preprocessing = spec.preprocessing_at(self.options.image_size)
        model_config = model_io.model_config(
            spec, preprocessing, strategy=config.strategy, classes=data.classes, val_accuracy=trained.accuracy,
            trial_number=trial.number, study_name=study.study_name, params=params,
            learning_curve=trained.learning_curve)
        model_io.save_model(self.model_dir, trained.model, model_config)

    # --- the whole search ------------------------------------------------------------------------------

    def run(self, dataset: Dataset, recommendation: Recommendation, backbones: Sequence[BackboneSpec]) -> TuningResult:
        if not backbones:
            raise TLAdvisorError("no backbone to tune; check --backbones and `tladvisor backbones`")
        if self.host is None:
            from tladvisor.plugins import PluginHost

            self.host = PluginHost(self.options.plugins_dir)
        options = self.options
        device = pick_device(options.device)
        study = self.open_study()
        self._check_same_backbones(study, backbones)
        self.settle_interrupted(study)
        self.enqueue_recommendation(study, recommendation, backbones)
        data = TuningData(dataset, options, device)
        by_name = {spec.name: spec for spec in backbones}

        saved = model_io.read_config(self.model_dir) if self.model_dir else None
        # The bar a trial must beat to replace the saved model (one from another study does not count).
        self.best_saved = (float(saved["val_accuracy"]) if saved and saved.get("study_name") == study.study_name
                           else -math.inf)
        max_failures = self.max_failures if self.max_failures is not None else max(5, options.trials)
        deadline = time.monotonic() + options.timeout if options.timeout else None
        failures = 0
        while True:
            finished = len(study.get_trials(deepcopy=False, states=FINISHED))
            if options.trials and finished >= options.trials:
                break
            if not options.trials and deadline is None:
                break  # no budget at all: nothing to run
            if deadline is not None and time.monotonic() >= deadline:
                break
            if failures >= max_failures:
                log.warning("stopping the search after %d failed trials in this run", failures)
                break
            trial = study.ask()
            if self.run_trial(study, trial, data, recommendation, by_name, device) == TrialState.FAIL:
                failures += 1
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
        return self.result(study, device)

    def result(self, study: optuna.Study, device: torch.device) -> TuningResult:
        trials = study.get_trials(deepcopy=False)
        best = results.best_complete(trials)
        model_dir = self.model_dir if self.model_dir is not None and model_io.read_config(self.model_dir) else None
        return TuningResult(
            study_name=study.study_name,
            storage=display_url(storage_url(self.options)),
            requested_trials=self.options.trials,
            trials=tuple(results.trial_record(t) for t in trials),
            best=results.trial_record(best) if best is not None else None,
            best_model_dir=str(model_dir) if model_dir is not None else None,
            device=describe(device),
            param_importances=results.param_importances(study),
            best_by_strategy=results.best_by_strategy(trials),
        )
