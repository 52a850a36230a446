"""Image pipelines built from a backbone's :class:`Preprocessing`, and a torch Dataset over files."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset as TorchDataset
from torchvision.transforms import InterpolationMode, v2

from tladvisor.backbones import Preprocessing
from tladvisor.data.images import open_rgb


def _interpolation(pre: Preprocessing) -> InterpolationMode:
    return InterpolationMode(pre.interpolation)


def _to_normalised_tensor(pre: Preprocessing) -> list:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(pre.mean, pre.std)]


def eval_transform(pre: Preprocessing) -> Callable:
    """Resize the shorter side, centre-crop, normalise: how the backbone saw its source data."""
    return v2.Compose([
        v2.Resize(pre.resize_size, interpolation=_interpolation(pre), antialias=True),
        v2.CenterCrop(pre.input_size),
        *_to_normalised_tensor(pre),
    ])


def train_transform(pre: Preprocessing) -> Callable:
    """Light augmentation that keeps the image recognisable: random resized crop and horizontal flip."""
    return v2.Compose([
        v2.RandomResizedCrop(pre.input_size, scale=(0.6, 1.0), interpolation=_interpolation(pre), antialias=True),
        v2.RandomHorizontalFlip(),
        *_to_normalised_tensor(pre),
    ])


class ImageFiles(TorchDataset):
    """Images read from disk one at a time (memory stays bounded however large the dataset)."""

    def __init__(self, paths: Sequence[Path | str], labels: Sequence[int], transform: Callable):
        if len(paths) != len(labels):
            raise ValueError("paths and labels differ in length")
        self.paths = list(paths)
        self.labels = list(labels)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(open_rgb(self.paths[index])), int(self.labels[index])
