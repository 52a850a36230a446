"""--timeout is a wall-clock budget: the trial running at the deadline stops and is kept with its curve.

Time is simulated: every optimisation step moves a fake clock by one second, so the deadline falls at a
known step however fast or loaded the machine is.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from types import SimpleNamespace

import optuna
import pytest
import torch
from optuna.trial import TrialState

from tladvisor.plugins import PluginHost
from tladvisor.records import AnalysisOptions, Recommendation
from tladvisor.report.tuning_notes import budget_text
from tladvisor.testing import tiny_backbone_spec
from tladvisor.tuning import trainer
from tladvisor.tuning.study import Tuner, tuner as tuner_module

SLOW = Recommendation(backbone="tiny_cnn", strategy="full_finetune", freeze_depth=0, n_stages=3,
                      learning_rates={"head": 1e-2, "backbone": 1e-3, "layer_decay": 0.8}, confidence=0.5,
                      rationale=("test",), epochs=12)
# (the shapes are few enough to be scored on cross-validation folds: the deadline falls in fold 1)
STOPPED = re.compile(r"stopped by the --timeout deadline during epoch (\d+)(?: of fold 1 of \d+)? "
                     r"\(its (\d+) finished epochs kept\)")


@pytest.fixture
def clock(monkeypatch):
    """A monotonic clock that only moves one second per optimisation step."""
    fake = SimpleNamespace(now=1000.0)
    fake_time = SimpleNamespace(monotonic=lambda: fake.now, sleep=time.sleep, perf_counter=time.perf_counter)
    monkeypatch.setattr(trainer, "time", fake_time)
    monkeypatch.setattr(tuner_module, "time", fake_time)
    real_step = trainer.optimisation_step

    def step(*args, **kwargs):
        fake.now += 1.0
        return real_step(*args, **kwargs)

    monkeypatch.setattr(trainer, "optimisation_step", step)
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return fake


@pytest.fixture
def options(shapes, tmp_path):
    return AnalysisOptions(source=shapes.root, run_dir=tmp_path / "run", cache_dir=tmp_path / "cache",
                           val_fraction=0.25, batch_size=16, seed=0, study_name="timed", device="cpu")


def run(options, shapes):
    # patience 100: only the deadline can end the 12 epochs early
    tuner = Tuner(options, host=PluginHost(load_entry_points=False), patience=100)
    return tuner, tuner.run(shapes, SLOW, [tiny_backbone_spec()])


def test_the_deadline_stops_the_running_trial_and_keeps_its_curve(shapes, options, clock):
    tuner, result = run(replace(options, trials=3, timeout=5), shapes)
    (trial,) = result.trials  # 2 steps an epoch: the deadline (5 s) falls in epoch 3 of the first trial
    assert trial.state == "PRUNED"
    stopped = STOPPED.fullmatch(trial.reason)
    assert stopped and int(stopped[2]) == int(stopped[1]) - 1 >= 1
    assert len(trial.learning_curve) == int(stopped[2])
    stored = optuna.load_study(study_name="timed", storage=result.storage).trials[0]
    assert [stored.intermediate_values[e] for e in sorted(stored.intermediate_values)] == list(trial.learning_curve)
    assert stored.user_attrs["stopped_by"] == "timeout"
    assert result.stop_reason == ("the --timeout of 5 s ran out: 1 of 3 trials finished in the study "
                                  "(1 run now); the same command continues it")

    # The advice was cut short: the next run tries it again, so it can still be compared with the search.
    study = Tuner(replace(options, trials=3), host=PluginHost(load_entry_points=False)).start(
        shapes, SLOW, [tiny_backbone_spec()])
    waiting = [t for t in study.trials if t.state == TrialState.WAITING]
    assert [t.user_attrs.get("source") for t in waiting] == ["recommendation"]


def test_a_rerun_runs_the_advice_the_deadline_cut_short_to_the_end(shapes, options, clock):
    cut = replace(options, trials=1, timeout=5)
    run(cut, shapes)
    # The same command with room enough: the cut trial holds no --trials place and is no twin of the
    # re-queued advice, which now runs (it was closed FAIL "queued twice" before, or left WAITING).
    tuner, result = run(replace(cut, timeout=1000), shapes)
    assert [t.state for t in result.trials] == ["PRUNED", "COMPLETE"]
    stored = optuna.load_study(study_name="timed", storage=result.storage).trials
    assert stored[1].user_attrs.get("source") == "recommendation"
    assert stored[1].params == stored[0].params and "not_run" not in stored[1].user_attrs
    assert result.stop_reason.startswith("the budget of 1 finished trials is met")
    # Met now: a third run has nothing to redo.
    study = Tuner(replace(cut, timeout=1000), host=PluginHost(load_entry_points=False)).start(
        shapes, SLOW, [tiny_backbone_spec()])
    assert not [t for t in study.trials if t.state == TrialState.WAITING]


def test_timeout_alone_tunes_until_the_deadline_with_no_trial_cap(shapes, options, clock):
    tuner, result = run(replace(options, trials=0, timeout=5), shapes)
    assert result.requested_trials == 0 and [t.state for t in result.trials] == ["PRUNED"]
    assert result.stop_reason.startswith("the --timeout of 5 s ran out: 1 trial finished in the study")
    assert budget_text(1, 0, 5.0) == "1 trial (no trial cap; --timeout 5 s)"
    assert budget_text(31, 0, 20.0) == "31 trials (no trial cap; --timeout 20 s)"  # was "31 of 0 requested"
    assert budget_text(2, 5, 60.0) == "2 of 5 requested (--timeout 60 s)"
