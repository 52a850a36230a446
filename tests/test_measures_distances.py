"""Frechet distance and RBF MMD: closed forms, zero for identical distributions, growth with shift."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg

from tladvisor.measures.distances import (
    frechet_distance,
    frechet_distance_from_moments,
    frechet_scale,
    mmd_rbf,
    rbf_kernel_means,
    trace_sqrt_product,
)


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    # For diagonal covariances FD = ||mu_a - mu_b||^2 + sum_i (sigma_a,i - sigma_b,i)^2.
    mean_a, mean_b = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    std_a, std_b = np.array([1.0, 2.0, 0.5]), np.array([3.0, 0.5, 0.5])
    expected = 1.0 + 4.0 + (4.0 + 2.25 + 0.0)
    distance = frechet_distance_from_moments(mean_a, np.diag(std_a**2), mean_b, np.diag(std_b**2))
    assert distance == pytest.approx(expected)


def test_trace_sqrt_product_agrees_with_scipy_sqrtm_on_full_rank_covariances():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    cov_a, cov_b = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    reference = np.trace(scipy.linalg.sqrtm(cov_a @ cov_b)).real
    assert trace_sqrt_product(cov_a, cov_b) == pytest.approx(reference, rel=1e-8)


def test_frechet_distance_of_samples_matches_the_moment_formula_when_n_is_below_d():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(20, 50)), rng.normal(size=(30, 50)) + 0.3  # rank-deficient covariances
    expected = frechet_distance_from_moments(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    # The moment path takes square roots of round-off eigenvalues in the null space: agreement to 1e-6.
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_grows_with_a_mean_shift_and_tends_to_the_closed_form():
    rng = np.random.default_rng(2)
    base, other = rng.normal(size=(4000, 4)), rng.normal(size=(4000, 4))
    distances = [frechet_distance(base, other + shift) for shift in (0.0, 0.5, 1.0, 2.0)]
    assert distances[0] < 0.01
    assert all(x < y for x, y in zip(distances, distances[1:]))
    assert distances[-1] == pytest.approx(4 * 2.0**2, rel=0.05)  # shift 2 in each of 4 dims
    assert 0 < distances[-1] / frechet_scale(base, other + 2.0) < 1


def test_mmd_is_about_zero_for_one_distribution_and_grows_with_a_mean_shift():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(300, 5)), rng.normal(size=(300, 5))
    assert abs(mmd_rbf(a, b)) < 0.01
    for bandwidth in (None, 2.0):  # median heuristic and a fixed width
        values = [mmd_rbf(a, b + shift, bandwidth=bandwidth) for shift in (0.0, 0.25, 0.5, 1.0, 2.0)]
        assert all(x < y for x, y in zip(values, values[1:]))
        assert values[-1] > 0.3


def test_mmd_unbiased_estimate_by_hand():
    # Points 0 and 1 in 1-D against point 3 and 4 with sigma = 1: k(d) = exp(-d^2 / 2).
    a, b = np.array([[0.0], [1.0]]), np.array([[3.0], [4.0]])
    k = lambda d: math.exp(-d * d / 2)  # noqa: E731
    expected = k(1) + k(1) - 2 * (k(3) + k(4) + k(2) + k(3)) / 4
    means = rbf_kernel_means(a, b, bandwidth=1.0)
    assert means.mmd2 == pytest.approx(expected, rel=1e-12)
    assert 0 <= means.similarity < 0.2
    assert rbf_kernel_means(a, a + 1e-9, bandwidth=1.0).similarity > 0.99


def test_distances_return_nan_for_single_rows_and_refuse_mismatched_spaces():
    assert math.isnan(frechet_distance(np.ones((1, 3)), np.ones((4, 3))))
    assert math.isnan(mmd_rbf(np.ones((1, 3)), np.ones((4, 3))))
    with pytest.raises(ValueError, match="different spaces"):
        frechet_distance(np.ones((4, 3)), np.ones((4, 2)))


def test_frechet_distance_cholesky_path_handles_constant_features():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(200, 10)), rng.normal(size=(8, 10)) * 2.0  # n > d for a, n < d for b
    a[:, 3] = 0.0  # a dead ReLU unit: singular covariance
    expected = frechet_distance_from_moments(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(a, a.copy()) == pytest.approx(0.0, abs=1e-6)
