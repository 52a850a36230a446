"""The bootstrap spread matches the known standard error of a mean, with and without the row cap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tladvisor.measures.bootstrap import bootstrap, bootstrap_two_sample


@pytest.mark.parametrize("max_rows", [2000, 400])  # plain bootstrap, and m-out-of-n rescaled
def test_bootstrap_spread_of_a_mean_is_its_standard_error(max_rows):
    values = np.random.default_rng(0).normal(loc=3.0, scale=2.0, size=2000)
    value, spread = bootstrap(np.mean, values, n=300, seed=1, max_rows=max_rows)
    assert value == pytest.approx(values.mean())  # the point value uses all rows
    assert spread == pytest.approx(2.0 / math.sqrt(2000), rel=0.15)


def test_bootstrap_resamples_rows_of_all_arrays_together():
    x = np.arange(50.0)
    value, spread = bootstrap(lambda a, b: float(np.max(np.abs(a - b))), x, x.copy(), n=10)
    assert value == 0.0 and spread == 0.0  # pairs stay pairs


def test_bootstrap_ignores_failed_resamples_and_reports_nan_without_data():
    values = np.arange(10.0)
    assert math.isnan(bootstrap(lambda a: math.nan, values)[1])
    assert math.isnan(bootstrap(np.mean, np.array([1.0]))[1])
    with pytest.raises(ValueError):
        bootstrap(lambda a, b: 0.0, np.zeros(3), np.zeros(4))


def test_two_sample_bootstrap_spread_of_a_mean_difference():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(400, 1)), rng.normal(size=(100, 1)) + 1.0
    value, spread = bootstrap_two_sample(lambda x, y: float(y.mean() - x.mean()), a, b, n=300, seed=0)
    assert value == pytest.approx(b.mean() - a.mean())
    assert spread == pytest.approx(math.sqrt(1 / 400 + 1 / 100), rel=0.15)


@pytest.mark.parametrize("n_rows,max_rows", [(2000, 400), (300, 400)])  # capped subsets, and halves
def test_subsample_spread_of_a_mean_is_its_standard_error_and_rows_never_repeat(n_rows, max_rows):
    from tladvisor.measures.bootstrap import subsample

    values = np.random.default_rng(0).normal(loc=3.0, scale=2.0, size=n_rows)
    seen = []

    def mean_of_distinct_rows(x):
        seen.append(len(x))
        assert len(np.unique(x)) == len(x)
        return float(np.mean(x))

    value, spread = subsample(mean_of_distinct_rows, values, n=300, seed=1, max_rows=max_rows)
    assert value == pytest.approx(values.mean())
    assert spread == pytest.approx(2.0 / math.sqrt(n_rows), rel=0.15)
    assert set(seen[1:]) == {min(max_rows, n_rows // 2)}


def test_weighted_bootstrap_gives_the_statistic_distinct_rows_and_their_counts():
    values = np.random.default_rng(2).normal(size=50)

    def weighted_mean(x, weights=None):
        if weights is None:  # the point value, on all rows
            return float(np.mean(x))
        assert len(np.unique(x)) == len(x) < len(values)
        return float(np.average(x, weights=weights))

    assert bootstrap(weighted_mean, values, n=30, seed=3, weighted=True) == pytest.approx(
        bootstrap(np.mean, values, n=30, seed=3), rel=1e-12)
