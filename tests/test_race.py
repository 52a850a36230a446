"""The race among the learned prior's contenders (tladvisor.tuning.race): the rule, its replay on stored curves
(what the benchmark scores) and its pruner in a study (what ships) agree."""

from __future__ import annotations

import math

import optuna
import pytest

from tladvisor.tuning import race


def test_rungs_double_from_the_first_and_never_judge_the_last_epoch():
    assert race.rungs(30) == [2, 4, 8, 16]
    assert race.rungs(16) == [2, 4, 8]
    assert race.rungs(2) == []


def test_a_contender_goes_on_only_in_the_top_half_of_those_at_its_rung():
    assert race.survives(0.5, [])  # the first contender always runs on
    assert race.survives(0.5, [0.5]) and not race.survives(0.49, [0.5])  # ties favour the one running
    assert not race.survives(0.6, [0.7, 0.65])  # 3 at the rung keep 1
    assert race.survives(0.66, [0.7, 0.65, 0.1]) and not race.survives(0.6, [0.7, 0.65, 0.1])  # 4 keep 2
    assert not race.survives(math.nan, [])


def test_the_replay_stops_losers_at_their_rung_and_charges_all_but_the_winners_run():
    curves = {"pf": [0.4, 0.5, 0.6, 0.7, 0.7, 0.8, 0.8, 0.8],  # first: trains to its end
              "fe": [0.5, 0.55, 0.55, 0.55, 0.55, 0.55, 0.55, 0.55],  # level at rung 2, behind at 4: stopped there
              "ft": [0.3, 0.56, 0.62, 0.72, 0.8, 0.85, 0.88, 0.9]}  # ahead at every rung: wins
    cost = {"pf": 2.0, "fe": 1.0, "ft": 3.0}
    result = race.replay(list(curves), curves, cost)
    assert result.epochs == {"pf": 8, "fe": 4, "ft": 8}
    assert result.winner == "ft"
    assert result.overhead == pytest.approx(2.0 * 8 + 1.0 * 4)
    alone = race.replay(["fe"], curves, cost)
    assert alone.winner == "fe" and alone.overhead == 0.0
    with pytest.raises(ValueError):
        race.replay([], curves, cost)


def _study(values_by_trial, pruner):
    """A study whose finished trials reported ``values`` per epoch (planned: as many epochs), each with its user
    attr ``source``."""
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for source, values in values_by_trial:
        trial = study.ask()
        trial.set_user_attr("source", source)
        trial.set_user_attr("params", {"epochs": len(values)})
        for epoch, value in enumerate(values):
            trial.report(value, epoch)
        study.tell(trial, max(values))
    return study


def _stopped_at(study, values, epochs, source=None):
    """Run a race trial of ``epochs`` planned epochs through ``values``: the epoch the pruner stops it at, or None."""
    trial = study.ask()
    trial.set_user_attr("source", source or race.RACE)
    trial.set_user_attr("params", {"epochs": epochs})
    for epoch, value in enumerate(values):
        trial.report(value, epoch)
        if epoch + 1 < epochs and trial.should_prune():
            return epoch + 1
    return None


def test_pruner_and_replay_agree_when_schedules_differ_in_length():
    """A peer whose schedule ended at a rung was not judged there, so it is no rival there (the replay's rule)."""
    short = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.9]  # 8 epochs: judged at 2 and 4 only
    long = [0.1, 0.2, 0.3, 0.4, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.6, 0.6]  # behind at 8, finishes
    study = _study([("recommendation", short)], race.RacePruner(_Always()))
    assert _stopped_at(study, long, 12) is None
    replayed = race.replay(["a", "b"], {"a": short, "b": long}, {"a": 1.0, "b": 1.0})
    assert replayed.epochs == {"a": 8, "b": 12} and replayed.winner == "a"


def test_a_peer_cut_short_by_the_deadline_is_no_rival_and_nan_never_leads():
    from tladvisor.tuning.results import DEADLINE, STOPPED_BY

    study = optuna.create_study(direction="maximize", pruner=race.RacePruner(_Always()))
    stopped = study.ask()
    stopped.set_user_attr("source", "recommendation")
    stopped.set_user_attr(STOPPED_BY, DEADLINE)
    for epoch, value in enumerate([0.9, 0.9]):
        stopped.report(value, epoch)
    study.tell(stopped, state=optuna.trial.TrialState.PRUNED)
    assert _stopped_at(study, [0.1, 0.1, 0.1], 3) is None  # judged against no one
    assert race.best_of([math.nan, 0.3]) == 0.3 and race.best_of([math.nan]) == -math.inf
    assert race.replay(["a", "b"], {"a": [math.nan, 0.2, 0.3], "b": [0.1, 0.1, 0.1]}, {"a": 1, "b": 1}).winner == "a"


class _Never(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return False


class _Always(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return True


@pytest.mark.parametrize("later, stop_after", [([0.3, 0.6, 0.65, 0.65], 4), ([0.1, 0.2], 2), ([0.5, 0.7, 0.7, 0.9], None)])
def test_the_pruner_stops_a_race_trial_where_the_replay_does(later, stop_after):
    first = [0.4, 0.6, 0.7, 0.8, 0.8, 0.8, 0.8, 0.8]
    pruner = race.RacePruner(_Always())
    study = _study([("recommendation", first)], pruner)
    trial = study.ask()
    trial.set_user_attr("source", race.RACE)
    stopped = None
    for epoch, value in enumerate(later + [0.0] * (8 - len(later))):
        trial.report(value, epoch)
        if trial.should_prune():
            stopped = epoch + 1
            break
    replayed = race.replay(["a", "b"], {"a": first, "b": later + [0.0] * (8 - len(later))}, {"a": 1.0, "b": 1.0})
    assert stopped == stop_after
    assert replayed.epochs["b"] == (stop_after or 8)


def test_trials_outside_the_race_are_judged_by_the_fallback():
    study = _study([("recommendation", [0.9, 0.9, 0.9])], race.RacePruner(_Never()))
    trial = study.ask()  # a sampled trial: no source
    for epoch in range(3):
        trial.report(0.0, epoch)
    assert not trial.should_prune()
    study = _study([], race.RacePruner(_Always()))
    trial = study.ask()
    trial.report(0.5, 0)
    assert trial.should_prune()


def test_a_race_trial_stopped_says_so_with_its_numbers():
    from tladvisor.tuning.study.trial_run import prune_reason

    study = _study([("recommendation", [0.4, 0.6, 0.7, 0.8])], race.RacePruner(_Never()))
    trial = study.ask()
    trial.set_user_attr("source", race.RACE)
    trial.report(0.2, 0)
    trial.report(0.3, 1)
    assert trial.should_prune()
    assert prune_reason(study, trial, 1, [0.2, 0.3]) == (
        "stopped by the race at epoch 2: best val accuracy 0.300 is not among the top 1 of the 2 contenders at "
        "that epoch (best 0.600)")


def test_contenders_of_another_race_are_no_peers():
    study = optuna.create_study(direction="maximize", pruner=race.RacePruner(_Always()))
    earlier = study.ask()
    earlier.set_user_attr("source", "recommendation")
    earlier.set_user_attr("race_id", "an earlier advice")
    for epoch, value in enumerate([0.9, 0.9, 0.9, 0.9]):
        earlier.report(value, epoch)
    study.tell(earlier, 0.9)
    trial = study.ask()
    trial.set_user_attr("source", "recommendation")
    trial.set_user_attr("race_id", "this advice")
    trial.set_user_attr("params", {"epochs": 4})
    trial.report(0.1, 0)
    trial.report(0.1, 1)
    assert not trial.should_prune()
