"""One trial, from drawing its parameters to recording its final state (and saving its model when best).

A worker that comes back after its trial was closed by another one (presumed lost) finds the trial
finished and drops its result: nothing is counted twice. A trial still running at the ``--timeout``
deadline is stopped within a batch and recorded PRUNED with the epochs it finished (``stopped_by``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import optuna
import torch
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from tladvisor.runtime import interrupts
from tladvisor.backbones import BackboneSpec
from tladvisor.runtime.device import describe
from tladvisor.text import one_line
from tladvisor.records import AnalysisOptions, Recommendation
from tladvisor.tuning.data import TuningData
from tladvisor.tuning import results
from tladvisor.tuning.cross_validation import train_cross_validated
from tladvisor.tuning.race import RacePruner
from tladvisor.tuning.pruning import StrategyMedianPruner, trial_strategy
from tladvisor.tuning.strategies import TrialConfig
from tladvisor.tuning.study.best_model import Superseded
from tladvisor.tuning.results import DEADLINE, STOPPED_BY
from tladvisor.tuning.study.claims import fills_place
from tladvisor.tuning.study.liveness import WORKER, Heartbeat, worker_label
from tladvisor.tuning.study.optuna_access import storage_of, trial_id
from tladvisor.tuning.study.recovery import close_interrupted
from tladvisor.plugins import strategy_registry
from tladvisor.tuning.study.storage import heartbeat_enabled
from tladvisor.tuning.study.trial_progress import STOPPED_BY_DEADLINE, TrialProgress
from tladvisor.tuning.trainer import DeadlineReached, TrainedModel, TrialFailed, train_trial

log = logging.getLogger(__name__)

SaveIfBest = Callable[[optuna.Study, optuna.Trial, BackboneSpec, TrialConfig, TuningData, TrainedModel,
                       dict[str, Any]], bool]


def suggest_params(host, trial: optuna.Trial, recommendation: Recommendation, backbones: Sequence[BackboneSpec],
                   options: AnalysisOptions) -> dict[str, Any]:
    """The trial's parameters, drawn by the first ``search_space`` plugin that returns some."""
    params = host.call("search_space", trial=trial, recommendation=recommendation,
                       backbones=list(backbones), options=options, strategies=strategy_registry(host))
    if params is None:
        failures = [f.error for f in host.failures if f.hook == "search_space"]
        detail = f": {failures[-1]}" if failures else ""
        raise TrialFailed(f"no search_space plugin returned parameters{detail}")
    return dict(params)


def record_success(trial: optuna.Trial, trained: TrainedModel) -> None:
    trial.set_user_attr("best_epoch", trained.best_epoch + 1)
    trial.set_user_attr("batch_size", trained.batch_size)
    trial.set_user_attr("stopped_early", trained.stopped_early)
    for key, value in trained.extras.items():
        trial.set_user_attr(key, value)


def prune_reason(study: optuna.Study, trial: optuna.Trial, epoch: int, curve: list[float]) -> str:
    """Why the pruner stopped the trial, with the bar it missed and whose median that was."""
    bar, peers = None, "finished trials"
    pruner = study.pruner
    frozen = storage_of(study).get_trial(trial_id(trial))
    if isinstance(pruner, RacePruner):
        raced = pruner.reason(study, frozen)
        if raced is not None:
            return raced
        pruner = pruner.fallback
    if isinstance(pruner, StrategyMedianPruner):
        bar = pruner.bar(study, frozen)
        if trial_strategy(frozen):
            peers = f"finished {trial_strategy(frozen)} trials"
    median = f" ({bar:.3f})" if bar is not None else ""
    return f"pruned at epoch {epoch + 1}: best val accuracy {max(curve):.3f} is below the median{median} of {peers}"


def deadline_reason(stopped: DeadlineReached, finished_epochs: int) -> str:
    """Why the ``--timeout`` deadline pruned the trial: where it stopped (the fold too, under cross-validation)
    and what was kept (the live curve, fold 1's under cross-validation)."""
    where = f"epoch {stopped.epoch + 1}"
    if stopped.folds is not None and stopped.fold is not None:
        where += f" of fold {stopped.fold + 1} of {stopped.folds}"
    if not finished_epochs:
        kept = "no epoch had finished"
    elif stopped.fold:  # a later fold: the curve kept is fold 1's
        kept = f"fold 1's {finished_epochs} finished epochs kept"
    else:
        kept = f"its {finished_epochs} finished epochs kept"
    return f"{STOPPED_BY_DEADLINE} during {where} ({kept})"


def _finished_count(study: optuna.Study) -> int:
    """The budget's places filled: what "trial N/budget" and the time left count against."""
    return sum(fills_place(t) for t in study.get_trials(deepcopy=False))


def run_trial(study: optuna.Study, trial: optuna.Trial, data: TuningData, recommendation: Recommendation,
              by_name: dict[str, BackboneSpec], device: torch.device, *, host, options: AnalysisOptions,
              patience: int, identity: dict[str, Any], heartbeat_interval: int | None,
              save_if_best: SaveIfBest, deadline: float | None = None,
              progress_view: TrialProgress | None = None) -> TrialState | None:
    """Run and record one trial (``save_if_best`` keeps its model when it beats the saved one); return its
    final state, or None when another worker closed the trial meanwhile (this result is then dropped).
    ``deadline`` (``time.monotonic()``) stops it mid-epoch; ``progress_view`` says how it goes."""
    started = time.perf_counter()
    curve: list[float] = []
    planned = {"epochs": 1 << 30}  # the trial's epochs, once its parameters are drawn
    reported: set[int] = set()
    finished_before = _finished_count(study) if progress_view is not None else 0

    def on_epoch(epoch: int, value: float) -> None:
        del curve[epoch:]  # an out-of-memory retry starts again at epoch 0
        curve.append(value)
        if epoch not in reported:  # stored as intermediate values: a killed trial keeps its curve
            reported.add(epoch)
            try:
                trial.report(value, epoch)
            except UpdateFinishedTrialError:
                raise Superseded() from None
        if progress_view is not None:
            progress_view.epoch(epoch, value)
        # A trial at its last epoch has spent its budget: pruning it then would save nothing and call a
        # finished trial 'pruned at epoch 6' of 6; it completes with its value instead.
        if epoch + 1 < planned["epochs"] and trial.should_prune():
            raise optuna.TrialPruned(prune_reason(study, trial, epoch, curve))

    def finish(state: TrialState, reason: str | None = None, value: float | None = None) -> TrialState | None:
        seconds = time.perf_counter() - started
        try:
            trial.set_user_attr("duration", round(seconds, 3))
            trial.set_user_attr("learning_curve", list(curve))
            if reason:
                trial.set_user_attr("reason", reason)
            stored = study.tell(trial, value, state=state, skip_if_finished=True)
        except UpdateFinishedTrialError:
            return superseded()
        if stored.state != state or (value is not None and stored.value != value):
            return superseded()
        if progress_view is not None:
            everything = study.get_trials(deepcopy=False)
            best = results.best_complete(everything)
            progress_view.finished(state.name, value=value, curve=list(curve), best=best.value if best else None,
                                   seconds=seconds, reason=reason, metrics=dict(stored.user_attrs),
                                   finished_now=sum(fills_place(t) for t in everything))
        return state

    def superseded() -> None:
        log.warning("trial %d was closed by another worker meanwhile (this one was presumed lost); "
                    "its result is dropped and the retry counts instead", trial.number)
        return None

    storage = storage_of(study)
    with Heartbeat(storage, trial_id(trial), heartbeat_interval if heartbeat_enabled(storage) else None):
        try:
            trial.set_user_attr(WORKER, worker_label(identity))
            trial.set_user_attr("device", describe(device))
            params = suggest_params(host, trial, recommendation, list(by_name.values()), options)
            trial.set_user_attr("params", params)
            if params.get("backbone") not in by_name:
                raise TrialFailed(f"backbone '{params.get('backbone')}' is not among those tuned "
                                  f"({', '.join(by_name)})")
            config = TrialConfig.from_params(params, strategies=strategy_registry(host),
                                             batch_size=options.batch_size, patience=patience,
                                             image_size=options.image_size)
            spec = by_name[config.backbone]
            # Under cross-validation fold 0's last epoch is not the trial's last (K-1 folds follow): prune then too.
            planned["epochs"] = config.epochs if data.fold_plan is None else 1 << 30
            if progress_view is not None:
                progress_view.started(finished_before, params, trial.number)
            limit = {} if deadline is None else {"deadline": deadline}
            if data.fold_plan is not None:  # small data: scored on K folds, fold 0's curve is reported live
                on_fold = progress_view.fold if progress_view is not None else None
                trained = train_cross_validated(spec, config, data, device, seed=options.seed + trial.number,
                                                on_epoch=on_epoch, on_fold=on_fold, train=train_trial, **limit)
            else:
                trained = train_trial(spec, config, data, device, seed=options.seed + trial.number,
                                      on_epoch=on_epoch, **limit)
            curve[:] = trained.learning_curve
            record_success(trial, trained)
            with interrupts.deferred():  # trained: a stop signal waits until the result is kept
                # Saved before the value is recorded: a kill in between is recovered by settle_interrupted.
                save_if_best(study, trial, spec, config, data, trained, params)
                return finish(TrialState.COMPLETE, value=trained.accuracy)
        except (Superseded, UpdateFinishedTrialError):
            return superseded()
        except optuna.TrialPruned as pruned:
            return finish(TrialState.PRUNED, str(pruned) or "pruned")
        except DeadlineReached as stopped:
            trial.set_user_attr(STOPPED_BY, DEADLINE)
            return finish(TrialState.PRUNED, deadline_reason(stopped, len(curve)))
        except TrialFailed as failed:
            return finish(TrialState.FAIL, str(failed))
        except Exception as error:  # failures are data: record why, keep searching
            log.debug("trial %d failed", trial.number, exc_info=True)
            return finish(TrialState.FAIL, one_line(error))
        except BaseException as stop:  # SIGINT/SIGTERM: close the trial honestly, then stop
            why = interrupts.reason(stop)  # bound now: 'stop' is unbound once the except block ends
            close_interrupted(study, trial, lambda: finish(TrialState.FAIL, why))
            raise
