"""Built-in plugin: torchvision's ImageNet backbones, with weights through torchvision's own cache.

Weights download into torch hub's cache (``$TORCH_HOME/hub/checkpoints``) the first time a backbone is
built pretrained. Offline, a missing file is one clear error naming the cache path and the URL.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision.models as tvm
from torch import nn

from tladvisor import hookimpl
from tladvisor.backbones import BackboneSpec, Preprocessing, Stage
from tladvisor.errors import WeightsUnavailableError

LICENSE = "BSD-3-Clause (torchvision code); ImageNet weights for non-commercial research use"


def one_line_text(error: BaseException) -> str:
    return " ".join(str(error).split())[:300]


def checkpoint_path(weights) -> Path:
    """Where torchvision keeps (or will keep) this weights file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def load_state_dict(name: str, weights) -> dict:
    path = checkpoint_path(weights)
    try:
        # weights_only: a tampered cache file must never run code when unpickled
        return weights.get_state_dict(progress=False, check_hash=True, weights_only=True)
    except Exception as error:  # URLError, HTTPError, hash mismatch, truncated or unsafe file...
        if path.is_file():
            raise WeightsUnavailableError(
                f"{name}: the cached weights file {path} cannot be loaded safely "
                f"({type(error).__name__}: {one_line_text(error)}); delete it so it is downloaded again, "
                f"or replace it with the file from {weights.url}"
            ) from None
        raise WeightsUnavailableError(
            f"{name}: pretrained weights are not in the cache at {path} and could not be downloaded "
            f"({type(error).__name__}: {one_line_text(error)}); download {weights.url} to that path, "
            f"or set TORCH_HOME to a folder holding hub/checkpoints/{path.name}"
        ) from None


def builder(name: str, constructor: Callable[..., nn.Module], weights) -> Callable[[bool], nn.Module]:
    def build(pretrained: bool) -> nn.Module:
        model = constructor(weights=None)
        if pretrained:
            model.load_state_dict(load_state_dict(name, weights))
        return model

    return build


def preprocessing_of(weights) -> Preprocessing:
    transforms = weights.transforms()
    return Preprocessing(
        input_size=int(transforms.crop_size[0]),
        resize_size=int(transforms.resize_size[0]),
        mean=tuple(transforms.mean),
        std=tuple(transforms.std),
        interpolation=transforms.interpolation.value,
    )


def numbered(prefix: str, indices) -> tuple[str, ...]:
    return tuple(f"{prefix}.{i}" for i in indices)


def _resnet_stages() -> tuple[Stage, ...]:
    return (Stage("stem", ("conv1", "bn1")),) + tuple(Stage(f"layer{i}", (f"layer{i}",)) for i in range(1, 5))


# name -> (constructor, weights, stages, head, feature_dim, fixed input size)
ZOO = {
    "resnet18": (tvm.resnet18, tvm.ResNet18_Weights.IMAGENET1K_V1, _resnet_stages(), "fc", 512, False),
    "resnet50": (tvm.resnet50, tvm.ResNet50_Weights.IMAGENET1K_V2, _resnet_stages(), "fc", 2048, False),
    "efficientnet_b0": (
        tvm.efficientnet_b0, tvm.EfficientNet_B0_Weights.IMAGENET1K_V1,
        (Stage("stem", ("features.0",)),)
        + tuple(Stage(f"block{i}", (f"features.{i}",)) for i in range(1, 8))
        + (Stage("top", ("features.8",)),),
        "classifier.1", 1280, False),
    "mobilenet_v3_large": (
        tvm.mobilenet_v3_large, tvm.MobileNet_V3_Large_Weights.IMAGENET1K_V2,
        (Stage("stem", ("features.0",)),
         Stage("stride2", numbered("features", range(1, 4))),
         Stage("stride8", numbered("features", range(4, 7))),
         Stage("stride16", numbered("features", range(7, 13))),
         Stage("stride32", numbered("features", range(13, 16))),
         Stage("top", ("features.16", "classifier.0"))),
        "classifier.3", 1280, False),
    "convnext_tiny": (
        tvm.convnext_tiny, tvm.ConvNeXt_Tiny_Weights.IMAGENET1K_V1,
        (Stage("stem", ("features.0",)),
         Stage("stage1", ("features.1",)),
         Stage("stage2", ("features.2", "features.3")),
         Stage("stage3", ("features.4", "features.5")),
         Stage("stage4", ("features.6", "features.7", "classifier.0"))),
        "classifier.2", 768, False),
    "vit_b_16": (
        tvm.vit_b_16, tvm.ViT_B_16_Weights.IMAGENET1K_V1,
        (Stage("patch_embed", ("conv_proj", "class_token", "encoder.pos_embedding")),)
        + tuple(Stage(f"blocks{i}-{i + 2}", numbered("encoder.layers", [f"encoder_layer_{j}" for j in range(i, i + 3)]))
                for i in (0, 3, 6))
        + (Stage("blocks9-11", numbered("encoder.layers", [f"encoder_layer_{j}" for j in range(9, 12)])
                 + ("encoder.ln",)),),
        "heads.head", 768, True),
}


def spec_for(name: str) -> BackboneSpec:
    constructor, weights, stages, head, feature_dim, fixed_size = ZOO[name]
    path = checkpoint_path(weights)
    return BackboneSpec(
        name=name,
        build=builder(name, constructor, weights),
        stages=stages,
        head=head,
        feature_dim=feature_dim,
        preprocessing=preprocessing_of(weights),
        fixed_input_size=fixed_size,
        source_domain="ImageNet-1k natural photos",
        source_classes=1000,
        license=LICENSE,
        weights_id=f"torchvision:{weights.__class__.__name__}.{weights.name}",
        weights_location=str(path),
        weights_url=weights.url,
        weights_available=path.is_file,
        description=f"torchvision {name}, {weights.__class__.__name__}.{weights.name} "
                    f"(ImageNet top-1 {weights.meta['_metrics']['ImageNet-1K']['acc@1']}%)",
    )


@hookimpl
def register_backbones(register):
    for name in ZOO:
        register(spec_for(name))
