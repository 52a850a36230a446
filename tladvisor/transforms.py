"""Image pipelines built from a backbone's :class:`Preprocessing`: over files (PIL), and over batches of
images from a decoded-image store (tensors, on the device)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
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


# --- batches of stored images (uint8, NHWC), transformed as tensors, on the device when there is one ---------


def centre_crop_rows(rows: torch.Tensor, size: int) -> torch.Tensor:
    """The centre ``size`` square of ``(n, side, side, 3)`` rows (a view)."""
    side = rows.shape[1]
    start = int(round((side - size) / 2.0))
    return rows[:, start:start + size, start:start + size]


def normalise_rows(rows: torch.Tensor, pre: Preprocessing, device: torch.device) -> torch.Tensor:
    """uint8 NHWC rows to the normalised float NCHW batch the network takes, on ``device``."""
    x = rows.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(pre.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(pre.std, device=device).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std).contiguous()


def eval_batch(rows: torch.Tensor, pre: Preprocessing, device: torch.device) -> torch.Tensor:
    """:func:`eval_transform` of stored rows: their centre crop, normalised."""
    return normalise_rows(centre_crop_rows(rows, pre.input_size), pre, device)


def random_crop_boxes(n: int, side: int, generator: torch.Generator, scale=(0.6, 1.0),
                      ratio=(3 / 4, 4 / 3), attempts: int = 10) -> torch.Tensor:
    """``(n, 4)`` crop boxes (x0, y0, x1, y1) drawn as RandomResizedCrop draws them, for ``n`` images at once."""
    area = float(side * side)
    target = area * torch.empty(n, attempts).uniform_(scale[0], scale[1], generator=generator)
    log_ratio = torch.empty(n, attempts).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    aspect = torch.exp(log_ratio)
    width = torch.sqrt(target * aspect).round()
    height = torch.sqrt(target / aspect).round()
    fits = (width > 0) & (height > 0) & (width <= side) & (height <= side)
    first = torch.where(fits.any(1), fits.float().argmax(1), torch.full((n,), -1))
    pick = first.clamp(min=0).unsqueeze(1)
    width = torch.where(first >= 0, width.gather(1, pick).squeeze(1), torch.full((n,), float(side)))
    height = torch.where(first >= 0, height.gather(1, pick).squeeze(1), torch.full((n,), float(side)))
    x0 = torch.floor(torch.rand(n, generator=generator) * (side - width + 1))
    y0 = torch.floor(torch.rand(n, generator=generator) * (side - height + 1))
    return torch.stack([x0, y0, x0 + width, y0 + height], 1)


def train_batch(rows: torch.Tensor, pre: Preprocessing, device: torch.device,
                generator: torch.Generator) -> torch.Tensor:
    """:func:`train_transform` of stored rows, the whole batch at once: random resized crop, flip, normalise.

    Crop boxes and flips are drawn on the CPU from ``generator`` (the same on every device); the crops
    are resampled bilinearly with ``roi_align``, averaging several samples per output pixel when the
    crop shrinks (the antialiasing PIL's resize does).
    """
    from torchvision.ops import roi_align

    n, side = rows.shape[0], rows.shape[1]
    boxes = random_crop_boxes(n, side, generator)
    flips = torch.rand(n, generator=generator) < 0.5
    x = rows.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
    indexed = torch.cat([torch.arange(n, dtype=torch.float32).unsqueeze(1), boxes], 1).to(device)
    x = roi_align(x, indexed, output_size=pre.input_size, spatial_scale=1.0, sampling_ratio=-1, aligned=True)
    flips = flips.to(device).view(n, 1, 1, 1)
    x = torch.where(flips, x.flip(3), x)
    return normalise_rows(x.permute(0, 2, 3, 1), pre, device)


class StoredBatches:
    """Batches of images from a decoded-image store, transformed as tensors on ``device``.

    Iterates like a DataLoader of (images, labels) and carries ``dataset.labels`` as code written for
    one expects; a batch is one memory-mapped read and a few tensor operations, no per-image Python.
    """

    def __init__(self, store, rows: Sequence[int], labels: Sequence[int], pre: Preprocessing, batch_size: int,
                 device: torch.device, *, augment: bool = False, shuffle: bool = False,
                 generator: torch.Generator | None = None, drop_last: bool = False):
        if len(rows) != len(labels):
            raise ValueError("rows and labels differ in length")
        self.store, self.pre, self.device = store, pre, device
        self.rows = np.asarray(rows, dtype=np.int64)
        self.labels = [int(label) for label in labels]
        self.batch_size = max(1, int(batch_size))
        self.augment, self.shuffle, self.drop_last = augment, shuffle, drop_last
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.dataset = self  # what DataLoader users read: loader.dataset.labels

    def __len__(self) -> int:
        n = len(self.rows)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        n = len(self.rows)
        order = torch.randperm(n, generator=self.generator).numpy() if self.shuffle else np.arange(n)
        labels = torch.as_tensor(self.labels, dtype=torch.int64)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            batch = order[start:start + self.batch_size]
            rows = self.store.rows(self.rows[batch])
            if self.augment:
                images = train_batch(rows, self.pre, self.device, self.generator)
            else:
                images = eval_batch(rows, self.pre, self.device)
            yield images, labels[torch.from_numpy(batch)]
