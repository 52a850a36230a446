"""Untrusted files: a checkpoint that would run code when unpickled is refused at every entry point and
never executed; a manifest cannot reach outside its folder through symlinks; a saved model's config
cannot point the loader at another file.

The malicious "checkpoint" is an object whose ``__reduce__`` creates a marker file: if the marker
exists after a load, code from the file ran.
"""

from __future__ import annotations

import json
import os
import pickle
import urllib.error
from pathlib import Path

import pandas as pd
import pytest
from helpers import require_module
import torch

from tladvisor.cli import main
from tladvisor.data.sources import load_source
from tladvisor.errors import TLAdvisorError, UnsafeFileError
from tladvisor.modeling import replace_head
from tladvisor.testing import tiny_backbone_spec
from tladvisor.tuning import model_io

from helpers import TINY_PLUGIN, write_image

REPO = Path(__file__).resolve().parents[1]


class CreatesMarkerWhenUnpickled:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def write_malicious(path: Path, marker: Path, how: str) -> Path:
    """``how``: torch.save (zip container), raw pickle (legacy format)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"conv1.weight": CreatesMarkerWhenUnpickled(marker)}
    if how == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    return path


HOW = ["torch.save", "raw pickle"]


@pytest.fixture
def marker(tmp_path) -> Path:
    path = tmp_path / "code-ran"
    yield path
    assert not path.exists(), "loading the file executed code from it"


# --- every checkpoint entry point --------------------------------------------------------------------


@pytest.mark.parametrize("how", HOW)
def test_torchvision_cache(how, tmp_path, marker, monkeypatch):
    from tladvisor.plugins import PluginHost

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    torch.hub.set_dir(str(tmp_path / "torch" / "hub"))

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    spec = PluginHost(load_entry_points=False).backbone("resnet18")
    write_malicious(Path(spec.weights_location), marker, how)
    with pytest.raises(TLAdvisorError, match="cannot be loaded safely"):
        spec.build(True)


@pytest.mark.parametrize("how", HOW)
def test_efficientnet_lite0_weights_file(how, tmp_path, marker):
    lite0 = require_module("tladvisor_efficientnet_lite", "the first-party plugin is not installed (scripts/setup.sh)")
    path = write_malicious(tmp_path / "lite0.pth", marker, how)
    with pytest.raises(TLAdvisorError, match="cannot read weights file"):
        lite0.load_weights(path)


@pytest.mark.parametrize("suffix, how", [(".pt", "torch.save"), (".pth", "raw pickle"),
                                         (".safetensors", "torch.save"), (".safetensors", "raw pickle")])
def test_example_plugin_package(suffix, how, tmp_path, marker):
    example = require_module("tladvisor_example_backbone", "the example plugin is not installed (scripts/setup.sh)")
    path = write_malicious(tmp_path / f"mine{suffix}", marker, how)
    with pytest.raises(Exception) as refused:
        example.make_spec(path).build(True)
    # a pickle is refused by torch.load(weights_only=True); a pickle named .safetensors by the safetensors parser
    assert type(refused.value).__name__ == ("UnsafeFileError" if suffix != ".safetensors" else "SafetensorError")


@pytest.mark.parametrize("suffix, how", [(".pt", "torch.save"), (".safetensors", "raw pickle")])
def test_one_file_example_plugin_through_analyze(suffix, how, tmp_path, marker, monkeypatch, capsys):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "my_backbone.py").write_text((REPO / "plugins/tladvisor-example-backbone/my_backbone.py").read_text())
    monkeypatch.setenv("MY_BACKBONE_CHECKPOINT", str(write_malicious(tmp_path / f"ckpt{suffix}", marker, how)))
    data = tmp_path / "data"
    for i in range(4):
        write_image(data / "a" / f"{i}.png", colour=(200, 10 * i, 0))
        write_image(data / "b" / f"{i}.png", colour=(0, 10 * i, 200))

    code = main(["--plugins-dir", str(plugins), "analyze", str(data), "--backbone", "my_backbone",
                 "--out", str(tmp_path / "reports"), "--cache-dir", str(tmp_path / "cache")])

    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip() and not line.startswith("[")]
    assert code == 2 and len(lines) == 1  # one error line; "[12:00:00] ..." lines are progress
    assert lines[0].startswith("error: every backbone failed to measure:") and "my_backbone" in lines[0]


def saved_tiny_model(folder: Path, **config_changes) -> Path:
    """A tiny model saved with distinctive weights (every parameter 0.25 + its index / 1000), so a loader
    that ignored the file and built the backbone afresh would be caught."""
    spec = tiny_backbone_spec()
    model = spec.build(True)
    replace_head(model, spec, 2)
    with torch.no_grad():
        for index, param in enumerate(model.parameters()):
            param.fill_(0.25 + index / 1000)
    config = model_io.model_config(spec, spec.preprocessing, strategy="full_finetune", classes=("a", "b"),
                                   val_accuracy=0.5, trial_number=0, study_name="s", params={}, learning_curve=[0.5])
    return model_io.save_model(folder, model, {**config, **config_changes})


class TinyHost:
    def backbone(self, name):
        return tiny_backbone_spec()


@pytest.mark.parametrize("how", HOW)
def test_predict_refuses_a_pickle_named_model_safetensors(how, tmp_path, marker, write_plugin, capsys):
    model_dir = saved_tiny_model(tmp_path / "best_model")
    write_malicious(model_dir / model_io.MODEL_FILE, marker, how)
    image = write_image(tmp_path / "x.png")
    plugins = write_plugin("tiny_plugin", TINY_PLUGIN)

    assert main(["--plugins-dir", str(plugins), "predict", str(model_dir), str(image)]) == 2

    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert line.startswith(f"error: {model_dir / model_io.MODEL_FILE}: not a valid safetensors file")
    assert line.endswith("refusing to load it")


def test_predict_refuses_model_safetensors_linking_to_a_pickle_elsewhere(tmp_path, marker):
    from tladvisor.tuning.predict import load_model

    model_dir = saved_tiny_model(tmp_path / "best_model")
    (model_dir / model_io.MODEL_FILE).unlink()
    os.symlink(write_malicious(tmp_path / "elsewhere" / "evil.pt", marker, "torch.save"), model_dir / model_io.MODEL_FILE)
    with pytest.raises(UnsafeFileError, match="not a valid safetensors file"):
        load_model(model_dir, host=TinyHost())


def test_a_config_pointing_at_other_files_is_ignored_only_model_safetensors_is_read(tmp_path, marker):
    from tladvisor.tuning.predict import load_model

    evil = write_malicious(tmp_path / "elsewhere" / "evil.pt", marker, "torch.save")
    model_dir = saved_tiny_model(tmp_path / "best_model", weights=str(evil), model_file=str(evil),
                                 checkpoint="../elsewhere/evil.pt", state_dict=str(evil))
    loaded = load_model(model_dir, host=TinyHost())
    fresh = tiny_backbone_spec().build(True)
    values = {round(float(p.flatten()[0]), 4) for p in loaded.model.parameters()}
    assert min(values) == 0.25 and all(torch.all(p == p.flatten()[0]) for p in loaded.model.parameters())  # as saved...
    assert not torch.equal(loaded.model.block1[0].weight, fresh.block1[0].weight)  # ...not a fresh build


@pytest.mark.parametrize("change, expected", [
    ({"classes": None}, "classes"),
    ({"classes": "ab"}, "classes"),
    ({"preprocessing": {"input_size": 32, "evil": "x"}}, "preprocessing"),
    ({"preprocessing": "../elsewhere"}, "preprocessing"),
    ({"backbone": ["tiny_cnn"]}, "backbone"),
])
def test_a_malformed_config_is_one_clear_error(change, expected, tmp_path, write_plugin, capsys):
    model_dir = saved_tiny_model(tmp_path / "best_model")
    config = json.loads((model_dir / model_io.CONFIG_FILE).read_text())
    (model_dir / model_io.CONFIG_FILE).write_text(json.dumps({**config, **change}))
    image = write_image(tmp_path / "x.png")
    plugins = write_plugin("tiny_plugin", TINY_PLUGIN)

    code = main(["--plugins-dir", str(plugins), "predict", str(model_dir), str(image)])

    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and line.startswith(f"error: {model_dir / model_io.CONFIG_FILE}:") and expected in line, line


def test_a_config_json_linking_elsewhere_is_read_as_data_only(tmp_path):
    from tladvisor.tuning.predict import load_model

    model_dir = saved_tiny_model(tmp_path / "best_model")
    (model_dir / model_io.CONFIG_FILE).unlink()
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("secret, not JSON")
    os.symlink(outside, model_dir / model_io.CONFIG_FILE)
    with pytest.raises(TLAdvisorError, match="missing or unreadable"):
        load_model(model_dir, host=TinyHost())


# --- manifests cannot escape their folder through symlinks -------------------------------------------


@pytest.fixture
def images(tmp_path) -> Path:
    root = tmp_path / "data"
    for i in range(2):
        write_image(root / "img" / f"r{i}.png", colour=(200, i, 0))
        write_image(root / "img" / f"b{i}.png", colour=(0, i, 200))
    write_image(tmp_path / "outside" / "secret.png")
    return root


def manifest_with(root: Path, extra_path: str) -> Path:
    manifest = root / "m.csv"
    pd.DataFrame({"path": ["img/r0.png", "img/b0.png", "img/r1.png", extra_path],
                  "label": ["r", "b", "r", "b"]}).to_csv(manifest, index=False)
    return manifest


def test_a_symlinked_folder_pointing_outside_is_refused(images):
    os.symlink(images.parent / "outside", images / "linked")
    with pytest.raises(UnsafeFileError, match=r"row 4 \(line 5\): path 'linked/secret.png' resolves outside"):
        load_source(manifest_with(images, "linked/secret.png"))


def test_a_chain_of_links_ending_outside_is_refused(images):
    os.symlink(images.parent / "outside" / "secret.png", images / "img" / "hop2.png")
    os.symlink(images / "img" / "hop2.png", images / "img" / "hop1.png")
    with pytest.raises(UnsafeFileError, match="resolves outside"):
        load_source(manifest_with(images, "img/hop1.png"))


def test_a_link_to_a_system_file_is_refused(images):
    os.symlink("/etc/hostname", images / "img" / "host.png")
    with pytest.raises(UnsafeFileError, match="resolves outside"):
        load_source(manifest_with(images, "img/host.png"))


def test_a_link_staying_inside_the_folder_is_fine(images):
    os.symlink(images / "img" / "b1.png", images / "img" / "alias.png")
    dataset = load_source(manifest_with(images, "img/alias.png"))
    assert dataset.class_counts() == {"b": 2, "r": 2}


def test_a_symlink_loop_is_skipped_with_its_reason(images, tmp_path, write_plugin, capsys):
    os.symlink(images / "img" / "loop2.png", images / "img" / "loop1.png")
    os.symlink(images / "img" / "loop1.png", images / "img" / "loop2.png")
    dataset = load_source(manifest_with(images, "img/loop1.png"))
    assert dataset.class_counts() == {"b": 1, "r": 2}
    (skipped,) = dataset.skipped
    assert "row 4 (line 5)" in skipped.reason and "loop" in skipped.reason.lower()
