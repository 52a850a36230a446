"""Small example datasets, written offline from images that ship inside installed packages (and one of texts,
:mod:`tladvisor.data.text_examples`).

``tladvisor examples photos DIR`` then ``tladvisor analyze DIR`` is the README's first run, so every
example is a real (if small) classification problem in ImageFolder layout, deterministic for a
seed, and well under 2 MB on disk.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from tladvisor.data.text_examples import AREAS, write_stdlib_docs
from tladvisor.errors import DatasetError

EXAMPLES: dict[str, str] = {
    "photos": "6 classes of natural-photo crops (scikit-image and scikit-learn sample photos: astronaut, "
              "cat, coffee, rocket, china, flower), 40 per class, 96x96 JPEG",
    "textures": "4 classes of greyscale texture crops (scikit-image brick, grass, gravel, moon), "
                "40 per class, 64x64 PNG",
    "digits": "10 classes of handwritten digits (scikit-learn digits, 8x8 upsampled), 30 per class, 32x32 PNG",
    "noisy-digits": "the digits under heavy Gaussian noise (sigma 0.45): frozen ImageNet features fit them poorly "
                    "and fine-tuning pays, so the tuning has something to find; 30 per class, 32x32 PNG",
    "stdlib-docs": "text: 4 classes of docstrings from Python's standard library (networking, text processing, "
                   "files and the OS, concurrency), up to 40 per class, one .txt file each",
}
MARKER = ".tladvisor-example"  # hidden, so loaders ignore it; lets a second run overwrite its own output


def _skimage_data():
    try:
        from skimage import data
    except ImportError:
        raise DatasetError("this example needs scikit-image, which is not installed; "
                           "run: pip install 'tladvisor[examples]'") from None
    return data


def _photo_sources() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_sample_image

    data = _skimage_data()
    return {
        "astronaut": data.astronaut(), "cat": data.chelsea(), "coffee": data.coffee(),
        "rocket": data.rocket(), "china": load_sample_image("china.jpg"),
        "flower": load_sample_image("flower.jpg"),
    }


def _texture_sources() -> dict[str, np.ndarray]:
    data = _skimage_data()
    return {"brick": data.brick(), "grass": data.grass(), "gravel": data.gravel(), "moon": data.moon()}


def random_crops(picture: np.ndarray, count: int, size: int, scale: tuple[float, float],
                 rng: np.random.Generator) -> list[Image.Image]:
    """``count`` square crops of ``picture``, side a random fraction of its short side, resized to ``size``."""
    source = Image.fromarray(picture)
    width, height = source.size
    crops = []
    for _ in range(count):
        side = int(rng.uniform(*scale) * min(width, height))
        left = int(rng.integers(0, width - side + 1))
        top = int(rng.integers(0, height - side + 1))
        crop = source.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        crops.append(crop)
    return crops


def _write_photos(dest: Path, rng: np.random.Generator) -> None:
    for name, picture in _photo_sources().items():
        for i, crop in enumerate(random_crops(picture, 40, 96, (0.3, 0.7), rng)):
            crop.save(dest / name / f"{name}_{i:03d}.jpg", quality=88)


def _write_textures(dest: Path, rng: np.random.Generator) -> None:
    for name, picture in _texture_sources().items():
        for i, crop in enumerate(random_crops(picture, 40, 64, (0.15, 0.35), rng)):
            crop.save(dest / name / f"{name}_{i:03d}.png", optimize=True)


def _write_digits(dest: Path, rng: np.random.Generator, noise: float = 0.0) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    for digit in range(10):
        indices = rng.permutation(np.flatnonzero(digits.target == digit))[:30]
        for i, index in enumerate(indices):
            ink = digits.images[index] / 16.0  # 0 (paper) .. 1 (ink)
            paper = np.asarray(Image.fromarray(np.rint(255.0 * (1.0 - ink)).astype(np.uint8))  # dark ink on white
                               .resize((32, 32), Image.Resampling.BILINEAR), dtype=np.float64) / 255.0
            if noise:
                paper = np.clip(paper + rng.normal(0.0, noise, paper.shape), 0.0, 1.0)
            Image.fromarray(np.rint(255.0 * paper).astype(np.uint8)).save(dest / str(digit) / f"{digit}_{i:03d}.png",
                                                                           optimize=True)


_WRITERS: dict[str, tuple[Callable[[Path, np.random.Generator], None], Callable[[], list[str]]]] = {
    "photos": (_write_photos, lambda: ["astronaut", "cat", "coffee", "rocket", "china", "flower"]),
    "textures": (_write_textures, lambda: ["brick", "grass", "gravel", "moon"]),
    "digits": (_write_digits, lambda: [str(d) for d in range(10)]),
    "noisy-digits": (lambda dest, rng: _write_digits(dest, rng, noise=0.45), lambda: [str(d) for d in range(10)]),
    "stdlib-docs": (write_stdlib_docs, lambda: list(AREAS)),
}


def _prepare(dest: Path, classes: list[str]) -> None:
    """Create ``dest/<class>`` folders; refuse to write into a non-empty folder we did not write."""
    if dest.exists() and not dest.is_dir():
        raise DatasetError(f"cannot write an example to {dest}: it is a file; choose a new folder")
    if dest.is_dir() and any(dest.iterdir()):
        if not (dest / MARKER).is_file():
            raise DatasetError(f"cannot write an example to {dest}: the folder is not empty; choose a new folder")
        ours = {c for _, names in _WRITERS.values() for c in names()}
        for child in dest.iterdir():  # class folders of an earlier example: start afresh
            if child.name in ours and child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
    for name in classes:
        (dest / name).mkdir(parents=True, exist_ok=True)


def write_example(name: str, dest: Path, *, seed: int = 0) -> Path:
    """Write the example dataset ``name`` (see :data:`EXAMPLES`) into ``dest`` (ImageFolder layout).

    Deterministic for a given ``seed``. Returns ``dest``. Raises :class:`DatasetError` for an
    unknown name or a non-empty ``dest`` that is not an earlier example.
    """
    if name not in _WRITERS:
        raise DatasetError(f"unknown example '{name}'; choose one of: {', '.join(EXAMPLES)}")
    write, classes = _WRITERS[name]
    dest = Path(dest)
    _prepare(dest, classes())
    write(dest, np.random.default_rng(seed))
    (dest / MARKER).write_text(f"tladvisor example '{name}', seed {seed}\n")
    return dest
