"""The whole study as the report shows it, readable by any process at any time (workers running or not)."""

from __future__ import annotations

import logging
from pathlib import Path

import optuna

from tladvisor.runtime.device import describe, pick_device
from tladvisor.text import one_line
from tladvisor.records import AnalysisOptions, TuningResult
from tladvisor.tuning import results
from tladvisor.tuning.study.best_model import model_dir_of, saved_config
from tladvisor.tuning.results import NOT_RUN
from tladvisor.tuning.folds import CROSS_VALIDATION
from tladvisor.tuning.study.description import stored_budget
from tladvisor.tuning.study.storage import display_url, load_existing_study, storage_url

log = logging.getLogger(__name__)


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
        versus_advice=results.versus_advice(trials, study.user_attrs.get(CROSS_VALIDATION)),
        cross_validation=study.user_attrs.get(CROSS_VALIDATION),
    )


def study_so_far(options: AnalysisOptions, *, connect: bool) -> TuningResult | None:
    """The study's trials as they are now (for the report of an interrupted run), or None.

    Without ``connect`` only an existing SQLite file is opened: an interrupted run must not wait on a
    database server just to fill in its report.
    """
    url = options.storage
    if not url or not (connect or url.startswith("sqlite:///")):
        return None
    try:
        study = load_existing_study(url, options.study_name)
        if study is None:
            return None
        return tuning_result(study, storage=display_url(storage_url(options)),
                             requested_trials=stored_budget(study, options),
                             device=describe(pick_device(options.device)), model_dir=model_dir_of(options))
    except Exception as error:  # the storage went away: the report goes without it
        log.warning("tuning results not read from %s: %s", display_url(url), one_line(error))
        return None
