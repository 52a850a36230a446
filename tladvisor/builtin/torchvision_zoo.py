"""Built-in plugin: torchvision's ImageNet backbones, with weights through torchvision's own cache.

Weights download into torch hub's cache (``$TORCH_HOME/hub/checkpoints``) the first time a backbone is
built pretrained. Offline, a missing file is one clear error naming the cache path and the URL.

What a spec needs (weights URL, preprocessing, accuracy) is written out in :data:`WEIGHTS` rather than
read from torchvision's weights enums, so registering the backbones does not import
``torchvision.models`` (over a second: ``tladvisor plugins`` and ``backbones`` list without it).
``tests/test_torchvision_zoo.py`` checks the table against torchvision's own values.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tladvisor import hookimpl

from tladvisor.runtime import progress
from tladvisor.backbones import BackboneSpec, Preprocessing, Stage
from tladvisor.errors import WeightsUnavailableError
from tladvisor.text import one_line

LICENSE = "BSD-3-Clause (torchvision code); ImageNet weights for non-commercial research use"


@dataclass(frozen=True)
class Weights:
    """One torchvision weights entry, as its enum member describes it (checked by the tests)."""

    constructor: str  # torchvision.models.<constructor>
    enum: str  # torchvision.models.<enum>.<member>
    member: str
    url: str
    input_size: int
    resize_size: int
    interpolation: str
    top1: float  # ImageNet-1K acc@1, %

    def load(self):
        """The torchvision enum member (imports torchvision.models: only when weights are needed)."""
        import torchvision.models as tvm

        return getattr(getattr(tvm, self.enum), self.member)


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
URL = "https://download.pytorch.org/models/"
WEIGHTS = {
    "resnet18": Weights("resnet18", "ResNet18_Weights", "IMAGENET1K_V1", URL + "resnet18-f37072fd.pth",
                        224, 256, "bilinear", 69.758),
    "resnet50": Weights("resnet50", "ResNet50_Weights", "IMAGENET1K_V2", URL + "resnet50-11ad3fa6.pth",
                        224, 232, "bilinear", 80.858),
    "efficientnet_b0": Weights("efficientnet_b0", "EfficientNet_B0_Weights", "IMAGENET1K_V1",
                               URL + "efficientnet_b0_rwightman-7f5810bc.pth", 224, 256, "bicubic", 77.692),
    "mobilenet_v3_large": Weights("mobilenet_v3_large", "MobileNet_V3_Large_Weights", "IMAGENET1K_V2",
                                  URL + "mobilenet_v3_large-5c1a4163.pth", 224, 232, "bilinear", 75.274),
    "convnext_tiny": Weights("convnext_tiny", "ConvNeXt_Tiny_Weights", "IMAGENET1K_V1",
                             URL + "convnext_tiny-983f1562.pth", 224, 236, "bilinear", 82.52),
    "vit_b_16": Weights("vit_b_16", "ViT_B_16_Weights", "IMAGENET1K_V1", URL + "vit_b_16-c867db91.pth",
                        224, 256, "bilinear", 81.072),
}


def checkpoint_path(url: str) -> Path:
    """Where torchvision keeps (or will keep) the weights file downloaded from ``url``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


class _ToProgress(io.TextIOBase):
    """torch.hub writes 'Downloading: "<url>" to <file>' to stdout, where it would land in a redirected
    summary (and print under --quiet); this sends each such line to the progress reporter instead."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                progress.current().stage(line.strip())
        return len(text)


def load_state_dict(name: str, weights) -> dict:
    path = checkpoint_path(weights.url)
    try:
        # weights_only: a tampered cache file must never run code when unpickled
        with contextlib.redirect_stdout(_ToProgress()):
            return weights.get_state_dict(progress=False, check_hash=True, weights_only=True)
    except Exception as error:  # URLError, HTTPError, hash mismatch, truncated or unsafe file...
        if path.is_file():
            raise WeightsUnavailableError(
                f"{name}: the cached weights file {path} cannot be loaded safely "
                f"({type(error).__name__}: {one_line(error, with_type=False, limit=300)}); delete it so it is downloaded again, "
                f"or replace it with the file from {weights.url}"
            ) from None
        raise WeightsUnavailableError(
            f"{name}: pretrained weights are not in the cache at {path} and could not be downloaded "
            f"({type(error).__name__}: {one_line(error, with_type=False, limit=300)}); download {weights.url} to that path, "
            f"or set TORCH_HOME to a folder holding hub/checkpoints/{path.name}"
        ) from None


def builder(name: str, weights: Weights) -> Callable[[bool], nn.Module]:
    def build(pretrained: bool) -> nn.Module:
        import torchvision.models as tvm

        model = getattr(tvm, weights.constructor)(weights=None)
        if pretrained:
            model.load_state_dict(load_state_dict(name, weights.load()))
        return model

    return build


def preprocessing_of(weights: Weights) -> Preprocessing:
    return Preprocessing(input_size=weights.input_size, resize_size=weights.resize_size, mean=IMAGENET_MEAN,
                         std=IMAGENET_STD, interpolation=weights.interpolation)


def numbered(prefix: str, indices) -> tuple[str, ...]:
    return tuple(f"{prefix}.{i}" for i in indices)


def _resnet_stages() -> tuple[Stage, ...]:
    return (Stage("stem", ("conv1", "bn1")),) + tuple(Stage(f"layer{i}", (f"layer{i}",)) for i in range(1, 5))


# name -> (stages, head, feature_dim, fixed input size); the weights are WEIGHTS[name]
ZOO = {
    "resnet18": (_resnet_stages(), "fc", 512, False),
    "resnet50": (_resnet_stages(), "fc", 2048, False),
    "efficientnet_b0": (
        (Stage("stem", ("features.0",)),)
        + tuple(Stage(f"block{i}", (f"features.{i}",)) for i in range(1, 8))
        + (Stage("top", ("features.8",)),),
        "classifier.1", 1280, False),
    "mobilenet_v3_large": (
        (Stage("stem", ("features.0",)),
         Stage("stride2", numbered("features", range(1, 4))),
         Stage("stride8", numbered("features", range(4, 7))),
         Stage("stride16", numbered("features", range(7, 13))),
         Stage("stride32", numbered("features", range(13, 16))),
         Stage("top", ("features.16", "classifier.0"))),
        "classifier.3", 1280, False),
    "convnext_tiny": (
        (Stage("stem", ("features.0",)),
         Stage("stage1", ("features.1",)),
         Stage("stage2", ("features.2", "features.3")),
         Stage("stage3", ("features.4", "features.5")),
         Stage("stage4", ("features.6", "features.7", "classifier.0"))),
        "classifier.2", 768, False),
    "vit_b_16": (
        (Stage("patch_embed", ("conv_proj", "class_token", "encoder.pos_embedding")),)
        + tuple(Stage(f"blocks{i}-{i + 2}", numbered("encoder.layers", [f"encoder_layer_{j}" for j in range(i, i + 3)]))
                for i in (0, 3, 6))
        + (Stage("blocks9-11", numbered("encoder.layers", [f"encoder_layer_{j}" for j in range(9, 12)])
                 + ("encoder.ln",)),),
        "heads.head", 768, True),
}


def spec_for(name: str) -> BackboneSpec:
    stages, head, feature_dim, fixed_size = ZOO[name]
    weights = WEIGHTS[name]
    path = checkpoint_path(weights.url)
    return BackboneSpec(
        name=name,
        build=builder(name, weights),
        stages=stages,
        head=head,
        feature_dim=feature_dim,
        preprocessing=preprocessing_of(weights),
        fixed_input_size=fixed_size,
        source_domain="ImageNet-1k natural photos",
        source_classes=1000,
        license=LICENSE,
        weights_id=f"torchvision:{weights.enum}.{weights.member}",
        weights_location=str(path),
        weights_url=weights.url,
        weights_available=path.is_file,
        description=f"torchvision {name}, {weights.enum}.{weights.member} (ImageNet top-1 {weights.top1}%)",
    )


@hookimpl
def register_backbones(register):
    for name in ZOO:
        register(spec_for(name))
