"""Out-of-task advice (benchmarks/advice/methods.py, loto.py): folds that never score a model on
a task it was fitted on, the gain predictor and the choice of its penalty (the race: tests/test_race.py)."""

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


def test_the_pick_is_the_baseline_unless_a_gain_is_predicted(methods):
    assert methods.pick({"full_finetune": -0.01}) == "feature_extraction"
    assert methods.pick({"full_finetune": 0.01, "from_scratch": 0.02}) == "from_scratch"


def test_the_ridge_penalty_is_chosen_within_the_training_tasks_only(methods):
    rng = np.random.default_rng(1)
    tasks = [f"t{i}" for i in range(12)]
    x = rng.normal(size=(12, 1))
    noisy = {"full_finetune": rng.normal(scale=0.1, size=12)}  # gains unrelated to the fact: shrink hard
    signal = {"full_finetune": 0.2 * x[:, 0]}  # gains the fact explains exactly: barely shrink
    index = {t: i for i, t in enumerate(tasks)}
    seen = set()

    def fitter(gains):
        def fit(train, alpha):
            seen.update(train)
            rows = [index[t] for t in train]
            return methods.GainPredictor(alpha).fit(x[rows], {c: g[rows] for c, g in gains.items()}, train)
        return fit

    def error(gains):
        return lambda predictor, task: (predictor.predict(x[index[task]], task)["full_finetune"]
                                        - gains["full_finetune"][index[task]]) ** 2
    inner = {t: t for t in tasks[:10]}
    assert methods.choose_alpha(fitter(noisy), error(noisy), inner) >= 100
    assert methods.choose_alpha(fitter(signal), error(signal), inner) <= 1
    assert seen == set(tasks[:10])  # the two tasks held out of the outer fold never inform the choice
    fitted_on = []
    families = {t: f"F{i // 2}" for i, t in enumerate(tasks[:10])}  # pairs of tasks share a family

    def spy(train, alpha):
        fitted_on.append(set(train))
        return fitter(signal)(train, alpha)

    def family_error(predictor, task):
        assert not {t for t in predictor.tasks_ if families[t] == families[task]}  # its family is out of the fit
        return error(signal)(predictor, task)
    methods.choose_alpha(spy, family_error, families)
    assert all(len(train) == 8 for train in fitted_on)


def _rows():
    rows = []
    for i, (task, family) in enumerate((("a", "F"), ("b", "F"), ("c", "G"), ("d", "H"))):
        gain = 0.1 * (i - 1.5)
        rows.append({"task": task, "seed": 0, "family": family, "features": [float(i), 1.0],
                     "test": {"feature_extraction": 0.6, "full_finetune": 0.6 + gain},
                     "n_test": 50, "curves": {"feature_extraction": [0.5, 0.6], "full_finetune": [0.4, 0.6 + gain]},
                     "epoch_cost": {"feature_extraction": 0.1, "full_finetune": 1.0}, "rule": "feature_extraction",
                     "actual": {"feature_extraction": "feature_extraction", "full_finetune": "full_finetune"},
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
    again = loto.fit_gain_prior(rows, configs, loto.choose_train_alpha(rows, configs, {r["task"]: r["family"] for r in rows}))
    shipped = load(out)
    assert shipped.provenance["tasks"] == sorted({r["task"] for r in rows})
    assert shipped.provenance["grid_settings_key"] == "9e331263e33015b9"
    assert shipped.stages == tuple(rows[0]["stages"]) and set(shipped.coef_) == set(configs)
    row = rows[0]["features"]
    assert shipped.predict(row) == pytest.approx(again.predict(row), abs=1e-12)
    assert shipped.provenance["image_size"] == 64 and shipped.provenance["backbone"] == "efficientnet_lite0"
    # the file tladvisor ships is that fit on the committed units: a unit commit that adds a task refits it
    product = load(Path(__file__).resolve().parents[1] / "tladvisor" / "advice" / "gain_prior.json")
    assert product.provenance["tasks"] == shipped.provenance["tasks"] and product.alpha == shipped.alpha
    assert product.predict(row) == pytest.approx(shipped.predict(row), abs=1e-9)
    assert fit_prior.main([str(tmp_path / "nowhere")]) == 2
    assert fit_prior.main([str(grid), "--key", "9e331263e33015b9", "--image-size", "128", "--out", str(out)]) == 2
