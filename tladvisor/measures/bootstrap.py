"""Resampling uncertainty for any measure: the (m-out-of-n) bootstrap over rows.

Efron, "Bootstrap methods: another look at the jackknife", Annals of Statistics 1979; rows are
resampled with replacement and the statistic recomputed. To stay cheap on 2000 x 1280 features a
resample draws ``m = min(n, max_rows)`` rows and the spread is rescaled by ``sqrt(m / n)``, the
m-out-of-n bootstrap of Bickel, Goetze and van Zwet (Statistica Sinica 1997), valid for statistics
whose spread shrinks like 1/sqrt(n). The point value is always the statistic on all the data.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from tladvisor.measures._inputs import check_same_rows

Statistic = Callable[..., float]


def bootstrap(statistic: Statistic, *arrays: np.ndarray, n: int = 20, seed: int = 0,
              max_rows: int = 500, weighted: bool = False) -> tuple[float, float]:
    """``(statistic(*arrays), spread)``: the spread is the bootstrap std over ``n`` row resamples.

    The same rows are drawn from every array (features and labels stay paired). Resamples where
    the statistic is not finite are ignored; fewer than two finite ones give a ``nan`` spread.
    ``weighted``: the statistic takes ``weights=`` (row i counts ``weights[i]`` times) and is given
    each resample's distinct rows with their counts, the same value on about 0.63x the rows.
    """
    n_rows = check_same_rows(*arrays)
    value = float(statistic(*arrays))
    if n_rows < 2 or n < 2:
        return value, math.nan
    rng = np.random.default_rng(seed)
    size = min(n_rows, max_rows)
    values = []
    for rows in (rng.integers(0, n_rows, size=size) for _ in range(n)):
        if weighted:
            distinct, counts = np.unique(rows, return_counts=True)
            values.append(float(statistic(*(a[distinct] for a in arrays), weights=counts)))
        else:
            values.append(float(statistic(*(a[rows] for a in arrays))))
    return value, _rescaled_std(values, size, n_rows)


def subsample(statistic: Statistic, *arrays: np.ndarray, n: int = 20, seed: int = 0,
              max_rows: int = 500) -> tuple[float, float]:
    """``(statistic(*arrays), spread)`` from ``n`` subsets of distinct rows (no row drawn twice).

    The delete-d jackknife (Shao and Wu, "A general theory for jackknife variance estimation",
    Annals of Statistics 1989): subsets of ``r = min(max_rows, n_rows // 2)`` rows drawn without
    replacement, spread ``std * sqrt(r / (n_rows - r))``. For statistics that repeated rows
    distort, such as LogME when rows are fewer than features (see :func:`~tladvisor.measures.transferability.logme`).
    """
    n_rows = check_same_rows(*arrays)
    value = float(statistic(*arrays))
    size = min(max_rows, n_rows // 2)
    if size < 2 or n < 2:
        return value, math.nan
    rng = np.random.default_rng(seed)
    values = [float(statistic(*(a[rows] for a in arrays)))
              for rows in (np.sort(rng.choice(n_rows, size=size, replace=False)) for _ in range(n))]
    finite = np.asarray([v for v in values if math.isfinite(v)])
    if len(finite) < 2:
        return value, math.nan
    return value, float(np.std(finite, ddof=1) * math.sqrt(size / (n_rows - size)))


def bootstrap_two_sample(statistic: Callable[[np.ndarray, np.ndarray], float], a: np.ndarray,
                         b: np.ndarray, *, n: int = 20, seed: int = 0,
                         max_rows: int = 500) -> tuple[float, float]:
    """The bootstrap for a statistic of two independent samples (a distance): each is resampled on its own.

    The spread is rescaled by the smaller sample's ``sqrt(m / n)``, the one that dominates the error.
    """
    value = float(statistic(a, b))
    if min(len(a), len(b)) < 2 or n < 2:
        return value, math.nan
    rng = np.random.default_rng(seed)
    size_a, size_b = min(len(a), max_rows), min(len(b), max_rows)
    values = [float(statistic(a[rng.integers(0, len(a), size=size_a)], b[rng.integers(0, len(b), size=size_b)]))
              for _ in range(n)]
    smaller = int(np.argmin([len(a), len(b)]))
    return value, _rescaled_std(values, (size_a, size_b)[smaller], (len(a), len(b))[smaller])


def _rescaled_std(values: list[float], resample_size: int, n_rows: int) -> float:
    finite = np.asarray([v for v in values if math.isfinite(v)])
    if len(finite) < 2:
        return math.nan
    return float(np.std(finite, ddof=1) * math.sqrt(resample_size / n_rows))
