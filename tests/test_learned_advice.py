"""The shipped method's advice (tladvisor.advice.learned): the gain prior's zero-shot pick as a strategy and
freeze depth, the contenders it races, the rule kept beside it, and the race queued as the study's first trials."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import optuna
import pytest

from tladvisor.advice import learned, prior
from tladvisor.advice.recommend import EPOCHS, LEARNING_RATES
from tladvisor.advice.recommend import recommend as rule
from tladvisor.records import BackboneMeasurement, DatasetProfile, Score, StageShift

STAGES = ("stem", "s1", "s2", "s3", "s4", "s5")


def profile(per_class: int = 20, n_classes: int = 5, modality: str = "image") -> DatasetProfile:
    profile = DatasetProfile(n_samples=per_class * n_classes, n_classes=n_classes,
                             class_counts={f"c{i}": per_class for i in range(n_classes)},
                             samples_per_class_min=per_class, samples_per_class_median=per_class, imbalance_ratio=1.0)
    if modality != "image":
        object.__setattr__(profile, "modality", modality)
    return profile


def measurement(probe: float, name: str = "net", shifts=(0.1, 0.2, 3.0, 3.0, 4.0, 4.0)) -> BackboneMeasurement:
    scores = {"linear_probe_accuracy": Score(probe, 0.02, normalised=probe),
              "knn_accuracy": Score(probe, 0.02, normalised=probe),
              "pretraining_gain": Score(0.2, 0.02, normalised=0.2)}
    return BackboneMeasurement(backbone=name, similarity=Score(0.4, 0.02, 0.4), scores=scores,
                               stage_shift=tuple(StageShift(s, v, 1) for s, v in zip(STAGES, shifts)),
                               n_stages=len(shifts))


def predictor(provenance=None) -> prior.GainPredictor:
    """Fine-tuning the top gains where the frozen probe is weak, loses where it is strong; from scratch never."""
    rng = np.random.default_rng(0)
    n = 200
    probe = rng.uniform(0.1, 0.9, n)
    x = rng.normal(size=(n, len(prior.FACTS) + len(STAGES)))  # facts that explain nothing
    x[:, prior.FACTS.index("linear_probe_normalised")] = probe
    gains = {"partial_freeze@top1": 0.3 * (0.5 - probe), "partial_freeze@half": 0.3 * (0.5 - probe) - 0.1,
             "partial_freeze@shift": 0.3 * (0.5 - probe) - 0.07, "full_finetune": 0.3 * (0.5 - probe) - 0.12,
             "from_scratch": -0.4 + 0 * probe}
    gains = {c: g + rng.normal(scale=0.03, size=n) for c, g in gains.items()}  # a prior with an error to race
    fitted = prior.GainPredictor(alpha=1.0, stages=STAGES, provenance=provenance or {
        "backbone": "net", "image_size": 64, "modality": "image", "tasks": [f"t{i}" for i in range(n)], "seeds": [0]})
    return fitted.fit(x, gains, [f"t{i}" for i in range(n)])


def test_roles_become_a_strategy_and_a_depth_on_any_backbone():
    assert learned.role_config("partial_freeze@top1", 6, 2) == ("partial_freeze", 5)
    assert learned.role_config("partial_freeze@half", 7, 2) == ("partial_freeze", 3)
    assert learned.role_config("partial_freeze@shift", 6, 2) == ("partial_freeze", 2)
    assert learned.role_config("partial_freeze@shift", 6, None) == ("partial_freeze", 3)
    assert learned.role_config("partial_freeze@shift", 6, 0) == ("partial_freeze", 1)  # one stage stays frozen
    assert learned.role_config("feature_extraction", 6, 2) == ("feature_extraction", 6)
    assert learned.role_config("from_scratch", 6, 2) == ("from_scratch", 0)
    with pytest.raises(ValueError, match="not a role"):
        learned.role_config("lp_ft", 6, 2)


def test_contenders_are_the_roles_within_the_margin_best_first_each_config_once():
    gains = {"feature_extraction": 0.0, "partial_freeze@top1": 0.05, "partial_freeze@shift": 0.04,
             "full_finetune": 0.02, "from_scratch": -0.3}
    configs = {"feature_extraction": "fe", "partial_freeze@top1": "pf5", "partial_freeze@shift": "pf5",
               "full_finetune": "ft", "from_scratch": "sc"}
    assert learned.contenders(gains, configs, 0.04) == ("partial_freeze@top1", "full_finetune")
    assert learned.contenders(gains, configs, 0.06) == ("partial_freeze@top1", "full_finetune", "feature_extraction")
    assert learned.contenders(gains, configs, 0.0) == ("partial_freeze@top1",)


@pytest.mark.parametrize("probe, expected", [(0.1, ("partial_freeze", 5)), (0.9, ("feature_extraction", 6))])
def test_the_recommendation_is_the_priors_pick_with_the_rule_beside_it(probe, expected):
    textbook = rule(profile(), [measurement(probe)])
    rec = learned.with_learned_prior(textbook, profile(), [measurement(probe)], 0.2, 64, predictor())
    assert (rec.strategy, rec.freeze_depth) == expected
    assert rec.learned["applied"] and rec.learned["pick_config"] == learned.config_label(*expected)
    assert rec.learned["textbook"]["strategy"] == textbook.strategy
    assert learned.textbook_config(rec) == (textbook.strategy, textbook.freeze_depth)
    assert rec.learning_rates == LEARNING_RATES[rec.strategy] and rec.epochs == EPOCHS[rec.strategy]
    text = " ".join(rec.rationale)
    assert "predicts each config's test-accuracy gain" in text and "textbook four-scenario rule" in text
    assert rec.learned["outside"] == []  # fitted with this backbone at this size
    gains = rec.learned["predicted_gain"]
    assert max(gains, key=gains.get) == rec.learned["pick"]
    assert all(c["role"] in rec.learned["contenders"][1:] for c in rec.learned["race"])


def test_a_run_unlike_the_priors_says_so_and_lowers_the_confidence():
    fitted = predictor()
    home = learned.with_learned_prior(rule(profile(), [measurement(0.1)]), profile(), [measurement(0.1)], 0.2, 64, fitted)
    away = learned.with_learned_prior(rule(profile(), [measurement(0.1, "other")]), profile(),
                                      [measurement(0.1, "other")], 0.2, 224, fitted)
    assert any("fitted with net" in note for note in away.learned["outside"])
    assert any("64 px" in note and "224 px" in note for note in away.learned["outside"])
    assert away.confidence < home.confidence
    assert any("rough guide" in r for r in away.rationale)


def test_a_text_run_keeps_the_rule():
    text = profile(modality="text")
    textbook = rule(text, [measurement(0.1)])
    rec = learned.with_learned_prior(textbook, text, [measurement(0.1)], 0.2, None, predictor())
    assert (rec.strategy, rec.freeze_depth) == (textbook.strategy, textbook.freeze_depth)
    assert rec.learned["applied"] is False and "image tasks only" in rec.learned["why"]


def test_the_shipped_prior_loads_and_names_where_it_comes_from():
    shipped = learned.shipped_prior()
    assert shipped.provenance["backbone"] and shipped.provenance["image_size"]
    assert len(shipped.provenance["tasks"]) >= 10 and set(shipped.coef_) == set(learned.ROLES[1:])
    assert all(math.isfinite(r) for r in shipped.residual_.values())


def test_the_race_is_queued_after_the_recommendation_within_the_budget():
    from tladvisor.testing import tiny_backbone_spec
    from tladvisor.tuning.study import claims

    spec = tiny_backbone_spec()
    textbook = rule(profile(), [measurement(0.5, spec.name, shifts=(0.1, 4.0))])
    rec = learned.with_learned_prior(textbook, profile(), [measurement(0.5, spec.name, shifts=(0.1, 4.0))], 0.2, 64,
                                     predictor({"backbone": spec.name, "image_size": 64, "tasks": ["t"], "seeds": [0]}))
    assert len(rec.learned["contenders"]) >= 2
    study = optuna.create_study(direction="maximize")
    claims.enqueue_recommendation(study, rec, [spec], budget=2)
    waiting = study.get_trials(deepcopy=False)
    assert [t.user_attrs["source"] for t in waiting] == ["recommendation", "race"]
    assert waiting[0].system_attrs["fixed_params"]["strategy"] == rec.strategy
    claims.enqueue_recommendation(study, rec, [spec], budget=2)  # a second analyze queues nothing twice
    assert len(study.get_trials(deepcopy=False)) == 2


def test_a_rerun_that_queues_the_recommendation_again_keeps_the_race_in_order_within_the_budget():
    from tladvisor.testing import tiny_backbone_spec
    from tladvisor.tuning.results import NOT_RUN
    from tladvisor.tuning.study import claims

    spec = tiny_backbone_spec()
    m = measurement(0.5, spec.name, shifts=(0.1, 4.0))
    rec = learned.with_learned_prior(rule(profile(), [m]), profile(), [m], 0.2, 64,
                                     predictor({"backbone": spec.name, "image_size": 64, "tasks": ["t"], "seeds": [0]}))
    study = optuna.create_study(direction="maximize")
    claims.enqueue_recommendation(study, rec, [spec], budget=2)
    first = study.ask()  # the recommendation starts, then fails (an interrupted run)
    study.tell(first, state=optuna.trial.TrialState.FAIL)
    claims.enqueue_recommendation(study, rec, [spec], budget=2)
    trials = study.get_trials(deepcopy=False)
    waiting = [t for t in trials if t.state == optuna.trial.TrialState.WAITING]
    assert [t.user_attrs["source"] for t in waiting] == ["recommendation", "race"]  # the recommendation first again
    assert [t.user_attrs["race_position"] for t in waiting] == [0, 1]
    assert trials[1].state == optuna.trial.TrialState.FAIL and NOT_RUN in trials[1].user_attrs  # the stale one


def test_the_race_winner_is_the_advices_answer_and_the_search_is_the_rest():
    from tladvisor.tuning.results import versus_advice

    study = optuna.create_study(direction="maximize")
    for source, value in (("recommendation", 0.5), ("race", 0.7), (None, 0.6)):
        trial = study.ask()
        if source:
            trial.set_user_attr("source", source)
        study.tell(trial, value)
    verdict = versus_advice(study.get_trials(deepcopy=False))
    assert verdict["advice_trial"] == 1 and verdict["beats_advice"] is False
    assert verdict["summary"] == ("The advice held: the advice's race winner (trial #1, ?) reached validation accuracy "
                                  "0.700 (its pick, trial #0 ?, reached 0.500) and the one search trial did not beat it.")


def _told(study, source, value, race_id="r1", state=None):
    trial = study.ask()
    if source:
        trial.set_user_attr("source", source)
        trial.set_user_attr("race_id", race_id)
    for epoch, v in enumerate([value / 2, value]):
        trial.report(v, epoch)
    study.tell(trial, value if state is None else None, state=state)
    return trial


def test_the_search_beating_the_race_winner_says_by_how_much_over_the_winner_and_counts_pruned_trials():
    from tladvisor.tuning.results import versus_advice

    study = optuna.create_study(direction="maximize")
    _told(study, "recommendation", 0.5)
    _told(study, "race", 0.6)
    _told(study, None, 0.2, state=optuna.trial.TrialState.PRUNED)
    _told(study, None, 0.9)
    summary = versus_advice(study.get_trials(deepcopy=False))["summary"]
    assert "against 0.600 for the advice's race winner (trial #1, ?) (its pick, trial #0 ?, reached 0.500), " \
           "+30.0 points over the winner" in summary
    study = optuna.create_study(direction="maximize")
    _told(study, "recommendation", 0.5)
    _told(study, None, 0.2, state=optuna.trial.TrialState.PRUNED)
    _told(study, None, 0.3, state=optuna.trial.TrialState.PRUNED)
    assert versus_advice(study.get_trials(deepcopy=False))["summary"].endswith(
        "and none of the 2 search trials (2 of them pruned) beat it.")


def test_an_earlier_runs_advice_is_search_when_the_advice_changed():
    from tladvisor.tuning.results import versus_advice

    study = optuna.create_study(direction="maximize")
    _told(study, "recommendation", 0.8, race_id="old")  # an earlier analyze advised otherwise
    _told(study, "race", 0.85, race_id="old")
    _told(study, "recommendation", 0.7, race_id="new")
    verdict = versus_advice(study.get_trials(deepcopy=False))
    assert verdict["advice_trial"] == 2 and verdict["beats_advice"] is True and verdict["best_trial"] == 1


def test_a_changed_recommendation_closes_the_earlier_races_waiting_trials():
    from tladvisor.testing import tiny_backbone_spec
    from tladvisor.tuning.results import NOT_RUN
    from tladvisor.tuning.study import claims

    spec = tiny_backbone_spec()
    study = optuna.create_study(direction="maximize")
    fitted = predictor({"backbone": spec.name, "image_size": 64, "tasks": ["t"], "seeds": [0]})
    first = measurement(0.5, spec.name, shifts=(0.1, 4.0))
    rec = learned.with_learned_prior(rule(profile(), [first]), profile(), [first], 0.2, 64, fitted)
    claims.enqueue_recommendation(study, rec, [spec], budget=3)
    other = replace(rec, strategy="full_finetune", freeze_depth=0, learned={**rec.learned, "race": []})
    claims.enqueue_recommendation(study, other, [spec], budget=3)
    trials = study.get_trials(deepcopy=False)
    closed = [t for t in trials if NOT_RUN in t.user_attrs]
    assert len(closed) == len(trials) - 1 and all(t.state == optuna.trial.TrialState.FAIL for t in closed)
    (waiting,) = [t for t in trials if t.state == optuna.trial.TrialState.WAITING]
    assert waiting.system_attrs["fixed_params"]["strategy"] == "full_finetune"


def test_a_prior_that_cannot_be_read_leaves_the_rule_and_says_why(tmp_path, monkeypatch):
    broken = tmp_path / "gain_prior.json"
    broken.write_text('{"format": 99}')
    monkeypatch.setattr(learned, "SHIPPED", broken)
    learned.shipped_prior.cache_clear()
    try:
        textbook = rule(profile(), [measurement(0.1)])
        rec = learned.with_learned_prior(textbook, profile(), [measurement(0.1)], 0.2, 64)
    finally:
        learned.shipped_prior.cache_clear()
    assert (rec.strategy, rec.freeze_depth) == (textbook.strategy, textbook.freeze_depth)
    assert rec.learned["applied"] is False and "could not be read" in rec.learned["why"]
    assert any("format 99" in w for w in rec.warnings)


def test_a_config_two_roles_train_is_listed_once_in_the_reasons():
    m = measurement(0.1, shifts=(0.1, 0.2, 0.3, 3.0, 4.0, 4.0))  # the shift depth is 3: half and shift coincide
    rec = learned.with_learned_prior(rule(profile(), [m]), profile(), [m], 0.2, 64, predictor())
    assert rec.learned["configs"]["partial_freeze@half"] == rec.learned["configs"]["partial_freeze@shift"]
    listing = next(r for r in rec.rationale if r.startswith("The learned prior"))
    assert listing.count("partial_freeze@3 ") == 1


def test_a_budget_below_the_contenders_is_warned_of_and_the_unraced_ones_marked():
    from tladvisor.report.learned_view import learned_view
    from tladvisor.records import to_jsonable

    m = measurement(0.5)
    rec = learned.with_learned_prior(rule(profile(), [m]), profile(), [m], 0.2, 64, predictor(), trials=1)
    n = len(rec.learned["contenders"])
    assert n >= 2
    assert any(w.startswith(f"--trials 1 races only the first 1 of the {n} configs") for w in rec.warnings)
    assert all(not r["unraced"] for r in learned_view(to_jsonable(rec))["rows"])  # no study yet: nothing marked
    ran = {"strategy": rec.strategy, "freeze_depth": rec.freeze_depth}  # the study trained the pick only
    tuning = {"trials": [{"params": ran, "learning_curve": [0.5]}, {"params": {"strategy": "x"}, "learning_curve": []}]}
    rows = learned_view(to_jsonable(rec), tuning)["rows"]
    assert [r["unraced"] for r in rows if r["contender"]] == [False] + [True] * (n - 1)
    enough = learned.with_learned_prior(rule(profile(), [m]), profile(), [m], 0.2, 64, predictor(), trials=n)
    assert not any(w.startswith("--trials") for w in enough.warnings)
    listing = next(r for r in enough.rationale if r.startswith("Its error on the tasks"))
    assert f"With --trials {n} or more" in listing and "root mean square" in listing
