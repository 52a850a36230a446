import pytest

from tladvisor.builtin.recommend import recommend as recommend_hook
from tladvisor.plugins import PluginHost
from tladvisor.records import AnalysisOptions, BackboneMeasurement, DatasetProfile, Score, StageShift
from tladvisor.advice.recommend import PROBE_ENOUGH, SMALL_PER_CLASS, recommend


def profile(per_class: int, n_classes: int = 4) -> DatasetProfile:
    counts = {f"c{i}": per_class for i in range(n_classes)}
    return DatasetProfile(n_samples=per_class * n_classes, n_classes=n_classes, class_counts=counts,
                          samples_per_class_min=per_class, samples_per_class_median=per_class,
                          imbalance_ratio=1.0)


def measurement(similarity: float, probe: float = 0.25, gain: float = 0.3, name: str = "net",
                stage_shift=(0.1, 0.2, 2.0, 3.0, 4.0)) -> BackboneMeasurement:
    scores = {
        "linear_probe_accuracy": Score(probe, 0.02, normalised=probe),
        "knn_accuracy": Score(probe - 0.05, 0.02, normalised=probe - 0.05),
        "pretraining_gain": Score(gain, 0.02, normalised=max(gain, 0)),
    }
    return BackboneMeasurement(
        backbone=name, similarity=Score(similarity, 0.02, similarity), scores=scores,
        stage_shift=tuple(StageShift(f"stage{i}", v, 1) for i, v in enumerate(stage_shift)),
        n_stages=len(stage_shift))


SMALL, LARGE = 40, 2000


@pytest.mark.parametrize("per_class, similarity, expected", [
    (SMALL, 0.85, "feature_extraction"),
    (SMALL, 0.2, "partial_freeze"),
    (LARGE, 0.85, "full_finetune"),
])
def test_four_scenario_prior(per_class, similarity, expected):
    rec = recommend(profile(per_class), [measurement(similarity)])
    assert rec.strategy == expected
    assert any("four-scenario rule" in r and expected in r for r in rec.rationale)


def test_large_and_different_without_pretraining_benefit_trains_from_scratch():
    rec = recommend(profile(LARGE), [measurement(0.2, gain=0.0)])
    assert rec.strategy == "from_scratch"
    assert rec.freeze_depth == 0
    assert any("negative transfer" in w for w in rec.warnings)


def test_measured_pretraining_gain_overrides_from_scratch_and_cites_the_number():
    rec = recommend(profile(LARGE), [measurement(0.2, gain=0.25)])
    assert rec.strategy == "full_finetune"
    assert any(r.startswith("Override") and "+0.250" in r for r in rec.rationale)


def test_a_strong_frozen_probe_makes_feature_extraction_enough():
    rec = recommend(profile(SMALL), [measurement(0.2, probe=0.99)])
    assert rec.strategy == "feature_extraction"
    assert rec.freeze_depth == rec.n_stages == 5


def test_the_probe_threshold_separates_partial_freeze_from_feature_extraction():
    below = recommend(profile(SMALL), [measurement(0.2, probe=PROBE_ENOUGH - 0.01)])
    at = recommend(profile(SMALL), [measurement(0.2, probe=PROBE_ENOUGH)])
    assert (below.strategy, at.strategy) == ("partial_freeze", "feature_extraction")
    assert f">= {PROBE_ENOUGH}" in " ".join(at.rationale)


def test_partial_freeze_depth_follows_where_the_shift_starts():
    rec = recommend(profile(SMALL), [measurement(0.3, stage_shift=(0.1, 0.2, 0.3, 2.0, 4.0, 5.0))])
    assert rec.strategy == "partial_freeze"
    assert rec.freeze_depth == 3
    assert any("stage3" in r for r in rec.rationale)
    early = recommend(profile(SMALL), [measurement(0.3, stage_shift=(5.0, 2.0, 3.0, 4.0))])
    assert early.freeze_depth == 1  # the stem's generic filters stay frozen at least


def test_backbones_are_ranked_by_frozen_feature_fit():
    rec = recommend(profile(SMALL), [measurement(0.9, probe=0.6, name="weak"),
                                     measurement(0.7, probe=0.9, name="strong")])
    assert rec.backbone == "strong"
    assert [r["backbone"] for r in rec.ranking] == ["strong", "weak"]


def test_rationale_cites_size_and_similarity_numbers():
    rec = recommend(profile(SMALL), [measurement(0.85)])
    text = " ".join(rec.rationale)
    assert f"{SMALL * 0.8:.0f} training images per class" in text
    assert "0.85" in text and str(SMALL_PER_CLASS) in text


@pytest.mark.parametrize("stage_shift, role", [((0.1, 0.2, 2.0), "not averaged into the similarity"),
                                               ((), "has no BatchNorm statistics, so the similarity is")])
def test_source_sample_distances_are_cited_with_their_role(stage_shift, role):
    measured = measurement(0.85, stage_shift=stage_shift)
    measured.scores["frechet_to_source"] = Score(1255.9, normalised=0.227)
    measured.scores["mmd_to_source"] = Score(0.086, normalised=0.934)
    text = " ".join(recommend(profile(SMALL), [measured]).rationale)
    assert "Frechet 1256 (normalised 0.23)" in text and "MMD² 0.086 (normalised 0.93)" in text
    assert role in text
    assert "source sample" not in " ".join(recommend(profile(SMALL), [measurement(0.85)]).rationale)


def test_confidence_is_higher_far_from_the_boundaries():
    far = recommend(profile(10), [measurement(0.95)]).confidence
    near = recommend(profile(int(SMALL_PER_CLASS / 0.8) - 1), [measurement(0.52)]).confidence
    assert 0 < near < far <= 0.95


def test_learning_rates_are_the_starting_rates_the_readme_states():
    """README, 'How the advice is made', item 4: the exact numbers, each read from the advice itself."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    stated = re.search(r"4\. \*\*Learning rates\*\* \(AdamW\): (.*?)\. These seed", readme, re.S).group(1)
    assert " ".join(stated.split()) == ("feature extraction head 3e-3; partial freeze head 3e-3, backbone 1e-3, "
                                        "decay 0.8; full fine-tune head 3e-3, backbone 1e-3, decay 0.7; "
                                        "from scratch 3e-3")
    advised = {"feature_extraction": recommend(profile(SMALL), [measurement(0.9)]),
               "partial_freeze": recommend(profile(SMALL), [measurement(0.2, probe=0.1)]),
               "full_finetune": recommend(profile(LARGE), [measurement(0.9)]),
               "from_scratch": recommend(profile(LARGE), [measurement(0.2, gain=0.0)])}
    assert {name: rec.strategy for name, rec in advised.items()} == {name: name for name in advised}
    assert {name: dict(rec.learning_rates) for name, rec in advised.items()} == {
        "feature_extraction": {"head": 3e-3, "backbone": 0.0, "layer_decay": 1.0},
        "partial_freeze": {"head": 3e-3, "backbone": 1e-3, "layer_decay": 0.8},
        "full_finetune": {"head": 3e-3, "backbone": 1e-3, "layer_decay": 0.7},
        "from_scratch": {"head": 3e-3, "backbone": 3e-3, "layer_decay": 1.0}}


def test_hook_recommend_uses_options_val_fraction():
    options = AnalysisOptions(source=".", val_fraction=0.5)
    host = PluginHost(load_entry_points=False)
    rec = host.call_first("recommend", profile=profile(100), measurements=[measurement(0.9)], options=options)
    assert rec.size["samples_per_class"] == 50
    assert recommend_hook(profile=profile(100), measurements=[], options=options) is None


def test_samples_per_class_counts_only_the_training_share_of_the_split():
    split = DatasetProfile(n_samples=400, n_classes=4, class_counts={f"c{i}": 100 for i in range(4)},
                           samples_per_class_min=100, samples_per_class_median=100, imbalance_ratio=1.0,
                           split_counts={"train": 300, "val": 100})
    rec = recommend(split, [measurement(0.9)], val_fraction=0.5)  # the actual split wins over the option
    assert rec.size["samples_per_class"] == 75


def test_freeze_depth_counts_backbone_stages_and_stops_at_one_without_batchnorm():
    from tladvisor.advice.recommend import freeze_depth_from_shift

    shifts = tuple(StageShift(name, v, 1) for name, v in (("stem", 0.1), ("s1", 0.2), ("s3", 0.3), ("s4", 3.0)))
    names = ("stem", "s1", "s2", "s3", "s4", "s5")  # s2 has no BatchNorm: no evidence that it still fits
    depth, where = freeze_depth_from_shift(shifts, 6, names)
    assert depth == 2
    assert "'s2' has no BatchNorm" in where
    depth, where = freeze_depth_from_shift(shifts, 6)  # without names: positions in the measured list
    assert depth == 3


def test_shifted_stem_keeps_the_minimum_depth_and_says_so():
    rec = recommend(profile(SMALL), [measurement(0.3, stage_shift=(5.0, 2.0, 3.0, 4.0))])
    (sentence,) = [r for r in rec.rationale if r.startswith("Freeze the first")]
    assert "stage 'stage0'" in sentence and "the minimum" in sentence


def test_training_counts_from_the_profile_are_used_when_present():
    counted = DatasetProfile(n_samples=20, n_classes=2, class_counts={"a": 10, "b": 10}, samples_per_class_min=10,
                             samples_per_class_median=10, imbalance_ratio=1.0, split_counts={"train": 15, "val": 5},
                             train_class_counts={"a": 7, "b": 8})
    rec = recommend(counted, [measurement(0.9)])
    assert rec.size["samples_per_class"] == 7.5
    assert any("7.5 training images per class" in r for r in rec.rationale)


def test_the_counterfactual_sweep_changes_the_pick_when_it_patches_the_module_constants(benchmark_module):
    """Issue #22 item 7: is_small/is_similar once bound the thresholds as default arguments at import, so
    the benchmark's counterfactual picks (which patch the module constants) all gave the shipped pick."""
    advice = benchmark_module("benchmarks.advice.suite")
    similar = advice.counterfactual_picks(profile(SMALL), measurement(0.55), val_fraction=0.0)
    assert similar["SMALL_PER_CLASS"][repr(SMALL_PER_CLASS)] == "feature_extraction"  # 40 < 400: small, similar
    assert similar["SMALL_PER_CLASS"]["5"] == "full_finetune"  # 40 >= 5: large and similar
    assert similar["SIMILARITY_THRESHOLD"]["0.5"] == "feature_extraction"
    assert similar["SIMILARITY_THRESHOLD"]["0.6"].startswith("partial_freeze@")  # 0.55 < 0.6: different
    different = advice.counterfactual_picks(profile(SMALL), measurement(0.2, probe=0.25), val_fraction=0.0)
    assert different["joint"]["400|0.3"].startswith("partial_freeze@")  # probe 0.25 < 0.3
    assert different["joint"]["400|0.2"] == "feature_extraction"  # probe 0.25 >= 0.2: enough
    assert different["joint"]["5|0.3"] == "full_finetune"  # large, different, but a real pretraining gain


def test_the_probe_reason_gives_the_chance_corrected_value_the_override_compares():
    rec = recommend(profile(SMALL), [measurement(0.2, probe=0.25)])
    (line,) = [r for r in rec.rationale if r.startswith("Frozen features")]
    assert f"(0.250 chance-corrected, the scale of the {PROBE_ENOUGH} bar)" in line
