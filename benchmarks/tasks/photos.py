"""Natural photos that ship with scikit-image and scikit-learn: scenes, corrupted scenes, corruption types.

Sources: scikit-image ``astronaut``, ``chelsea``, ``coffee``, ``rocket`` (colour) and ``camera``,
``clock``, ``coins`` (greyscale); scikit-learn ``load_sample_image('china.jpg' / 'flower.jpg')``.
Each class is one picture; training, validation and test crops come from disjoint bands of it.
"""

from __future__ import annotations

import numpy as np

from .common import (
    TaskSpec,
    Writer,
    chain,
    crop,
    gaussian_blur,
    gaussian_noise,
    jpeg,
    low_contrast,
    module_missing,
    pixelate,
    split_bands,
    write_crops,
)

FAMILY = "photos"
_needs = module_missing("skimage", "sklearn")
SCENES = ("astronaut", "cat", "coffee", "rocket", "china", "flower")
GREY = ("camera", "clock", "coins")


def scenes() -> dict[str, np.ndarray]:
    from skimage import data
    from sklearn.datasets import load_sample_image

    return {"astronaut": data.astronaut(), "cat": data.chelsea(), "coffee": data.coffee(), "rocket": data.rocket(),
            "china": load_sample_image("china.jpg"), "flower": load_sample_image("flower.jpg")}


def grey_scenes() -> dict[str, np.ndarray]:
    from skimage import data

    return {"camera": data.camera(), "clock": data.clock(), "coins": data.coins()}


def build_scenes(writer: Writer, rng: np.random.Generator, counts: dict[str, int]) -> None:
    write_crops(writer, scenes(), rng, counts, (0.12, 0.25))


def build_jpeg_scenes(writer: Writer, rng: np.random.Generator, counts: dict[str, int]) -> None:
    write_crops(writer, scenes(), rng, counts, (0.12, 0.25), corrupt=chain(pixelate(3), jpeg(8)))


def build_dark_noisy_scenes(writer: Writer, rng: np.random.Generator, counts: dict[str, int]) -> None:
    write_crops(writer, scenes(), rng, counts, (0.12, 0.25),
                corrupt=chain(low_contrast(0.35), gaussian_noise(0.25)))


def build_grey(writer: Writer, rng: np.random.Generator, counts: dict[str, int]) -> None:
    write_crops(writer, grey_scenes(), rng, counts, (0.08, 0.18))


CORRUPTIONS = {"clean": None, "blur": gaussian_blur(1.2), "noise": gaussian_noise(0.06), "jpeg": jpeg(15),
               "pixelate": pixelate(2), "contrast": low_contrast(0.6)}


def build_corruption_type(writer: Writer, rng: np.random.Generator, counts: dict[str, int]) -> None:
    """The class is the (mild) corruption applied to a crop of any of the six scenes."""
    pictures = [split_bands(p) for p in scenes().values()]
    for label, corrupt in CORRUPTIONS.items():
        for split in counts:
            for _ in range(counts[split]):
                image = crop(pictures[int(rng.integers(len(pictures)))][split], rng, (0.15, 0.3))
                writer.save(split, label, image if corrupt is None else corrupt(image, rng))


TASKS = (
    TaskSpec("photo-scenes", FAMILY, "scene", "scikit-image astronaut/chelsea/coffee/rocket + scikit-learn china/flower",
             "which of 6 colour photos a small crop is from", SCENES, 10, 15, 25, build_scenes, _needs),
    TaskSpec("photo-scenes-jpeg", FAMILY, "corrupted photo",
             "the 6 colour photos, pixelated x3 then JPEG quality 8", "scene under heavy compression",
             SCENES, 50, 20, 30, build_jpeg_scenes, _needs),
    TaskSpec("photo-scenes-dark-noise", FAMILY, "corrupted photo",
             "the 6 colour photos, contrast x0.35 then Gaussian noise sigma 0.25", "scene in low light",
             SCENES, 200, 20, 30, build_dark_noisy_scenes, _needs),
    TaskSpec("photo-grey-scenes", FAMILY, "scene (greyscale)", "scikit-image camera/clock/coins",
             "which of 3 greyscale photos a small crop is from", GREY, 5, 15, 25, build_grey, _needs),
    TaskSpec("photo-corruption-type", FAMILY, "corruption type",
             "crops of the 6 colour photos with one of 6 mild corruptions",
             "which corruption (blur, noise, JPEG, pixelate, contrast, none) a crop shows",
             tuple(CORRUPTIONS), 30, 20, 30, build_corruption_type, _needs),
)
