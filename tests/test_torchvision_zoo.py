"""The built-in torchvision zoo: what it registers, and how pretrained weights behave offline."""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision

from tladvisor.errors import WeightsUnavailableError
from tladvisor.plugins import PluginHost

TORCHVISION_BACKBONES = {"resnet18", "resnet50", "efficientnet_b0", "mobilenet_v3_large", "convnext_tiny", "vit_b_16"}
ZOO_PLUGIN = "tladvisor.builtin.torchvision_zoo"


@pytest.fixture
def empty_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty TORCH_HOME for this test only; returns its hub/checkpoints folder."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # remembers the session's hub dir for the undo
    torch.hub.set_dir(str(tmp_path / "hub"))
    return tmp_path / "hub" / "checkpoints"


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every download attempt fails as it would offline; the URLs tried are recorded.

    torchvision's ``Weights.get_state_dict`` calls its own import of ``torch.hub.load_state_dict_from_url``,
    which looks ``download_url_to_file`` up in ``torch.hub`` at call time: that is the seam to cut.
    """
    attempts: list[str] = []

    def offline(url: str, *args, **kwargs) -> None:
        attempts.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return attempts


def zoo_backbones() -> dict:
    return {name: spec for name, spec in PluginHost().backbones().items() if spec.plugin == ZOO_PLUGIN}


def test_six_torchvision_backbones_are_registered_with_their_cache_path(empty_torch_home: Path) -> None:
    backbones = zoo_backbones()
    assert set(backbones) == TORCHVISION_BACKBONES
    for spec in backbones.values():
        location = Path(spec.weights_location)
        assert location.parent == empty_torch_home
        assert location.suffix == ".pth"
        assert spec.weights_id.startswith("torchvision:")
        assert spec.weights_available() is False
    assert backbones["vit_b_16"].fixed_input_size and backbones["vit_b_16"].preprocessing.input_size == 224
    assert not backbones["resnet18"].fixed_input_size


def test_missing_weights_offline_raise_one_line_naming_the_cache_path(empty_torch_home: Path,
                                                                      downloads: list[str]) -> None:
    spec = zoo_backbones()["resnet18"]
    with pytest.raises(WeightsUnavailableError) as caught:
        spec.build(True)
    message = str(caught.value)
    assert "\n" not in message
    assert spec.weights_location in message
    assert "URLError" in message
    assert downloads == [torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url]
    assert downloads[0] in message  # tells the user what to fetch by hand


def test_the_download_notice_goes_to_progress_not_stdout(empty_torch_home: Path, downloads: list[str],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """#26 item 2: torch.hub writes 'Downloading: ...' to stdout, which a redirected summary (and --quiet)
    should never hold; it reaches the progress reporter (stderr, silent under --quiet) instead."""
    import io

    from tladvisor.runtime import progress

    stream = io.StringIO()
    with progress.reporting(progress.LogReporter(stream, wall=lambda: 0.0)):
        with pytest.raises(WeightsUnavailableError):
            zoo_backbones()["resnet18"].build(True)
    assert capsys.readouterr().out == ""
    assert 'Downloading: "https://download.pytorch.org/models/resnet18' in stream.getvalue()


def test_weights_placed_in_the_cache_load_without_download(empty_torch_home: Path, downloads: list[str]) -> None:
    spec = zoo_backbones()["resnet18"]
    torch.manual_seed(7)
    placed = torchvision.models.resnet18().state_dict()
    empty_torch_home.mkdir(parents=True)
    torch.save(placed, spec.weights_location)
    assert spec.weights_available() is True

    model = spec.build(True)

    assert downloads == []
    loaded = model.state_dict()
    assert set(loaded) == set(placed)
    assert all(torch.equal(loaded[key], placed[key]) for key in placed)


class CreatesMarkerWhenUnpickled:
    """A stand-in for a malicious checkpoint: unpickling it runs code that writes a file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickle_in_the_cache_is_refused_not_executed(empty_torch_home: Path, downloads: list[str],
                                                       tmp_path: Path) -> None:
    # The cache is a plain folder anyone with write access can fill; torchvision loads it with
    # torch.load(weights_only=False) unless told otherwise, which would run this object's code.
    spec = zoo_backbones()["resnet18"]
    marker = tmp_path / "code-ran"
    empty_torch_home.mkdir(parents=True)
    torch.save({"conv1.weight": CreatesMarkerWhenUnpickled(marker)}, spec.weights_location)

    with pytest.raises(WeightsUnavailableError) as caught:
        spec.build(True)

    assert not marker.exists(), "loading the cached checkpoint executed code from it"
    assert spec.weights_location in str(caught.value)
    assert downloads == []


def test_building_without_weights_needs_no_cache(empty_torch_home: Path, downloads: list[str]) -> None:
    model = zoo_backbones()["mobilenet_v3_large"].build(False)
    assert isinstance(model, torch.nn.Module)
    assert downloads == [] and not os.path.exists(empty_torch_home)


def test_the_weights_table_matches_torchvision_and_registering_does_not_import_it() -> None:
    import subprocess
    import sys

    from tladvisor.builtin.torchvision_zoo import IMAGENET_MEAN, IMAGENET_STD, WEIGHTS

    for name, entry in WEIGHTS.items():
        weights = entry.load()
        transforms = weights.transforms()
        assert (weights.url, int(transforms.crop_size[0]), int(transforms.resize_size[0]),
                transforms.interpolation.value, weights.meta["_metrics"]["ImageNet-1K"]["acc@1"]) == \
            (entry.url, entry.input_size, entry.resize_size, entry.interpolation, entry.top1), name
        assert (tuple(transforms.mean), tuple(transforms.std)) == (IMAGENET_MEAN, IMAGENET_STD)
        assert callable(getattr(torchvision.models, entry.constructor))
    # listing backbones leaves torchvision.models unimported (a second and more of `tladvisor backbones`)
    code = ("import sys; from tladvisor.plugins import PluginHost; "
            "PluginHost(load_entry_points=False).backbones(); print('torchvision.models' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
