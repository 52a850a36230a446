"""The Optuna study: recommendation first, pruning, failures as data, resuming, the best model kept."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import optuna
import pytest
import torch
from optuna.trial import TrialState

from tladvisor import hookimpl
from tladvisor.backbones import Stage
from tladvisor.errors import TLAdvisorError
from tladvisor.plugins import PluginHost
from tladvisor.records import AnalysisOptions, Recommendation, TuneRequest, TuningResult
from tladvisor.testing import tiny_backbone_spec
from tladvisor.tuning import model_io, search, trainer
from tladvisor.tuning.search import LR_BACKBONE, LR_HEAD, recommendation_params, suggest_params
from tladvisor.tuning.study import Tuner, display_url
from tladvisor.tuning.synthetic import write_shapes_dataset

RECOMMENDATION = Recommendation(
    backbone="tiny_cnn", strategy="partial_freeze", freeze_depth=1, n_stages=3,
    learning_rates={"head": 1e-2, "backbone": 1e-3, "layer_decay": 0.8}, confidence=0.6,
    rationale=("test",), epochs=4)


@pytest.fixture(autouse=True)
def small_and_quiet(monkeypatch):
    # One thread: on a busy 2-core machine OpenMP spinning makes tiny models 50x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setattr(search, "EPOCHS_CPU", (4, 6))  # short trials; long enough to prune at epoch 3 of 4 or more
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return write_shapes_dataset(tmp_path_factory.mktemp("shapes"), n_classes=3, per_class=12, size=32)


@pytest.fixture
def options(shapes, tmp_path):
    return AnalysisOptions(source=shapes.root, run_dir=tmp_path / "run", cache_dir=tmp_path / "cache",
                           val_fraction=0.25, batch_size=16, seed=0, study_name="shapes", device="cpu")


@pytest.fixture
def host():
    return PluginHost(load_entry_points=False)


def finished(result: TuningResult) -> list:
    return [t for t in result.trials if t.state in ("COMPLETE", "PRUNED")]


def load(options) -> optuna.Study:
    return optuna.load_study(study_name=options.study_name, storage=options.storage)


# --- the search space ---------------------------------------------------------------------------------------


def test_hook_search_space_first_trial_is_the_recommendation(host, options):
    spec = tiny_backbone_spec()
    study = optuna.create_study(direction="maximize")
    Tuner(options, host=host).enqueue_recommendation(study, RECOMMENDATION, [spec])
    trial = study.ask()
    params = host.call_first("search_space", trial=trial, recommendation=RECOMMENDATION, backbones=[spec],
                             options=options)
    assert trial.params == recommendation_params(RECOMMENDATION, [spec])
    assert {k: params[k] for k in ("backbone", "strategy", "freeze_depth", "lr_head", "lr_backbone",
                                   "layer_decay", "epochs", "gradual_unfreeze")} == {
        "backbone": "tiny_cnn", "strategy": "partial_freeze", "freeze_depth": 1, "lr_head": 1e-2,
        "lr_backbone": 1e-3, "layer_decay": 0.8, "epochs": 4, "gradual_unfreeze": False}


def test_recommended_values_outside_the_search_ranges_are_held_to_them():
    odd = replace(RECOMMENDATION, freeze_depth=0, epochs=20,
                  learning_rates={"head": 3.0, "backbone": 0.0, "layer_decay": 0.8})
    assert recommendation_params(odd, [tiny_backbone_spec()]) == {
        "backbone": "tiny_cnn", "strategy": "partial_freeze", "freeze_depth": 1, "lr_head": LR_HEAD[1],
        "lr_backbone": LR_BACKBONE[0], "layer_decay": 0.8, "weight_decay": 1e-4, "epochs": 20,
        "gradual_unfreeze": False}
    unknown = replace(RECOMMENDATION, backbone="not_tuned")
    assert "backbone" not in recommendation_params(unknown, [tiny_backbone_spec()])


def test_hook_search_space_keeps_ranges_and_clips_freeze_depth_per_backbone(options):
    tiny = tiny_backbone_spec()
    deeper = replace(tiny_backbone_spec("tiny_deep"), stages=(
        Stage("conv", ("stem.0",)), Stage("norm", ("stem.1",)), Stage("block1", ("block1",)), Stage("block2", ("block2",))))
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(120):
        trial = study.ask()
        params = suggest_params(trial, RECOMMENDATION, [tiny, deeper], options)
        study.tell(trial, 0.5)
        n_stages = {"tiny_cnn": 3, "tiny_deep": 4}[params["backbone"]]
        seen.add((params["backbone"], params["strategy"]))
        assert LR_HEAD[0] <= params["lr_head"] <= LR_HEAD[1]
        assert 4 <= params["epochs"] <= 6
        if params["strategy"] == "partial_freeze":
            assert 1 <= params["freeze_depth"] <= n_stages - 1
            assert trial.distributions["freeze_depth"] == optuna.distributions.IntDistribution(1, 3)
        elif params["strategy"] == "feature_extraction":
            assert (params["freeze_depth"], params["lr_backbone"], params["layer_decay"]) == (n_stages, 0.0, 1.0)
            assert "lr_backbone" not in trial.params
        else:
            assert params["freeze_depth"] == 0
            assert LR_BACKBONE[0] <= params["lr_backbone"] <= LR_BACKBONE[1]
        if params["strategy"] == "from_scratch":
            assert params["layer_decay"] == 1.0 and "layer_decay" not in trial.params
    assert len(seen) == 10  # every backbone with every strategy, lp_ft included


# --- a whole study -------------------------------------------------------------------------------------------


def test_hook_tune_searches_prunes_and_keeps_the_best_model(shapes, options):
    options = replace(options, trials=8)
    host = PluginHost(load_entry_points=False)
    result = host.call_first("tune", request=TuneRequest(shapes, RECOMMENDATION, (tiny_backbone_spec(),), options))
    assert host.failures == []
    assert isinstance(result, TuningResult) and len(finished(result)) == 8
    assert result.storage == f"sqlite:///{(options.run_dir / 'study.db').resolve()}"
    study = load(replace(options, storage=result.storage))
    assert study.trials[0].params == recommendation_params(RECOMMENDATION, [tiny_backbone_spec()])
    assert result.trials[0].params["strategy"] == "partial_freeze"
    assert not list(options.run_dir.glob("*.lock"))  # no empty best_model.lock left behind

    pruned = [t for t in result.trials if t.state == "PRUNED"]
    assert pruned and all(t.reason.startswith("pruned at epoch ") for t in pruned)
    assert all(len(t.learning_curve) >= 3 for t in pruned)  # never judged before the third epoch
    # never 'pruned at epoch 6' of 6 (#26 item 7): a trial that ran all its epochs completes
    assert all(len(t.learning_curve) < t.params["epochs"] for t in pruned)
    for t in result.trials:
        assert t.duration_s is not None and t.duration_s > 0 and t.learning_curve
        if t.state == "COMPLETE":  # 36 small images: scored on 3 folds, fold 0's curve is the one shown
            assert t.folds is not None and t.folds["k"] == 3
            assert t.value == pytest.approx(sum(t.folds["accuracies"]) / 3)
            assert list(t.learning_curve) == t.folds["curves"][0]

    complete = [t for t in result.trials if t.state == "COMPLETE"]
    best = max(complete, key=lambda t: (t.value, -t.number))
    assert result.best == best
    config = json.loads((options.run_dir / "best_model" / "config.json").read_text())
    assert (config["trial_number"], config["val_accuracy"]) == (best.number, best.value)
    assert config["classes"] == list(shapes.classes) and config["preprocessing"]["input_size"] == 32
    assert result.best_model_dir == str(options.run_dir / "best_model")
    for strategy, number in result.best_by_strategy.items():
        winner = result.trials[number]
        assert winner.params["strategy"] == strategy
        assert winner.value == max(t.value for t in complete if t.params["strategy"] == strategy)
    if len(complete) >= 4:
        assert result.param_importances and math.isclose(sum(result.param_importances.values()), 1.0)

    assert host.call_first("tune", request=TuneRequest(shapes, RECOMMENDATION, (tiny_backbone_spec(),),
                                                        replace(options, trials=0))) is None


class SabotagingSearchSpace:
    """Trial 1 diverges (its loss turns nan), trial 2 names a strategy that does not exist."""

    def __init__(self):
        self.poisoned = False

    @hookimpl
    def search_space(self, trial, recommendation, backbones, options):
        params = suggest_params(trial, recommendation, backbones, options)
        self.poisoned = trial.number == 1
        if trial.number == 2:
            params["strategy"] = "no_such_strategy"
        return params


def test_failed_trials_are_recorded_with_their_reason_and_the_budget_still_fills(shapes, options, host, monkeypatch):
    plugin = SabotagingSearchSpace()
    host.pm.register(plugin, name="sabotage")
    real_loss = trainer.loss_function
    monkeypatch.setattr(trainer, "loss_function",
                        lambda *a: real_loss(*a) * (float("nan") if plugin.poisoned else 1.0))
    result = Tuner(replace(options, trials=4), host=host).run(shapes, RECOMMENDATION, [tiny_backbone_spec()])
    states = [t.state for t in result.trials]
    assert states[1:3] == ["FAIL", "FAIL"] and len(finished(result)) == 4 and len(states) == 6
    assert result.trials[1].reason == "diverged (loss is nan at epoch 1)"
    assert result.trials[2].reason.startswith("ValueError: unknown strategy 'no_such_strategy'")
    assert result.best is not None and result.best.state == "COMPLETE"


def test_a_broken_setup_stops_after_the_failure_cap(shapes, options, host, monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("backbone exploded")

    monkeypatch.setattr("tladvisor.tuning.study.trial_run.train_trial", broken)
    result = Tuner(replace(options, trials=3), host=host, max_failures=2).run(
        shapes, RECOMMENDATION, [tiny_backbone_spec()])
    assert [(t.state, t.reason) for t in result.trials] == [("FAIL", "RuntimeError: backbone exploded")] * 2
    assert result.best is None and result.best_model_dir is None


def test_rerunning_continues_the_study_without_repeating_or_losing_trials(shapes, options, host):
    spec = tiny_backbone_spec()
    first = Tuner(replace(options, trials=3), host=host).run(shapes, RECOMMENDATION, [spec])
    assert len(first.trials) == len(finished(first)) == 3

    second = Tuner(replace(options, trials=5), host=host).run(shapes, RECOMMENDATION, [spec])
    assert len(finished(second)) == 5 and len(second.trials) == 5
    assert [(t.number, t.state, t.value, t.params) for t in second.trials[:3]] == \
           [(t.number, t.state, t.value, t.params) for t in first.trials]
    later = [t.params for t in second.trials[3:]]
    assert all(p not in [t.params for t in first.trials] for p in later)  # new points, not a replay
    storage = second.storage
    assert sum(t.user_attrs.get("source") == "recommendation" for t in load(replace(options, storage=storage)).trials) == 1

    killed = load(replace(options, storage=storage)).ask()  # a run killed mid-trial leaves it RUNNING
    killed.report(0.5, 0)
    third = Tuner(replace(options, trials=6), host=host).run(shapes, RECOMMENDATION, [spec])
    left_behind = third.trials[killed.number]
    assert (left_behind.state, left_behind.reason, left_behind.learning_curve) == ("FAIL", "interrupted", (0.5,))
    assert load(replace(options, storage=storage)).trials[killed.number].user_attrs["learning_curve"] == [0.5]
    assert len(finished(third)) == 6 and len(third.trials) == 7
    assert [(t.number, t.value) for t in third.trials[:5]] == [(t.number, t.value) for t in second.trials]


def test_a_trial_killed_after_its_model_was_saved_is_recovered_not_failed(shapes, options, host):
    spec = tiny_backbone_spec()
    Tuner(replace(options, trials=1), host=host).run(shapes, RECOMMENDATION, [spec])
    storage = f"sqlite:///{(options.run_dir / 'study.db').resolve()}"
    orphan = load(replace(options, storage=storage)).ask()
    saved = model_io.read_config(options.run_dir / "best_model")
    model_io.save_model(options.run_dir / "best_model", spec.build(True),
                        {**saved, "trial_number": orphan.number, "val_accuracy": 0.875, "learning_curve": [0.5, 0.875]})
    tuner = Tuner(replace(options, trials=1), host=host)
    tuner.settle_interrupted(tuner.open_study())
    recovered = load(replace(options, storage=storage)).trials[orphan.number]
    assert (recovered.state, recovered.value, recovered.user_attrs["learning_curve"]) == (
        TrialState.COMPLETE, 0.875, [0.5, 0.875])


def test_a_study_searched_over_other_backbones_is_refused_in_one_line(shapes, options, host):
    Tuner(replace(options, trials=1), host=host).run(shapes, RECOMMENDATION, [tiny_backbone_spec()])
    both = [tiny_backbone_spec(), tiny_backbone_spec("tiny_other")]
    with pytest.raises(TLAdvisorError, match=r"^study 'shapes' was searched over backbones \['tiny_cnn'\]"):
        Tuner(replace(options, trials=2), host=host).run(shapes, RECOMMENDATION, both)


def test_storage_url_shown_without_password():
    assert display_url("postgresql://tuner:s3cret@db.example:5432/studies") == \
           "postgresql://tuner:***@db.example:5432/studies"
    assert display_url(None) == "in-memory"


def test_hook_tune_gets_the_host_it_was_called_through(options, write_plugin):
    """The tuner draws trials through the caller's plugins: it never builds a PluginHost of its own."""
    folder = write_plugin("records_host", '''
        from tladvisor import hookimpl
        from tladvisor.records import TuningResult

        @hookimpl(tryfirst=True)
        def tune(request):
            return TuningResult(study_name=str(id(request.host)), storage="", requested_trials=0, trials=(),
                                best=None)
    ''')
    host = PluginHost(folder, load_entry_points=False)
    result = host.call_first("tune", request=TuneRequest(None, RECOMMENDATION, (), options))  # no host given
    assert result.study_name == str(id(host))
    with pytest.raises(TypeError):
        Tuner(options)  # no host, no tuner
