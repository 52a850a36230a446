"""One trial trained on each cross-validation fold (:mod:`tladvisor.tuning.folds`), scored by the mean.

Fold 0 trains first and is the trial's live learning curve: its epochs are reported to Optuna and
the pruner judges them, so a trial is compared with trials of its strategy on the same fold (fair, and
a poor trial is stopped before it costs K trainings). The other folds train without pruning. The kept
model is fold 0's (trained on the other folds' images); its validation accuracy is the trial's mean.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import replace

import torch

from tladvisor.backbones import BackboneSpec
from tladvisor.tuning.data import TuningData
from tladvisor.tuning.folds import fold_summary
from tladvisor.tuning.paired_test import CORRECTNESS_ATTR
from tladvisor.tuning.strategies import TrialConfig
from tladvisor.tuning.trainer import DeadlineReached, EpochCallback, TrainedModel, train_trial

FoldCallback = Callable[[int, int], None]
"""Called before each fold trains with (fold, number of folds), both counted from 0 / as a count."""


def train_cross_validated(spec: BackboneSpec, config: TrialConfig, data: TuningData, device: torch.device, *,
                          seed: int, on_epoch: EpochCallback | None = None, deadline: float | None = None,
                          on_fold: FoldCallback | None = None, train=train_trial) -> TrainedModel:
    """Train ``config`` on every fold of ``data`` (each with ``train``, :func:`train_trial`'s signature);
    the result's accuracy is the mean over folds."""
    views = data.fold_views()
    assert data.fold_plan is not None and views, "train_cross_validated needs a run with folds"
    limit = {} if deadline is None else {"deadline": deadline}
    trained: list[TrainedModel] = []
    for fold, view in enumerate(views):
        if on_fold is not None:
            on_fold(fold, len(views))
        try:
            trained.append(train(spec, config, view, device, seed=seed,
                                 on_epoch=on_epoch if fold == 0 else None, **limit))
        except DeadlineReached as stopped:  # which fold it stopped, for the trial's reason
            stopped.fold, stopped.folds = fold, len(views)
            raise
    accuracies = [t.accuracy for t in trained]
    first = trained[0]
    extras = dict(first.extras)
    for key in first.extras:  # numeric extras (balanced accuracy, probe accuracy): their mean
        values = [t.extras.get(key) for t in trained]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            extras[key] = float(statistics.fmean(values))
    # Each image is validated in exactly one fold, the same for every trial: the folds' correctness in
    # fold order is the trial's per-image record over the whole pool (the paired test compares those).
    parts = [t.extras.get(CORRECTNESS_ATTR) for t in trained]
    if all(isinstance(p, str) for p in parts):
        extras[CORRECTNESS_ATTR] = "".join(parts)
    else:  # one fold without it: fold 0's alone must not pass for the whole pool
        extras.pop(CORRECTNESS_ATTR, None)
    summary = fold_summary(accuracies, data.fold_plan.pool_size, data.unit)
    summary["curves"] = [list(t.learning_curve) for t in trained]
    summary["best_epochs"] = [t.best_epoch + 1 for t in trained]
    extras["folds"] = summary
    return replace(first, accuracy=summary["mean"], extras=extras)
