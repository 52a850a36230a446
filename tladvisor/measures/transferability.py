"""Transferability estimates from frozen features: LogME, LEEP, NCE and the shrinkage H-score.

Each function scores how well a pretrained model's outputs on the target data predict the target
labels, without training the model. They disagree often enough (Agostinelli et al., ECCV 2022;
Ibrahim et al., ICLR 2023) that tladvisor reports all of them side by side. All are pure numpy,
compute in float64, and return ``nan`` (never raise) when the data cannot support the estimate
(fewer than two samples or two classes).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import scipy.optimize

from tladvisor.measures._inputs import as_feature_matrix, check_same_rows, encode_labels, one_hot

_TINY = 1e-300  # floor inside logarithms: a probability of exactly zero would give -inf
_RELATIVE_RANK_TOL = 1e-10  # eigenvalues below this fraction of the largest are treated as zero


# --- LogME ------------------------------------------------------------------------------------------


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME: the maximised log marginal evidence of a Bayesian linear model on the features.

    You, Liu, Wang and Long, "LogME: Practical Assessment of Pre-trained Models for Transfer
    Learning", ICML 2021. For each class k the one-hot column y_k is modelled as
    ``y = F w + e`` with prior ``w ~ N(0, alpha^-1 I_d)`` and noise ``e ~ N(0, beta^-1 I_n)``, and the
    evidence ``log p(y | F, alpha, beta)`` is maximised over (alpha, beta) (see
    :func:`maximise_evidence`; the paper's fixed-point iteration can stop far short of the maximum
    when n < d). One eigendecomposition of the smaller Gram matrix (n x n when n <= d, the dual)
    serves every class. Returns the evidence divided by n, averaged over classes (higher is better;
    invariant to renaming the classes and to a global feature scale).

    Repeated rows (a bootstrap resample drawn with replacement) are harmful when the distinct rows
    number fewer than d: the labels then lie in the features' span while n counts the copies, the
    evidence grows without bound as the noise variance goes to 0, and the value is set by the floor
    on the residual (per-sample LogME about 1.3 instead of 0.3 on 400 of 2000 1280-d rows). Resample
    LogME without replacement (:func:`tladvisor.measures.bootstrap.subsample`).
    """
    matrix = as_feature_matrix(features)
    codes, n_classes = encode_labels(labels)
    n_samples = check_same_rows(matrix, codes)
    if n_samples < 2 or n_classes < 2:
        return math.nan
    targets = one_hot(codes, n_classes)
    eigenvalues, projections = _spectral_projections(matrix, targets)
    evidences = maximise_evidence_all(eigenvalues, projections, np.einsum("ik,ik->k", targets, targets),
                                      n_samples, matrix.shape[1])
    return float(np.mean(evidences) / n_samples)


def row_weights(weights: np.ndarray | None, n_rows: int) -> tuple[np.ndarray | None, float]:
    """``(sqrt(weights) or None, total weight)``: a row of weight k counts as k identical rows.

    A bootstrap resample of m rows holds only about 0.63 m distinct ones; a measure that accepts
    ``weights`` gives the same value on the distinct rows with their counts as on the m rows, at the
    cost of the smaller matrices (Gram products are quadratic in the rows, solves cubic).
    """
    if weights is None:
        return None, float(n_rows)
    weights = np.asarray(weights, dtype=np.float64).ravel()
    if len(weights) != n_rows or not np.all(weights > 0) or not np.all(np.isfinite(weights)):
        raise ValueError(f"weights must be {n_rows} finite positive numbers")
    return np.sqrt(weights), float(weights.sum())


def _spectral_projections(matrix: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-zero eigenvalues s_i of F'F and the targets in F's left singular basis, ``U' Y``.

    Uses the n x n Gram matrix when n <= d and the d x d one otherwise: the cost is set by the
    smaller side, which matters for 2000 x 1280 embeddings.
    """
    n_samples, n_features = matrix.shape
    if n_samples <= n_features:
        eigenvalues, left = np.linalg.eigh(matrix @ matrix.T)
        keep = eigenvalues > _RELATIVE_RANK_TOL * max(eigenvalues.max(), _TINY)
        return eigenvalues[keep], left[:, keep].T @ targets
    eigenvalues, right = np.linalg.eigh(matrix.T @ matrix)
    keep = eigenvalues > _RELATIVE_RANK_TOL * max(eigenvalues.max(), _TINY)
    eigenvalues, right = eigenvalues[keep], right[:, keep]
    # U = F V S^-1, so U'Y = S^-1 V' (F'Y); F'Y is d x C, much cheaper than forming U.
    return eigenvalues, (right.T @ (matrix.T @ targets)) / np.sqrt(eigenvalues)[:, None]


def log_evidence(alpha: float, beta: float, eigenvalues: np.ndarray, projection: np.ndarray,
                 target_norm2: float, n_samples: int, n_features: int) -> float:
    """``log p(y | F, alpha, beta)`` of the Bayesian linear model, from F's spectrum (You et al. 2021, eq. 2).

    ``L = n/2 log beta + d/2 log alpha - n/2 log 2pi - beta/2 ||F m - y||^2 - alpha/2 m'm - 1/2 log|A|``
    with ``A = alpha I + beta F'F`` and ``m = beta A^-1 F'y``. ``projection`` is ``U'y`` and
    ``target_norm2`` is ``y'y`` (the part of y outside F's column space only adds to the residual).
    """
    denominators = alpha + beta * eigenvalues
    mean_norm2 = float(np.sum(beta**2 * eigenvalues * projection**2 / denominators**2))
    residual2 = _residual_norm2(alpha, denominators, projection, target_norm2)
    log_det_a = float(np.sum(np.log(denominators))) + (n_features - len(eigenvalues)) * math.log(alpha)
    return (0.5 * n_samples * math.log(beta) + 0.5 * n_features * math.log(alpha)
            - 0.5 * n_samples * math.log(2 * math.pi) - 0.5 * beta * residual2 - 0.5 * alpha * mean_norm2
            - 0.5 * log_det_a)


def _residual_norm2(alpha: float, denominators: np.ndarray, projection: np.ndarray, target_norm2: float) -> float:
    outside_span = max(target_norm2 - float(projection @ projection), 0.0)
    return float(np.sum((alpha / denominators) ** 2 * projection**2)) + outside_span


# The profile evidence is searched over log(alpha / beta) on a grid reaching this far (in e-folds)
# beyond F's spectrum, where it is flat to ~1e-9, then polished by Brent's method around the best point.
_RATIO_MARGIN = 20.0
_RATIO_GRID = 256


def maximise_evidence(eigenvalues: np.ndarray, projection: np.ndarray, target_norm2: float,
                      n_samples: int, n_features: int) -> tuple[float, float, float]:
    """``(alpha, beta, evidence)`` at the maximum of :func:`log_evidence` over (alpha, beta).

    With ``lambda = alpha / beta`` the best beta has a closed form, ``beta = n / E(lambda)`` with
    ``E(lambda) = ||F m - y||^2 + lambda m'm = r_out + sum_i lambda p_i^2 / (lambda + s_i)`` (p = U'y,
    r_out = the part of ||y||^2 outside F's column space), which leaves the one-dimensional profile
    ``L(lambda) = -n/2 log E(lambda) + rank/2 log lambda - 1/2 sum_i log(lambda + s_i) + const``.
    Its maximum is found on a log grid (global, so a second local maximum cannot trap it) and
    polished to ~1e-10 in log lambda. MacKay's fixed point (You et al. 2021, Algorithm 1) has the
    same stationary points but converges slowly when n < d: 100 iterations left LogME low by up
    to 5e-3 per sample at n = 40, d = 1280.
    """
    alpha, beta, evidence = _maximise(eigenvalues, projection[:, None], np.array([float(target_norm2)]),
                                      n_samples, n_features)
    return float(alpha[0]), float(beta[0]), float(evidence[0])


def maximise_evidence_all(eigenvalues: np.ndarray, projections: np.ndarray, target_norms2: np.ndarray,
                          n_samples: int, n_features: int) -> np.ndarray:
    """The maximised evidence of every column of ``projections`` (one per class), sharing one spectrum."""
    return _maximise(eigenvalues, projections, np.asarray(target_norms2, dtype=np.float64),
                     n_samples, n_features)[2]


def _maximise(eigenvalues: np.ndarray, projections: np.ndarray, target_norms2: np.ndarray,
              n_samples: int, n_features: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    squared = projections**2  # (rank, C)
    outside = np.maximum(target_norms2 - squared.sum(axis=0), 0.0)
    floors = 1e-12 * np.maximum(target_norms2, _TINY)  # a perfect fit would send beta to infinity
    rank = len(eigenvalues)

    def profile(log_ratio: np.ndarray, columns: slice | int = slice(None)) -> np.ndarray:
        """Profile evidence (without constants) at each log ratio (rows) for each class (columns)."""
        ratio = np.exp(np.atleast_1d(log_ratio))[:, None]
        shrink = ratio / (ratio + eigenvalues)  # (G, rank)
        fit = np.maximum(shrink @ squared[:, columns].reshape(rank, -1) + np.atleast_1d(outside[columns]),
                         np.atleast_1d(floors[columns]))
        log_det = rank * np.log(ratio) - np.sum(np.log(ratio + eigenvalues), axis=1, keepdims=True)
        return -0.5 * n_samples * np.log(fit) + 0.5 * log_det

    if rank == 0:
        log_ratios = np.zeros(projections.shape[1])
    else:
        low, high = math.log(eigenvalues.min()) - _RATIO_MARGIN, math.log(eigenvalues.max()) + _RATIO_MARGIN
        grid = np.linspace(low, high, _RATIO_GRID)
        best = np.argmax(profile(grid), axis=0)
        log_ratios = np.array([_polish(lambda u, k=k: -float(profile(u, k)[0, 0]), grid, index)
                               for k, index in enumerate(best)])
    ratios = np.exp(log_ratios)
    fits = np.maximum(ratios / (ratios + eigenvalues[:, None]) * squared, 0.0).sum(axis=0) + outside
    betas = n_samples / np.maximum(fits, floors)
    alphas = ratios * betas
    evidences = np.array([log_evidence(a, b, eigenvalues, projections[:, k], float(target_norms2[k]),
                                       n_samples, n_features)
                          for k, (a, b) in enumerate(zip(alphas, betas))])
    return alphas, betas, evidences


def _polish(negative_profile, grid: np.ndarray, index: int) -> float:
    """Brent's method between the grid neighbours of the best grid point (the point itself at an edge)."""
    if index == 0 or index == len(grid) - 1:
        return float(grid[index])
    result = scipy.optimize.minimize_scalar(negative_profile, bounds=(grid[index - 1], grid[index + 1]),
                                            method="bounded", options={"xatol": 1e-10})
    return float(result.x) if result.fun <= negative_profile(grid[index]) else float(grid[index])


# --- LEEP and NCE -----------------------------------------------------------------------------------


def leep(source_probs: np.ndarray, labels: np.ndarray) -> float:
    """LEEP: log expected empirical prediction of the source classifier (Nguyen et al., ICML 2020).

    Nguyen, Hassner, Seeger and Archambeau, "LEEP: A New Measure to Evaluate Transferability of
    Learned Representations". With theta(x) the source classifier's distribution over source labels
    z: the empirical joint ``P(y, z) = 1/n sum_{i: y_i = y} theta(x_i)_z``, the conditional
    ``P(y | z) = P(y, z) / P(z)``, and ``LEEP = 1/n sum_i log sum_z P(y_i | z) theta(x_i)_z``.
    Always <= 0; a classifier that ignores x scores ``-H(Y)``, one whose source labels determine the
    target label scores 0. Rows of ``source_probs`` are renormalised to sum to 1.
    """
    probs = as_feature_matrix(source_probs)
    codes, n_classes = encode_labels(labels)
    n_samples = check_same_rows(probs, codes)
    if n_samples < 1:
        return math.nan
    probs = np.clip(probs, 0.0, None)
    row_sums = probs.sum(axis=1, keepdims=True)
    if np.any(row_sums <= 0):
        return math.nan
    probs = probs / row_sums
    joint = one_hot(codes, n_classes).T @ probs / n_samples  # (C, Z)
    source_marginal = joint.sum(axis=0)
    conditional = np.divide(joint, source_marginal, out=np.zeros_like(joint), where=source_marginal > 0)
    expected_prediction = np.einsum("iz,iz->i", probs, conditional[codes])
    return float(np.mean(np.log(np.maximum(expected_prediction, _TINY))))


def nce(source_labels_hard: np.ndarray, labels: np.ndarray) -> float:
    """NCE: negative conditional entropy ``-H(Y | Z)`` of target labels given hard source labels.

    Tran, Nguyen and Hassner, "Transferability and Hardness of Supervised Classification Tasks",
    ICCV 2019. Z is the source classifier's argmax label; with the empirical joint P(y, z),
    ``NCE = sum_{y,z} P(y, z) log P(y | z)``. 0 when Z determines Y, ``-H(Y)`` when Z is independent
    of Y. Natural logarithm (nats).
    """
    source_codes, n_source = encode_labels(source_labels_hard)
    codes, n_classes = encode_labels(labels)
    n_samples = check_same_rows(source_codes, codes)
    if n_samples < 1:
        return math.nan
    counts = np.bincount(codes * n_source + source_codes, minlength=n_classes * n_source)
    joint = counts.reshape(n_classes, n_source) / n_samples
    source_marginal = joint.sum(axis=0, keepdims=True)
    present = joint > 0
    return float(np.sum(joint[present] * np.log((joint / source_marginal)[present])))


def label_entropy(labels: np.ndarray) -> float:
    """Empirical entropy H(Y) of the labels in nats: the scale against which LEEP and NCE are read."""
    codes, _ = encode_labels(labels)
    if len(codes) == 0:
        return math.nan
    frequencies = np.bincount(codes) / len(codes)
    frequencies = frequencies[frequencies > 0]
    return float(-np.sum(frequencies * np.log(frequencies)))


# --- H-score ----------------------------------------------------------------------------------------


def hscore_shrinkage(features: np.ndarray, labels: np.ndarray, *, weights: np.ndarray | None = None) -> float:
    """H-score with a Ledoit-Wolf shrinkage covariance: ``tr(cov_a(f)^-1 (1 - a) cov(E[f | y]))``.

    H-score: Bao, Li, Huang, Zheng, Wang, Tong and Tan, "An Information-Theoretic Approach to
    Transferability in Task Transfer Learning", ICIP 2019: ``tr(cov(f)^-1 cov(E[f|y]))``.
    Shrinkage: Ibrahim, Ponomareva and Mazumder, "Newer is not always better: Rethinking
    Transferability Metrics, Their Peculiarities, Stability and Performance" (2022), replace cov(f)
    by ``cov_a = (1 - a) cov(f) + a mu I`` with the Ledoit-Wolf coefficient a and
    ``mu = tr(cov(f)) / d``, and scale the between-class covariance by (1 - a); the plain H-score is
    unstable when n is not much larger than d. The result lies in [0, min(C - 1, d)]: each
    eigenvalue of ``cov_a^-1 (1 - a) cov(E[f|y])`` is at most 1. ``weights``: see :func:`row_weights`.
    """
    matrix = as_feature_matrix(features)
    codes, n_classes = encode_labels(labels)
    check_same_rows(matrix, codes)
    scale, n_samples = row_weights(weights, len(codes))
    if n_samples < 2 or n_classes < 2:
        return math.nan
    weight = np.ones(len(codes)) if scale is None else scale**2
    centred = matrix - (weight @ matrix) / n_samples
    # With weights every covariance is that of the sqrt(w)-scaled centred rows, divided by sum w.
    scaled = centred if scale is None else centred * scale[:, None]
    gram = _smaller_gram(scaled)
    shrinkage, average_variance = ledoit_wolf_shrinkage(centred, gram=gram, weights=None if scale is None else weight)
    counts = np.bincount(codes, weights=weight, minlength=n_classes)
    # Centred class means are combinations of rows: M = X' E with E = w onehot / counts (n x C).
    class_weights = one_hot(codes, n_classes) * (weight if scale is None else scale)[:, None] / counts
    quadratic_forms = _class_mean_quadratic_forms(scaled, gram, class_weights, 1.0 - shrinkage,
                                                  shrinkage * average_variance, n_samples=n_samples)
    return float((1.0 - shrinkage) * np.sum(counts / n_samples * quadratic_forms))


def _smaller_gram(matrix: np.ndarray) -> np.ndarray:
    """``XX'`` when n <= d, else ``X'X``: the cheaper of the two, with the same non-zero spectrum."""
    return matrix @ matrix.T if matrix.shape[0] <= matrix.shape[1] else matrix.T @ matrix


def _class_mean_quadratic_forms(centred: np.ndarray, gram: np.ndarray, class_weights: np.ndarray,
                                scale: float, ridge: float, n_samples: float | None = None) -> np.ndarray:
    """``diag(M' C^-1 M)`` for ``C = scale X'X / n + ridge I`` and class means ``M = X'E``.

    One Cholesky solve on the smaller side: for n <= d the push-through identity
    ``C^-1 X' = X' (scale XX'/n + ridge I)^-1`` turns the d x d system into an n x n one,
    ``M' C^-1 M = E' G (scale G/n + ridge I)^-1 E``. Without shrinkage (ridge 0) C can be singular;
    then the pseudo-inverse is taken through the eigendecomposition instead. ``n_samples`` (the
    total weight) defaults to the number of rows.
    """
    n_rows, n_features = centred.shape
    n_samples = n_rows if n_samples is None else n_samples
    system = scale / n_samples * gram + ridge * np.eye(len(gram))
    if ridge > _RELATIVE_RANK_TOL * max(float(np.trace(system)) / len(gram), _TINY):
        try:
            factor = scipy.linalg.cho_factor(system, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            pass
        else:
            if n_rows <= n_features:
                return np.einsum("ic,ic->c", gram @ class_weights,
                                 scipy.linalg.cho_solve(factor, class_weights, check_finite=False))
            class_means = centred.T @ class_weights
            return np.einsum("dc,dc->c", class_means,
                             scipy.linalg.cho_solve(factor, class_means, check_finite=False))
    eigenvalues, class_means_in_basis = _class_means_in_eigenbasis(centred, class_weights)
    denominators = scale * eigenvalues / n_samples + ridge
    keep = denominators > _RELATIVE_RANK_TOL * max(float(denominators.max(initial=0.0)), _TINY)
    # Class means lie in the row space of X: the eigenvectors of X'X with non-zero eigenvalue suffice.
    return np.sum(class_means_in_basis[keep] ** 2 / denominators[keep, None], axis=0)


def _class_means_in_eigenbasis(centred: np.ndarray, class_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues of X'X (its range only) and the class means ``X' E`` expressed in its eigenvectors."""
    n_samples, n_features = centred.shape
    if n_samples <= n_features:
        gram_eigenvalues, left = np.linalg.eigh(centred @ centred.T)
        keep = gram_eigenvalues > _RELATIVE_RANK_TOL * max(gram_eigenvalues.max(), _TINY)
        gram_eigenvalues, left = gram_eigenvalues[keep], left[:, keep]
        # Right singular vectors V = X' U / s, so V'(X'E) = U' X X' E / s = s U'E.
        return gram_eigenvalues, np.sqrt(gram_eigenvalues)[:, None] * (left.T @ class_weights)
    eigenvalues, right = np.linalg.eigh(centred.T @ centred)
    return np.clip(eigenvalues, 0.0, None), right.T @ (centred.T @ class_weights)


def ledoit_wolf_shrinkage(centred: np.ndarray, *, gram: np.ndarray | None = None,
                          weights: np.ndarray | None = None) -> tuple[float, float]:
    """Ledoit-Wolf shrinkage coefficient and target variance ``mu = tr(S) / d`` of centred data.

    Ledoit and Wolf, "A well-conditioned estimator for large-dimensional covariance matrices",
    J. Multivariate Analysis 2004, with ``S = X'X / n`` and the norm ``||A||^2 = tr(AA')/d``:
    ``delta^2 = ||S - mu I||^2``, ``b^2 = min(delta^2, 1/n^2 sum_k ||x_k x_k' - S||^2)`` and
    coefficient ``b^2 / delta^2``. Computed from whichever Gram matrix is smaller
    (``||X'X||_F = ||XX'||_F``), so d = 1280 costs no d x d work when n is smaller; pass ``gram``
    (from :func:`_smaller_gram`, of the sqrt(weights)-scaled rows with weights) when it is already at
    hand. ``weights``: row i counts as ``weights[i]`` rows (centred with the weighted mean).
    """
    n_rows, n_features = centred.shape
    weights = np.ones(n_rows) if weights is None else np.asarray(weights, dtype=np.float64)
    n_samples = float(weights.sum())
    row_norms2 = np.einsum("ij,ij->i", centred, centred)
    average_variance = float(weights @ row_norms2 / (n_samples * n_features))
    gram = _smaller_gram(centred * np.sqrt(weights)[:, None]) if gram is None else gram
    covariance_norm2 = float(np.sum(gram**2)) / n_samples**2  # ||S||_F^2
    delta2 = (covariance_norm2 - n_features * average_variance**2) / n_features
    spread2 = (float(weights @ row_norms2**2) - n_samples * covariance_norm2) / (n_samples**2 * n_features)
    if delta2 <= 0:
        return 0.0, average_variance
    return float(np.clip(min(spread2, delta2) / delta2, 0.0, 1.0)), average_variance
