"""Frozen-feature probes: cross-validated k-NN and linear-probe accuracy, and the chance level.

A probe answers "how much of the target task do these features already solve?". The same probe on
a randomly initialised copy of the backbone tells how much of that is owed to pretraining.
Cross-validation is stratified; with small classes the number of folds drops to the smallest class
size and the split is repeated (so 2 images per class still gives 6 fits, each training on half),
and classes with a single image are left out (they can never be both trained on and tested).
"""

from __future__ import annotations

import math
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tladvisor.measures._inputs import as_feature_matrix, check_same_rows, encode_labels
from tladvisor.measures.spread import sample_sd

FitPredict = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""``fit_predict(train_features, train_labels, test_features) -> predicted test labels``."""

DEFAULT_FOLDS = 5
KNN_NEIGHBOURS = 10
KNN_TEMPERATURE = 0.07  # Wu et al., CVPR 2018: neighbour votes weighted by exp(cosine / 0.07)
LINEAR_PROBE_C = 0.01  # inverse L2 strength on standardised features; see linear_probe_cv
LINEAR_PROBE_MAX_ITER = 200


@dataclass(frozen=True, eq=False)
class CrossValidatedAccuracy:
    """Accuracy over CV folds. ``mean``/``std`` are ``nan`` with a ``reason`` when no CV was possible."""

    mean: float
    std: float
    fold_accuracies: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scheme: str = ""  # e.g. "5-fold stratified" or "2-fold stratified x 3 repeats"
    n_used: int = 0  # samples in the CV (classes with one sample are left out)
    reason: str = ""
    chance: float = math.nan  # majority-class accuracy over the rows scored (those n_used), the probe's floor


_SKLEARN_MODULES = ("sklearn.exceptions", "sklearn.linear_model", "sklearn.model_selection", "sklearn.pipeline",
                    "sklearn.preprocessing")
_importing: threading.Thread | None = None
_starting = threading.Lock()


def import_in_background() -> None:
    """Start importing scikit-learn in a background thread (about a second on a 2-core CPU, half the measures'
    own time at 1,000 images), so that it overlaps work that releases the GIL, the forward passes of the embed
    stage. Whoever measures waits for it first (:func:`sklearn_ready`: the advisor before any measure hook, the
    probes before their own imports), so no module is imported by two threads at once. Started once per
    process; a no-op once scikit-learn is loaded. Not for a process about to fork (loader workers): a child
    forked mid-import would inherit held import locks."""
    global _importing
    with _starting:
        if _importing is None and not all(name in sys.modules for name in _SKLEARN_MODULES):
            _importing = threading.Thread(target=_import_sklearn, name="tladvisor-import-sklearn", daemon=True)
            _importing.start()


def _import_sklearn() -> None:
    import importlib

    for name in _SKLEARN_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # the probe's own import reports it, in the thread that can
            return


def sklearn_ready() -> None:
    """Wait for a background import of scikit-learn, if one was started."""
    if _importing is not None:
        _importing.join()


# --- public probes ----------------------------------------------------------------------------------


def knn_probe(features: np.ndarray, labels: np.ndarray, *, k: int = KNN_NEIGHBOURS,
              folds: int = DEFAULT_FOLDS, seed: int = 0) -> tuple[float, float]:
    """``(mean, std)`` of cross-validated weighted k-NN accuracy with cosine similarity. See :func:`knn_probe_cv`."""
    result = knn_probe_cv(features, labels, k=k, folds=folds, seed=seed)
    return result.mean, result.std


def linear_probe(features: np.ndarray, labels: np.ndarray, *, folds: int = DEFAULT_FOLDS, seed: int = 0,
                 c: float = LINEAR_PROBE_C) -> tuple[float, float]:
    """``(mean, std)`` of cross-validated logistic-regression accuracy. See :func:`linear_probe_cv`."""
    result = linear_probe_cv(features, labels, folds=folds, seed=seed, c=c)
    return result.mean, result.std


def knn_probe_cv(features: np.ndarray, labels: np.ndarray, *, k: int = KNN_NEIGHBOURS,
                 folds: int = DEFAULT_FOLDS, seed: int = 0) -> CrossValidatedAccuracy:
    """Weighted k-NN on centred, L2-normalised features (cosine similarity).

    Centring on the training fold's mean before normalising ("CL2N", Wang et al., "SimpleShot",
    2019) matters for post-ReLU embeddings, which otherwise all point into one orthant. Votes are
    weighted by ``exp(cos / 0.07)`` (Wu et al., "Unsupervised Feature Learning via Non-Parametric
    Instance Discrimination", CVPR 2018, the k-NN protocol DINO also uses), so ties cannot happen
    and k = 10 degrades gracefully to 1-NN when a class has one training image.
    """

    def fit_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray) -> np.ndarray:
        return _weighted_knn_predict(train_x, train_y, test_x, k=k)

    return cross_validate_accuracy(features, labels, fit_predict, folds=folds, seed=seed)


def linear_probe_cv(features: np.ndarray, labels: np.ndarray, *, folds: int = DEFAULT_FOLDS, seed: int = 0,
                    c: float = LINEAR_PROBE_C) -> CrossValidatedAccuracy:
    """Multinomial logistic regression (L-BFGS) on features standardised inside each training fold.

    The linear-evaluation protocol of Kornblith, Shlens and Le, "Do Better ImageNet Models
    Transfer Better?", CVPR 2019, with a fixed C instead of their per-dataset search (cost): on
    standardised 1280-d features ``C = 0.01`` was as good as or better than 0.1 and 1 from 60 to
    2000 images in our synthetic checks (it keeps the probe from interpolating when d > n). Iterations
    are capped (200, tol 1e-3; a tighter tol changed CV accuracy by < 0.5 points at 5x the cost), so
    the convergence warning is silenced.
    """

    # scikit-learn is imported where it is used: `tladvisor plugins` / `backbones` load this module
    # and must not pay its import (about a second); analyze starts it early (import_in_background)
    sklearn_ready()
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def fit_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray) -> np.ndarray:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=LINEAR_PROBE_MAX_ITER, tol=1e-3))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(train_x, train_y)
        return model.predict(test_x)

    return cross_validate_accuracy(features, labels, fit_predict, folds=folds, seed=seed)


def chance_accuracy(labels: np.ndarray) -> float:
    """Accuracy of always predicting the most frequent class: the floor any probe must beat. Give it the
    labels of the rows a probe scores (:attr:`CrossValidatedAccuracy.chance`): classes with a single image
    are left out of the cross-validation, and counting them would lower the floor."""
    codes, _ = encode_labels(labels)
    return float(np.bincount(codes).max() / len(codes)) if len(codes) else math.nan


# --- cross-validation -------------------------------------------------------------------------------


def cross_validate_accuracy(features: np.ndarray, labels: np.ndarray, fit_predict: FitPredict, *,
                            folds: int = DEFAULT_FOLDS, seed: int = 0) -> CrossValidatedAccuracy:
    """Stratified CV accuracy of any ``fit_predict``; see :func:`stratified_splits` for small classes."""
    matrix = as_feature_matrix(features).astype(np.float32, copy=False)
    codes, _ = encode_labels(labels)
    check_same_rows(matrix, codes)
    splits, scheme, used, reason = stratified_splits(codes, folds=folds, seed=seed)
    if not splits:
        return CrossValidatedAccuracy(math.nan, math.nan, scheme=scheme, n_used=len(used), reason=reason)
    matrix, codes = matrix[used], codes[used]
    accuracies = np.array([np.mean(fit_predict(matrix[train], codes[train], matrix[test]) == codes[test])
                           for train, test in splits])
    return CrossValidatedAccuracy(float(accuracies.mean()), sample_sd(accuracies), accuracies, scheme, len(used),
                                  chance=chance_accuracy(codes))


def stratified_splits(codes: np.ndarray, *, folds: int = DEFAULT_FOLDS,
                      seed: int = 0) -> tuple[list[tuple[np.ndarray, np.ndarray]], str, np.ndarray, str]:
    """``(splits, scheme, used_rows, reason)``; splits index into ``codes[used_rows]``.

    Singleton classes are left out. With the smallest remaining class below ``folds`` the fold
    count drops to its size (at least 2) and the split is repeated so about ``folds`` fits still run.
    """
    sklearn_ready()
    from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedKFold  # lazily: see linear_probe_cv

    counts = np.bincount(codes)
    used = np.flatnonzero(counts[codes] >= 2)
    kept_classes = int(np.sum(counts >= 2))
    if kept_classes < 2:
        return [], "none", used, "needs at least two classes with two or more samples each"
    smallest = int(counts[counts >= 2].min())
    n_splits = max(2, min(folds, smallest))
    repeats = math.ceil(folds / n_splits)
    if repeats == 1:
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        scheme = f"{n_splits}-fold stratified"
    else:
        splitter = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=repeats, random_state=seed)
        scheme = f"{n_splits}-fold stratified x {repeats} repeats"
    if len(used) < len(codes):
        scheme += f", {len(codes) - len(used)} singleton-class samples left out"
    subset = codes[used]
    return list(splitter.split(np.zeros(len(subset)), subset)), scheme, used, ""


# --- k-NN -------------------------------------------------------------------------------------------


def _weighted_knn_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, *, k: int) -> np.ndarray:
    centre = train_x.mean(axis=0)
    train_unit, test_unit = _unit_rows(train_x - centre), _unit_rows(test_x - centre)
    similarities = test_unit @ train_unit.T
    k = max(1, min(k, len(train_x)))
    nearest = np.argpartition(-similarities, k - 1, axis=1)[:, :k]
    nearest_similarity = np.take_along_axis(similarities, nearest, axis=1)
    weights = np.exp((nearest_similarity - 1.0) / KNN_TEMPERATURE)  # shifted by the max cosine: no overflow
    votes = np.zeros((len(test_x), int(train_y.max()) + 1))
    np.add.at(votes, (np.arange(len(test_x))[:, None], train_y[nearest]), weights)
    return votes.argmax(axis=1)


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)
