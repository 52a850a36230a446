"""timm plugin, offline: timm's tiny test models with random weights, a local safetensors checkpoint, and
the one-line error when a checkpoint is neither cached nor downloadable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tladvisor.cli import main
from tladvisor.errors import BackboneError, UnsafeFileError, WeightsUnavailableError
from tladvisor.plugins import PluginHost
from tladvisor.testing import check_backbone

timm = pytest.importorskip("timm", reason="install with pip install -e plugins/tladvisor-timm")
plugin = pytest.importorskip("tladvisor_timm", reason="install with pip install -e plugins/tladvisor-timm")

from tladvisor_timm.curated import TABLE, curated_facts, timm_version  # noqa: E402
from tladvisor_timm.source import source_domain  # noqa: E402
from tladvisor_timm.spec import derive_facts  # noqa: E402
from tladvisor_timm.weights import create_pretrained  # noqa: E402

TEST_MODELS = ("test_resnet.r160_in1k", "test_convnext.r160_in1k", "test_efficientnet.r160_in1k", "test_vit.r160_in1k")


@pytest.fixture
def offline_empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face and torch hub cache, with the Hub in offline mode."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "torch-hub"))
    return cache


@pytest.mark.parametrize("model_name", TEST_MODELS)
def test_every_test_model_conforms_to_the_backbone_contract(model_name: str) -> None:
    spec = plugin.timm_backbone(model_name)
    assert spec.name == f"timm-{model_name}"
    assert check_backbone(spec, image_size=64, pretrained=False) == []


def test_stages_come_from_feature_info_and_the_head_from_the_classifier() -> None:
    resnet = plugin.timm_backbone("test_resnet.r160_in1k")
    assert [(s.name, s.members) for s in resnet.stages] == [
        ("stem", ("conv1", "bn1")), ("layer1", ("layer1",)), ("layer2", ("layer2",)),
        ("layer3", ("layer3",)), ("layer4", ("layer4",))]  # act1 (stride 2) owns no parameter: no stage
    assert (resnet.head, resnet.source_classes) == ("fc", 1000)
    vit = plugin.timm_backbone("test_vit.r160_in1k")
    assert vit.stages[0].members[:2] == ("cls_token", "pos_embed") and "patch_embed" in vit.stages[0].members
    assert vit.stages[-1].name == "blocks.5" and "norm" in vit.stages[-1].members  # the final norm joins the last stage
    assert vit.head == "head" and vit.fixed_input_size is True  # position embeddings: native size only
    convnext = plugin.timm_backbone("test_convnext.r160_in1k")
    assert convnext.head == "head.fc" and "head.norm" in convnext.stages[-1].members


def test_preprocessing_and_source_come_from_the_pretrained_config() -> None:
    spec = plugin.timm_backbone("test_resnet.r160_in1k")
    pre = spec.preprocessing
    assert (pre.input_size, pre.resize_size, pre.interpolation) == (160, 168, "bilinear")  # floor(160 / 0.95)
    assert pre.mean == (0.5, 0.5, 0.5) and pre.std == (0.5, 0.5, 0.5)
    assert spec.source_domain == "ImageNet-1k natural photos"
    assert spec.weights_id == "timm:test_resnet.r160_in1k:timm/test_resnet.r160_in1k"


@pytest.mark.parametrize("tag, expected", [
    ("fb_in22k", "ImageNet-22k natural photos"),
    ("augreg_in21k_ft_in1k", "ImageNet-22k natural photos, fine-tuned on ImageNet-1k natural photos"),
    ("laion2b_ft_in12k_in1k", "LAION-2B web images with captions (CLIP), fine-tuned on ImageNet-12k natural photos "
                              "(a subset of ImageNet-22k), fine-tuned on ImageNet-1k natural photos"),
    ("lvd142m", "LVD-142M curated web photos (DINOv2, self-supervised)"),
    ("openai", "OpenAI WIT-400M web images with captions (CLIP)"),
    ("xyz", "timm checkpoint 'xyz' (1000 source classes)"),
])
def test_source_domain_is_read_from_the_tag(tag: str, expected: str) -> None:
    assert source_domain(tag, 1000) == expected


def test_names_resolve_to_one_canonical_spec_through_the_entry_point() -> None:
    host = PluginHost()
    spec = host.backbone("timm/test_resnet")  # Hub style, no tag: timm's default checkpoint, named in full
    assert (spec.name, spec.plugin) == ("timm-test_resnet.r160_in1k", "timm")
    assert host.backbone("timm-test_resnet.r160_in1k") is spec
    curated = {name for name in host.backbones() if name.startswith("timm-")}
    assert {f"timm-{name}" for name in plugin.CURATED} <= curated
    with pytest.raises(BackboneError, match="unknown timm model 'test_resnett'.*did you mean 'timm-test_resnet'"):
        host.backbone("timm-test_resnett")
    with pytest.raises(BackboneError, match="timm cannot create"):
        host.backbone("timm-test_resnet.no_such_tag")


def test_a_tladvisor_without_the_resolve_hook_still_loads_the_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    """An older tladvisor rejects a plugin implementing a hook it does not know: offer the list only there."""
    import importlib

    from tladvisor import hookspecs

    monkeypatch.delattr(hookspecs, "resolve_backbone")
    monkeypatch.delattr(plugin, "resolve_backbone")  # reload keeps old attributes: start without it
    try:
        older = importlib.reload(plugin)
        assert not hasattr(older, "resolve_backbone") and hasattr(older, "register_backbones")
    finally:
        monkeypatch.undo()
        importlib.reload(plugin)
    assert hasattr(plugin, "resolve_backbone")


def test_a_local_safetensors_checkpoint_is_loaded_through_timm(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(3)
    source = timm.create_model("test_resnet.r160_in1k", pretrained=False)
    checkpoint = tmp_path / "mine.safetensors"
    save_file(source.state_dict(), str(checkpoint))
    spec = plugin.timm_backbone("test_resnet.r160_in1k", checkpoint=checkpoint, name="my_resnet")
    assert spec.name == "my_resnet" and spec.weights_available() is True
    assert spec.weights_id == "timm:test_resnet.r160_in1k:mine.safetensors"
    model = spec.build(True)
    assert torch.equal(model.fc.weight, source.fc.weight) and torch.equal(model.conv1[0].weight, source.conv1[0].weight)
    assert check_backbone(spec, image_size=64, pretrained=True) == []
    with pytest.raises(UnsafeFileError, match="must be a .safetensors file"):
        plugin.timm_backbone("test_resnet.r160_in1k", checkpoint=tmp_path / "mine.pth")
    checkpoint.unlink()
    assert spec.weights_available() is False
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        spec.build(True)


def test_an_uncached_checkpoint_offline_is_one_error_naming_what_to_fetch(offline_empty_cache: Path) -> None:
    spec = plugin.timm_backbone("test_resnet.r160_in1k")
    assert spec.weights_available() is False
    assert spec.weights_location.startswith("(not cached: fetch with `hf download timm/test_resnet.r160_in1k`")
    with pytest.raises(WeightsUnavailableError) as raised:
        spec.build(True)
    message = str(raised.value)
    assert "\n" not in message and "`hf download timm/test_resnet.r160_in1k`" in message
    assert str(offline_empty_cache) in message


def test_a_failed_download_is_one_error_naming_what_to_fetch(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args, **kwargs):
        if kwargs.get("pretrained"):
            raise ConnectionError("Max retries exceeded with url: /timm/test_resnet.r160_in1k/...")
        return real(*args, **kwargs)

    real = timm.create_model
    monkeypatch.setattr(timm, "create_model", no_network)
    monkeypatch.setattr("tladvisor_timm.weights.unreachable", lambda host: None)  # the host answers, the download fails
    cfg = {"hf_hub_id": "timm/nothing_cached_here.x"}
    with pytest.raises(WeightsUnavailableError, match=r"could not be downloaded \(ConnectionError: Max retries.*"
                                                      r"fetch them with `hf download timm/nothing_cached_here.x`"):
        create_pretrained("timm-nothing_cached_here.x", "test_resnet.r160_in1k", cfg, None)


def test_an_unreachable_hub_fails_at_once_without_the_clients_retries(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    probed = []

    def no_route(address, timeout):
        probed.append((address, timeout))
        raise OSError("Network is unreachable")

    def must_not_download(*args, **kwargs):
        raise AssertionError("timm.create_model(pretrained=True) was called although the Hub is unreachable")

    monkeypatch.setattr("socket.create_connection", no_route)
    monkeypatch.setattr(timm, "create_model", must_not_download)
    with pytest.raises(WeightsUnavailableError, match=r"huggingface.co cannot be reached: OSError: Network is "
                                                      r"unreachable; fetch them with `hf download timm/x.y`"):
        create_pretrained("timm-x.y", "x.y", {"hf_hub_id": "timm/x.y"}, None)
    assert probed == [(("huggingface.co", 443), 3.0)]


def test_analyze_with_an_uncached_timm_model_offline_exits_2_with_one_line(offline_empty_cache: Path,
                                                                          tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (data / label).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(data / label / f"{i}.png")
    code = main(["analyze", str(data), "--backbone", "timm-test_resnet.r160_in1k", "--image-size", "32",
                 "--out", str(tmp_path / "reports"), "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: timm-test_resnet.r160_in1k: pretrained weights are not in the local cache")
    assert "hf download timm/test_resnet.r160_in1k" in err


def test_curated_facts_match_what_timm_derives() -> None:
    """curated.json spares every command an import of timm; it must say what timm itself would."""
    table = json.loads(TABLE.read_text())
    assert table["timm"] == timm_version(), (
        "curated.json was made with another timm: regenerate it (see tladvisor_timm/curated.py)")
    for model in plugin.CURATED:
        assert table["models"][model] == json.loads(json.dumps(derive_facts(model))), model
    assert curated_facts() == table["models"]


def test_curated_facts_are_derived_when_made_with_another_timm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tladvisor_timm.curated.timm_version", lambda: "0.0.1")
    derived = curated_facts()
    assert list(derived) == list(plugin.CURATED)
    assert derived["convnext_tiny.fb_in22k"]["head"] == "head.fc"


def test_backbones_command_lists_the_curated_set_and_says_any_timm_name_works(capsys) -> None:
    assert main(["backbones", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    timm_listed = {b["name"]: b for b in listed["backbones"] if b["plugin"] == "timm"}
    assert set(timm_listed) == {f"timm-{name}" for name in plugin.CURATED}
    assert timm_listed["timm-convnext_tiny.fb_in22k"]["source_domain"] == "ImageNet-22k natural photos"
    assert [d for d in listed["on_demand"] if d["plugin"] == "timm"][0]["names"].startswith("timm-<model>[.<tag>]")
