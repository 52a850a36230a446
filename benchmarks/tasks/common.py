"""What every task family shares: the task record, the split writer, crops and corruptions.

A task is written as ``DEST/{train,val,test}/<class>/*.png``. tladvisor trains on ``train/``, selects
on ``val/`` and leaves ``test/`` untouched (its image-folder loader says so), so the honest grid can
pick epochs and learning rates on validation and report the untouched test accuracy.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

IMAGE_PX = 72  # written size; the grid trains at 64 px (or less: --image-size)
SPLITS = ("train", "val", "test")


class SourceMissing(Exception):
    """A task's source images are not installed on this machine; ``str(error)`` says what to install."""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    family: str  # the source family (one module of benchmarks/tasks): leave-one-family-out holds it out whole
    kind: str  # what distinguishes the classes (scene, fine-grained, count, orientation, ...)
    source: str  # where the pixels come from, exactly enough to find them again
    description: str
    classes: tuple[str, ...]
    train_per_class: int
    val_per_class: int
    test_per_class: int
    build: Callable[[Writer, np.random.Generator, dict[str, int]], None]
    missing: Callable[[], str | None] = lambda: None  # a reason when the source is absent, else None

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def counts(self, train_per_class: int | None = None, test_per_class: int | None = None) -> dict[str, int]:
        return {"train": train_per_class or self.train_per_class, "val": self.val_per_class,
                "test": test_per_class or self.test_per_class}


class Writer:
    """Saves images into ``root/<split>/<class>/<class>_<index>.png``, counting per split and class."""

    def __init__(self, root: Path, classes: tuple[str, ...]):
        self.root = Path(root)
        self.classes = classes
        self.written: dict[tuple[str, str], int] = {}

    def save(self, split: str, label: str, image: Image.Image) -> None:
        if split not in SPLITS or label not in self.classes:
            raise ValueError(f"unknown split or class: {split}/{label}")
        index = self.written.get((split, label), 0)
        folder = self.root / split / label
        folder.mkdir(parents=True, exist_ok=True)
        if image.size != (IMAGE_PX, IMAGE_PX):
            image = image.resize((IMAGE_PX, IMAGE_PX), Image.Resampling.BICUBIC)
        image.convert("RGB" if image.mode not in ("L", "RGB") else image.mode).save(folder / f"{label}_{index:04d}.png")
        self.written[(split, label)] = index + 1


def write_task(task: TaskSpec, dest: Path, seed: int, *, train_per_class: int | None = None,
               test_per_class: int | None = None) -> Path:
    """Write ``task`` for ``seed`` into ``dest`` (which must not exist), atomically: a half-written task is
    never left under ``dest``. Raises :class:`SourceMissing` when the source is not installed or holds too
    few images for the counts asked (``test_per_class`` larger than the task's own, say)."""
    dest = Path(dest)
    if dest.exists():
        raise FileExistsError(f"{dest} exists; each task is written into a new folder")
    reason = task.missing()
    if reason:
        raise SourceMissing(f"{task.name}: {reason}")
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    counts = task.counts(train_per_class, test_per_class)
    writer = Writer(partial, task.classes)
    try:
        task.build(writer, np.random.default_rng(seed), counts)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    short = [f"{split}/{label} {writer.written.get((split, label), 0)} < {n}"
             for split, n in counts.items() for label in task.classes if writer.written.get((split, label), 0) < n]
    if short:
        shutil.rmtree(partial, ignore_errors=True)
        raise SourceMissing(f"{task.name}: too few source images: {', '.join(short[:3])}")
    os.replace(partial, dest)
    return dest


# --- crops of pictures -------------------------------------------------------------------------------


def as_rgb_uint8(picture: np.ndarray) -> np.ndarray:
    picture = np.asarray(picture)
    if picture.dtype != np.uint8:
        lo, hi = float(picture.min()), float(picture.max())
        picture = np.rint(255 * (picture.astype(np.float64) - lo) / max(hi - lo, 1e-12)).astype(np.uint8)
    if picture.ndim == 2:
        picture = np.stack([picture] * 3, axis=-1)
    return picture[..., :3]


def crop(picture: np.ndarray, rng: np.random.Generator, scale: tuple[float, float]) -> Image.Image:
    """A random square crop, side ``scale`` times the picture's short side, flipped half the time."""
    source = Image.fromarray(as_rgb_uint8(picture))
    width, height = source.size
    side = max(4, min(int(rng.uniform(*scale) * min(width, height)), width, height))
    left, top = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
    image = source.crop((left, top, left + side, top + side)).resize((IMAGE_PX, IMAGE_PX), Image.Resampling.BICUBIC)
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else image


def split_bands(picture: np.ndarray, shares: tuple[float, float, float] = (0.6, 0.2, 0.2)) -> dict[str, np.ndarray]:
    """Disjoint horizontal bands for train, val and test: no test crop overlaps a training one."""
    height = picture.shape[0]
    cuts = np.cumsum([0, *shares])
    return {split: picture[int(cuts[i] * height):int(cuts[i + 1] * height)] for i, split in enumerate(SPLITS)}


def write_crops(writer: Writer, pictures: dict[str, np.ndarray], rng: np.random.Generator, counts: dict[str, int],
                scale: tuple[float, float], corrupt: Callable[[Image.Image, np.random.Generator], Image.Image] | None = None
                ) -> None:
    for label, picture in pictures.items():
        for split, band in split_bands(picture).items():
            for _ in range(counts[split]):
                image = crop(band, rng, scale)
                writer.save(split, label, corrupt(image, rng) if corrupt else image)


# --- corruptions (after Hendrycks & Dietterich's ImageNet-C, re-implemented small) -------------------


def gaussian_noise(sigma: float) -> Callable[[Image.Image, np.random.Generator], Image.Image]:
    def apply(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255 + rng.normal(0, sigma, (IMAGE_PX, IMAGE_PX, 3))
        return Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8))
    return apply


def gaussian_blur(radius: float) -> Callable[[Image.Image, np.random.Generator], Image.Image]:
    return lambda image, _rng: image.filter(ImageFilter.GaussianBlur(radius))


def jpeg(quality: int) -> Callable[[Image.Image, np.random.Generator], Image.Image]:
    def apply(image: Image.Image, _rng: np.random.Generator) -> Image.Image:
        import io

        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="JPEG", quality=quality)
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return apply


def pixelate(factor: int) -> Callable[[Image.Image, np.random.Generator], Image.Image]:
    def apply(image: Image.Image, _rng: np.random.Generator) -> Image.Image:
        small = image.resize((IMAGE_PX // factor, IMAGE_PX // factor), Image.Resampling.BOX)
        return small.resize((IMAGE_PX, IMAGE_PX), Image.Resampling.NEAREST)
    return apply


def low_contrast(factor: float) -> Callable[[Image.Image, np.random.Generator], Image.Image]:
    def apply(image: Image.Image, _rng: np.random.Generator) -> Image.Image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
        mean = pixels.mean()
        return Image.fromarray(np.clip((pixels - mean) * factor + mean, 0, 255).astype(np.uint8))
    return apply


def chain(*steps: Callable[[Image.Image, np.random.Generator], Image.Image]):
    def apply(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        for step in steps:
            image = step(image, rng)
        return image
    return apply


def module_missing(*modules: str) -> Callable[[], str | None]:
    def check() -> str | None:
        import importlib.util

        absent = [m for m in modules if importlib.util.find_spec(m) is None]
        return f"Python package(s) {', '.join(absent)} not installed" if absent else None
    return check
