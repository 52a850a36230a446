"""Greyscale textures from scikit-image: texture identity at small crops, and texture orientation.

Sources: scikit-image ``brick``, ``grass``, ``gravel`` and the ``moon`` surface (512x512 greyscale).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .common import IMAGE_PX, TaskSpec, Writer, crop, module_missing, split_bands, write_crops

FAMILY = "textures"
_needs = module_missing("skimage")


def textures() -> dict[str, np.ndarray]:
    from skimage import data

    return {"brick": data.brick(), "grass": data.grass(), "gravel": data.gravel(), "moon": data.moon()}


def build_identity(writer: Writer, rng: np.random.Generator, counts: dict[str, int]) -> None:
    # Tiny crops (4-8 % of the side) upsampled: little texture per image, so not at ceiling.
    write_crops(writer, textures(), rng, counts, (0.04, 0.08))


ANGLES = (0, 30, 60, 90, 120, 150)


def build_orientation(writer: Writer, rng: np.random.Generator, counts: dict[str, int]) -> None:
    """The brick wall rotated by one of 6 angles; a circular crop hides the rotated frame's corners."""
    bands = split_bands(textures()["brick"])
    yy, xx = np.mgrid[:IMAGE_PX, :IMAGE_PX]
    disc = ((yy - IMAGE_PX / 2 + 0.5) ** 2 + (xx - IMAGE_PX / 2 + 0.5) ** 2) <= (IMAGE_PX / 2) ** 2
    for angle in ANGLES:
        for split, n in counts.items():
            for _ in range(n):
                image = crop(bands[split], rng, (0.3, 0.5)).convert("L")
                image = image.rotate(angle + rng.uniform(-5, 5), Image.Resampling.BILINEAR)
                pixels = np.where(disc, np.asarray(image), 128).astype(np.uint8)
                writer.save(split, f"deg{angle:03d}", Image.fromarray(pixels))


TASKS = (
    TaskSpec("texture-identity-tiny", FAMILY, "texture", "scikit-image brick/grass/gravel/moon",
             "which of 4 textures, from crops of 4-8 % of the side", ("brick", "grass", "gravel", "moon"),
             20, 20, 30, build_identity, _needs),
    TaskSpec("texture-orientation", FAMILY, "orientation", "scikit-image brick, rotated",
             "rotation of a brick-wall patch (6 angles, +-5 degrees jitter), circular crop",
             tuple(f"deg{a:03d}" for a in ANGLES), 30, 20, 30, build_orientation, _needs),
)
