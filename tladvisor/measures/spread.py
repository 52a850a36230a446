"""Spreads, computed one way everywhere: the sample standard deviation (ddof = 1) of a set of values, and
the standard error of their mean (that deviation over the square root of their number).

A ``±`` over cross-validation folds in the product is one of these two, and the text beside it says which:
the probes' scores carry the standard deviation over their folds (how much a fold's accuracy varies), a
cross-validated trial's accuracy the standard error of its mean (how far the mean may be off).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


def sample_sd(values: Iterable[float]) -> float:
    """The sample standard deviation (ddof = 1); 0 for a single value, nan for none."""
    array = np.asarray(list(values), dtype=float)
    if array.size == 0:
        return math.nan
    return float(array.std(ddof=1)) if array.size > 1 else 0.0


def standard_error(values: Iterable[float]) -> float:
    """The standard error of the mean: :func:`sample_sd` over sqrt(n); 0 for a single value, nan for none."""
    array = np.asarray(list(values), dtype=float)
    return sample_sd(array) / math.sqrt(array.size) if array.size else math.nan
