"""Fair pruning: a slow-starting strategy is judged by its own kind, not by fast starters' curves."""

from __future__ import annotations

import optuna

from tladvisor.tuning.race import RacePruner
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from tladvisor.tuning.pruning import StrategyMedianPruner
from tladvisor.tuning.study.storage import make_pruner

STRATEGY = {"strategy": CategoricalDistribution(["feature_extraction", "full_finetune"])}
FAST = [0.80, 0.85, 0.86, 0.86, 0.86, 0.86]  # a head on frozen features: near its best at once
SLOW_HIGH = [0.30, 0.50, 0.62, 0.80, 0.90, 0.94]  # fine-tuning: starts low, ends higher


def finished(study: optuna.Study, strategy: str, curve: list[float]) -> None:
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=max(curve), params={"strategy": strategy},
                                 distributions=STRATEGY, intermediate_values=dict(enumerate(curve)),
                                 user_attrs={"params": {"strategy": strategy}}))


def pruned_at(study: optuna.Study, pruner, strategy: str, curve: list[float]) -> int | None:
    """Report ``curve`` epoch by epoch as a running trial; the epoch (1-based) it is pruned at, or None."""
    study.enqueue_trial({"strategy": strategy})
    trial = study.ask()
    assert trial.suggest_categorical("strategy", STRATEGY["strategy"].choices) == strategy
    for epoch, value in enumerate(curve):
        trial.report(value, epoch)
        if pruner.prune(study, study.get_trials(deepcopy=False)[trial.number]):
            study.tell(trial, state=TrialState.PRUNED)
            return epoch + 1
    study.tell(trial, max(curve))
    return None


def study_of_fast_starters() -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for _ in range(3):
        finished(study, "feature_extraction", FAST)
    return study


def test_a_slow_starter_that_ends_higher_is_not_pruned_by_fast_starters_curves():
    old = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)  # the pruner before issue #13
    assert pruned_at(study_of_fast_starters(), old, "full_finetune", SLOW_HIGH) == 3

    study = study_of_fast_starters()
    assert pruned_at(study, StrategyMedianPruner(), "full_finetune", SLOW_HIGH) is None
    assert study.trials[-1].state == TrialState.COMPLETE and study.best_value == 0.94
    pruner = make_pruner()  # what every study now uses: the race's rule for its trials, the median for the rest
    assert isinstance(pruner, RacePruner) and isinstance(pruner.fallback, StrategyMedianPruner)


def test_within_its_own_strategy_a_poor_trial_is_still_pruned_after_warm_up():
    study = study_of_fast_starters()
    pruner = StrategyMedianPruner()
    finished(study, "full_finetune", SLOW_HIGH)
    assert pruned_at(study, pruner, "full_finetune", [0.1, 0.1, 0.1, 0.1]) is None  # one peer: not judged yet
    finished(study, "full_finetune", [0.35, 0.55, 0.65, 0.82, 0.9, 0.93])
    assert pruned_at(study, pruner, "full_finetune", [0.1, 0.2, 0.25, 0.3]) == 3  # below 0.635 at epoch 3
    assert pruned_at(study, pruner, "full_finetune", [0.1, 0.2, 0.7, 0.8]) is None  # its best beats the median
    assert pruned_at(study, pruner, "feature_extraction", [0.5, 0.6, 0.7, 0.7]) == 3  # FE judged by FE trials
