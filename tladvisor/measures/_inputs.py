"""Input checks shared by the measures: float64 feature matrices and labels coded 0..C-1."""

from __future__ import annotations

import numpy as np


def as_feature_matrix(features: np.ndarray) -> np.ndarray:
    """``features`` as a 2-D float64 array (computing in float64 keeps Gram matrices accurate)."""
    matrix = np.asarray(features, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"features must be 2-D (n_samples, n_features), got shape {matrix.shape}")
    return matrix


def encode_labels(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels recoded to 0..C-1 (order of the sorted distinct values) and the number of classes C."""
    values = np.asarray(labels).ravel()
    classes, codes = np.unique(values, return_inverse=True)
    return codes.astype(np.int64), len(classes)


def one_hot(codes: np.ndarray, n_classes: int) -> np.ndarray:
    """(n, C) float64 indicator matrix of coded labels."""
    targets = np.zeros((len(codes), n_classes), dtype=np.float64)
    targets[np.arange(len(codes)), codes] = 1.0
    return targets


def check_same_rows(*arrays: np.ndarray) -> int:
    """The common number of rows, or a ValueError naming the mismatch."""
    rows = {len(a) for a in arrays}
    if len(rows) != 1:
        raise ValueError(f"arrays must have the same number of rows, got {[len(a) for a in arrays]}")
    return rows.pop()
