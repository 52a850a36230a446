"""The honest grid's pure logic (benchmarks/honest_logic.py, grid_summary.py, bench_honest_grid.py planning):
training until flat, rate searches wide enough, the ceiling filter, atomic and resumable unit files."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def logic(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    for name in ("honest_logic", "grid_summary", "bench_honest_grid"):
        sys.modules.pop(name, None)
    return importlib.import_module("honest_logic")


def test_a_rising_curve_keeps_training_until_the_cap(logic):
    rule = logic.Flatness(patience=3, min_epochs=2, cap=6)
    curve = [0.1, 0.2, 0.3, 0.4, 0.5]
    assert logic.stop_reason(curve, rule) is None
    assert logic.stop_reason(curve + [0.6], rule) == "cap"


def test_a_curve_is_flat_after_patience_epochs_without_a_better_value(logic):
    rule = logic.Flatness(patience=3, min_epochs=2, cap=100)
    assert logic.stop_reason([0.5, 0.6, 0.6, 0.55], rule) is None  # 2 epochs since the best
    assert logic.stop_reason([0.5, 0.6, 0.6, 0.55, 0.6], rule) == "flat"  # equal is not better
    assert logic.stop_reason([0.5, 0.6, 0.6, 0.55, 0.61], rule) is None
    assert logic.stop_reason([0.5, 0.6, 0.6, 0.55, 0.61], logic.Flatness(patience=3, min_delta=0.02, cap=100)) == "flat"


def test_min_epochs_holds_off_a_flat_verdict(logic):
    assert logic.stop_reason([0.5, 0.5, 0.5], logic.Flatness(patience=1, min_epochs=5, cap=100)) is None
    assert logic.stop_reason([0.5] * 5, logic.Flatness(patience=1, min_epochs=5, cap=100)) == "flat"


def test_flat_means_what_the_product_trainer_stops_on(logic):
    """The grid relies on train_trial's patience to stop: it must stop exactly where stop_reason says flat."""
    from torch import nn

    from tladvisor.tuning.trainer import fit

    scripted = [0.2, 0.4, 0.4, 0.3, 0.41, 0.35, 0.4, 0.39, 0.9]
    values = iter(scripted)
    result = fit(nn.Linear(2, 2), lambda epoch: None, lambda: next(values), epochs=len(scripted), patience=3,
                 on_epoch=None)
    rule = logic.Flatness(patience=3, min_epochs=4, cap=len(scripted))
    first_flat = next(n for n in range(1, len(scripted) + 1) if logic.stop_reason(scripted[:n], rule) == "flat")
    assert result.stopped_early and len(result.learning_curve) == first_flat == 8
    assert logic.best_epoch(result.learning_curve) == result.best_epoch == 4


def test_a_best_rate_at_either_end_of_the_search_is_flagged(logic):
    assert logic.rate_at_edge({1e-4: 0.5, 1e-3: 0.7, 1e-2: 0.6}) is None
    assert logic.rate_at_edge({1e-4: 0.8, 1e-3: 0.7, 1e-2: 0.6}) == "lowest"
    assert logic.rate_at_edge({1e-4: 0.5, 1e-3: 0.7, 1e-2: 0.75}) == "highest"
    assert logic.rate_at_edge({1e-4: 0.5, 1e-3: 0.7, 1e-2: 0.75}, tolerance=0.1) is None
    assert logic.rate_at_edge({1e-4: 0.5, 1e-3: 0.7}) == "too few rates"


def test_the_ceiling_filter_drops_only_tasks_where_every_strategy_is_above_97(logic):
    tasks = {"easy": {"fe": 0.99, "ft": 0.98}, "one_low": {"fe": 0.99, "ft": 0.97}, "hard": {"fe": 0.6, "ft": 0.7}}
    kept, dropped = logic.ceiling_filter(tasks)
    assert kept == ["one_low", "hard"] and dropped == ["easy"]
    assert not logic.at_ceiling({})


def test_units_are_written_whole_and_resumed_only_with_the_same_settings(logic, tmp_path):
    key = logic.settings_key({"cap": 100, "patience": 10})
    assert key != logic.settings_key({"cap": 50, "patience": 10})
    path = tmp_path / "units" / "t" / "seed0" / "fe.json"
    logic.write_json_atomic(path, {"settings_key": key, "val_best": 0.5})
    assert logic.read_finished(path, key)["val_best"] == 0.5
    assert logic.read_finished(path, "other") is None  # other settings: run it again
    path.write_text('{"settings_key": "' + key + '", "val_be')  # cut short by a kill
    assert logic.read_finished(path, key) is None
    with pytest.raises(TypeError):
        logic.write_json_atomic(path, {"x": object()})
    assert sorted(p.name for p in path.parent.iterdir()) == ["fe.json"]  # no temporary file left behind


def test_the_grid_searches_at_least_three_rates_per_strategy_and_rejects_fewer(logic):
    grid = importlib.import_module("bench_honest_grid")
    assert all(len(rates) >= 3 for rates in grid.RATE_GRID.values())
    assert all(max(r) / min(r) >= 30 for r in grid.RATE_GRID.values())
    args = grid.parse_args(["--rates", "3", "--configs", "feature_extraction", "full_finetune", "--seeds", "2"])

    class Task:
        name = "t"
    groups = grid.plan(args, [Task()])
    assert [(t, s, len(u)) for t, s, u in groups] == [("t", 0, 6), ("t", 1, 6)]
    with pytest.raises(SystemExit) as exit_info:
        grid.parse_args(["--rates", "2"])
    assert exit_info.value.code == 2
    assert grid.rates_searched("feature_extraction", 3) == (1e-3, 3e-3, 1e-2)  # the middle of 6
    assert grid.rates_searched("full_finetune", 3) == grid.RATE_GRID["full_finetune"][:3]
    assert grid.rates_searched("full_finetune") == grid.RATE_GRID["full_finetune"]


def test_the_rate_is_chosen_on_validation_and_the_test_accuracy_is_that_runs(logic, tmp_path):
    summary = importlib.import_module("grid_summary")
    key = "k"
    for rate, val, test in ((1e-3, 0.6, 0.9), (3e-3, 0.8, 0.5), (1e-2, 0.7, 0.7)):
        logic.write_json_atomic(tmp_path / "units" / "t" / "seed0" / f"fe__lr{rate:g}.json", {
            "settings_key": key, "task": "t", "family": "f", "seed": 0, "config": "feature_extraction",
            "rate": rate, "val_best": val, "test_at_best": test, "val_curve": [val], "stop": "flat", "cpu_s": 1.0,
            "n_test": 10, "epochs_run": 1})
    result = summary.summarise(tmp_path / "units", key)
    row = result["tasks"]["t"]
    assert row["chosen_rates"]["feature_extraction"] == [3e-3]
    assert row["test_mean"]["feature_extraction"] == 0.5  # not the best test accuracy (0.9): that would peek
    summary.write_summary(tmp_path, result)
    assert json.loads((tmp_path / "grid_summary.json").read_text())["training_units"] == 3
    assert "lr 0.003 (flat, test 0.500): 0.80" in (tmp_path / "curves.md").read_text()


def test_the_reference_comparison_chooses_rates_on_validation_and_flags_beyond_noise(logic, tmp_path):
    reference = importlib.import_module("bench_reference_loop")
    units = (("product", 1e-3, 0.9, 0.60), ("product", 3e-3, 0.7, 0.95), ("reference", 1e-3, 0.8, 0.80),
             ("reference", 3e-3, 0.6, 0.99), ("product", 1e-2, 0.5, 0.5))
    for loop, rate, val, test in units:
        logic.write_json_atomic(tmp_path / f"{loop}-{rate:g}.json", {
            "settings_key": "k", "task": "t", "seed": 0, "config": "full_finetune", "loop": loop, "rate": rate,
            "val_best": val, "test_at_best": test, "n_test": 400, "cpu_s": 2.0})
    (row,) = reference.compare(tmp_path, "k")
    assert row["product_mean"] == 0.60 and row["reference_mean"] == 0.80  # the validation-chosen rates' tests
    assert row["reference_better"] and row["noise"] == pytest.approx(((0.24 + 0.16) / 400) ** 0.5)
    assert row["cpu"] == {"product": 6.0, "reference": 4.0}


def test_the_rules_own_partial_freeze_depth_joins_the_grid_only_where_partial_freeze_is_searched(logic):
    grid = importlib.import_module("bench_honest_grid")
    units = [("feature_extraction", 1e-3), ("partial_freeze@2", 1e-4)]
    assert grid.with_rule_pick(units, "partial_freeze@1", 3) == units + [("partial_freeze@1", r)
                                                                          for r in grid.rates_searched("partial_freeze", 3)]
    assert grid.with_rule_pick(units, "partial_freeze@2", 3) == units  # already in the grid
    assert grid.with_rule_pick(units, "full_finetune", 3) == units  # not a depth: the grid's configs decide
    assert grid.with_rule_pick(units[:1], "partial_freeze@1", 3) == units[:1]  # --configs without partial freeze
