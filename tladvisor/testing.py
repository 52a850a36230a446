"""Helpers for tests and plugin authors: a tiny backbone, and conformance checks for any backbone."""

from __future__ import annotations

import torch
from torch import nn

from tladvisor.backbones import BackboneSpec, Preprocessing, Stage


class TinyConvNet(nn.Module):
    """A 3-stage conv net with BatchNorm and a 10-class source head: fast enough for any test."""

    def __init__(self, width: int = 8, n_source_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.block1 = nn.Sequential(nn.Conv2d(width, width * 2, 3, stride=2, padding=1),
                                    nn.BatchNorm2d(width * 2), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv2d(width * 2, width * 4, 3, stride=2, padding=1),
                                    nn.BatchNorm2d(width * 4), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width * 4, n_source_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.block2(self.block1(self.stem(x)))).flatten(1))


def tiny_backbone_spec(name: str = "tiny_cnn", width: int = 8, input_size: int = 32, seed: int = 0) -> BackboneSpec:
    """A BackboneSpec around :class:`TinyConvNet`. 'Pretrained' weights are a fixed seeded init."""

    def build(pretrained: bool) -> nn.Module:
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed if pretrained else seed + 1)
        model = TinyConvNet(width)
        torch.random.set_rng_state(generator_state)
        return model

    return BackboneSpec(
        name=name,
        build=build,
        stages=(Stage("stem", ("stem",)), Stage("block1", ("block1",)), Stage("block2", ("block2",))),
        head="fc",
        feature_dim=width * 4,
        preprocessing=Preprocessing(input_size=input_size, resize_size=input_size),
        source_domain="seeded random init (tests only)",
        source_classes=10,
        license="Apache-2.0",
        weights_id=f"tiny-seed{seed}-w{width}",
        weights_location="(built in code)",
        weights_available=lambda: True,
        description="Tiny test backbone",
    )
