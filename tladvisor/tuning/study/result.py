"""The whole study as the report shows it, readable by any process at any time (workers running or not)."""

from __future__ import annotations

from pathlib import Path

import optuna

from tladvisor.records import TuningResult
from tladvisor.tuning import results
from tladvisor.tuning.study.best_model import saved_config
from tladvisor.tuning.study.claims import NOT_RUN


def tuning_result(study: optuna.Study, *, storage: str, requested_trials: int, device: str,
                  model_dir: Path | None, stop_reason: str | None = None) -> TuningResult:
    """The study as the report shows it. Trials that never ran (``not_run``) are left out."""
    trials = [t for t in study.get_trials(deepcopy=False) if NOT_RUN not in t.user_attrs]
    best = results.best_complete(trials)
    if model_dir is not None and not Path(model_dir).parent.is_dir():
        model_dir = None  # the run folder is on another machine
    if model_dir is not None and saved_config(model_dir) is None:
        model_dir = None
    return TuningResult(
        study_name=study.study_name,
        storage=storage,
        requested_trials=requested_trials,
        trials=tuple(results.trial_record(t) for t in trials),
        best=results.trial_record(best) if best is not None else None,
        best_model_dir=str(model_dir) if model_dir is not None else None,
        device=device,
        param_importances=results.param_importances(study),
        best_by_strategy=results.best_by_strategy(trials),
        stop_reason=stop_reason,
        versus_advice=results.versus_advice(trials),
    )
