"""The example plugin conforms, loads local checkpoints, and refuses pickles that would run code."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file

import tladvisor_example_backbone as example
from tladvisor.errors import UnsafeFileError, WeightsUnavailableError
from tladvisor.plugins import PluginHost
from tladvisor.testing import check_backbone


def random_resnet18_state(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return torchvision.models.resnet18(num_classes=example.SOURCE_CLASSES).state_dict()


def assert_weights_equal(model: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    loaded = model.state_dict()
    assert set(loaded) == set(expected)
    assert all(torch.equal(loaded[key], expected[key]) for key in expected)


def test_example_backbone_passes_the_conformance_check(tmp_path: Path) -> None:
    assert check_backbone(example.make_spec(tmp_path / "absent.safetensors"), image_size=64) == []


def test_loads_a_safetensors_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "mine.safetensors"
    spec = example.make_spec(path)
    assert spec.weights_available() is False
    state = random_resnet18_state(seed=1)
    save_file(state, path)
    assert spec.weights_available() is True
    model = spec.build(True)
    assert_weights_equal(model, state)
    assert not torch.equal(model.fc.weight, spec.build(False).fc.weight)  # the file's weights, not a fresh init


@pytest.mark.parametrize("wrapped", [False, True])
def test_loads_a_torch_saved_state_dict(tmp_path: Path, wrapped: bool) -> None:
    path = tmp_path / "mine.pt"
    state = random_resnet18_state(seed=2)
    torch.save({"state_dict": state, "epoch": 30} if wrapped else state, path)
    assert_weights_equal(example.make_spec(path).build(True), state)


class CreatesMarkerWhenUnpickled:
    """A stand-in for a malicious checkpoint: unpickling it runs code that writes a file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_refuses_a_pickle_that_would_run_code(tmp_path: Path) -> None:
    path, marker = tmp_path / "evil.pth", tmp_path / "code-ran"
    torch.save({"fc.weight": CreatesMarkerWhenUnpickled(marker)}, path)
    with pytest.raises(UnsafeFileError, match="refused"):
        example.make_spec(path).build(True)
    assert not marker.exists()


def test_missing_checkpoint_is_one_clear_error_naming_the_path_and_setting(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.safetensors"
    with pytest.raises(WeightsUnavailableError) as caught:
        example.make_spec(path).build(True)
    assert str(path) in str(caught.value) and example.CHECKPOINT_ENV in str(caught.value)


def test_hook_register_backbones_example_reads_the_checkpoint_setting(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(example.CHECKPOINT_ENV, str(tmp_path / "mine.safetensors"))
    registered = []
    example.register_backbones(register=registered.append)
    assert [spec.name for spec in registered] == [example.NAME]
    assert registered[0].weights_location == str(tmp_path / "mine.safetensors")


def test_installed_package_is_found_through_its_entry_point() -> None:
    try:
        importlib.metadata.distribution("tladvisor-example-backbone")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("not installed: pip install -e plugins/tladvisor-example-backbone")
    host = PluginHost()
    info = {plugin.name: plugin for plugin in host.plugins()}["example_backbone"]
    assert info.source == "entry point (tladvisor-example-backbone)" and info.version == "0.1.0"
    assert host.backbones()[example.NAME].plugin == "example_backbone"
