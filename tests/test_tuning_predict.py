"""The saved best model: written atomically, loaded only from safetensors, predicting as it was validated."""

from __future__ import annotations

import json
import pytest
import torch

from tladvisor.errors import BackboneError, UnsafeFileError
from tladvisor.plugins import PluginHost
from tladvisor.records import AnalysisOptions, Recommendation
from tladvisor.testing import tiny_backbone_spec
from tladvisor.tuning import model_io
from tladvisor.tuning.data import TuningData, split_train_val
from tladvisor.tuning.predict import load_model, predict, predict_all
from tladvisor.tuning.study import Tuner


class TinyHost:
    """Stands in for a PluginHost whose plugins register the tiny backbone."""

    def backbone(self, name):
        if name != "tiny_cnn":
            raise BackboneError(f"unknown backbone '{name}'")
        return tiny_backbone_spec()


def tuned(shapes, tmp_path, strategy: str, cv_folds: str = "1", **rates):
    options = AnalysisOptions(source=shapes.root, run_dir=tmp_path / "run", cache_dir=tmp_path / "cache",
                              val_fraction=0.25, batch_size=16, trials=1, study_name=strategy, device="cpu",
                              cv_folds=cv_folds)
    recommendation = Recommendation(
        backbone="tiny_cnn", strategy=strategy, freeze_depth=1, n_stages=3,
        learning_rates={"head": 0.05, "backbone": 3e-3, "layer_decay": 0.8, **rates}, confidence=0.5,
        rationale=(), epochs=6)
    result = Tuner(options, host=PluginHost(load_entry_points=False)).run(shapes, recommendation, [tiny_backbone_spec()])
    return options, result


@pytest.mark.parametrize("strategy", ["feature_extraction", "full_finetune"])
def test_predict_on_the_validation_images_reproduces_the_stored_accuracy(shapes, tmp_path, strategy):
    options, result = tuned(shapes, tmp_path, strategy)
    model_dir = options.run_dir / "best_model"
    config = json.loads((model_dir / "config.json").read_text())
    assert config["strategy"] == strategy and config["backbone"] == "tiny_cnn"
    assert config["val_accuracy"] == result.best.value > 0.5
    assert set(config) >= {"plugin", "classes", "preprocessing", "trial_number", "tladvisor_version"}

    _, val_idx = split_train_val(shapes, options.val_fraction, options.seed)
    val = [shapes.samples[i] for i in val_idx]
    rows = predict(model_dir, [s.path for s in val], device="cpu", batch_size=4, host=TinyHost())
    assert [r["path"] for r in rows] == [str(s.path) for s in val]
    correct = sum(r["label"] == shapes.classes[s.label] for r, s in zip(rows, val))
    assert correct / len(val) == config["val_accuracy"]
    assert all(1 / 3 <= r["probability"] <= 1 for r in rows)


def test_a_cross_validated_trial_keeps_fold_0s_model_and_says_what_it_validated_on(shapes, tmp_path):
    options, result = tuned(shapes, tmp_path, "feature_extraction", cv_folds="3")
    model_dir = options.run_dir / "best_model"
    config = json.loads((model_dir / "config.json").read_text())
    folds = result.best.folds
    assert config["val_accuracy"] == result.best.value == pytest.approx(sum(folds["accuracies"]) / 3)
    cv = config["cross_validation"]
    assert (cv["folds"], cv["kept_fold"], cv["kept_fold_val_accuracy"]) == (3, 0, folds["accuracies"][0])

    data = TuningData(shapes, options, torch.device("cpu"))
    val = [shapes.samples[i] for i in data.fold_plan.val[0]]
    assert cv["kept_fold_val_images"] == len(val)
    rows = predict(model_dir, [s.path for s in val], device="cpu", batch_size=4, host=TinyHost())
    correct = sum(r["label"] == shapes.classes[s.label] for r, s in zip(rows, val))
    assert correct / len(val) == pytest.approx(cv["kept_fold_val_accuracy"])


def test_the_saved_state_dict_is_the_whole_model_with_the_new_head(shapes, tmp_path):
    options, _ = tuned(shapes, tmp_path, "feature_extraction")
    loaded = load_model(options.run_dir / "best_model", host=TinyHost())
    assert loaded.model.fc.out_features == 3 and loaded.classes == shapes.classes
    pretrained = tiny_backbone_spec().build(True)
    assert torch.equal(loaded.model.block1[0].weight, pretrained.block1[0].weight)  # frozen body, as trained


def test_loading_refuses_anything_but_safetensors(tmp_path):
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    torch.save({"fc.weight": torch.zeros(3, 32)}, pickled / "model.safetensors")
    (pickled / "config.json").write_text(json.dumps({"backbone": "tiny_cnn", "classes": ["a", "b", "c"]}))
    with pytest.raises(UnsafeFileError, match="not a valid safetensors file"):
        load_model(pickled, host=TinyHost())

    checkpoint_only = tmp_path / "checkpoint_only"
    checkpoint_only.mkdir()
    torch.save({"fc.weight": torch.zeros(3, 32)}, checkpoint_only / "model.pt")
    with pytest.raises(UnsafeFileError, match=r"no model.safetensors \(found model.pt; pickled checkpoints"):
        load_model(checkpoint_only, host=TinyHost())


def test_a_model_whose_backbone_is_not_installed_is_a_clear_error(shapes, tmp_path):
    options, _ = tuned(shapes, tmp_path, "feature_extraction")
    model_dir = options.run_dir / "best_model"
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**config, "backbone": "resnet_missing"}))
    with pytest.raises(BackboneError, match="unknown backbone 'resnet_missing'"):
        load_model(model_dir, host=TinyHost())


def test_saving_is_atomic_a_failed_write_keeps_the_previous_model(tmp_path, monkeypatch):
    model_dir = tmp_path / "best_model"
    spec = tiny_backbone_spec()
    first = spec.build(True)
    model_io.save_model(model_dir, first, {"backbone": "tiny_cnn", "val_accuracy": 0.5})

    def disk_full(*_args, **_kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(model_io, "save_file", disk_full)
    with pytest.raises(OSError):
        model_io.save_model(model_dir, spec.build(False), {"backbone": "tiny_cnn", "val_accuracy": 0.9})
    assert model_io.read_config(model_dir)["val_accuracy"] == 0.5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best_model"]  # no temporary folder left over

    # killed between the two renames: the previous model is put back on the next read
    model_dir.rename(tmp_path / "best_model.previous")
    assert model_io.read_config(model_dir)["val_accuracy"] == 0.5 and model_dir.is_dir()


def test_predict_names_an_unreadable_image(shapes, tmp_path):
    options, _ = tuned(shapes, tmp_path, "feature_extraction")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    result = predict_all(options.run_dir / "best_model", [broken, tmp_path / "missing.png"], device="cpu",
                         host=TinyHost())
    assert result.rows == []
    reasons = {s["path"]: s["reason"] for s in result.skipped}
    assert reasons[str(broken)].startswith("cannot read image")
    assert reasons[str(tmp_path / "missing.png")] == "no such file or folder"
