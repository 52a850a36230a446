"""k-NN and linear probes: separable vs shuffled labels, chance level, and tiny classes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tladvisor.measures.probes import (
    chance_accuracy,
    cross_validate_accuracy,
    knn_probe,
    knn_probe_cv,
    linear_probe,
    linear_probe_cv,
    stratified_splits,
)


def blobs(n_per_class: int, n_classes: int = 4, dim: int = 20, separation: float = 4.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * separation
    labels = np.repeat(np.arange(n_classes), n_per_class)
    return centres[labels] + rng.normal(size=(len(labels), dim)), labels


def test_chance_accuracy_is_the_majority_class_rate():
    assert chance_accuracy(np.array([0, 0, 0, 1, 2, 2])) == pytest.approx(0.5)
    assert chance_accuracy(np.array([7, 3])) == pytest.approx(0.5)


@pytest.mark.parametrize("probe", [knn_probe, linear_probe])
def test_probes_separate_clusters_and_fall_to_chance_with_shuffled_labels(probe):
    features, labels = blobs(30)
    shuffled = np.random.default_rng(1).permutation(labels)
    mean, std = probe(features, labels, folds=5, seed=0)
    chance_mean, _ = probe(features, shuffled, folds=5, seed=0)
    assert mean > 0.97 and 0 <= std < 0.05
    assert chance_mean < 0.45  # chance is 0.25


def test_probes_are_reproducible_for_a_seed():
    features, labels = blobs(10, separation=0.7)
    assert linear_probe(features, labels, seed=3) == linear_probe(features, labels, seed=3)
    assert knn_probe(features, labels, seed=3) == knn_probe(features, labels, seed=3)


def test_two_samples_per_class_uses_repeated_two_fold_cv():
    features, labels = blobs(2, n_classes=5)
    result = linear_probe_cv(features, labels, folds=5, seed=0)
    assert result.scheme == "2-fold stratified x 3 repeats"
    assert len(result.fold_accuracies) == 6
    assert result.mean > 0.8  # well separated: one training image per class suffices
    assert knn_probe_cv(features, labels).mean > 0.8


def test_singleton_classes_are_left_out_and_too_few_classes_give_nan_with_a_reason():
    features, labels = blobs(3, n_classes=3)
    labels = np.append(labels, 9)
    features = np.vstack([features, features[:1]])
    result = knn_probe_cv(features, labels, folds=5)
    assert result.n_used == 9 and "1 singleton-class samples left out" in result.scheme
    assert math.isfinite(result.mean)

    lonely = linear_probe_cv(np.eye(3), np.array([0, 1, 2]))
    assert math.isnan(lonely.mean) and math.isnan(lonely.std)
    assert "two classes with two or more samples" in lonely.reason
    assert all(math.isnan(v) for v in knn_probe(np.eye(3), np.array([0, 1, 2])))


def test_stratified_splits_keep_every_class_in_every_training_fold():
    labels = np.repeat(np.arange(4), [3, 5, 8, 20])
    splits, scheme, used, _ = stratified_splits(labels, folds=5, seed=0)
    assert scheme == "3-fold stratified x 2 repeats" and len(used) == 36
    for train, _test in splits:
        assert set(labels[used][train]) == {0, 1, 2, 3}


def test_cross_validation_accepts_any_classifier():
    features, labels = blobs(5, n_classes=2)
    always_zero = cross_validate_accuracy(features, labels, lambda tx, ty, vx: np.zeros(len(vx), int))
    assert always_zero.mean == pytest.approx(0.5)


def test_chance_counts_only_the_rows_the_probe_scores():
    """#24 statistics item 1: classes of 50 and 30 images plus 20 single-image classes. Chance over all
    labels is 0.500, but the cross-validation scores only the 80 rows of the two real classes, where
    always predicting the majority scores 0.625: that must normalise to 0, not 0.25."""
    from tladvisor.measures.scores import _above_chance
    from tladvisor.measures.probes import chance_accuracy, cross_validate_accuracy

    labels = np.array([0] * 50 + [1] * 30 + list(range(2, 22)))
    features = np.random.default_rng(0).normal(size=(100, 4))

    def majority(train_x, train_y, test_x):
        return np.full(len(test_x), np.bincount(train_y).argmax())
    result = cross_validate_accuracy(features, labels, majority, folds=5)
    assert result.n_used == 80 and result.chance == pytest.approx(0.625)
    assert chance_accuracy(labels) == pytest.approx(0.5)  # the floor the old code used
    assert result.mean == pytest.approx(0.625)  # stratified folds: class 0 is the majority of every fold
    assert _above_chance(result.mean - result.chance, result.chance) == pytest.approx(0.0, abs=1e-9)


def test_the_fold_spread_is_the_sample_standard_deviation():
    """#24 statistics item 3: one way of computing a spread (ddof = 1), as the tuning's folds do."""
    from tladvisor.measures.probes import cross_validate_accuracy
    from tladvisor.measures.spread import sample_sd, standard_error

    accuracies = np.array([1.0, 0.5, 1.0, 0.5, 1.0])
    assert sample_sd(accuracies) == pytest.approx(float(np.std(accuracies, ddof=1)))
    assert standard_error(accuracies) == pytest.approx(float(np.std(accuracies, ddof=1)) / 5 ** 0.5)
    assert sample_sd([0.7]) == 0.0 and np.isnan(sample_sd([]))
    rng = np.random.default_rng(1)
    labels = np.array([0, 1] * 20)
    result = cross_validate_accuracy(np.zeros((40, 2)), labels, lambda tx, ty, vx: rng.integers(0, 2, len(vx)),
                                     folds=5)
    assert len(set(result.fold_accuracies)) > 1  # the folds differ, so ddof matters
    assert result.std == pytest.approx(float(np.std(result.fold_accuracies, ddof=1)))
    assert result.std != pytest.approx(float(np.std(result.fold_accuracies)))


def test_scikit_learn_loads_in_the_background_only_when_asked():
    """`tladvisor plugins` must not pay scikit-learn's import; analyze starts it early, beside the forward passes."""
    import subprocess
    import sys

    script = """
import sys
from tladvisor.measures import probes
assert "sklearn" not in sys.modules, "importing the probes loaded scikit-learn"
probes.import_in_background()
probes.sklearn_ready()
assert all(name in sys.modules for name in probes._SKLEARN_MODULES)
import numpy as np
rng = np.random.default_rng(0)
print(probes.linear_probe(rng.normal(size=(40, 4)) + np.repeat([[0.0], [3.0]], 20, axis=0), np.repeat([0, 1], 20))[0])
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) > 0.9
