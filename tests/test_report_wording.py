"""Small wording fixes in the report: frozen backbone rate, accuracies with three decimals, large numbers
without exponents, failure reasons shown whole, the scratch comparison only when scratch ran, and a
glossary of the strategies (lp_ft included)."""

from __future__ import annotations

from tladvisor.report.html import render_report
from tladvisor.report.svg import fmt
from tladvisor.report.tuning_view import tuning_view
from tladvisor.report.view import verdict_view

REASON = "interrupted by SIGTERM at epoch 3 of 8 while training the backbone; the curve so far is kept"


def analysis(best_by_strategy: dict) -> dict:
    trials = [
        {"number": 0, "state": "COMPLETE", "value": 1.0, "strategy": "feature_extraction", "duration_s": 3.0,
         "params": {"backbone": "tiny", "strategy": "feature_extraction", "lr_head": 3e-3},
         "learning_curve": [0.9, 1.0], "reason": None},
        {"number": 1, "state": "FAIL", "value": None, "strategy": "lp_ft", "duration_s": 9.0,
         "params": {"backbone": "tiny", "strategy": "lp_ft", "lr_head": 3e-3}, "learning_curve": [0.5],
         "reason": REASON},
    ]
    return {
        "schema_version": 1, "run_id": "r",
        "recommendation": {"backbone": "tiny", "strategy": "feature_extraction", "freeze_depth": 3, "n_stages": 3,
                           "learning_rates": {"head": 3e-3, "backbone": 0.0, "layer_decay": 1.0},
                           "confidence": 0.6, "rationale": ["because"], "warnings": []},
        "tuning": {"study_name": "s", "requested_trials": 2, "trials": trials, "best": trials[0],
                   "best_by_strategy": best_by_strategy, "param_importances": {}},
    }


def test_verdict_says_frozen_and_three_decimals():
    view = verdict_view(analysis({"feature_extraction": 0}))
    assert ("backbone", "frozen") in view["recommendation"]["learning_rates"]
    assert view["best_trial"]["value"] == "1.000"
    assert "only a new classification head" in view["recommendation"]["strategy_meaning"]


def test_large_numbers_have_no_exponent():
    assert fmt(1250.0) == "1,250" and fmt(999.7) == "1,000"
    assert fmt(0.123456) == "0.123" and fmt(12.5) == "12.5"


def test_scratch_comparison_only_when_scratch_ran_and_glossary_explains_lp_ft():
    view = tuning_view(analysis({"feature_extraction": 0, "lp_ft": 1}))
    assert view["curves_title"] == "best trial of each strategy"
    assert dict(view["glossary"])["lp ft"].startswith("linear probe, then fine-tune (LP-FT")
    assert tuning_view(analysis({"feature_extraction": 0, "from_scratch": 1}))["curves_title"] == \
        "transfer against scratch"
    html = render_report(analysis({"feature_extraction": 0, "lp_ft": 1}))
    assert "transfer against scratch" not in html
    assert REASON in html  # whole, in the state cell rather than a last column that scrolls out of view
    assert 'title="linear probe, then fine-tune' in html


def test_a_backbone_left_out_is_a_warning_of_the_report():
    data = {**analysis({}), "backbones_left_out": {"resnet18": "weights not in the cache at /c/r.pth"}}
    assert {"kind": "backbone left out", "text": "resnet18 was not measured: weights not in the cache at /c/r.pth"} \
        in verdict_view(data)["warnings"]


def test_a_plugin_strategy_is_explained_from_the_stored_registry():
    data = analysis({"feature_extraction": 0})
    bitfit = {"number": 2, "state": "COMPLETE", "value": 0.9, "duration_s": 2.0, "learning_curve": [0.9],
              "params": {"backbone": "tiny", "strategy": "bitfit", "lr_head": 3e-3}, "reason": None}
    data["tuning"]["trials"].append(bitfit)
    data["strategies"] = {"feature_extraction": {"description": "heads only, as stored", "colour": None},
                          "bitfit": {"description": "only biases (and the head) train", "colour": "#123456"}}
    view = tuning_view(data)
    assert dict(view["glossary"])["bitfit"] == "only biases (and the head) train"
    assert dict(view["glossary"])["feature extraction"] == "heads only, as stored"  # the run's own words
    assert dict(view["glossary"])["lp ft"].startswith("linear probe, then fine-tune")  # not stored: the built-in's
    row = next(row for row in view["trials"] if row["number"] == 2)
    assert row["strategy_meaning"] == "only biases (and the head) train"
    html = render_report(data)
    assert 'title="only biases (and the head) train"' in html
    data["recommendation"]["strategy"] = "bitfit"
    assert verdict_view(data)["recommendation"]["strategy_meaning"] == "only biases (and the head) train"


def test_the_scenario_map_takes_small_and_similar_from_the_recommendation():
    """#25 item 2: the report recomputed small/similar, which Recommendation.size already holds (a plugin's
    recommender may decide them its own way)."""
    from tladvisor.report.view import scenario_view

    analysis = {"backbones": [{"name": "net", "similarity": {"value": 0.9, "spread": 0.0}}],
                "recommendation": {"backbone": "net", "strategy": "from_scratch", "size": {
                    "samples_per_class": 20, "small_per_class": 400, "similarity_threshold": 0.5,
                    "small": False, "similar": False}},
                "dataset": {"profile": {}}}
    assert scenario_view(analysis)["prior"] == "from_scratch"  # the stored verdicts, not 20 < 400 and 0.9 >= 0.5
    del analysis["recommendation"]["size"]["small"], analysis["recommendation"]["size"]["similar"]
    assert scenario_view(analysis)["prior"] == "feature_extraction"  # an older analysis: recomputed
