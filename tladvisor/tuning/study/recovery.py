"""Recovery of lost trials: closing the RUNNING trials of workers that are gone, and queueing them again.

Each trial records its process and, on RDB storages, a heartbeat (:mod:`.liveness`). A RUNNING trial
whose heartbeat is older than the grace period, or whose process on this same machine no longer exists,
is closed as FAIL (reason "worker lost ...") by whichever worker notices first (the state change is
atomic in the storage, so exactly one does), and that one queues it again as a WAITING trial with the
same parameters (system attributes ``failed_trial``/``retry_history``, as Optuna's
``RetryHeartbeatStaleTrialCallback`` writes them; at most :data:`MAX_RETRIES` times).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from tladvisor.tuning import results
from tladvisor.tuning.study.best_model import saved_config
from tladvisor.tuning.study.liveness import PROCESS, process_gone, worker_label
from tladvisor.tuning.study.optuna_access import stale_trial_ids, storage_of, stored_state, trial_id

log = logging.getLogger(__name__)

MAX_RETRIES = 3  # a trial whose worker died this often is not queued again (it may be what kills them)


def settle_interrupted(study: optuna.Study, *, model_dir: Path | None, heartbeat_interval: int | None,
                       grace_period: int | None) -> None:
    """Close the RUNNING trials of workers that are gone, and queue each again with its parameters.

    A RUNNING trial's worker is gone when (1) its heartbeat is older than the grace period (RDB
    storages, any machine), (2) its process was on this machine and has ended, or (3) it records no
    process at all (asked outside tladvisor's workers, or by a version before them: nobody can
    ever tell it is alive). Such a trial becomes FAIL, unless the model it saved is the best model
    on disk (in ``model_dir``): then it was killed between saving and recording its value, and is
    recorded COMPLETE. Live workers' trials are left alone.
    """
    stale = stale_trial_ids(study)
    orphans = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        identity = trial.system_attrs.get(PROCESS)
        if trial_id(trial) in stale:
            grace = grace_period or 2 * (heartbeat_interval or 0)
            orphans.append((trial, f"worker lost: no heartbeat for over {grace} s"))
        elif identity is None:
            orphans.append((trial, "interrupted"))
        elif process_gone(identity):
            orphans.append((trial, f"worker lost: process {worker_label(identity)} has ended"))
    saved = saved_config(model_dir) if orphans else None
    for trial, reason in orphans:
        close_orphan(study, trial, reason, saved)


def close_orphan(study: optuna.Study, trial: FrozenTrial, reason: str, saved: dict[str, Any] | None) -> None:
    storage = storage_of(study)
    try:
        if saved and saved.get("study_name") == study.study_name and saved.get("trial_number") == trial.number:
            # Killed between saving the model and recording the value: the work is complete.
            storage.set_trial_user_attr(trial_id(trial), "learning_curve", saved.get("learning_curve", []))
            storage.set_trial_state_values(trial_id(trial), TrialState.COMPLETE, [float(saved["val_accuracy"])])
            return
        storage.set_trial_user_attr(trial_id(trial), "reason", reason)
        storage.set_trial_user_attr(trial_id(trial), "learning_curve", list(results.learning_curve(trial)))
        if not storage.set_trial_state_values(trial_id(trial), TrialState.FAIL):
            return
    except UpdateFinishedTrialError:
        return  # another worker closed it first, and queued the retry if one was due
    log.info("trial %d closed: %s", trial.number, reason)
    if trial.params:  # a trial that never drew its parameters has nothing to repeat
        queue_retry(study, trial)


def queue_retry(study: optuna.Study, trial: FrozenTrial) -> None:
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    if len(history) > MAX_RETRIES:
        log.warning("trial %d lost its worker %d times; not queued again", history[0], len(history))
        return
    system_attrs = {"failed_trial": history[0], "retry_history": history,
                    "fixed_params": dict(trial.params)}
    user_attrs = {"retry_of": trial.number}
    if "source" in trial.user_attrs:
        user_attrs["source"] = trial.user_attrs["source"]
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.WAITING, params=dict(trial.params), distributions=dict(trial.distributions),
        user_attrs=user_attrs, system_attrs=system_attrs))


def close_interrupted(study: optuna.Study, trial: optuna.Trial, close) -> None:
    """Record a trial stopped by SIGINT/SIGTERM, unless it was recorded already (the signal was held back
    until its result was kept). A failure here must not hide the stop: the next run settles the trial."""
    try:
        if stored_state(study, trial) == TrialState.RUNNING:
            close()
    except Exception:
        log.debug("trial %d left open; the next run closes it", trial.number, exc_info=True)
