"""The scores of transfer for one backbone, from its :class:`FeatureSet`: the numerics of this package as
:class:`Score` records (the built-in plugin :mod:`tladvisor.builtin.measures` is the hook that calls them).

Every measure becomes a :class:`Score` with its raw ``value``, an uncertainty ``spread`` (CV std
or bootstrap std) and a ``normalised`` number in [0, 1] (1 = transfers well / like the source) that
can be compared across datasets and sits beside the raw number in the report:

- probes, ``knn_accuracy`` / ``linear_probe_accuracy`` (and ``*_random`` on a randomly initialised
  copy): normalised ``(acc - chance) / (1 - chance)``, chance = majority-class rate;
- ``pretraining_gain``: linear probe pretrained minus random, normalised by the same headroom
  ``1 - chance``; its spread is the std of the per-fold differences (both probes use the same folds);
- ``logme``: normalised ``1 - exp(-2 (LogME - LogME_0))``, the Cox-Snell pseudo-R^2 (Cox and Snell,
  "Analysis of Binary Data", 1989) of the evidence against LogME_0, the evidence of the same labels
  under an intercept-only model (class frequencies alone). For a Gaussian linear model the
  per-sample log-likelihood gain is ``-1/2 log(1 - R^2)``, so this reads as the share of the
  one-vs-rest label variance the features explain, net of LogME's complexity penalty. It is a
  squashing of the evidence gain onto [0, 1) like a logistic would be, but with a meaning and no
  free scale; raw LogME moves with the number and balance of classes (LogME_0 is about -0.61 for
  4 balanced classes, +0.89 for 100), the gain does not. Its spread comes from subsets without
  repeated rows (the delete-d jackknife), not the bootstrap: repeats inflate LogME when rows < features;
- ``leep``, ``nce`` (only with source-classifier probabilities): normalised ``1 + x / H(Y)``, the
  share of the label entropy the source classifier explains (LEEP of an input-blind classifier and
  NCE of an independent source label are both ``-H(Y)``; a perfect one scores 0);
- ``hscore``: normalised by its upper bound ``min(C - 1, d)``;
- ``bn_shift``, ``bn_shift_early``, ``bn_shift_late``: geometric-mean symmetric KL over stages (all,
  first half, second half), normalised with :func:`tladvisor.measures.shift.shift_similarity`,
  ``1 / (1 + KL / 0.74)``, the mapping calibrated on controlled shifts of natural photos that the
  summary similarity uses too (so the two agree; ``exp(-KL)`` would call a greyscale photo set
  ten times less similar than the calibration does);
- ``frechet_to_source`` and ``mmd_to_source`` (only with a source sample): normalised
  ``1 - FD / (||mu_a - mu_b||^2 + tr S_a + tr S_b)`` and ``1 - MMD^2 / (k_aa + k_bb)``.

A measure the data cannot support (one sample per class, mismatched shapes) is left out, never raised.
A measure that raises loses only itself: it is kept as a score with no value (``NaN``) whose detail names
the error, and every other measure still stands (:func:`_each_alone`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tladvisor.measures.bootstrap import bootstrap, bootstrap_two_sample, subsample
from tladvisor.measures.distances import (
    KernelMeans,
    frechet_distance,
    frechet_scale,
    kernel_means,
    median_heuristic_bandwidth,
    rbf_kernel,
)
from tladvisor.measures.probes import (
    KNN_NEIGHBOURS,
    CrossValidatedAccuracy,
    knn_probe_cv,
    linear_probe_cv,
)
from tladvisor.measures.spread import sample_sd
from tladvisor.measures.transferability import hscore_shrinkage, label_entropy, leep, logme, nce
from tladvisor.records import FeatureSet, Score, StageShift
from tladvisor.runtime.threads import blas_threads_for
from tladvisor.measures.shift import geometric_mean, shift_similarity
from tladvisor.measures import names
from tladvisor.text import one_line

log = logging.getLogger(__name__)

BOOTSTRAP_RESAMPLES = 20
BOOTSTRAP_MAX_ROWS = 400  # rows per resample: keeps 20 resamples of 1280-d features to about a second
MMD_MAX_ROWS = 1000  # rows per side for the MMD kernel matrix
CV_FOLDS = 5


def measure_feature_set(feature_set: FeatureSet, *, seed: int = 0, folds: int = CV_FOLDS) -> dict[str, Score]:
    """All the scores this plugin can compute from ``feature_set``, by measure name."""
    target = _TargetData.from_feature_set(feature_set)
    scores: dict[str, Score] = {}
    with blas_threads_for(target.features.size):  # small arithmetic: one thread is faster
        scores.update(probe_scores(target, seed=seed, folds=folds))
        scores.update(transferability_scores(target, seed=seed))
        scores.update(stage_shift_scores(feature_set.stage_shift, text=feature_set.modality == "text"))
        scores.update(source_distance_scores(target.features, feature_set.source_sample_features, seed=seed))
    return scores


def _each_alone(measures: dict[str, tuple[Callable[[], Score | None], bool]]) -> dict[str, Score]:
    """Compute each measure on its own: ``{name: (compute, higher_is_better)}`` -> ``{name: Score}``.

    ``compute`` returns a Score, or None where the data cannot support it (left out). One that raises
    becomes a NaN score naming the error, so a bug in one measure loses that measure only. (The same
    features give the same error again, so a cached measurement keeps it rightly.)
    """
    scores: dict[str, Score] = {}
    for name, (compute, higher_is_better) in measures.items():
        try:
            score = compute()
        except Exception as error:  # noqa: BLE001 -- isolating one measure is the point
            reason = one_line(error)
            log.warning("measure %s failed: %s", name, reason)
            score = Score(float("nan"), None, None, higher_is_better, detail=f"{name} could not be computed: {reason}")
        if score is not None:
            scores[name] = score
    return scores


@dataclass(frozen=True, eq=False)
class _TargetData:
    """The rows of a FeatureSet with finite embeddings, and the optional arrays that match them."""

    features: np.ndarray
    labels: np.ndarray
    source_probs: np.ndarray | None
    random_features: np.ndarray | None

    @classmethod
    def from_feature_set(cls, feature_set: FeatureSet) -> _TargetData:
        features = np.asarray(feature_set.features)
        labels = np.asarray(feature_set.labels).ravel()
        if features.ndim != 2 or len(features) != len(labels):
            return cls(np.zeros((0, 1)), np.zeros(0, dtype=np.int64), None, None)
        keep = np.isfinite(features).all(axis=1)

        def matching(extra: np.ndarray | None) -> np.ndarray | None:
            if extra is None:
                return None
            extra = np.asarray(extra)
            if extra.ndim != 2 or len(extra) != len(labels) or not np.isfinite(extra[keep]).all():
                return None
            return extra[keep]

        return cls(features[keep], labels[keep], matching(feature_set.source_probs),
                   matching(feature_set.random_features))

    @property
    def n_classes(self) -> int:
        return len(np.unique(self.labels))

    def supports_label_measures(self) -> bool:
        """Two classes and on average two samples per class: below that every estimate is degenerate."""
        return self.n_classes >= 2 and len(self.labels) >= 2 * self.n_classes


# --- probes -----------------------------------------------------------------------------------------


def probe_scores(target: _TargetData, *, seed: int, folds: int) -> dict[str, Score]:
    """k-NN and linear-probe accuracy on pretrained and random features, and the pretraining gain."""
    if target.n_classes < 2:
        return {}
    knn = f"a cosine {KNN_NEIGHBOURS}-NN classifier"
    probes = {
        names.KNN_ACCURACY: (knn_probe_cv, target.features, f"{knn} on the frozen features"),
        names.LINEAR_PROBE_ACCURACY: (linear_probe_cv, target.features,
                                  "logistic regression on the standardised frozen features"),
    }
    if target.random_features is not None:
        probes[names.KNN_ACCURACY_RANDOM] = (knn_probe_cv, target.random_features,
                                         f"{knn} on a randomly initialised copy's features")
        probes[names.LINEAR_PROBE_ACCURACY_RANDOM] = (linear_probe_cv, target.random_features,
                                                  "logistic regression on a randomly initialised copy's features")
    results: dict[str, CrossValidatedAccuracy] = {}

    def probed(name: str, probe, matrix: np.ndarray, what: str) -> Score | None:
        result = probe(matrix, target.labels, folds=folds, seed=seed)
        if not math.isfinite(result.mean):
            return None
        results[name] = result
        chance = result.chance  # over the rows scored: single-image classes are not among them
        return Score(result.mean, result.std, _above_chance(result.mean - chance, chance),
                     detail=f"Accuracy of {what}, {result.scheme} cross-validation (chance {chance:.2f}); "
                            f"± is the standard deviation over the folds.")

    def gain() -> Score | None:
        pretrained, random = results.get(names.LINEAR_PROBE_ACCURACY), results.get(names.LINEAR_PROBE_ACCURACY_RANDOM)
        return (_pretraining_gain(pretrained, random, pretrained.chance)
                if pretrained is not None and random is not None else None)

    measures = {name: ((lambda n=name, p=probe, m=matrix, w=what: probed(n, p, m, w)), True)
                for name, (probe, matrix, what) in probes.items()}
    measures[names.PRETRAINING_GAIN] = (gain, True)
    return _each_alone(measures)


def _pretraining_gain(pretrained: CrossValidatedAccuracy, random: CrossValidatedAccuracy, chance: float) -> Score:
    gain = pretrained.mean - random.mean
    if len(pretrained.fold_accuracies) == len(random.fold_accuracies):
        spread = sample_sd(pretrained.fold_accuracies - random.fold_accuracies)  # same folds: paired
    else:
        spread = math.hypot(pretrained.std, random.std)
    return Score(gain, spread, _above_chance(gain, chance),
                 detail=(f"Linear-probe accuracy of the pretrained features minus that of a randomly initialised "
                         f"copy ({pretrained.mean:.3f} vs {random.mean:.3f}); near or below 0 warns of "
                         f"negative transfer."))


def _above_chance(gain_over_chance: float, chance: float) -> float:
    return float(np.clip(gain_over_chance / (1.0 - chance), 0.0, 1.0)) if chance < 1.0 else 0.0


# --- transferability --------------------------------------------------------------------------------


def transferability_scores(target: _TargetData, *, seed: int) -> dict[str, Score]:
    """LogME, shrinkage H-score, and LEEP/NCE through the source head, each with a bootstrap spread."""
    if not target.supports_label_measures():
        return {}
    features, labels = target.features, target.labels

    def resampled(statistic, *arrays: np.ndarray, weighted: bool = False) -> tuple[float, float]:
        return bootstrap(statistic, *arrays, n=BOOTSTRAP_RESAMPLES, seed=seed, max_rows=BOOTSTRAP_MAX_ROWS,
                         weighted=weighted)

    def logme_score() -> Score | None:
        # Subsets without repeated rows: repeats inflate LogME when rows < features (see logme).
        value, spread = subsample(logme, features, labels, n=BOOTSTRAP_RESAMPLES, seed=seed,
                                  max_rows=BOOTSTRAP_MAX_ROWS)
        if not math.isfinite(value):
            return None
        baseline = logme(np.ones((len(labels), 1)), labels)
        return Score(value, _finite_or_none(spread), _cox_snell_r2(value - baseline),
                     detail=(f"LogME: log evidence per sample of a Bayesian linear model of the labels on "
                             f"the features ({value - baseline:+.3f} nats over class frequencies alone)."))

    def hscore_score() -> Score | None:
        # Each resample's distinct rows with their counts: the same value, smaller matrices.
        value, spread = resampled(hscore_shrinkage, features, labels, weighted=True)
        if not math.isfinite(value):
            return None
        bound = min(target.n_classes - 1, features.shape[1])
        return Score(value, _finite_or_none(spread), float(np.clip(value / bound, 0.0, 1.0)),
                     detail=(f"Shrinkage H-score: between-class over total feature covariance "
                             f"(Ledoit-Wolf), at most {bound}."))

    measures = {names.LOGME: (logme_score, True), names.HSCORE: (hscore_score, True)}
    if target.source_probs is not None:
        source_probs = target.source_probs
        entropy = label_entropy(labels)

        def leep_score() -> Score | None:
            value, spread = resampled(leep, source_probs, labels)
            if not math.isfinite(value):
                return None
            return Score(value, _finite_or_none(spread), _share_of_entropy(value, entropy),
                         detail=(f"LEEP: mean log-likelihood of the labels predicted through the source "
                                 f"classifier's soft outputs (-{entropy:.2f} = no information, 0 = perfect)."))

        def nce_score() -> Score | None:
            value, spread = resampled(nce, source_probs.argmax(axis=1), labels)
            if not math.isfinite(value):
                return None
            return Score(value, _finite_or_none(spread), _share_of_entropy(value, entropy),
                         detail=(f"NCE: minus the entropy of the labels given the source classifier's top "
                                 f"class (-{entropy:.2f} = independent, 0 = determines the label)."))

        measures[names.LEEP] = (leep_score, True)
        measures[names.NCE] = (nce_score, True)
    return _each_alone(measures)


def _cox_snell_r2(log_likelihood_gain_per_sample: float) -> float:
    return float(np.clip(-np.expm1(-2.0 * log_likelihood_gain_per_sample), 0.0, 1.0))


def _share_of_entropy(value: float, entropy: float) -> float:
    return float(np.clip(1.0 + value / entropy, 0.0, 1.0)) if entropy > 0 else 0.0


# --- stage shift ------------------------------------------------------------------------------------


def stage_shift_scores(stage_shift: tuple[StageShift, ...], text: bool = False) -> dict[str, Score]:
    """Mean BatchNorm-statistics shift over all stages, and over the first and second half of them. For a
    text encoder (``text``) the same statistic against its source sample's hidden states, not normalised:
    the [0, 1] scale is calibrated on image backbones' BatchNorm shifts."""
    stages = [s for s in stage_shift if math.isfinite(s.value)]
    if not stages:
        return {}
    measures = {names.BN_SHIFT: (lambda: _shift_score(stages, "all", text), False)}
    if len(stages) >= 2:
        half = len(stages) // 2
        measures[names.BN_SHIFT_EARLY] = (lambda: _shift_score(stages[:half], "the early (input-side)", text), False)
        measures[names.BN_SHIFT_LATE] = (lambda: _shift_score(stages[half:], "the late (output-side)", text), False)
    return _each_alone(measures)


def _shift_score(stages: list[StageShift], which: str, text: bool = False) -> Score:
    values = np.array([s.value for s in stages])
    # geometric mean, as the summary similarity: one collapsed stage (greyscale input) must not dominate
    centre = geometric_mean(values)
    names = ", ".join(s.stage for s in stages)
    against = ("the source sample's hidden-state statistics" if text
               else "the BatchNorm running statistics")
    return Score(centre, float(values.std()) if len(values) > 1 else None, None if text else shift_similarity(centre),
                 higher_is_better=False,
                 detail=(f"Symmetric KL between the target's activation statistics and {against}, geometric mean "
                         f"over {which} stages ({names}); 0 = same as the source."))


# --- distances to a source sample -------------------------------------------------------------------


def source_distance_scores(features: np.ndarray, source_sample: np.ndarray | None, *, seed: int) -> dict[str, Score]:
    """Frechet distance and RBF MMD between target and source-sample embeddings of the same backbone."""
    if source_sample is None:
        return {}
    source = np.asarray(source_sample, dtype=np.float64)
    if source.ndim != 2 or source.shape[1] != features.shape[1]:
        return {}
    source = source[np.isfinite(source).all(axis=1)]
    if len(source) < 2 or len(features) < 2:
        return {}
    target = np.asarray(features, dtype=np.float64)
    settings = dict(n=BOOTSTRAP_RESAMPLES, seed=seed, max_rows=BOOTSTRAP_MAX_ROWS)

    def frechet_score() -> Score | None:
        distance, spread = bootstrap_two_sample(frechet_distance, target, source, **settings)
        if not math.isfinite(distance):
            return None
        scale = frechet_scale(target, source)
        normalised = float(np.clip(1.0 - distance / scale, 0.0, 1.0)) if scale > 0 else 1.0
        return Score(distance, _finite_or_none(spread), normalised, higher_is_better=False,
                     detail=(f"Frechet distance between Gaussians fitted to target and source-sample embeddings "
                             f"({len(target)} vs {len(source)} images)."))

    return _each_alone({names.FRECHET_TO_SOURCE: (frechet_score, False),
                        names.MMD_TO_SOURCE: (lambda: _mmd_score(target, source, seed=seed), False)})


def _mmd_score(target: np.ndarray, source: np.ndarray, *, seed: int) -> Score | None:
    """MMD on at most MMD_MAX_ROWS rows per side; one pooled kernel matrix serves every bootstrap resample."""
    rng = np.random.default_rng(seed)
    target, source = (x if len(x) <= MMD_MAX_ROWS else x[rng.choice(len(x), MMD_MAX_ROWS, replace=False)]
                      for x in (target, source))
    pooled = np.vstack([target, source])
    bandwidth = median_heuristic_bandwidth(pooled, seed=seed)
    kernel = rbf_kernel(pooled, pooled, bandwidth=bandwidth)
    offset = len(target)

    def means(rows_a: np.ndarray, rows_b: np.ndarray) -> KernelMeans:
        rows_b = rows_b + offset
        return kernel_means(kernel[np.ix_(rows_a, rows_a)], kernel[np.ix_(rows_b, rows_b)],
                            kernel[np.ix_(rows_a, rows_b)], bandwidth=bandwidth)

    full = means(np.arange(len(target)), np.arange(len(source)))
    _, spread = bootstrap_two_sample(lambda a, b: means(a, b).mmd2, np.arange(len(target)), np.arange(len(source)),
                                     n=BOOTSTRAP_RESAMPLES, seed=seed, max_rows=BOOTSTRAP_MAX_ROWS)
    if not math.isfinite(full.mmd2):
        return None
    return Score(
        full.mmd2, _finite_or_none(spread), full.similarity, higher_is_better=False,
        detail=(f"Unbiased squared MMD between target and source-sample embeddings (Gaussian kernel, "
                f"median-distance width {bandwidth:.3g}, {len(target)} vs {len(source)} images)."))


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
