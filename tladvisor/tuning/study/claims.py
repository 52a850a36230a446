"""The budget, global and exact: which trials hold a place in it, and claiming a place for this process.

A *claim* is a trial that is COMPLETE, PRUNED, RUNNING or WAITING, unless it was *cut short*
(:func:`cut_short`: failed, or stopped by the ``--timeout`` deadline; such a trial holds no place, and its
parameters may be queued again). Before asking, a worker checks that
the claims leave room; after asking it keeps its trial only if fewer than ``budget`` claims have a
smaller trial number, else it closes the trial at once as FAIL with the user attribute ``not_run`` (it
never trained; the report leaves it out). Storages number trials in creation order under a lock, and a
claim only ever leaves (by failing or by the deadline), so two workers racing for the last slot agree on who won.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from tladvisor.backbones import BackboneSpec
from tladvisor.records import Recommendation
from tladvisor.tuning.race import RACE
from tladvisor.tuning.results import DEADLINE, NOT_RUN, STOPPED_BY
from tladvisor.tuning.search import recommendation_params
from tladvisor.tuning.study.liveness import PROCESS
from tladvisor.tuning.study.optuna_access import forget_cached_trials, storage_of, study_id, trial_id

log = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
CLAIMS = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
"""Trials that hold a place in the budget (finished, running or queued to run) unless cut short."""


def cut_short(trial: FrozenTrial) -> bool:
    """Whether the trial never ran to an end: it failed, or the ``--timeout`` deadline stopped it."""
    return trial.state == TrialState.FAIL or trial.user_attrs.get(STOPPED_BY) == DEADLINE


def holds_place(trial: FrozenTrial) -> bool:
    """Whether the trial holds a place in the ``--trials`` budget (finished, running or queued, not cut short)."""
    return trial.state in CLAIMS and not cut_short(trial)


def fills_place(trial: FrozenTrial) -> bool:
    """Whether the trial is a finished one of the ``--trials`` budget (COMPLETE or pruned, not cut short)."""
    return trial.state in FINISHED and not cut_short(trial)


def enqueue_recommendation(study: optuna.Study, recommendation: Recommendation,
                           backbones: Sequence[BackboneSpec], strategies=None, budget: int = 0) -> None:
    """The recommendation is the first trial, then the race's other contenders (``recommendation.learned
    ["race"]``, :mod:`tladvisor.tuning.race`), each with its ``race_position``, as many as the places ``budget``
    leaves (0: all). A contender is queued again only if it never ran to an end (failed, or stopped by the
    ``--timeout`` deadline: without its own result the advice cannot be compared). When the recommendation
    itself must be queued again, contenders still waiting from an earlier run are closed (``not_run``) and
    queued after it, so the race keeps its order.

    ``strategies``: the run's strategy registry (default: the built-ins)."""
    race = [replace(recommendation, strategy=c["strategy"], freeze_depth=int(c["freeze_depth"]),
                    learning_rates=dict(c["learning_rates"]), epochs=int(c["epochs"]))
            for c in (recommendation.learned or {}).get("race", [])]
    entries: list[tuple[str, dict[str, Any]]] = []
    for source, advice in [("recommendation", recommendation), *((RACE, r) for r in race)]:
        params = recommendation_params(advice, backbones, strategies)
        if all(params != queued for _, queued in entries):  # contenders the search space makes the same trial
            entries.append((source, params))
    race_id = hashlib.sha1(json.dumps(entries[0][1], sort_keys=True, default=str).encode()).hexdigest()[:12]
    trials = study.get_trials(deepcopy=False)

    def present(params: dict[str, Any]) -> bool:
        return any(t.system_attrs.get("fixed_params") == params and not cut_short(t) for t in trials)
    # Waiting advice trials of another recommendation (an earlier analyze advised otherwise) never run; when
    # this recommendation must be queued again, its own waiting contenders are queued again after it.
    requeue = not present(entries[0][1])
    stale = [t for t in trials if t.state == TrialState.WAITING and t.user_attrs.get("source") in (RACE, "recommendation")
             and (t.user_attrs.get("race_id") != race_id or (requeue and t.user_attrs.get("source") == RACE))]
    storage = storage_of(study)
    for trial in stale:  # a worker may pop one meanwhile: set_trial_state_values then refuses, and it runs
        try:
            storage.set_trial_user_attr(trial_id(trial), NOT_RUN, "the advice was queued again or changed")
            storage.set_trial_state_values(trial_id(trial), TrialState.FAIL)
        except UpdateFinishedTrialError:
            pass
    if stale:
        trials = study.get_trials(deepcopy=False)
    room = budget - sum(holds_place(t) for t in trials) if budget else len(entries)
    for position, (source, params) in enumerate(entries):
        if present(params):
            continue
        if room <= 0:
            break
        study.enqueue_trial(params, user_attrs={"source": source, "race_position": position, "race_id": race_id})
        room -= 1


def ask(study: optuna.Study, identity: dict[str, Any]) -> optuna.Trial:
    """``study.ask()``, except the trial carries ``identity`` (this process's) from the moment it is RUNNING,
    so no other worker can mistake it for an orphan (rule 3 of :func:`~.recovery.settle_interrupted`).

    Why not Optuna's public API: ``Study.ask()`` pops a WAITING trial (or creates one) and only then lets the
    caller set attributes, so between the two another worker's liveness check sees a RUNNING trial that
    names no process and may fail it as lost. Optuna offers no hook to set an attribute in the same step, so
    this re-does ``ask``'s two storage calls (pop a WAITING trial with ``set_trial_state_values``, else
    ``create_new_trial`` from a template) with the identity written first, and builds the ``optuna.Trial``
    the way ``ask`` does. The storage methods are public (``BaseStorage``); the study's storage and id are
    reached through :mod:`.optuna_access`, the one module that touches Optuna's private attributes, and
    ``tests/test_scale_out.py`` runs this against SQLite and PostgreSQL workers so an Optuna upgrade that
    changes them fails there."""
    storage, study_number = storage_of(study), study_id(study)
    forget_cached_trials(study)  # what ask() does: the sampler sees the latest trials
    for waiting in storage.get_all_trials(study_number, deepcopy=False, states=(TrialState.WAITING,)):
        try:  # identity first: whoever wins the pop below, the trial names a live process
            storage.set_trial_system_attr(trial_id(waiting), PROCESS, identity)
            if storage.set_trial_state_values(trial_id(waiting), state=TrialState.RUNNING):
                claimed = trial_id(waiting)
                storage.set_trial_system_attr(claimed, PROCESS, identity)
                break
        except UpdateFinishedTrialError:
            continue
    else:
        template = optuna.trial.create_trial(state=TrialState.RUNNING, system_attrs={PROCESS: identity})
        claimed = storage.create_new_trial(study_number, template_trial=template)
    return optuna.Trial(study, claimed)


def refusal(study: optuna.Study, trial: optuna.Trial, budget: int) -> str | None:
    """Why ``trial`` may not run (it came after the budget was claimed, or repeats a queued trial; a trial
    cut short, see :func:`cut_short`, neither holds a place nor counts as a twin)."""
    everything = study.get_trials(deepcopy=False)
    earlier = [t for t in everything if t.number < trial.number and holds_place(t)]
    if budget and len(earlier) >= budget:
        return f"the budget of {budget} trials was claimed by other workers first"
    fixed = next((t.system_attrs.get("fixed_params") for t in everything if t.number == trial.number), None)
    if fixed is not None:
        twin = next((t for t in earlier if t.system_attrs.get("fixed_params") == fixed), None)
        if twin is not None:
            return f"queued twice: trial #{twin.number} runs these parameters"
    return None


def claim(study: optuna.Study, budget: int, identity: dict[str, Any]) -> optuna.Trial | None:
    """A trial this process may run, or None when the ask lost the race for the last places."""
    trial = ask(study, identity)
    why_not = refusal(study, trial, budget)
    if why_not is None:
        return trial
    storage = storage_of(study)
    try:
        storage.set_trial_user_attr(trial_id(trial), NOT_RUN, why_not)
        storage.set_trial_state_values(trial_id(trial), TrialState.FAIL)
    except UpdateFinishedTrialError:
        pass
    log.info("trial %d not run: %s", trial.number, why_not)
    return None
