"""A one-file tladvisor backbone plugin: drop it into a plugins folder and it is loaded.

    tladvisor --plugins-dir my_plugins/ backbones     (or set TLADVISOR_PLUGINS_DIR=my_plugins/)

It offers your own small CNN, with weights from a local file. Rename MyNet, NAME and the stages to
fit your model; check it with ``tladvisor.testing.assert_backbone_conforms``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from tladvisor import hookimpl
from tladvisor.backbones import BackboneSpec, Preprocessing, Stage, file_exists
from tladvisor.errors import WeightsUnavailableError

__version__ = "0.1.0"  # shown by `tladvisor plugins`

NAME = "my_backbone"
CHECKPOINT = Path(os.environ.get("MY_BACKBONE_CHECKPOINT", "~/my_backbone.safetensors")).expanduser()
SOURCE_CLASSES = 10


class MyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(32, SOURCE_CLASSES)  # the head: its input is the embedding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.body(self.stem(x))).flatten(1))


def build(pretrained: bool) -> nn.Module:
    model = MyNet()
    if pretrained:
        if not CHECKPOINT.is_file():
            raise WeightsUnavailableError(f"{NAME}: no checkpoint at {CHECKPOINT}; set MY_BACKBONE_CHECKPOINT")
        if CHECKPOINT.suffix == ".safetensors":
            state = load_file(CHECKPOINT)
        else:  # weights_only=True refuses pickled objects, which could run code when loaded
            state = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    return model


@hookimpl
def register_backbones(register):
    register(BackboneSpec(
        name=NAME, build=build,
        stages=(Stage("stem", ("stem",)), Stage("body", ("body",))),  # input first; freeze depth counts these
        head="classifier", feature_dim=32, source_classes=SOURCE_CLASSES,
        preprocessing=Preprocessing(input_size=64, resize_size=72, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)),
        source_domain="describe the images MyNet was trained on",
        weights_id=f"file:{CHECKPOINT.name}", weights_location=str(CHECKPOINT),
        weights_available=file_exists(CHECKPOINT),
    ))
