"""The benchmark suite's arithmetic (benchmarks/common/stats.py): regret, seed spread, within-noise, time to target."""

from __future__ import annotations

import math

import pytest

from benchmarks.common import stats


def test_config_names():
    assert stats.config_name("partial_freeze", 2) == "partial_freeze@2"
    assert stats.config_name("full_finetune", 0) == "full_finetune"
    assert stats.strategy_of("partial_freeze@4") == "partial_freeze"


def test_regret_is_best_minus_recommended():
    accs = {"feature_extraction": 0.80, "partial_freeze@2": 0.85, "full_finetune": 0.70}
    assert stats.regret(accs, "feature_extraction") == pytest.approx(0.05)
    assert stats.regret(accs, "partial_freeze@2") == 0.0
    with pytest.raises(KeyError):
        stats.regret(accs, "from_scratch")


def test_exact_tie_goes_to_the_cheaper_config():
    assert stats.best_config({"full_finetune": 0.9, "feature_extraction": 0.9}) == "feature_extraction"
    assert stats.best_config({"partial_freeze@2": 0.9, "partial_freeze@4": 0.9}) == "partial_freeze@4"


def test_mean_spread_is_sample_standard_deviation():
    assert stats.mean_spread([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))
    assert stats.mean_spread([0.5]) == (0.5, 0.0)
    mean, spread = stats.mean_spread([])
    assert math.isnan(mean) and math.isnan(spread)


def test_within_noise():
    assert stats.within_noise(0.01, 0.02)
    assert not stats.within_noise(0.03, 0.02)
    assert stats.within_noise(0.0, 0.0)
    assert not stats.within_noise(0.02, 0.02)  # smaller than the spread, not equal


def test_summarise_task_numbers():
    per_seed = [{"feature_extraction": 0.80, "full_finetune": 0.90},
                {"feature_extraction": 0.84, "full_finetune": 0.86}]
    summary = stats.summarise_task(per_seed, ["feature_extraction", "feature_extraction"])
    assert summary["best"] == "full_finetune"
    assert summary["configs"]["full_finetune"]["mean"] == pytest.approx(0.88)
    assert summary["regret_per_seed"] == [pytest.approx(0.10), pytest.approx(0.02)]
    assert summary["regret_mean"] == pytest.approx(0.06)
    # noise: the larger spread of best (0.0283) and recommended (0.0283): 0.06 is not within it
    assert summary["noise"] == pytest.approx(math.sqrt(0.0008))
    assert not summary["within_noise"]
    assert summary["hits"] == 0
    assert summary["best_per_seed"] == ["full_finetune", "full_finetune"]


def test_summarise_task_with_advice_changing_between_seeds():
    per_seed = [{"feature_extraction": 0.80, "partial_freeze@1": 0.79, "full_finetune": 0.70},
                {"feature_extraction": 0.70, "full_finetune": 0.75}]
    summary = stats.summarise_task(per_seed, ["partial_freeze@1", "full_finetune"])
    assert summary["regret_per_seed"] == [pytest.approx(0.01), 0.0]
    assert summary["configs"]["partial_freeze@1"]["spread"] == 0.0  # trained on one seed only
    assert summary["hits"] == 1
    with pytest.raises(ValueError):
        stats.summarise_task(per_seed, ["full_finetune"])


def test_first_reach_counts_trials_and_cost_in_order():
    values = [0.5, None, 0.79, 0.81, 0.9]
    assert stats.first_reach(values, [10, 1, 2, 3, 4], 0.8) == (4, 16.0)
    assert stats.first_reach(values, [1] * 5, 0.95) == (None, None)
    assert stats.first_reach([0.8], [7.5], 0.8) == (1, 7.5)


def test_median_and_ratio():
    assert stats.median([3, 1, 2]) == 2
    assert stats.median([4, 1, 2, 3]) == 2.5
    assert math.isnan(stats.median([]))
    assert stats.ratio(1, 4) == 0.25
    assert math.isnan(stats.ratio(1, 0))
