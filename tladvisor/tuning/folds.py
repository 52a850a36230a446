"""Cross-validated trial evaluation for small data: when to use it, and the folds.

A validation split too small to tell strategies ten points apart (fewer than
:func:`tladvisor.advice.recommend.validation_images_needed` images, 193) makes the tuner's "best" trial noise.
When the data is also small enough that training every trial K times is affordable (at most
``CV_MAX_IMAGES`` images in train+val), each trial is scored on K stratified folds of the train+val pool
instead: every image is validated exactly once and the trial's value is the mean accuracy over folds.
The folds are drawn once from the run's seed, so every trial (and every re-run) compares on the same ones.
A dataset with its own validation split (a ``val/`` or ``test/`` folder, a split column) keeps it: no CV.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import numpy as np

from tladvisor.data.split import content_groups
from tladvisor.measures.spread import sample_sd, standard_error
from tladvisor.records import Dataset

DEFAULT_CV_FOLDS = 3
CV_MAX_IMAGES = 1000  # train+val images up to which K trainings per trial count as affordable ("auto")
CROSS_VALIDATION = "cross_validation"  # study user attr: how this run's trials are scored (cv_description)


@dataclass(frozen=True)
class FoldPlan:
    """The folds of one run: ``val[k]`` are the dataset indices fold ``k`` validates on (sorted)."""

    train: tuple[np.ndarray, ...]
    val: tuple[np.ndarray, ...]
    pool_size: int  # images validated across the folds (each exactly once)
    note: str  # why CV runs, said in the report

    @property
    def k(self) -> int:
        return len(self.val)


def parse_cv_folds(value: object) -> int | None:
    """``"auto"`` (None: the rule decides) or a fold count >= 1; raises ValueError otherwise."""
    if value is None or str(value).strip().lower() == "auto":
        return None
    folds = int(str(value))
    if folds < 1:
        raise ValueError(f"--cv-folds must be 'auto' or a whole number >= 1 (got {value})")
    return folds


def wanted_folds(dataset: Dataset, n_pool: int, n_val: int, option: object) -> tuple[int, str]:
    """How many folds to use (1: the single split) and why, for a split with ``n_val`` of ``n_pool`` images."""
    from tladvisor.data.split import has_predefined_split  # owned by data intake; imported late on purpose
    from tladvisor.data.wording import sample_noun
    from tladvisor.advice.recommend import validation_images_needed

    asked = parse_cv_folds(option)
    if asked == 1:
        return 1, "--cv-folds 1: one train/validation split"
    if has_predefined_split(dataset):
        return 1, "the dataset has its own validation split, which is kept: no cross-validation"
    if asked is not None:
        return asked, f"--cv-folds {asked}"
    needed = validation_images_needed()
    unit = f"{sample_noun(dataset)}s"
    if n_val >= needed:
        return 1, f"the validation split ({n_val} {unit}) can tell strategies apart"
    if n_pool > CV_MAX_IMAGES:
        return 1, (f"the validation split ({n_val} {unit}) is below the {needed} needed to tell strategies "
                   f"apart, but {n_pool} {unit} are more than {CV_MAX_IMAGES} to train {DEFAULT_CV_FOLDS} times "
                   f"per trial (set --cv-folds to force it)")
    return DEFAULT_CV_FOLDS, (f"the validation split would hold {n_val} {unit}, below the {needed} needed to tell "
                              f"strategies 10 points apart; every trial is scored on {DEFAULT_CV_FOLDS} folds of "
                              f"the {n_pool} {unit} instead")


def make_folds(dataset: Dataset, pool: np.ndarray, k: int, seed: int, note: str = "") -> FoldPlan | None:
    """K stratified folds of ``pool`` (dataset indices), fixed by ``seed``; None when fewer than 2 folds
    can be made. A class with a single distinct image stays in training, as the single split keeps it."""
    rng = np.random.default_rng(seed)
    groups = content_groups(dataset, np.asarray(pool, dtype=np.int64))  # identical images share a fold
    k = min(k, max((len(g) for g in groups.values()), default=0))
    if k < 2:
        return None
    folds: list[list[int]] = [[] for _ in range(k)]
    always_train: list[int] = []
    turn = 0  # continues across classes, so the folds' sizes stay within one image of each other
    for label in sorted(groups):
        members = groups[label]
        if len(members) < 2:
            always_train.extend(i for g in members for i in g)
            continue
        for position in rng.permutation(len(members)):
            folds[turn % k].extend(members[position])
            turn += 1
    everything = np.asarray(sorted(always_train + [i for f in folds for i in f]), dtype=np.int64)
    val = tuple(np.asarray(sorted(f), dtype=np.int64) for f in folds)
    train = tuple(np.setdiff1d(everything, v) for v in val)
    return FoldPlan(train, val, sum(len(v) for v in val), note)


def fold_summary(accuracies: list[float], pool_size: int, unit: str = "images") -> dict[str, object]:
    """What a trial records about its folds (user attr and analysis.json ``folds``): ``spread`` is the sample
    standard deviation of the fold accuracies, ``standard_error`` that of their mean (measures.spread)."""
    return {"k": len(accuracies), "accuracies": [float(a) for a in accuracies],
            "mean": float(statistics.fmean(accuracies)), "spread": sample_sd(accuracies),
            "standard_error": standard_error(accuracies), "images": int(pool_size), "unit": unit}


def fold_standard_error(folds: dict) -> float:
    """The standard error of a cross-validated trial's mean accuracy (from ``spread`` for trials recorded
    before it was stored)."""
    if isinstance(folds.get("standard_error"), (int, float)):
        return float(folds["standard_error"])
    k = int(folds.get("k") or 1)
    return float(folds.get("spread") or 0.0) / math.sqrt(max(k, 1))


def cv_accuracy_text(value: float, folds: dict | None) -> str:
    """``0.833 ± 0.083 (standard error over 3 folds, 12 images in all)`` when the trial was cross-validated,
    else ``0.833``. The ± is the error of the mean a reader compares trials by, said as such."""
    if not folds or not folds.get("k"):
        return f"{value:.3f}"
    return (f"{value:.3f} ± {fold_standard_error(folds):.3f} (standard error over {folds['k']} folds, "
            f"{folds.get('images')} {folds.get('unit', 'images')} in all)")


def cv_description(plan: FoldPlan | None, reason: str, n_val: int, unit: str = "images") -> dict[str, object]:
    """How the trials are scored, for the study and the report: ``folds`` 1 means the single split; ``images``
    counts the samples, which ``unit`` names ("images", "texts")."""
    if plan is None:
        return {"folds": 1, "images": int(n_val), "reason": reason, "unit": unit}
    return {"folds": plan.k, "images": plan.pool_size, "reason": reason, "unit": unit}
