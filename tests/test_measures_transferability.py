"""LogME, LEEP, NCE and the shrinkage H-score against hand-computed values and known properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.covariance import ledoit_wolf_shrinkage as sklearn_ledoit_wolf_shrinkage

from tladvisor.measures.transferability import (
    hscore_shrinkage,
    label_entropy,
    ledoit_wolf_shrinkage,
    leep,
    log_evidence,
    logme,
    maximise_evidence,
    nce,
)


def clusters(n_per_class: int, n_classes: int, dim: int, separation: float, seed: int = 0):
    """Gaussian blobs with unit noise around random class centres ``separation`` apart in scale."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * separation
    labels = np.repeat(np.arange(n_classes), n_per_class)
    return centres[labels] + rng.normal(size=(len(labels), dim)), labels


# --- LEEP ---------------------------------------------------------------------------------------------


def test_leep_matches_a_hand_computed_table():
    # theta rows (0.8, 0.2) with y=0 and (0.4, 0.6) with y=1: P(y,z) = [[.4,.1],[.2,.3]], P(z) = (.6,.4),
    # P(y|z) = [[2/3,1/4],[1/3,3/4]]; EEP(x1, y=0) = .8*2/3 + .2*1/4 = 7/12 and EEP(x2, y=1) = .4/3 + .6*3/4 = 7/12.
    probs = np.array([[0.8, 0.2], [0.4, 0.6]])
    assert leep(probs, np.array([0, 1])) == pytest.approx(math.log(7 / 12), abs=1e-12)


def test_leep_is_zero_log_likelihood_for_aligned_one_hot_probs():
    labels = np.array([0, 0, 1, 2, 2, 2])
    probs = np.eye(5)[[3, 3, 0, 4, 4, 4]]  # each target class has its own source class
    assert leep(probs, labels) == pytest.approx(0.0, abs=1e-12)


def test_leep_equals_nce_when_source_probs_are_one_hot():
    rng = np.random.default_rng(1)
    source = rng.integers(0, 6, size=200)
    labels = (source + rng.integers(0, 2, size=200)) % 4
    assert leep(np.eye(6)[source], labels) == pytest.approx(nce(source, labels), abs=1e-12)


def test_leep_is_minus_label_entropy_when_probs_ignore_the_input():
    labels = np.array([0, 0, 0, 1, 2, 2])
    probs = np.tile([0.2, 0.5, 0.3], (6, 1))
    entropy = -(3 / 6 * math.log(3 / 6) + 1 / 6 * math.log(1 / 6) + 2 / 6 * math.log(2 / 6))
    assert label_entropy(labels) == pytest.approx(entropy, abs=1e-12)
    assert leep(probs, labels) == pytest.approx(-entropy, abs=1e-12)


def test_leep_is_invariant_to_renaming_target_classes():
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(7), size=50)
    labels = rng.integers(0, 3, size=50)
    assert leep(probs, labels) == pytest.approx(leep(probs, np.array([10, 4, 7])[labels]), abs=1e-12)


# --- NCE ----------------------------------------------------------------------------------------------


def test_nce_matches_a_hand_computed_table():
    # z=0 holds y = (0, 0, 1), z=1 holds y = (1, 1): H(Y|Z) = 3/5 * H(2/3, 1/3) + 2/5 * 0.
    source = np.array([0, 0, 0, 1, 1])
    labels = np.array([0, 0, 1, 1, 1])
    conditional_entropy = 0.6 * -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert nce(source, labels) == pytest.approx(-conditional_entropy, abs=1e-12)
    assert nce(source, labels) == pytest.approx(-0.3819085, abs=1e-6)


def test_nce_is_zero_when_source_label_determines_target_label():
    source = np.array([5, 5, 1, 1, 2, 3, 3, 9])
    labels = np.array([0, 0, 1, 1, 1, 2, 2, 0])  # a function of the source label (many-to-one is fine)
    assert nce(source, labels) == pytest.approx(0.0, abs=1e-15)


def test_nce_is_minus_label_entropy_when_source_label_is_constant():
    labels = np.array([0, 1, 1, 2, 2, 2, 2])
    assert nce(np.zeros(7, dtype=int), labels) == pytest.approx(-label_entropy(labels), abs=1e-12)


# --- H-score -------------------------------------------------------------------------------------------


def test_ledoit_wolf_shrinkage_matches_scikit_learn_in_both_gram_orientations():
    rng = np.random.default_rng(3)
    for n, d in [(40, 100), (300, 20)]:
        data = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
        centred = data - data.mean(axis=0)
        ours, _ = ledoit_wolf_shrinkage(centred)
        assert ours == pytest.approx(sklearn_ledoit_wolf_shrinkage(centred, assume_centered=True), rel=1e-9)


def dense_shrinkage_hscore(features, labels):
    """The defining formula with explicit d x d matrices, as a reference."""
    centred = features - features.mean(axis=0)
    n, d = centred.shape
    shrinkage, mu = ledoit_wolf_shrinkage(centred)
    covariance = (1 - shrinkage) * centred.T @ centred / n + shrinkage * mu * np.eye(d)
    between = np.zeros((d, d))
    for label in np.unique(labels):
        mean = centred[labels == label].mean(axis=0)
        between += np.mean(labels == label) * np.outer(mean, mean)
    return float(np.trace(np.linalg.solve(covariance, (1 - shrinkage) * between)))


@pytest.mark.parametrize("n_per_class,dim", [(10, 60), (50, 8)])  # n < d and n > d code paths
def test_hscore_matches_the_dense_formula(n_per_class, dim):
    features, labels = clusters(n_per_class, 4, dim, separation=0.5, seed=4)
    assert hscore_shrinkage(features, labels) == pytest.approx(dense_shrinkage_hscore(features, labels), rel=1e-8)


def test_hscore_is_larger_for_separated_class_means_than_for_shuffled_labels():
    features, labels = clusters(40, 5, 32, separation=2.0, seed=5)
    shuffled = np.random.default_rng(0).permutation(labels)
    separated, chance = hscore_shrinkage(features, labels), hscore_shrinkage(features, shuffled)
    # Shuffled labels still see chance between-class spread of about (C - 1) d / n = 0.64.
    assert 0 <= chance < 1.0 and 3.5 < separated <= 4.0  # bounded by C - 1 = 4
    assert hscore_shrinkage(features, labels) == pytest.approx(hscore_shrinkage(features, (labels + 2) % 5))


# --- LogME --------------------------------------------------------------------------------------------


def test_log_evidence_matches_the_gaussian_marginal_likelihood():
    """For any (alpha, beta), y ~ N(0, F F'/alpha + I/beta): the spectral formula must agree."""
    rng = np.random.default_rng(6)
    for n, d in [(12, 30), (30, 5)]:
        features = rng.normal(size=(n, d))
        target = (rng.random(n) < 0.4).astype(float)
        u, s, _ = np.linalg.svd(features, full_matrices=False)
        for alpha, beta in [(0.3, 2.0), (5.0, 0.7)]:
            covariance = features @ features.T / alpha + np.eye(n) / beta
            _, log_det = np.linalg.slogdet(covariance)
            direct = -0.5 * (n * math.log(2 * math.pi) + log_det + target @ np.linalg.solve(covariance, target))
            spectral = log_evidence(alpha, beta, s**2, u.T @ target, float(target @ target), n, d)
            assert spectral == pytest.approx(direct, rel=1e-9)


def test_fixed_point_maximises_the_evidence():
    rng = np.random.default_rng(7)
    features = rng.normal(size=(60, 10))
    target = (features[:, 0] + 0.5 * rng.normal(size=60) > 0).astype(float)
    u, s, _ = np.linalg.svd(features, full_matrices=False)
    args = (s**2, u.T @ target, float(target @ target), 60, 10)
    alpha, beta, best = maximise_evidence(*args)
    for factor_alpha in (0.5, 0.9, 1.1, 2.0):
        for factor_beta in (0.5, 0.9, 1.1, 2.0):
            assert log_evidence(alpha * factor_alpha, beta * factor_beta, *args) < best


def test_logme_is_higher_for_separable_features_than_for_shuffled_labels():
    features, labels = clusters(30, 4, 16, separation=3.0, seed=8)
    shuffled = np.random.default_rng(1).permutation(labels)
    separable, chance = logme(features, labels), logme(features, shuffled)
    assert separable > chance + 0.5
    # Renaming classes or scaling all features leaves the evidence unchanged.
    assert logme(features, np.array([3, 0, 2, 1])[labels]) == pytest.approx(separable, rel=1e-9)
    assert logme(features * 37.0, labels) == pytest.approx(separable, rel=1e-6)


def test_logme_handles_more_features_than_samples():
    features, labels = clusters(5, 3, 200, separation=1.0, seed=9)
    value = logme(features, labels)
    assert math.isfinite(value)
    assert value > logme(features, np.random.default_rng(2).permutation(labels))


def test_measures_return_nan_for_a_single_class_or_sample():
    assert math.isnan(logme(np.ones((1, 3)), np.array([0])))
    assert math.isnan(hscore_shrinkage(np.random.default_rng(0).normal(size=(5, 3)), np.zeros(5)))



@pytest.mark.parametrize("n,d", [(12, 30), (40, 6)])
def test_hscore_quadratic_forms_agree_between_cholesky_and_pseudo_inverse_paths(n, d):
    from tladvisor.measures.transferability import _class_mean_quadratic_forms, _smaller_gram

    features, labels = clusters(n // 4, 4, d, separation=1.0, seed=10)
    centred = features - features.mean(axis=0)
    weights = np.eye(4)[labels] / np.bincount(labels)
    means = centred.T @ weights
    covariance = centred.T @ centred / len(centred)
    gram = _smaller_gram(centred)
    with_ridge = _class_mean_quadratic_forms(centred, gram, weights, 0.7, 0.05)
    dense = np.diag(means.T @ np.linalg.solve(0.7 * covariance + 0.05 * np.eye(d), means))
    assert with_ridge == pytest.approx(dense, rel=1e-8)
    no_ridge = _class_mean_quadratic_forms(centred, gram, weights, 0.7, 0.0)  # singular when n <= d
    pseudo = np.diag(means.T @ np.linalg.pinv(0.7 * covariance, rcond=1e-10, hermitian=True) @ means)
    assert no_ridge == pytest.approx(pseudo, rel=1e-6)


# --- LogME against a slow reference: the evidence maximised numerically over (alpha, beta) ------------


def direct_log_evidence(log_alpha, log_beta, features, target):
    """``log N(y; 0, F F'/alpha + I/beta)`` with dense n x n matrices: the model's marginal likelihood."""
    n = len(target)
    covariance = features @ features.T / math.exp(log_alpha) + np.eye(n) / math.exp(log_beta)
    _, log_det = np.linalg.slogdet(covariance)
    return -0.5 * (n * math.log(2 * math.pi) + log_det + target @ np.linalg.solve(covariance, target))


def primal_log_evidence(log_alpha, log_beta, features, target):
    """You et al.'s eq. 2 in weight space, with the d x d matrix ``A = alpha I + beta F'F`` formed explicitly."""
    (n, d), alpha, beta = features.shape, math.exp(log_alpha), math.exp(log_beta)
    a = alpha * np.eye(d) + beta * features.T @ features
    mean = beta * np.linalg.solve(a, features.T @ target)
    _, log_det = np.linalg.slogdet(a)
    residual = features @ mean - target
    return (0.5 * n * math.log(beta) + 0.5 * d * math.log(alpha) - 0.5 * n * math.log(2 * math.pi)
            - 0.5 * beta * residual @ residual - 0.5 * alpha * mean @ mean - 0.5 * log_det)


def reference_logme(features, labels, evidence=direct_log_evidence):
    """LogME the slow way: for each class, a coarse grid over (log alpha, log beta), then Nelder-Mead."""
    import scipy.optimize

    features = np.asarray(features, dtype=np.float64)
    total = 0.0
    classes = np.unique(labels)
    for label in classes:
        target = (labels == label).astype(float)
        grid = [(la, lb) for la in np.linspace(-12, 12, 25) for lb in np.linspace(-8, 12, 21)]
        start = max(grid, key=lambda point: evidence(*point, features, target))
        result = scipy.optimize.minimize(lambda x, y: -evidence(x[0], x[1], features, y), start, args=(target,),
                                         method="Nelder-Mead",
                                         options={"xatol": 1e-10, "fatol": 1e-13, "maxiter": 20000, "maxfev": 40000})
        total += -result.fun
    return total / len(classes) / len(labels)


def test_logme_converges_with_far_more_features_than_samples():
    """N = 40, D = 1280, 10 classes (a 400-row bootstrap resample is in the same regime): the old
    100-step fixed point stopped about 2e-3 below the maximum here."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 4)
    features = np.maximum(rng.normal(size=(40, 1280)), 0.0)  # post-ReLU noise, as a backbone's pooled output
    assert logme(features, labels) == pytest.approx(reference_logme(features, labels), abs=1e-7)


@pytest.mark.parametrize("n,d", [(30, 80), (120, 10)])  # the n x n dual and the d x d primal code paths
def test_logme_equals_the_weight_space_evidence_maximised_numerically(n, d):
    features, labels = clusters(n // 3, 3, d, separation=0.7, seed=11)
    expected = reference_logme(features, labels, evidence=primal_log_evidence)
    assert logme(features, labels) == pytest.approx(expected, abs=1e-6)
    assert reference_logme(features, labels) == pytest.approx(expected, abs=1e-7)  # the two references agree


@pytest.mark.parametrize("n,d", [(60, 200), (300, 20)])  # the n x n and d x d code paths
def test_hscore_on_distinct_rows_with_counts_equals_hscore_on_the_repeated_rows(n, d):
    rng = np.random.default_rng(12)
    labels = rng.integers(0, 4, n)
    features = rng.normal(size=(n, d)) + 0.3 * labels[:, None]
    rows = rng.integers(0, n, n)  # a bootstrap resample
    distinct, counts = np.unique(rows, return_counts=True)
    assert len(distinct) < n
    assert hscore_shrinkage(features[distinct], labels[distinct], weights=counts) == pytest.approx(
        hscore_shrinkage(features[rows], labels[rows]), rel=1e-9)
    assert hscore_shrinkage(features, labels, weights=np.ones(n)) == pytest.approx(hscore_shrinkage(features, labels))
    with pytest.raises(ValueError, match="positive"):
        hscore_shrinkage(features, labels, weights=np.zeros(n))


def test_repeated_rows_inflate_logme_when_rows_are_fewer_than_features():
    """Why LogME's spread comes from subsets without repeats: a with-replacement resample of 400 of
    2000 1280-d rows scored about 1.3 where its distinct rows score 0.3 (and the full data 0.58)."""
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, 300)
    features = np.maximum(rng.normal(size=(300, 400)) + rng.normal(size=(5, 400))[labels] * 0.3, 0)
    rows = rng.integers(0, 300, 100)
    distinct = np.unique(rows)
    assert logme(features[rows], labels[rows]) > logme(features[distinct], labels[distinct]) + 0.3


def test_logme_spread_from_subsets_matches_its_spread_over_independent_datasets():
    from tladvisor.measures.bootstrap import bootstrap, subsample

    rng = np.random.default_rng(5)
    centres = rng.normal(size=(6, 600)) * 0.15

    def draw():
        labels = rng.integers(0, 6, 200)
        return np.maximum(rng.normal(size=(200, 600)) + centres[labels], 0), labels

    true_std = np.std([logme(*draw()) for _ in range(12)], ddof=1)
    features, labels = draw()
    _, spread = subsample(logme, features, labels, n=20, seed=0, max_rows=400)
    assert true_std / 3 < spread < true_std * 3
    _, with_repeats = bootstrap(logme, features, labels, n=20, seed=0, max_rows=400)
    assert with_repeats > 5 * true_std  # what the with-replacement bootstrap reported before
