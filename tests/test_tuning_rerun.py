"""Re-runs keep what the run folder holds; a study over several backbones trains each at its own resolution."""

from __future__ import annotations

import json
from dataclasses import replace

import torch

from tladvisor import hookimpl
from tladvisor.plugins import PluginHost
from tladvisor.records import AnalysisOptions, Recommendation
from tladvisor.testing import tiny_backbone_spec
from tladvisor.tuning.search import suggest_params
from tladvisor.tuning.study import Tuner

from helpers import TINY_PLUGIN, analyze_tiny, write_image_folder


def test_an_advice_only_rerun_keeps_the_tuning_the_folder_holds(write_plugin, tmp_path, capsys):
    plugins = write_plugin("tiny_plugin", TINY_PLUGIN)
    data = write_image_folder(tmp_path / "data", n_classes=3, per_class=10)
    assert analyze_tiny(plugins, data, tmp_path, "--trials", "2", "--batch-size", "8", "--quiet") == 0
    run_dir = tmp_path / "reports" / "run"
    tuned = json.loads((run_dir / "analysis.json").read_text())["tuning"]
    assert len(tuned["trials"]) == 2

    assert analyze_tiny(plugins, data, tmp_path, "--quiet") == 0  # the same folder, advice only
    kept = json.loads((run_dir / "analysis.json").read_text())["tuning"]
    assert kept is not None  # was: tuning null, although study.db and best_model/ were still there
    assert [(t["number"], t["state"], t["value"]) for t in kept["trials"]] == \
           [(t["number"], t["state"], t["value"]) for t in tuned["trials"]]
    assert kept["best"] == tuned["best"] and kept["best_model_dir"] == str(run_dir / "best_model")
    assert kept["requested_trials"] == 2
    assert kept["stop_reason"].startswith("not tuned in this run (advice only): these 2 trials are from an earlier run")
    assert "Best trial: #" in capsys.readouterr().out


class OwnBackbonePerTrial:
    """Alternates the two backbones and fine-tunes, so every trial passes images through its network."""

    @hookimpl
    def search_space(self, trial, recommendation, backbones, options):
        params = suggest_params(trial, recommendation, backbones, options)
        backbone = sorted(b.name for b in backbones)[trial.number % 2]
        return {**params, "backbone": backbone, "strategy": "full_finetune", "freeze_depth": 0, "epochs": 1}


def test_a_study_over_two_backbones_trains_each_trial_at_its_backbones_resolution(shapes, tmp_path):
    seen: dict[str, set] = {"tiny_a": set(), "tiny_b": set()}

    def watched(name, input_size):
        spec = tiny_backbone_spec(name, input_size=input_size)
        build = spec.build

        def build_and_watch(pretrained):
            model = build(pretrained)
            model.register_forward_pre_hook(lambda _m, args: seen[name].add(tuple(args[0].shape[-2:])))
            return model

        return replace(spec, build=build_and_watch)

    specs = [watched("tiny_a", 32), watched("tiny_b", 24)]
    host = PluginHost(load_entry_points=False)
    host.pm.register(OwnBackbonePerTrial(), name="own_backbone")
    options = AnalysisOptions(source=shapes.root, run_dir=tmp_path / "run", cache_dir=tmp_path / "cache", trials=2,
                              val_fraction=0.25, batch_size=16, study_name="two", device="cpu")
    advice = Recommendation(backbone="tiny_a", strategy="full_finetune", freeze_depth=0, n_stages=3,
                            learning_rates={"head": 1e-2, "backbone": 1e-3}, confidence=0.5, rationale=("t",),
                            epochs=1)
    torch.set_num_threads(1)
    result = Tuner(options, host=host).run(shapes, advice, specs)
    assert {t.params["backbone"] for t in result.trials} == {"tiny_a", "tiny_b"}
    assert all(t.state == "COMPLETE" for t in result.trials)
    assert seen == {"tiny_a": {(32, 32)}, "tiny_b": {(24, 24)}}  # native resolution each, never the other's
    saved = json.loads((tmp_path / "run" / "best_model" / "config.json").read_text())
    assert saved["preprocessing"]["input_size"] == {"tiny_a": 32, "tiny_b": 24}[result.best.params["backbone"]]
