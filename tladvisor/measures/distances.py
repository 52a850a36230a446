"""Distances between two samples of embeddings (target data vs a sample of the source domain).

- Frechet distance between Gaussians fitted to each sample, as in FID (Heusel et al., NeurIPS 2017).
- Unbiased squared MMD with a Gaussian (RBF) kernel and the median-distance bandwidth
  (Gretton et al., "A Kernel Two-Sample Test", JMLR 2012).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from tladvisor.measures._inputs import as_feature_matrix


# --- Frechet distance -------------------------------------------------------------------------------


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two samples of the same feature space (FID's formula).

    Dowson and Landau, "The Frechet distance between multivariate normal distributions", J.
    Multivariate Analysis 1982; Heusel et al., "GANs Trained by a Two Time-Scale Update Rule
    Converge to a Local Nash Equilibrium", NeurIPS 2017:
    ``||mu_a - mu_b||^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^{1/2})``.
    The trace of the matrix square root is computed as a sum of singular values (see
    :func:`trace_sqrt_product`) rather than with ``scipy.linalg.sqrtm`` of the non-symmetric product:
    exact for PSD covariances, never complex, no eps needed when n < d, and about ten times faster
    at d = 1280. Covariances use the unbiased (n - 1) normalisation, as FID does.
    """
    a, b = as_feature_matrix(a), as_feature_matrix(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"samples live in different spaces: {a.shape[1]} vs {b.shape[1]} features")
    if len(a) < 2 or len(b) < 2:
        return math.nan
    factor_a, factor_b = _covariance_factor(a), _covariance_factor(b)
    mean_gap2 = float(np.sum((a.mean(axis=0) - b.mean(axis=0)) ** 2))
    trace_a, trace_b = float(np.sum(factor_a**2)), float(np.sum(factor_b**2))
    return max(mean_gap2 + trace_a + trace_b - 2.0 * _nuclear_norm(factor_a @ factor_b.T), 0.0)


def frechet_distance_from_moments(mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray,
                                  cov_b: np.ndarray) -> float:
    """The Frechet distance between N(mean_a, cov_a) and N(mean_b, cov_b) (same formula, given moments)."""
    mean_gap2 = float(np.sum((np.asarray(mean_a, float) - np.asarray(mean_b, float)) ** 2))
    cov_a, cov_b = np.asarray(cov_a, dtype=np.float64), np.asarray(cov_b, dtype=np.float64)
    value = mean_gap2 + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_sqrt_product(cov_a, cov_b)
    return max(float(value), 0.0)


def frechet_scale(a: np.ndarray, b: np.ndarray) -> float:
    """``||mu_a - mu_b||^2 + tr(S_a) + tr(S_b)``: the largest the Frechet distance can be for these moments.

    ``tr((S_a S_b)^{1/2}) >= 0``, so FD / scale lies in [0, 1]: 0 for equal Gaussians, 1 when the
    two covariances live in orthogonal subspaces. Used to normalise the distance across datasets.
    """
    a, b = as_feature_matrix(a), as_feature_matrix(b)
    mean_gap2 = float(np.sum((a.mean(axis=0) - b.mean(axis=0)) ** 2))
    return mean_gap2 + float(np.sum(a.var(axis=0, ddof=1))) + float(np.sum(b.var(axis=0, ddof=1)))


def trace_sqrt_product(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
    """``tr((S_a S_b)^{1/2})`` for PSD matrices, as the nuclear norm of ``S_a^{1/2} S_b^{1/2}``.

    With ``S_a = A'A`` and ``S_b = B'B``, the non-zero eigenvalues of ``S_a S_b`` equal those of
    ``(A B')(A B')'``, so the trace of the square root is the sum of the singular values of ``A B'``.
    """
    return _nuclear_norm(_psd_sqrt(cov_a) @ _psd_sqrt(cov_b).T)


def _covariance_factor(sample: np.ndarray) -> np.ndarray:
    """A matrix F with ``F'F = cov(sample)`` and at most d rows.

    The scaled centred rows when n <= d (no d x d work at all), else the transposed Cholesky factor
    of the covariance (a tiny relative jitter makes dead, constant features factorable; the
    eigendecomposition square root is the fallback).
    """
    centred = (sample - sample.mean(axis=0)) / math.sqrt(len(sample) - 1)
    n_samples, n_features = sample.shape
    if n_samples <= n_features:
        return centred
    covariance = centred.T @ centred
    jitter = 1e-12 * max(float(np.trace(covariance)) / n_features, 1e-300)
    try:
        return np.linalg.cholesky(covariance + jitter * np.eye(n_features)).T
    except np.linalg.LinAlgError:
        return _psd_sqrt(covariance)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    eigenvalues, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ vectors.T


def _nuclear_norm(matrix: np.ndarray) -> float:
    # Singular values as square roots of the eigenvalues of the smaller Gram matrix: symmetric, fast.
    gram = matrix @ matrix.T if matrix.shape[0] <= matrix.shape[1] else matrix.T @ matrix
    return float(np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(gram), 0.0, None))))


# --- MMD --------------------------------------------------------------------------------------------


class KernelMeans(NamedTuple):
    """Average RBF kernel values within and between two samples (within: off-diagonal pairs only)."""

    within_a: float
    within_b: float
    between: float
    bandwidth: float

    @property
    def mmd2(self) -> float:
        """The unbiased estimate of the squared MMD (Gretton et al. 2012, eq. 3); may dip below 0."""
        return self.within_a + self.within_b - 2.0 * self.between

    @property
    def similarity(self) -> float:
        """``1 - MMD^2 / (k_aa + k_bb)`` in [0, 1]: 1 for the same distribution, 0 for disjoint ones."""
        total = self.within_a + self.within_b
        return float(np.clip(1.0 - self.mmd2 / total, 0.0, 1.0)) if total > 0 else math.nan


def mmd_rbf(a: np.ndarray, b: np.ndarray, *, bandwidth: float | None = None) -> float:
    """Unbiased squared Maximum Mean Discrepancy with a Gaussian kernel (Gretton et al., JMLR 2012).

    ``k(x, y) = exp(-||x - y||^2 / (2 sigma^2))``; ``sigma`` defaults to the median pairwise distance
    of the pooled sample (the median heuristic). About 0 for samples of one distribution (slightly
    negative values happen: the estimate is unbiased), growing as the distributions part.
    """
    return rbf_kernel_means(a, b, bandwidth=bandwidth).mmd2


def rbf_kernel_means(a: np.ndarray, b: np.ndarray, *, bandwidth: float | None = None) -> KernelMeans:
    """The three kernel averages behind :func:`mmd_rbf` (and its normalised similarity)."""
    a, b = as_feature_matrix(a), as_feature_matrix(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"samples live in different spaces: {a.shape[1]} vs {b.shape[1]} features")
    if len(a) < 2 or len(b) < 2:
        return KernelMeans(math.nan, math.nan, math.nan, math.nan)
    if bandwidth is None:
        bandwidth = median_heuristic_bandwidth(np.vstack([a, b]))
    return kernel_means(rbf_kernel(a, a, bandwidth=bandwidth), rbf_kernel(b, b, bandwidth=bandwidth),
                        rbf_kernel(a, b, bandwidth=bandwidth), bandwidth=bandwidth)


def kernel_means(k_aa: np.ndarray, k_bb: np.ndarray, k_ab: np.ndarray, *, bandwidth: float) -> KernelMeans:
    """Kernel averages from the within-a, within-b and between blocks of a kernel matrix.

    Taking blocks lets a caller compute one pooled kernel matrix and bootstrap by indexing into it.
    """

    def off_diagonal_mean(kernel: np.ndarray) -> float:
        size = len(kernel)
        return float((kernel.sum() - np.trace(kernel)) / (size * (size - 1))) if size > 1 else math.nan

    return KernelMeans(off_diagonal_mean(k_aa), off_diagonal_mean(k_bb), float(np.mean(k_ab)), float(bandwidth))


def rbf_kernel(x: np.ndarray, y: np.ndarray, *, bandwidth: float) -> np.ndarray:
    """``exp(-||x_i - y_j||^2 / (2 bandwidth^2))``; a zero bandwidth (all points equal) counts as 1."""
    if not bandwidth > 0:
        bandwidth = 1.0  # every pooled point identical: any width gives MMD 0
    return np.exp(-_squared_distances(as_feature_matrix(x), as_feature_matrix(y)) / (2.0 * bandwidth**2))


def median_heuristic_bandwidth(sample: np.ndarray, *, max_rows: int = 1000, seed: int = 0) -> float:
    """Median Euclidean distance between distinct rows (Gretton et al. 2012), on at most ``max_rows`` rows."""
    sample = as_feature_matrix(sample)
    if len(sample) > max_rows:
        sample = sample[np.random.default_rng(seed).choice(len(sample), max_rows, replace=False)]
    distances2 = _squared_distances(sample, sample)[np.triu_indices(len(sample), k=1)]
    positive = distances2[distances2 > 0]
    return float(np.sqrt(np.median(positive))) if len(positive) else 0.0


def _squared_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    distances2 = np.einsum("ij,ij->i", x, x)[:, None] + np.einsum("ij,ij->i", y, y)[None, :] - 2.0 * x @ y.T
    return np.clip(distances2, 0.0, None)  # rounding can make a zero distance slightly negative
