"""Example tladvisor backbone plugin: a ResNet-18 whose weights come from YOUR checkpoint file.

Copy this package to add a backbone you trained yourself (say, on microscopy or satellite images):
change the constants below, and the stages if you change the architecture. Check it with
``tladvisor.testing.assert_backbone_conforms(make_spec(path))``. Guide: docs/adding-a-backbone.md.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from tladvisor import hookimpl
from tladvisor.backbones import BackboneSpec, Preprocessing, Stage, file_exists
from tladvisor.errors import UnsafeFileError, WeightsUnavailableError

__version__ = "0.1.0"

# --- change these -----------------------------------------------------------------------------------
NAME = "example_resnet18"  # shown by `tladvisor backbones`; letters, digits, '_', '.', '-'
CHECKPOINT_ENV = "TLADVISOR_EXAMPLE_CHECKPOINT"  # path to the weights, if set...
DEFAULT_CHECKPOINT = Path("~/.cache/tladvisor/example_resnet18.safetensors")  # ...else this file
SOURCE_CLASSES = 1000  # outputs of the checkpoint's classifier (model.fc)
SOURCE_DOMAIN = "ImageNet-1k natural photos"  # what the checkpoint learnt from: the advice compares to it


def checkpoint_path() -> Path:
    return Path(os.environ.get(CHECKPOINT_ENV) or DEFAULT_CHECKPOINT).expanduser()


def load_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """Read a state_dict without ever running code stored in the file."""
    if path.suffix == ".safetensors":
        return load_file(path)  # tensors only, by design of the format
    if path.suffix in (".pt", ".pth"):
        try:  # weights_only=True: tensors and plain containers, never arbitrary pickled objects
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise UnsafeFileError(f"{path}: refused: it holds objects other than tensors, and loading them "
                                  "could run code; save torch.save(model.state_dict(), path) instead") from None
        return state.get("state_dict", state)  # training scripts often wrap the weights in a dict
    raise WeightsUnavailableError(f"{path}: unknown checkpoint type; use .safetensors, .pt or .pth")


def make_spec(path: Path) -> BackboneSpec:
    def build(pretrained: bool) -> nn.Module:
        import torchvision  # here, not at the top: listing backbones (`tladvisor backbones`) needs no model

        # The contract: a classifier over the source classes; tladvisor swaps the head for the target's.
        model = torchvision.models.resnet18(num_classes=SOURCE_CLASSES)
        if pretrained:
            if not path.is_file():
                raise WeightsUnavailableError(f"{NAME}: no checkpoint at {path}; set {CHECKPOINT_ENV} to your file")
            model.load_state_dict(load_checkpoint(path))
        return model

    return BackboneSpec(
        name=NAME,
        build=build,
        # Layer groups from the input up: freeze depth k freezes the first k of them.
        stages=(Stage("stem", ("conv1", "bn1")),) + tuple(Stage(f"layer{i}", (f"layer{i}",)) for i in range(1, 5)),
        head="fc",  # the final nn.Linear; its input is the embedding tladvisor measures
        feature_dim=512,  # = head.in_features
        preprocessing=Preprocessing(input_size=224, resize_size=256),  # what the checkpoint was trained with
        source_domain=SOURCE_DOMAIN,
        source_classes=SOURCE_CLASSES,
        license="your checkpoint's licence",
        weights_id=f"file:{path.name}",  # names the weights exactly: part of tladvisor's feature-cache key
        weights_location=str(path),
        weights_available=file_exists(path),
        description="Example plugin: ResNet-18 from a local checkpoint",
    )


@hookimpl
def register_backbones(register):
    register(make_spec(checkpoint_path()))  # call register() once per backbone you offer
