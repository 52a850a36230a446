"""A small generated image-classification dataset for tuning tests and benchmarks (no download).

Each class is one shape in one dominant colour, placed and sized at random on a noisy background,
so the classes are learnable by a tiny network in a few epochs yet not pixel-identical.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tladvisor.records import Dataset, Sample

SHAPES = ("circle", "square", "triangle", "cross")
COLOURS = ((220, 40, 40), (40, 200, 60), (50, 70, 230), (230, 200, 40))


def _draw(shape: str, colour: tuple[int, int, int], size: int, rng: np.random.Generator) -> Image.Image:
    background = rng.integers(0, 90, size=(size, size, 3), dtype=np.uint8)
    image = Image.fromarray(background)
    draw = ImageDraw.Draw(image)
    extent = int(rng.integers(size // 3, size * 2 // 3))
    x0, y0 = (int(v) for v in rng.integers(0, size - extent, size=2))
    x1, y1 = x0 + extent, y0 + extent
    jitter = tuple(int(np.clip(c + rng.integers(-30, 31), 0, 255)) for c in colour)
    if shape == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=jitter)
    elif shape == "square":
        draw.rectangle((x0, y0, x1, y1), fill=jitter)
    elif shape == "triangle":
        draw.polygon(((x0 + extent // 2, y0), (x0, y1), (x1, y1)), fill=jitter)
    else:
        bar = max(2, extent // 4)
        draw.rectangle((x0 + extent // 2 - bar // 2, y0, x0 + extent // 2 + bar // 2, y1), fill=jitter)
        draw.rectangle((x0, y0 + extent // 2 - bar // 2, x1, y0 + extent // 2 + bar // 2), fill=jitter)
    return image


def write_shapes_dataset(root: str | Path, n_classes: int = 3, per_class: int = 12, size: int = 32,
                         seed: int = 0) -> Dataset:
    """Write ``root/<class>/<i>.png`` and return the :class:`Dataset` over them (digests filled in)."""
    if not 2 <= n_classes <= len(SHAPES):
        raise ValueError(f"n_classes must be in 2..{len(SHAPES)}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    classes = tuple(f"{SHAPES[k]}_{k}" for k in range(n_classes))
    samples = []
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            path = root / name / f"{index:03d}.png"
            _draw(SHAPES[label], COLOURS[label], size, rng).save(path)
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            samples.append(Sample(path=path, label=label, width=size, height=size, mode="RGB", digest=digest))
    return Dataset(root=root, classes=classes, samples=tuple(samples), source_format="imagefolder")
