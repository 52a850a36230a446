"""The only module that reaches into Optuna's private attributes.

Optuna's public API covers a study run by one process; tladvisor's workers also close, claim and read
other processes' trials by their storage id, which needs the study's storage, its id and a trial's id.
Every such access goes through here, so an Optuna upgrade that renames them breaks one file.
(``optuna.storages.fail_stale_trials`` does not fit the recovery: it fails a stale trial before the
saved best model can be checked, and its retry callback cannot record why the worker was lost.)
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tladvisor.tuning.study.storage import heartbeat_enabled


def storage_of(study: optuna.Study) -> Any:
    """The study's storage object (Optuna keeps it private)."""
    return study._storage


def study_id(study: optuna.Study) -> int:
    return study._study_id


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """A trial's id in the storage (unique across studies; ``number`` is only unique within one)."""
    return trial._trial_id


def forget_cached_trials(study: optuna.Study) -> None:
    """Drop the study's per-thread trial cache, as ``study.ask()`` does, so the sampler sees the latest trials."""
    study._thread_local.cached_all_trials = None


def stale_trial_ids(study: optuna.Study) -> set[int]:
    """Ids of the RUNNING trials whose heartbeat is older than the grace period (RDB storages; else none)."""
    storage = study._storage
    if heartbeat_enabled(storage) and hasattr(storage, "_get_stale_trial_ids"):
        return set(storage._get_stale_trial_ids(study._study_id))
    return set()


def stored_state(study: optuna.Study, trial: optuna.Trial | FrozenTrial) -> TrialState:
    """The trial's state in the storage now (another worker may have closed it)."""
    return study._storage.get_trial(trial._trial_id).state
