"""The strategy registry: built-ins, a plugin's strategy (BitFit) searched, trained and reported."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
import torch
from safetensors.torch import load_file

from tladvisor.plugins import PluginHost
from tladvisor.strategies import (ADVISED_STRATEGIES, BUILT_IN_STRATEGIES, FREEZE_ALL, FREEZE_NONE, Strategy,
                                  strategy_named)
from tladvisor.testing import tiny_backbone_spec
from tladvisor.tuning.strategies import TrialConfig, build_model, parameter_groups

from helpers import TINY_PLUGIN, analyze_tiny, write_image_folder

BITFIT_PLUGIN = '''
from tladvisor import hookimpl
from tladvisor.strategies import Strategy

BITFIT = Strategy("bitfit", "only biases (and the head) train", freeze="none",
                  trains=lambda name: name.endswith(".bias"),
                  learning_rates={"head": 3e-3, "backbone": 3e-3, "layer_decay": 1.0}, epochs=3,
                  colour="#123456")

@hookimpl
def register_strategies(register):
    register(BITFIT)
'''

# Advise BitFit, so the study's first trial trains it (the built-in rule only advises the classic four).
ADVISE_BITFIT_PLUGIN = '''
from dataclasses import replace
from tladvisor import hookimpl
from tladvisor.advice.recommend import recommend as rule

@hookimpl(tryfirst=True)
def recommend(profile, measurements, options):
    advice = rule(profile, measurements, options.val_fraction)
    return replace(advice, strategy="bitfit", freeze_depth=0, epochs=3,
                   learning_rates={"head": 3e-3, "backbone": 3e-3, "layer_decay": 1.0})
'''

BITFIT = Strategy("bitfit", freeze=FREEZE_NONE, trains=lambda name: name.endswith(".bias"), epochs=3)


def test_the_built_ins_are_one_registry() -> None:
    assert list(BUILT_IN_STRATEGIES) == [*ADVISED_STRATEGIES, "lp_ft"]
    assert strategy_named("feature_extraction").freeze == FREEZE_ALL
    assert not strategy_named("from_scratch").pretrained
    with pytest.raises(ValueError, match="unknown strategy 'bitfit'; expected one of feature_extraction"):
        strategy_named("bitfit")
    with pytest.raises(ValueError, match="freeze must be one of"):
        Strategy("odd", freeze="half")


def test_hook_register_strategies(write_plugin) -> None:
    folder = write_plugin("bitfit", BITFIT_PLUGIN)
    write_plugin("clash", '''
        from tladvisor import hookimpl
        from tladvisor.strategies import Strategy

        @hookimpl
        def register_strategies(register):
            register(Strategy("full_finetune", "a second full fine-tune"))
            register("not a strategy")
        ''')
    host = PluginHost(folder, load_entry_points=False)
    strategies = host.strategies()
    assert list(strategies) == [*BUILT_IN_STRATEGIES, "bitfit"]  # the built-ins first: the search space's order
    assert strategies["bitfit"].plugin == "bitfit" and strategies["bitfit"].colour == "#123456"
    assert strategies["full_finetune"] == replace(BUILT_IN_STRATEGIES["full_finetune"],
                                                  plugin="tladvisor.builtin.tuning")
    assert [(f.plugin, f.error) for f in host.failures] == [
        ("clash", "strategy 'full_finetune' is already registered by plugin 'tladvisor.builtin.tuning'; kept that one"),
        ("clash", "TypeError: register() takes a Strategy, got str")]  # the bad call ends that plugin's registering


def test_bitfit_trains_only_biases_and_the_head() -> None:
    spec = tiny_backbone_spec()
    config = TrialConfig.from_params({"backbone": spec.name, "strategy": "bitfit"}, strategies={"bitfit": BITFIT})
    model = build_model(spec, config, n_classes=3)
    head = {id(p) for p in model.fc.parameters()}
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trained and all(name.endswith(".bias") or name.startswith("fc.") for name in trained)
    grouped = {id(p) for group in parameter_groups(model, spec, config) for p in group["params"]}
    weights = {id(p) for name, p in model.named_parameters() if name.endswith(".weight") and id(p) not in head}
    assert head <= grouped and not (grouped & weights)


def test_a_plugin_strategy_is_searched_trained_and_reported(write_plugin, tmp_path: Path) -> None:
    write_plugin("tiny_plugin", TINY_PLUGIN)
    write_plugin("bitfit", BITFIT_PLUGIN)
    plugins = write_plugin("advise_bitfit", ADVISE_BITFIT_PLUGIN)
    data = write_image_folder(tmp_path / "data", n_classes=3, per_class=8)
    assert analyze_tiny(plugins, data, tmp_path, "--trials", "1", "--image-size", "32") == 0
    run_dir = tmp_path / "reports" / "run"
    analysis = json.loads((run_dir / "analysis.json").read_text())

    # searched: the study's strategy choices hold the plugin's
    study = optuna.load_study(study_name=analysis["tuning"]["study_name"], storage=f"sqlite:///{run_dir / 'study.db'}")
    choices = {c for t in study.trials if "strategy" in t.distributions for c in t.distributions["strategy"].choices}
    assert choices == {*BUILT_IN_STRATEGIES, "bitfit"}

    # trained: the advised first trial is BitFit, it completed, and its model moved only biases and the head
    first = analysis["tuning"]["trials"][0]
    assert first["params"]["strategy"] == "bitfit" and first["state"] == "COMPLETE", first
    assert len(first["learning_curve"]) >= 1
    assert analysis["strategies"]["bitfit"] == {"description": "only biases (and the head) train", "pretrained": True,
                                                "freeze": "none", "colour": "#123456", "plugin": "bitfit"}
    assert analysis["tuning"]["best"]["number"] == first["number"]  # the only trial: its model is kept
    saved = load_file(str(run_dir / "best_model" / "model.safetensors"))
    pretrained = tiny_backbone_spec().build(True).state_dict()
    moved = {name for name, value in saved.items() if name in pretrained and value.shape == pretrained[name].shape
             and not torch.equal(value, pretrained[name]) and not name.startswith("fc.")}
    # biases moved, and BatchNorm statistics (re-estimated on the target); no weight did
    assert any(name.endswith(".bias") for name in moved), moved
    assert all(name.endswith((".bias", "running_mean", "running_var", "num_batches_tracked")) for name in moved), moved

    # reported: in the trials table, and in the plugin's colour on the optimisation history
    html = (run_dir / "index.html").read_text()
    assert "bitfit" in html and "#123456" in html


def test_a_trial_config_follows_its_strategy_name() -> None:
    fe = TrialConfig(backbone="tiny_cnn", strategy="feature_extraction")
    assert fe.plan is BUILT_IN_STRATEGIES["feature_extraction"]
    assert replace(fe, strategy="partial_freeze").plan is BUILT_IN_STRATEGIES["partial_freeze"]
    with pytest.raises(ValueError, match="unknown strategy 'bitfit'"):  # a plugin's needs its record
        TrialConfig(backbone="tiny_cnn", strategy="bitfit")
    assert TrialConfig(backbone="tiny_cnn", strategy="bitfit", plan=BITFIT).plan is BITFIT


def test_every_built_in_has_its_own_colour_on_the_history_legend() -> None:
    from tladvisor.report.charts import history_chart
    from tladvisor.strategies import strategy_colours

    colours = strategy_colours()
    assert set(colours) == set(BUILT_IN_STRATEGIES)  # lp_ft included: not drawn in the neutral grey
    assert len(set(colours.values())) == len(colours)
    trials = [{"number": 0, "state": "COMPLETE", "value": 0.5, "strategy": "lp_ft", "params": {"strategy": "lp_ft"}}]
    assert "lp ft" in str(history_chart(trials, "history"))
