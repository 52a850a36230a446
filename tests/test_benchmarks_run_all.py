"""run_all.py and advice/suite_summary.py: resuming an interrupted run, the learning-rate settings of the grid,
the joint threshold sweep."""

from __future__ import annotations

import importlib
import json
from dataclasses import asdict

import pytest

from benchmarks.advice import suite_summary as summary

@pytest.fixture
def suite(monkeypatch):
    return importlib.import_module("benchmarks.run_all"), importlib.import_module("benchmarks.advice.suite")


def _line(kind, result):
    return json.dumps({"kind": kind, "result": result}) + "\n"


def test_resume_keeps_only_units_made_with_the_same_settings(suite, tmp_path):
    run_all, advice = suite
    settings = advice.Settings(work_dir=str(tmp_path / "a"))
    same = {k: v for k, v in asdict(settings).items()} | {"work_dir": "/elsewhere"}  # scratch folder may differ
    current = advice.RESULTS_FORMAT
    similarity_format = importlib.import_module("benchmarks.similarity.shift").ROWS_FORMAT
    other = same | {"image_size": 96}
    partial = tmp_path / "results.partial.jsonl"
    partial.write_text(
        _line("advice", {"format": current, "task": "photos-small", "seed": 0, "settings": same})
        + _line("advice", {"format": current, "task": "photos-small", "seed": 1, "settings": other})
        + _line("advice", {"format": current - 1, "task": "photos-small", "seed": 2, "settings": same})  # older code
        + _line("tuning", {"format": current, "task": "digits-small", "seed": 0, "arm": "seeded", "budget": 8,
                           "settings": same})
        + _line("tuning", {"format": current, "task": "digits-small", "seed": 0, "arm": "plain", "budget": 4,
                           "settings": same})
        + _line("similarity", [{"family": "photos", "image_size": 128, "format": similarity_format}])
        + '{"kind": "advice", "result": {"task": "text-sm')  # cut short by the kill

    finished = run_all.load_finished(partial, settings, similarity_size=128, tuning_trials=8)
    assert sorted(finished, key=str) == sorted([("advice", ("photos-small", 0)), ("tuning", ("digits-small", 0, "seeded")),
                                                ("similarity", None)], key=str)
    assert run_all.load_finished(partial, settings, similarity_size=64, tuning_trials=8).keys() == {
        ("advice", ("photos-small", 0)), ("tuning", ("digits-small", 0, "seeded"))}
    assert run_all.load_finished(tmp_path / "missing.jsonl", settings, 128, 8) == {}
    older = tmp_path / "older.partial.jsonl"  # similarity rows that mean something else now
    older.write_text(_line("similarity", [{"family": "photos", "image_size": 128, "format": similarity_format - 1}]))
    assert run_all.load_finished(older, settings, similarity_size=128, tuning_trials=8) == {}


def test_every_config_gets_the_same_two_rate_settings_and_knows_the_products(suite):
    _, advice = suite
    from tladvisor.advice.recommend import LEARNING_RATES

    base = advice.rates_for("full_finetune", "base")
    fast = advice.rates_for("full_finetune", "fast")
    assert base == advice.GRID_BASE_RATES["full_finetune"]
    assert fast["head"] == pytest.approx(3 * base["head"])
    assert fast["backbone"] == pytest.approx(10 * base["backbone"])
    assert advice.rates_for("feature_extraction", "fast")["backbone"] == 0.0
    scratch = advice.rates_for("from_scratch", "fast")
    assert scratch["backbone"] == scratch["head"]  # capped: the backbone never learns faster than the head
    for strategy in advice.GRID_BASE_RATES:  # the literal-advice regret needs the product's rates in the grid
        setting = advice.product_setting(strategy)
        assert setting is not None, strategy
        rates = advice.rates_for(strategy, setting)
        assert rates["head"] == pytest.approx(LEARNING_RATES[strategy]["head"])
        assert rates["backbone"] == pytest.approx(LEARNING_RATES[strategy]["backbone"])


def test_joint_sweep_scores_each_pair_by_the_config_it_picks(suite):
    run_all, _ = suite
    accs = {"feature_extraction": {"accuracy": 0.9}, "full_finetune": {"accuracy": 0.7}}
    units = [
        {"trials": accs, "counterfactual_picks": {"joint": {"150|0.8": "full_finetune", "400|0.8": "feature_extraction",
                                                            "400|0.9": "partial_freeze@9"}}},
        {"trials": accs, "counterfactual_picks": {"joint": {"150|0.8": "feature_extraction",
                                                            "400|0.8": "feature_extraction",
                                                            "400|0.9": "feature_extraction"}}},
    ]
    cells = summary.joint_sweep(units)
    assert cells["150|0.8"]["mean_regret"] == pytest.approx(0.1)  # 0.2 and 0
    assert cells["150|0.8"]["hits"] == 1
    assert cells["400|0.8"]["mean_regret"] == 0 and cells["400|0.8"]["hits"] == 2
    assert cells["400|0.9"]["known"] == 1  # a config the grid did not train is left out, not scored 0


def test_sweeps_count_units_from_before_a_value_was_added_as_unknown(suite):
    run_all, _ = suite
    from tladvisor.advice.recommend import PROBE_ENOUGH

    accs = {"feature_extraction": {"accuracy": 0.9}, "partial_freeze@1": {"accuracy": 0.6}}
    old = {"trials": accs, "counterfactual_picks": {
        "PROBE_ENOUGH": {"0.5": "partial_freeze@1", "current": "0.8"}, "joint": {"400|0.5": "partial_freeze@1"}}}
    new = {"trials": accs, "counterfactual_picks": {
        "PROBE_ENOUGH": {"0.3": "feature_extraction", "0.5": "partial_freeze@1", "current": repr(PROBE_ENOUGH)},
        "joint": {"400|0.3": "feature_extraction", "400|0.5": "partial_freeze@1"}}}
    rows = {row["value"]: row for row in summary.sweep_thresholds([old, new])}
    assert list(rows) == ["0.3", "0.5"]  # in numeric order, from every unit
    assert (rows["0.3"]["known"], rows["0.3"]["unknown"], rows["0.3"]["mean_regret"]) == (1, 1, 0.0)
    assert rows["0.5"]["known"] == 2 and rows["0.5"]["mean_regret"] == pytest.approx(0.3)
    # "current" is the product's value now, not what an older unit recorded ("0.8" above)
    assert [v for v, row in rows.items() if row["current"]] == [v for v in rows if float(v) == PROBE_ENOUGH]
    assert not rows["0.5"]["current"] or PROBE_ENOUGH == 0.5
    cells = summary.joint_sweep([old, new])
    assert cells["400|0.3"]["known"] == 1 and cells["400|0.5"]["known"] == 2
    header, rows = importlib.import_module("benchmarks.common.report").joint_rows(cells)
    assert header[1:] == ["0.3", "0.5"]  # numeric order, whatever order the units brought them in
    assert rows == [["400", "0.0 (1 of 1)", "30.0 (0)"]]  # a column not every run knows says so


def test_units_advised_by_other_rule_constants_are_counted(suite):
    run_all, advice = suite
    now = advice.rule_constants()
    assert set(now) == set(advice.SWEEPS) and now["PROBE_ENOUGH"] > 0
    older = {**now, "PROBE_ENOUGH": now["PROBE_ENOUGH"] + 0.5}
    units = [{"rule": now}, {"rule": older}, {}]  # the last from a run that did not record its rule
    assert summary.advised_by_another_rule(units) == 2
