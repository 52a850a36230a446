"""Out-of-task advice (benchmarks/advice/methods.py, loto.py): folds that never score a model on
a task it was fitted on, the gain predictor, successive halving."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import numpy as np
import pytest

@pytest.fixture
def methods(monkeypatch):
    return importlib.import_module("benchmarks.advice.methods")


def test_leave_one_task_out_holds_each_task_out_once_and_never_trains_on_it(methods):
    groups = {"a": "a", "b": "b", "c": "c"}
    folds = methods.task_folds(groups)
    assert [held for _g, _train, held in folds] == [["a"], ["b"], ["c"]]
    for _group, train, held in folds:
        assert not set(train) & set(held) and set(train) | set(held) == set(groups)


def test_leave_one_family_out_holds_a_whole_family_out(methods):
    folds = methods.task_folds({"a1": "A", "a2": "A", "b1": "B"})
    assert folds == [("A", ["b1"], ["a1", "a2"]), ("B", ["a1", "a2"], ["b1"])]


def test_a_predictor_refuses_to_score_a_task_it_was_fitted_on(methods):
    x = np.array([[0.0], [1.0], [2.0]])
    predictor = methods.GainPredictor().fit(x, {"full_finetune": np.array([0.0, 0.1, 0.2])}, ["a", "b", "c"])
    with pytest.raises(methods.Leak, match="b"):
        predictor.predict(np.array([1.0]), "b")
    assert predictor.predict(np.array([3.0]), "d")["full_finetune"] > 0.2


def test_the_predictor_learns_which_strategy_gains_and_tolerates_a_missing_measure(methods):
    rng = np.random.default_rng(0)
    size = rng.uniform(0, 1, 40)
    x = np.column_stack([size, rng.normal(size=40), np.full(40, np.nan)])  # a measure never made
    gains = {"full_finetune": 0.3 * (size - 0.5), "from_scratch": -0.2 + 0 * size}
    predictor = methods.GainPredictor(alpha=0.1).fit(x, gains, [f"t{i}" for i in range(40)])
    assert methods.pick(predictor.predict(np.array([0.95, 0.0, np.nan]), "new")) == "full_finetune"
    assert methods.pick(predictor.predict(np.array([0.05, 0.0, np.nan]), "new")) == "feature_extraction"


def test_contenders_are_those_the_prior_cannot_separate(methods):
    gains = {"partial_freeze@2": 0.02, "full_finetune": 0.05, "from_scratch": -0.3}
    assert methods.contenders(gains, 0.04) == ["full_finetune", "partial_freeze@2"]
    assert methods.contenders(gains, 0.06) == ["feature_extraction", "full_finetune", "partial_freeze@2"]
    assert methods.pick({"full_finetune": -0.01}) == "feature_extraction"


def test_successive_halving_keeps_the_best_half_and_pays_only_the_extra_epochs(methods):
    curves = {"fe": [0.5, 0.6, 0.6, 0.6], "pf": [0.4, 0.55, 0.7, 0.8], "ft": [0.45, 0.62, 0.65, 0.9], "sc": [0.1] * 4}
    cost_per_epoch = {"fe": 1.0, "pf": 2.0, "ft": 3.0, "sc": 3.0}
    race = methods.successive_halving(list(curves), lambda c, b: max(curves[c][:b]),
                                      lambda c, b: cost_per_epoch[c] * b, min_budget=1, max_budget=4)
    assert [sorted(r) for r in race.rungs] == [["fe", "ft", "pf", "sc"], ["fe", "ft"]]
    assert race.winner == "ft"  # pf would have won at 4 epochs: the race is short, and says so
    # rung 1: 1+2+3+3 = 9; rung 2: fe and ft one more epoch each (1 + 3); the survivor is not trained on
    assert race.cost == pytest.approx(9 + 4)


def test_the_race_stops_at_the_largest_budget(methods):
    curves = {"a": [0.1, 0.2, 0.3], "b": [0.1, 0.2, 0.35], "c": [0.0] * 3, "d": [0.0] * 3, "e": [0.0] * 3}
    race = methods.successive_halving(list(curves), lambda c, b: max(curves[c][:b]), lambda c, b: float(b),
                                      min_budget=1, max_budget=3)
    assert [len(r) for r in race.rungs] == [5, 2] and race.winner == "a"  # rung 2 at budget 2: a ties b, kept first
    race = methods.successive_halving(list(curves), lambda c, b: max(curves[c][:b]), lambda c, b: float(b),
                                      min_budget=3, max_budget=3)
    assert len(race.rungs) == 1 and race.winner == "b"


def test_a_single_contender_wins_without_a_race_beyond_one_rung(methods):
    race = methods.successive_halving(["fe"], lambda c, b: 0.5, lambda c, b: float(b), min_budget=2)
    assert race.winner == "fe" and race.cost == 2.0 and len(race.rungs) == 1


def _rows():
    rows = []
    for i, (task, family) in enumerate((("a", "F"), ("b", "F"), ("c", "G"), ("d", "H"))):
        gain = 0.1 * (i - 1.5)
        rows.append({"task": task, "seed": 0, "family": family, "features": [float(i), 1.0],
                     "test": {"feature_extraction": 0.6, "full_finetune": 0.6 + gain},
                     "n_test": 50, "curves": {"feature_extraction": [0.5, 0.6], "full_finetune": [0.4, 0.6 + gain]},
                     "epoch_cost": {"feature_extraction": 0.1, "full_finetune": 1.0}, "rule": "feature_extraction",
                     "joint": {"400|0.3": "feature_extraction", "20|0.3": "full_finetune"},
                     "advice_cpu_s": 1.0, "grid_cpu_s": 10.0})
    return rows


@pytest.mark.parametrize("holdout", ["task", "family"])
def test_the_evaluation_never_scores_a_model_on_its_own_task(methods, monkeypatch, holdout):
    loto = importlib.import_module("benchmarks.advice.loto")
    seen = []
    original = methods.GainPredictor.predict

    def spy(self, features, task):
        seen.append((tuple(self.tasks_), task))
        return original(self, features, task)
    monkeypatch.setattr(loto.GainPredictor, "predict", spy)
    rows = _rows()
    results = loto.evaluate(rows, holdout, margin=None, min_epochs=1, alpha=1.0)
    assert sorted(task for _fitted, task in seen) == ["a", "b", "c", "d"]
    for fitted, task in seen:
        assert task not in fitted
        if holdout == "family":  # the held-out task's whole family is out of the fit
            family = {r["task"]: r["family"] for r in rows}
            assert all(family[t] != family[task] for t in fitted)
    assert set(results) == {"rule", "rule-refit", "best-constant", "meta", "prior+race"}
    assert all(len(per_run) == 4 for per_run in results.values())
    assert all(v["regret"] >= 0 for per_run in results.values() for v in per_run.values())


def test_the_report_gives_median_mean_noise_share_and_compute(methods):
    loto = importlib.import_module("benchmarks.advice.loto")
    rows = _rows()
    summary = loto.report(rows, loto.evaluate(rows, "task", margin=None, min_epochs=1, alpha=1.0))
    rule = summary["methods"]["rule"]
    assert rule["regret_per_task"] == pytest.approx({"a": 0.0, "b": 0.0, "c": 0.05, "d": 0.15})
    assert rule["median"] == pytest.approx(0.025) and rule["mean"] == pytest.approx(0.05)
    # noise: binomial standard error of the best config's accuracy on 50 test images (one seed), Agresti-Coull
    adjusted = (0.6 * 50 + 2) / 54
    assert summary["noise"]["a"] == pytest.approx(math.sqrt(adjusted * (1 - adjusted) / 54))
    assert loto.binomial_error(1.0, 80) > 0.015  # a perfect score on 80 images is not noise-free
    assert rule["within_noise"] == 3 and rule["compute_ratio_max"] == pytest.approx(0.1)
    assert rule["within_2_points"] == 2 and rule["worst"] == pytest.approx(0.15)  # a: 0, b: 0; c: 5, d: 15 points
    assert "| prior+race |" in summary["table"]
    assert "| d | H | full_finetune | 75.0 |" in summary["per_task_table"]


def test_learned_methods_choose_a_role_and_the_pick_names_the_depth_it_trains(methods):
    loto = importlib.import_module("benchmarks.advice.loto")
    rows = _rows()
    for i, r in enumerate(rows):  # the shift depth differs per task; half-depth freezing wins on every task
        shift = f"partial_freeze@{1 + i % 2}"
        r["actual"] = {"feature_extraction": "feature_extraction", "full_finetune": "full_finetune",
                       "partial_freeze@half": "partial_freeze@3", "partial_freeze@shift": shift}
        r["test"]["partial_freeze@half"], r["test"]["partial_freeze@shift"] = 0.95, 0.5
        r["all_tests"] = {"feature_extraction": r["test"]["feature_extraction"], "full_finetune": r["test"]["full_finetune"],
                          "partial_freeze@3": 0.95, shift: 0.5}
        for role in ("partial_freeze@half", "partial_freeze@shift"):
            r["curves"][role], r["epoch_cost"][role] = [0.5, r["test"][role]], 1.0
        r["rule"] = shift  # the rule freezes at the shift depth: scored exactly, as that config
    results = loto.evaluate(rows, "task", margin=None, min_epochs=1, alpha=1.0)
    assert all(v["pick"] == "partial_freeze@3" and v["regret"] == 0 for v in results["best-constant"].values())
    assert all(v["regret"] == pytest.approx(0.45) for v in results["rule"].values())


def test_a_partial_freeze_depth_the_grid_did_not_train_stands_for_the_nearest(methods):
    loto = importlib.import_module("benchmarks.advice.loto")
    trained = {"feature_extraction": 0.5, "partial_freeze@2": 0.6, "partial_freeze@4": 0.7}
    assert loto.nearest_trained("partial_freeze@1", trained) == "partial_freeze@2"
    assert loto.nearest_trained("partial_freeze@5", trained) == "partial_freeze@4"
    assert loto.nearest_trained("full_finetune", trained) == "full_finetune"


def test_a_config_only_some_runs_trained_scores_the_rule_exactly_and_is_not_learned_from(methods):
    loto = importlib.import_module("benchmarks.advice.loto")
    rows = _rows()
    rows[0]["test"]["partial_freeze@1"] = 0.9  # the rule's pick on task a, trained there only
    rows[0]["curves"]["partial_freeze@1"] = [0.9]
    rows[0]["epoch_cost"]["partial_freeze@1"] = 1.0
    rows[0]["rule"] = "partial_freeze@1"
    results = loto.evaluate(rows, "task", margin=None, min_epochs=1, alpha=1.0)
    assert results["rule"][("a", 0)]["regret"] == 0.0
    assert results["meta"][("a", 0)]["regret"] == pytest.approx(0.9 - 0.6)  # it chose among FE and FT only
    assert all(v["pick"] != "partial_freeze@1" for m in ("meta", "prior+race", "best-constant")
               for v in results[m].values())


def test_a_task_whose_rate_search_is_still_open_is_not_scored(methods, tmp_path):
    """A config chosen from a search whose best sits at an edge, the step out not yet trained, may still be
    overturned: the task waits (found on the real grid: two tasks were scored mid-search)."""
    loto = importlib.import_module("benchmarks.advice.loto")
    assert loto.search_closed({0.3: 0.5, 1.0: 0.7, 3.0: 0.6}, "full_finetune")
    assert not loto.search_closed({0.3: 0.5, 1.0: 0.6, 3.0: 0.7}, "full_finetune")  # 3x best: 10x pending
    assert not loto.search_closed({1.0: 0.7, 3.0: 0.6}, "full_finetune")  # two of three rates: open
    assert loto.search_closed({1.0: 0.7}, "full_finetune")  # a later seed's single chosen rate


def test_the_shipped_prior_file_is_the_evaluations_fit_on_every_task(tmp_path):
    """benchmarks.advice.fit_prior writes the fit the out-of-task folds make, on all finished tasks, with its
    provenance; tladvisor.advice.prior.load reads back a predictor that predicts the same."""
    from benchmarks.advice import fit_prior, loto
    from tladvisor.advice.prior import load

    grid = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "honest_grid"
    out = tmp_path / "gain_prior.json"
    assert fit_prior.main([str(grid), "--key", "9e331263e33015b9", "--out", str(out)]) == 0
    rows, _, _ = loto.evaluated_rows(grid, "9e331263e33015b9")
    configs = [c for c in loto.common_configs(rows) if c != loto.BASELINE]
    again = loto.fit_gain_prior(rows, configs, 1.0)
    shipped = load(out)
    assert shipped.provenance["tasks"] == sorted({r["task"] for r in rows})
    assert shipped.provenance["grid_settings_key"] == "9e331263e33015b9"
    assert shipped.stages == tuple(rows[0]["stages"]) and set(shipped.coef_) == set(configs)
    row = rows[0]["features"]
    assert shipped.predict(row) == pytest.approx(again.predict(row), abs=1e-12)
    assert fit_prior.main([str(tmp_path / "nowhere")]) == 2
