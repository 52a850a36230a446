"""The run's best model: compared and saved under an exclusive file lock beside it (``<run>/best_model.lock``),
so two workers finishing at once cannot interleave their renames, and a slower, worse trial cannot overwrite
a better model saved meanwhile by another worker."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from tladvisor.runtime.atomic import file_lock
from tladvisor.backbones import BackboneSpec
from tladvisor.records import AnalysisOptions
from tladvisor.tuning import model_io
from tladvisor.tuning.data import TuningData
from tladvisor.tuning.strategies import TrialConfig
from tladvisor.tuning.study.optuna_access import stored_state
from tladvisor.tuning.trainer import TrainedModel


class Superseded(Exception):
    """This worker's trial was closed by another worker (it presumed this one dead): drop the result."""


def model_dir_of(options: AnalysisOptions) -> Path | None:
    """Where a run keeps its best model (``<run>/best_model``); None without a run folder."""
    return Path(options.run_dir) / "best_model" if options.run_dir is not None else None


def lock_path(model_dir: Path) -> Path:
    return Path(model_dir).with_name(Path(model_dir).name + ".lock")


def saved_config(model_dir: Path | None) -> dict[str, Any] | None:
    """The config of the model saved in ``model_dir`` (read under its lock), or None."""
    if model_dir is None:
        return None
    with file_lock(lock_path(model_dir)):
        return model_io.read_config(model_dir)


class BestModel:
    """The best model of one study in ``model_dir`` (None: not kept), as this process last saw it.

    ``best_saved`` is the validation accuracy a trial must reach to replace the saved model; it only rises.
    """

    def __init__(self, model_dir: Path | None):
        self.model_dir = model_dir
        self.best_saved = -math.inf

    def saved_config(self) -> dict[str, Any] | None:
        return saved_config(self.model_dir)

    def reset_bar(self, study_name: str) -> None:
        """The bar a trial must beat to replace the saved model (one from another study does not count)."""
        saved = self.saved_config()
        self.best_saved = (float(saved["val_accuracy"]) if saved and saved.get("study_name") == study_name
                           else -math.inf)

    def save_if_best(self, study: optuna.Study, trial: optuna.Trial, spec: BackboneSpec, config: TrialConfig,
                     data: TuningData, trained: TrainedModel, params: dict[str, Any], *, image_size: int | None) -> bool:
        """Compare with the model on disk and replace it if this trial is better, under the run's lock.

        Better means a higher validation accuracy, or the same one from an earlier trial (the report's
        best trial wins ties the same way). Another worker may have saved a better model since this
        process last looked, which is why the comparison is made again under the lock. Raises
        :class:`Superseded` when another worker closed the trial meanwhile.
        """
        if self.model_dir is None or trained.accuracy < self.best_saved:  # the saved accuracy only ever rises
            return False
        with file_lock(lock_path(self.model_dir)):
            saved = model_io.read_config(self.model_dir)
            if saved and saved.get("study_name") == study.study_name:
                current = (float(saved["val_accuracy"]), -int(saved.get("trial_number", -1)))
                if current >= (trained.accuracy, -trial.number):
                    self.best_saved = current[0]
                    return False
            if stored_state(study, trial) != TrialState.RUNNING:
                raise Superseded()  # closed by another worker: its retry will save the model if it is best
            preprocessing = spec.preprocessing_at(image_size)
            model_config = model_io.model_config(
                spec, preprocessing, strategy=config.strategy, classes=data.classes, val_accuracy=trained.accuracy,
                trial_number=trial.number, study_name=study.study_name, params=params,
                learning_curve=trained.learning_curve)
            if "text" in model_config:  # trained on one text per .txt file: predict reads files whole too
                model_config["text"]["one_text_per_file"] = data.dataset.source_format == "textfolder"
            folds = trained.extras.get("folds")
            if folds and data.fold_plan is not None:  # the kept model is fold 0's: say what it was validated on
                model_config["cross_validation"] = {
                    "folds": folds["k"], "kept_fold": 0, "kept_fold_val_accuracy": folds["accuracies"][0],
                    "kept_fold_val_images": int(len(data.fold_plan.val[0])), "images": folds["images"]}
            model_io.save_model(self.model_dir, trained.model, model_config)
            self.best_saved = trained.accuracy
        return True
