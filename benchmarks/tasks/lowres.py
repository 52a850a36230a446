"""Low-resolution scans that ship in scikit-learn and scikit-image: handwritten digits and faces.

Sources: scikit-learn ``load_digits`` (1,797 8x8 specimens, ~180 per digit, from UCI); scikit-image
``lfw_subset`` (100 LFW faces and 100 non-face patches, 25x25 greyscale). Specimens are split
disjointly between train, val and test; when training asks for more than remain, the extra ones are
the same specimens shifted by up to one source pixel (said in the task's description).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .common import IMAGE_PX, TaskSpec, Writer, gaussian_noise, module_missing

FAMILY = "lowres"
DIGITS = tuple(str(d) for d in range(10))


def _digit_image(ink: np.ndarray) -> Image.Image:
    pixels = np.rint(255.0 * (1.0 - ink)).astype(np.uint8)
    return Image.fromarray(pixels).resize((IMAGE_PX, IMAGE_PX), Image.Resampling.BILINEAR)


def _build_digits(writer: Writer, rng: np.random.Generator, counts: dict[str, int], corrupt=None) -> None:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    for digit in range(10):
        specimens = rng.permutation(np.flatnonzero(bunch.target == digit))
        n_val, n_test = counts["val"], counts["test"]
        chosen = {"val": specimens[:n_val], "test": specimens[n_val:n_val + n_test],
                  "train": specimens[n_val + n_test:]}
        for split, pool in chosen.items():
            for index in range(counts[split]):
                ink = bunch.images[pool[index % len(pool)]] / 16.0
                if index >= len(pool):  # a shifted copy (training only: val and test are never reused)
                    dy, dx = rng.integers(0, 3, size=2)
                    ink = np.pad(ink, 1)[dy:dy + 8, dx:dx + 8]
                image = _digit_image(ink)
                writer.save(split, str(digit), corrupt(image, rng) if corrupt else image)


def build_digits(writer: Writer, rng: np.random.Generator, counts: dict[str, int]) -> None:
    _build_digits(writer, rng, counts)


def build_noisy_digits(writer: Writer, rng: np.random.Generator, counts: dict[str, int]) -> None:
    _build_digits(writer, rng, counts, corrupt=gaussian_noise(0.45))


def build_faces(writer: Writer, rng: np.random.Generator, counts: dict[str, int]) -> None:
    from skimage import data

    images = data.lfw_subset()
    for label, block in (("face", images[:100]), ("not_face", images[100:])):
        order = rng.permutation(len(block))
        start = 0
        for split in ("val", "test", "train"):
            for index in order[start:start + counts[split]]:
                pixels = np.rint(255 * block[index]).astype(np.uint8)
                writer.save(split, label, Image.fromarray(pixels).resize((IMAGE_PX, IMAGE_PX), Image.Resampling.BICUBIC))
            start += counts[split]


TASKS = (
    TaskSpec("digits-handwritten", FAMILY, "glyph (handwritten)", "scikit-learn load_digits (UCI 8x8)",
             "10 handwritten digits, 8x8 upsampled", DIGITS, 30, 15, 30, build_digits, module_missing("sklearn")),
    TaskSpec("digits-handwritten-noisy", FAMILY, "corrupted glyph", "scikit-learn load_digits + Gaussian noise 0.45",
             "10 handwritten digits under heavy noise", DIGITS, 500, 15, 30, build_noisy_digits,
             module_missing("sklearn")),
    TaskSpec("faces-lfw", FAMILY, "face detection", "scikit-image lfw_subset (LFW)",
             "25x25 greyscale faces vs non-face patches", ("face", "not_face"), 40, 20, 40, build_faces,
             module_missing("skimage")),
)
