"""The backbone-ranking benchmark's pure logic (benchmarks/ranking/logic.py): agreement, the cost of following a
measure, and an out-of-task choice that never looks at the task it is scored on."""

from __future__ import annotations

import math

import pytest


@pytest.fixture
def logic(benchmark_module):
    return benchmark_module("benchmarks.ranking.logic")


def unit(measure: dict[str, float], accuracy: dict[str, float], key: str = "m") -> dict:
    return {"backbones": {name: {"measures": {key: measure[name]}, "tuned_accuracy": accuracy[name]}
                          for name in accuracy}}


def test_tau_is_one_when_the_measure_orders_backbones_as_training_does_and_minus_one_when_reversed(logic):
    acc = {"a": 0.9, "b": 0.8, "c": 0.7}
    assert logic.unit_tau(unit({"a": 3, "b": 2, "c": 1}, acc), "m") == pytest.approx(1.0)
    assert logic.unit_tau(unit({"a": 1, "b": 2, "c": 3}, acc), "m") == pytest.approx(-1.0)


def test_tau_is_undefined_when_training_ties_every_backbone(logic):
    assert math.isnan(logic.unit_tau(unit({"a": 3, "b": 2}, {"a": 0.5, "b": 0.5}), "m"))


def test_regret_is_zero_for_the_right_pick_and_the_gap_for_a_wrong_one(logic):
    acc = {"a": 0.9, "b": 0.8, "c": 0.7}
    assert logic.top_pick_regret(unit({"a": 3, "b": 2, "c": 1}, acc), "m") == pytest.approx(0.0)
    assert logic.top_pick_regret(unit({"a": 1, "b": 2, "c": 3}, acc), "m") == pytest.approx(0.2)


def test_a_tie_at_the_top_of_the_measure_costs_the_worst_of_the_tied(logic):
    assert logic.top_pick_regret(unit({"a": 3, "b": 3, "c": 1}, {"a": 0.9, "b": 0.6, "c": 0.7}), "m") == pytest.approx(0.3)


def test_a_measure_missing_on_some_backbones_picks_among_the_others_and_nan_when_missing_everywhere(logic):
    acc = {"a": 0.9, "b": 0.8}
    assert logic.top_pick_regret(unit({"a": math.nan, "b": 1.0}, acc), "m") == pytest.approx(0.1)
    assert math.isnan(logic.top_pick_regret(unit({"a": math.nan, "b": math.nan}, acc), "m"))


def test_the_out_of_task_choice_never_looks_at_the_held_out_task(logic):
    # "oracle" shines on t1 alone: counting t1 its mean is (5 - 2) / 3 = 1 > 0.2, so a choice that looked
    # at the held-out task would pick it there; on t2 and t3 alone it averages -1.
    per_task = {"t1": {"oracle": 5.0, "steady": 0.2}, "t2": {"oracle": -1.0, "steady": 0.2},
                "t3": {"oracle": -1.0, "steady": 0.2}}
    chosen = logic.choose_out_of_task(per_task, ("oracle", "steady"))
    assert chosen["t1"] == {"chosen": "steady", "score": 0.2}
    assert chosen["t2"]["chosen"] == "oracle" and chosen["t3"]["chosen"] == "oracle"  # t1 counts for them


def test_the_out_of_task_choice_skips_undefined_scores_and_a_candidate_never_defined(logic):
    per_task = {"t1": {"x": math.nan, "y": 0.1}, "t2": {"x": 0.9, "y": 0.1}, "t3": {"x": math.nan, "y": 0.5}}
    chosen = logic.choose_out_of_task(per_task, ("x", "y"))
    assert chosen["t1"]["chosen"] == "x"  # its one defined value elsewhere (0.9) beats y's mean (0.3)
    assert chosen["t2"]["chosen"] == "y"  # x is undefined on t1 and t3
    assert chosen["t3"]["chosen"] == "x" and math.isnan(chosen["t3"]["score"])
    alone = logic.choose_out_of_task({"only": {"x": 1.0}}, ("x",))["only"]
    assert alone["chosen"] is None and math.isnan(alone["score"])  # nothing else to choose on


def test_a_paired_difference_is_clear_only_beyond_two_standard_errors(logic):
    steady = logic.paired_difference([0.5, 0.6, 0.55, 0.58], [0.4, 0.5, 0.45, 0.47])
    assert steady["n"] == 4 and steady["mean"] == pytest.approx(0.1025) and steady["clear"]
    noisy = logic.paired_difference([0.9, 0.1, 0.8, 0.2], [0.1, 0.9, 0.2, 0.7])
    assert not noisy["clear"]
    assert not logic.paired_difference([0.9], [0.1])["clear"]  # one task says nothing about noise
    assert logic.paired_difference([math.nan, 0.5], [0.2, math.nan])["n"] == 0


def test_the_rate_grid_grows_past_an_edge_until_the_best_rate_is_inside_or_the_bound_is_reached(logic):
    assert logic.next_multiplier({0.3: 0.9, 1.0: 0.8, 3.0: 0.7}) == 0.1
    assert logic.next_multiplier({0.3: 0.5, 1.0: 0.8, 3.0: 0.9}) == 10.0
    assert logic.next_multiplier({0.3: 0.7, 1.0: 0.9, 3.0: 0.7}) is None  # inside
    assert logic.next_multiplier({0.3: 0.9, 1.0: 0.9, 3.0: 0.7}) is None  # a tie with an inner rate is inside
    assert logic.next_multiplier({0.03: 0.9, 0.1: 0.8, 0.3: 0.7}) is None  # at the lower bound
    grown = {0.3: 0.6, 1.0: 0.7, 3.0: 0.8}
    while (m := logic.next_multiplier(grown)) is not None:
        grown[m] = 0.9  # still rising: it goes on until the upper bound
    assert max(grown) == 30.0 and len(grown) == 5
    assert logic.next_multiplier({0.3: 0.9, 1.0: 0.8, 3.0: 0.9}) == 0.1  # best at both edges: out, low side first
    assert logic.next_multiplier({0.3: math.nan, 1.0: 0.8, 3.0: 0.7}) is None  # a failed rate is not a best one
