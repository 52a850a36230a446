"""The built-in ``measure_backbone`` hook on synthetic FeatureSets: separable vs shuffled, small data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tladvisor.measures.scores import measure_feature_set
from tladvisor.plugins import PluginHost
from tladvisor.records import AnalysisOptions, FeatureSet, Score, StageShift
from tladvisor.testing import tiny_backbone_spec

N_CLASSES, PER_CLASS, DIM = 4, 25, 24


def feature_set(*, shuffle: bool = False, per_class: int = PER_CLASS, seed: int = 0, **extra) -> FeatureSet:
    """Well separated Gaussian classes; ``shuffle`` breaks the link between features and labels."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(N_CLASSES), per_class)
    centres = rng.normal(size=(N_CLASSES, DIM)) * 3.0
    features = (centres[labels] + rng.normal(size=(len(labels), DIM))).astype(np.float32)
    if shuffle:
        labels = rng.permutation(labels)
    return FeatureSet(backbone="tiny_cnn", image_size=32, features=features, labels=labels,
                      sample_indices=np.arange(len(labels)), **extra)


def aligned_source_probs(labels: np.ndarray, n_source: int = 10, seed: int = 0) -> np.ndarray:
    """A source head whose top class tracks the target class 80% of the time."""
    rng = np.random.default_rng(seed)
    top = np.where(rng.random(len(labels)) < 0.8, labels * 2, rng.integers(0, n_source, len(labels)))
    logits = rng.normal(size=(len(labels), n_source))
    logits[np.arange(len(labels)), top] += 4.0
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return probs / probs.sum(axis=1, keepdims=True)


def test_hook_measure_backbone_runs_through_the_plugin_host():
    host = PluginHost(load_entry_points=False, default_plugins=("tladvisor.builtin.measures",))
    fs = feature_set(stage_shift=(StageShift("stem", 0.1, 1), StageShift("block1", 0.3, 1),
                                  StageShift("block2", 0.9, 1)))
    results = host.call_each("measure_backbone", backbone=tiny_backbone_spec(), features=fs, dataset=None,
                             options=AnalysisOptions(source=".", seed=0))
    assert host.failures == []
    [(plugin, scores)] = results
    assert plugin == "tladvisor.builtin.measures"
    assert {"knn_accuracy", "linear_probe_accuracy", "logme", "hscore", "bn_shift"} <= set(scores)
    for name, score in scores.items():
        assert isinstance(score, Score) and score.detail, name
        assert math.isfinite(score.value), name
        assert 0.0 <= score.normalised <= 1.0, name


def test_hook_measure_backbone_separable_labels_beat_shuffled_ones():
    separable, shuffled = measure_feature_set(feature_set()), measure_feature_set(feature_set(shuffle=True))
    for name in ("knn_accuracy", "linear_probe_accuracy", "logme", "hscore"):
        assert separable[name].normalised > shuffled[name].normalised + 0.5, name
    assert separable["linear_probe_accuracy"].value > 0.95
    assert separable["linear_probe_accuracy"].spread < 0.05
    assert shuffled["knn_accuracy"].normalised < 0.3
    assert separable["logme"].spread is not None and separable["logme"].spread > 0


def test_hook_measure_backbone_pretraining_gain_is_positive_against_noise():
    fs = feature_set()
    noise = np.random.default_rng(5).normal(size=fs.features.shape).astype(np.float32)
    scores = measure_feature_set(feature_set(random_features=noise))
    assert scores["linear_probe_accuracy_random"].value < 0.5
    gain = scores["pretraining_gain"]
    assert gain.value > 0.5 and gain.normalised > 0.6
    assert gain.value == pytest.approx(scores["linear_probe_accuracy"].value
                                       - scores["linear_probe_accuracy_random"].value)


def test_hook_measure_backbone_source_head_scores():
    labels = np.repeat(np.arange(N_CLASSES), PER_CLASS)
    informative = measure_feature_set(feature_set(source_probs=aligned_source_probs(labels)))
    blind = measure_feature_set(feature_set(source_probs=np.full((len(labels), 10), 0.1)))
    assert informative["leep"].normalised > 0.4 > blind["leep"].normalised
    assert informative["nce"].normalised > 0.6
    assert blind["leep"].normalised == pytest.approx(0.0, abs=1e-9)  # LEEP = -H(Y) exactly
    assert blind["nce"].value == pytest.approx(-math.log(N_CLASSES))
    assert "leep" not in measure_feature_set(feature_set())  # no source head: no LEEP/NCE


def test_hook_measure_backbone_stage_shift_halves():
    shifts = tuple(StageShift(f"s{i}", v, 2) for i, v in enumerate([0.1, 0.4, 1.0, 4.0]))
    scores = measure_feature_set(feature_set(stage_shift=shifts))
    geometric = 0.16 ** 0.25  # geometric mean, as the summary similarity uses
    assert scores["bn_shift"].value == pytest.approx(geometric)
    assert scores["bn_shift"].normalised == pytest.approx(1 / (1 + geometric / 0.74))  # the calibrated mapping
    assert scores["bn_shift_early"].value == pytest.approx(0.2)
    assert scores["bn_shift_late"].value == pytest.approx(2.0)
    assert scores["bn_shift_late"].spread == pytest.approx(1.5)
    assert not scores["bn_shift"].higher_is_better


def test_hook_measure_backbone_distances_to_a_source_sample():
    fs = feature_set()
    rng = np.random.default_rng(9)
    near = fs.features[rng.permutation(len(fs.features))[:60]] + rng.normal(scale=0.1, size=(60, DIM))
    far = near + 6.0
    near_scores = measure_feature_set(feature_set(source_sample_features=near))
    far_scores = measure_feature_set(feature_set(source_sample_features=far))
    for name in ("frechet_to_source", "mmd_to_source"):
        assert far_scores[name].value > near_scores[name].value
        assert near_scores[name].normalised > 0.8 > 0.5 > far_scores[name].normalised, name
        assert near_scores[name].spread is not None


def test_hook_measure_backbone_never_raises_on_tiny_or_broken_inputs():
    one_per_class = measure_feature_set(feature_set(per_class=1, stage_shift=(StageShift("stem", 0.5, 1),)))
    assert set(one_per_class) == {"bn_shift"}  # nothing label-based is meaningful with one image per class
    two_per_class = measure_feature_set(feature_set(per_class=2))
    assert "linear_probe_accuracy" in two_per_class and "logme" in two_per_class

    fs = feature_set()
    broken = fs.features.copy()
    broken[0, 0] = np.nan
    scores = measure_feature_set(feature_set(source_probs=np.ones((3, 10)),  # wrong rows: ignored
                                             source_sample_features=np.ones((5, DIM + 1))))  # wrong width
    assert "leep" not in scores and "frechet_to_source" not in scores
    nan_row = FeatureSet(backbone="b", image_size=32, features=broken, labels=fs.labels,
                         sample_indices=fs.sample_indices)
    assert math.isfinite(measure_feature_set(nan_row)["logme"].value)


def test_hook_measure_backbone_a_failing_measure_loses_only_itself(monkeypatch):
    import tladvisor.measures.scores as measures

    def broken_logme(*args, **kwargs):
        raise np.linalg.LinAlgError("SVD did not converge")

    monkeypatch.setattr(measures, "logme", broken_logme)
    labels = np.repeat(np.arange(N_CLASSES), PER_CLASS)
    scores = measure_feature_set(feature_set(source_probs=aligned_source_probs(labels)))
    assert {"knn_accuracy", "linear_probe_accuracy", "hscore", "leep", "nce"} <= set(scores)  # the others stand
    failed = scores["logme"]
    assert math.isnan(failed.value) and failed.normalised is None
    assert failed.detail == "logme could not be computed: LinAlgError: SVD did not converge"


def test_the_built_in_measures_conform_to_the_measure_contract():
    import tladvisor.builtin.measures as measures
    from tladvisor.testing import check_measure_plugin

    assert check_measure_plugin(measures) == []


def test_check_measure_plugin_names_each_broken_rule():
    from types import SimpleNamespace

    from tladvisor.measures.names import BUILT_IN_MEASURES
    from tladvisor.testing import check_measure_plugin

    calls = []

    def measure_backbone(features, options):
        calls.append(1)
        if len(features.labels) < 6:
            raise ValueError("too few images")
        return {"logme": Score(0.5, detail="mine"), "wobbly": Score(float(len(calls)), detail="changes"),
                "bad": Score(0.5, spread=-1.0, normalised=2.0), "": Score(1.0, detail="no name")}

    problems = check_measure_plugin(SimpleNamespace(measure_backbone=measure_backbone, __name__="mine"),
                                    reserved=BUILT_IN_MEASURES)
    text = "\n".join(problems)
    assert "mine: measure_backbone raised on one image per class: ValueError: too few images" in text
    assert "score 'logme' on full features: the name is already taken" in text
    assert "score 'bad' on full features: spread -1.0 is neither None nor >= 0" in text
    assert "score 'bad' on full features: normalised 2.0 is neither None nor in [0, 1]" in text
    assert "score 'bad' on full features: has no detail" in text
    assert "a score name on full features is '', not a non-empty string" in text
    assert "gave different scores for the same input (full features)" in text
    assert check_measure_plugin(SimpleNamespace()) == ["SimpleNamespace: has no measure_backbone function"]


def test_the_measure_names_load_without_the_numerics():
    """The report and the CLI read measure names; importing them must not pull in scipy (0.6 s) or scikit-learn."""
    import subprocess
    import sys

    script = ("import sys\nfrom tladvisor.measures import names\nimport tladvisor.measures as m\n"
              "assert 'logme' in dir(m) and names.LOGME == 'logme'\n"
              "print(sorted(k for k in ('scipy', 'sklearn') if k in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
