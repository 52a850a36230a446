import math
from types import SimpleNamespace

import pytest

from tladvisor.builtin.recommend import summarise_similarity
from tladvisor.records import FeatureSet, Score, StageShift
from tladvisor.advice.similarity import bn_similarity, summarise
from tladvisor.measures.shift import SHIFT_AT_HALF_SIMILARITY, shift_similarity


def shifts(*values):
    return tuple(StageShift(f"s{i}", v, 1) for i, v in enumerate(values))


def test_shift_similarity_is_one_at_zero_half_at_g0_and_decreasing():
    assert shift_similarity(0.0) == 1.0
    assert shift_similarity(SHIFT_AT_HALF_SIMILARITY) == pytest.approx(0.5)
    values = [shift_similarity(g) for g in (0.05, 0.1, 0.5, 1, 5, 50)]
    assert values == sorted(values, reverse=True)
    assert all(0 < v < 1 for v in values)


def test_bn_similarity_uses_geometric_mean_so_one_huge_stage_does_not_dominate():
    # greyscale photos: the stem's statistics collapse (shift ~50), later stages stay moderate
    one_outlier = bn_similarity(shifts(50.0, 0.2, 0.2, 0.2))
    all_shifted = bn_similarity(shifts(3.0, 3.0, 3.0, 3.0))
    clean = bn_similarity(shifts(0.1, 0.1, 0.1, 0.1))
    assert clean.value > one_outlier.value > all_shifted.value
    assert clean.spread == pytest.approx(0.0)
    assert one_outlier.spread > 0.05


def test_similarity_falls_monotonically_as_every_stage_shifts_more():
    # Illustrative per-stage shifts shaped like a blur sweep (growing shifts, the middle stage most), not a
    # measurement: benchmarks/similarity/shift.py measures the real ones (docs/benchmarks.md).
    measured = [
        (0.139, 0.081, 0.087, 0.142, 0.158, 0.207),
        (0.172, 0.114, 0.135, 0.156, 0.168, 0.200),
        (0.275, 0.249, 0.422, 0.219, 0.225, 0.191),
        (0.526, 0.507, 1.400, 0.461, 0.508, 0.248),
        (0.818, 0.747, 2.264, 0.860, 0.964, 0.336),
        (1.520, 1.326, 3.385, 1.754, 1.677, 0.586),
    ]
    sims = [summarise(shifts(*m), {}).value for m in measured]
    assert all(a > b for a, b in zip(sims, sims[1:])), sims
    assert sims[0] > 0.8 and sims[-1] < 0.4


def test_summary_without_bn_falls_back_to_source_head_scores():
    scores = {"leep": Score(-1.0, normalised=0.7), "nce": Score(-0.5, normalised=0.5)}
    summary = summarise((), scores)
    assert summary.value == pytest.approx(0.6)
    assert summary.spread == pytest.approx(0.1)
    assert math.isnan(summarise((), {}).value)


def test_source_sample_distances_leave_the_calibrated_batchnorm_summary_alone():
    distances = {"frechet_to_source": Score(40.0, normalised=0.2), "mmd_to_source": Score(0.1, normalised=0.9)}
    base = summarise(shifts(0.1, 0.1), {})
    assert summarise(shifts(0.1, 0.1), distances) == base
    assert base.detail.startswith("from BatchNorm statistics")


def test_without_batchnorm_the_source_sample_mmd_joins_the_source_head_scores_but_not_frechet():
    distances = {"frechet_to_source": Score(40.0, normalised=0.2), "mmd_to_source": Score(0.1, normalised=0.9),
                 "leep": Score(-1.0, normalised=0.7), "nce": Score(-1.0, normalised=math.nan)}
    summary = summarise((), distances)
    assert summary.value == pytest.approx(0.8)
    assert "mmd_to_source" in summary.detail and "leep" in summary.detail
    assert "frechet" not in summary.detail and "nce" not in summary.detail


def test_hook_summarise_similarity_reads_stage_shift_from_features():
    features = FeatureSet(backbone="x", image_size=32, features=None, labels=None, sample_indices=None,
                          stage_shift=shifts(SHIFT_AT_HALF_SIMILARITY, SHIFT_AT_HALF_SIMILARITY))
    image, text = SimpleNamespace(modality="image"), SimpleNamespace(modality="text")
    result = summarise_similarity(backbone=image, scores={}, features=features)
    assert result.value == pytest.approx(0.5)
    # a text encoder's hidden-state shift is another scale: not mapped through the image calibration
    assert math.isnan(summarise_similarity(backbone=text, scores={}, features=features).value)
    mmd = {"mmd_to_source": Score(0.1, normalised=0.9)}
    assert summarise_similarity(backbone=text, scores=mmd, features=features).value == pytest.approx(0.9)
