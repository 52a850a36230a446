"""The learned gain prior (tladvisor.advice.prior): one definition of its facts, and a data file that predicts
exactly what the fitted model did (#22 item 6 groundwork)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tladvisor.advice import prior
from tladvisor.records import BackboneMeasurement, Score, StageShift


def fitted(stages=("stem", "stage1")):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, len(prior.FACTS) + len(stages)))
    x[3, 4] = math.nan  # a fact one task could not measure
    gains = {"full_finetune": x[:, 0] * 0.1 + rng.normal(scale=0.01, size=12), "partial_freeze@3": -x[:, 2] * 0.05}
    predictor = prior.GainPredictor(alpha=0.5, stages=stages, provenance={"grid": "test", "tasks": 12})
    return predictor.fit(x, gains, [f"t{i}" for i in range(12)]), x


def test_a_saved_prior_predicts_what_the_fitted_one_did(tmp_path):
    predictor, x = fitted()
    path = tmp_path / "gain_prior.json"
    prior.save(predictor, path)
    loaded = prior.load(path)
    row = list(x[0] + 0.3)
    row[5] = math.nan
    assert loaded.predict(row) == pytest.approx(predictor.predict(row), abs=1e-12)
    assert loaded.provenance == {"grid": "test", "tasks": 12}
    assert json.loads(path.read_text())["facts"][-2:] == ["stage_shift:stem", "stage_shift:stage1"]


def test_a_prior_is_never_scored_on_a_task_it_was_fitted_on():
    predictor, x = fitted()
    with pytest.raises(prior.Leak, match="t3"):
        predictor.predict(list(x[3]), task="t3")
    assert set(predictor.predict(list(x[3]), task="unseen")) == {"full_finetune", "partial_freeze@3"}


def test_a_prior_file_that_does_not_fit_its_facts_is_refused(tmp_path):
    predictor, _ = fitted()
    data = predictor.to_dict()
    data["stages"] = ["stem"]  # one stage fewer than the coefficients were fitted with
    with pytest.raises(ValueError, match="do not match"):
        prior.GainPredictor.from_dict(data)
    with pytest.raises(ValueError, match="format"):
        prior.GainPredictor.from_dict({**predictor.to_dict(), "format": 99})


def test_the_facts_of_a_measurement_and_their_row():
    measurement = BackboneMeasurement(
        backbone="b", similarity=Score(0.4), stage_shift=(StageShift("stem", 2.0, 3), StageShift("stage1", 0.5, 3)),
        scores={"linear_probe_accuracy": Score(0.8, normalised=0.6), "knn_accuracy": Score(0.7),
                "logme": Score(float("nan"))})
    facts = prior.measurement_facts(measurement)
    assert facts["bn_shift_geomean"] == pytest.approx(1.0) and facts["linear_probe_normalised"] == 0.6
    assert facts["pretraining_gain"] is None and facts["stage_shift"] == {"stem": 2.0, "stage1": 0.5}
    row = prior.fact_vector(facts, train_per_class=20, n_classes=4, stages=("stem", "stage1", "stage2"))
    assert row[:3] == [pytest.approx(math.log(20)), pytest.approx(math.log(4)), 0.4]
    assert math.isnan(row[prior.FACTS.index("pretraining_gain")]) and math.isnan(row[prior.FACTS.index("logme")])
    assert row[-3:-1] == [2.0, 0.5] and math.isnan(row[-1])
