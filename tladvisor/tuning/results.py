"""From the Optuna study to the :class:`tladvisor.records.TuningResult` the report shows."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tladvisor.records import TrialRecord

log = logging.getLogger(__name__)

MIN_TRIALS_FOR_IMPORTANCE = 4  # below this the importance estimate is noise


def trial_params(trial: FrozenTrial) -> dict[str, Any]:
    """The parameters the trial trained with (resolved by the search space), else Optuna's drawn ones."""
    return dict(trial.user_attrs.get("params") or trial.params)


def trial_record(trial: FrozenTrial) -> TrialRecord:
    duration = trial.user_attrs.get("duration")
    if duration is None and trial.duration is not None:
        duration = trial.duration.total_seconds()
    return TrialRecord(
        number=trial.number,
        state=trial.state.name,
        value=trial.value if trial.state == TrialState.COMPLETE else None,
        params=trial_params(trial),
        duration_s=None if duration is None else float(duration),
        reason=trial.user_attrs.get("reason"),
        learning_curve=learning_curve(trial),
    )


def learning_curve(trial: FrozenTrial) -> tuple[float, ...]:
    """Validation accuracy per epoch; from the reported values when the trial never finished."""
    curve = trial.user_attrs.get("learning_curve")
    if curve is None:
        curve = [trial.intermediate_values[step] for step in sorted(trial.intermediate_values)]
    return tuple(float(v) for v in curve)


def best_complete(trials: list[FrozenTrial]) -> FrozenTrial | None:
    """Highest validation accuracy; the earliest trial wins a tie (it is the one whose model was saved)."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    return max(complete, key=lambda t: (t.value, -t.number)) if complete else None


def best_by_strategy(trials: list[FrozenTrial]) -> dict[str, int]:
    best: dict[str, FrozenTrial] = {}
    for trial in trials:
        if trial.state != TrialState.COMPLETE or trial.value is None:
            continue
        strategy = str(trial_params(trial).get("strategy"))
        current = best.get(strategy)
        if current is None or trial.value > current.value:
            best[strategy] = trial
    return {strategy: trial.number for strategy, trial in best.items()}


def param_importances(study: optuna.Study) -> dict[str, float]:
    """Optuna's importance estimate over complete trials; {} when too few or when it cannot be computed."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE or len({t.value for t in complete}) < 2:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importances = optuna.importance.get_param_importances(study)
    except Exception as error:  # conditional spaces with few trials can defeat the estimator
        log.info("parameter importances not computed: %s", error)
        return {}
    return {name: float(value) for name, value in importances.items()}
