"""Describing a loaded dataset: sizes, classes, image shapes, colour statistics, and what to worry about.

Everything but the colour statistics comes from metadata read while loading; the colour statistics
re-read a capped, seeded sample of images at thumbnail size.
"""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
from PIL import Image

from tladvisor.data.assemble import skip_summary
from tladvisor.data.duplicates import as_paths, conflicting_label_groups, crossing_groups, duplicate_groups
from tladvisor.data.images import apply_orientation, to_rgb
from tladvisor.data.split import plan_split
from tladvisor.data.wording import counted
from tladvisor.records import Dataset, DatasetProfile

# Largest / smallest class at or above which the classes count as imbalanced: one threshold for the profile's
# warning and for showing balanced accuracy and macro-F1 beside accuracy (tuning, report). At 3x a model
# that ignores the smallest class loses little plain accuracy, so accuracy alone starts to mislead.
IMBALANCE_RATIO = 3.0
TINY_CLASS_SAMPLES = 5
MANY_SKIPPED_FRACTION = 0.05
STATS_SAMPLE = 500
STATS_SIZE = 64
QUANTILES = {"min": 0.0, "q05": 0.05, "q25": 0.25, "median": 0.5, "q75": 0.75, "q95": 0.95, "max": 1.0}


def distribution(values: np.ndarray) -> dict[str, float]:
    """min, q05, q25, median, q75, q95, max of some numbers."""
    if values.size == 0:
        return {}
    return {name: float(np.quantile(values, q)) for name, q in QUANTILES.items()}


def image_size_summary(dataset: Dataset) -> dict[str, dict[str, float]]:
    widths = np.array([s.width for s in dataset.samples], dtype=np.float64)
    heights = np.array([s.height for s in dataset.samples], dtype=np.float64)
    aspects = widths / np.maximum(heights, 1.0)
    return {"width": distribution(widths), "height": distribution(heights), "aspect": distribution(aspects)}


def _thumbnail_pixels(path, size: int) -> np.ndarray:
    """The image as RGB floats in [0, 1], shrunk to fit ``size`` x ``size`` (JPEGs decode shrunk)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(path) as image:
            if image.format == "JPEG":
                image.draft("RGB", (size, size))
            image.load()
            rgb = to_rgb(apply_orientation(image))
            rgb.thumbnail((size, size))
            return np.asarray(rgb, dtype=np.float64).reshape(-1, 3) / 255.0


def channel_statistics(dataset: Dataset, *, seed: int = 0, cap: int = STATS_SAMPLE,
                       size: int = STATS_SIZE) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of RGB in [0, 1] over the pixels of up to ``cap`` images."""
    n = len(dataset.samples)
    chosen = np.sort(np.random.default_rng(seed).choice(n, size=min(cap, n), replace=False))
    total = np.zeros(3)
    total_sq = np.zeros(3)
    count = 0
    for index in chosen:
        try:
            pixels = _thumbnail_pixels(dataset.samples[index].path, size)
        except Exception:  # changed on disk since loading: leave it out of the statistics
            continue
        total += pixels.sum(axis=0)
        total_sq += np.square(pixels).sum(axis=0)
        count += len(pixels)
    if count == 0:
        return (), ()
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _class_list(names: list[str], counts: dict[str, int], limit: int = 5) -> str:
    shown = ", ".join(f"'{name}' ({counts[name]})" for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def common_warnings(dataset: Dataset, counts: dict[str, int], split_notes, groups, leaking, conflicting, *,
                    noun: str = "image", file_noun: str = "file") -> list[str]:
    """The warnings every modality's profile gives: imbalance, tiny classes, the split's notes, leakage,
    conflicting labels, duplicates, many skipped files. ``noun`` names a sample ("image", "text")."""
    values = list(counts.values())
    smallest, largest = min(values), max(values)
    imbalance = largest / smallest if smallest else float("inf")
    warnings_: list[str] = []
    if imbalance >= IMBALANCE_RATIO:
        big = max(counts, key=counts.get)
        small = min(counts, key=counts.get)
        warnings_.append(f"classes are imbalanced: '{big}' has {imbalance:.1f}x the {noun}s of '{small}' "
                         f"({largest} vs {smallest}); tune with --class-weights balanced (or resample), and read "
                         "balanced accuracy beside accuracy")
    tiny = sorted((name for name, c in counts.items() if c < TINY_CLASS_SAMPLES), key=counts.get)
    if tiny:
        warnings_.append(f"{counted(len(tiny), 'class has', 'classes have')} fewer than {TINY_CLASS_SAMPLES} {noun}s, "
                         f"too few to learn or validate reliably: {_class_list(tiny, counts)}")
    warnings_.extend(split_notes)
    if leaking:
        n_files = sum(len(g) for g in leaking)
        warnings_.append(f"leakage: {counted(len(leaking), noun)} ({n_files} identical {file_noun}s) in both "
                         f"train and val, so validation scores are optimistic; keep each {noun} on one side")
    if conflicting:
        warnings_.append(f"label noise: {counted(len(conflicting), noun)} stored more than once "
                         f"with different labels")
    if groups and not leaking:
        extra = sum(len(g) - 1 for g in groups)
        warnings_.append(f"{counted(extra, 'duplicate ' + file_noun)} ({counted(len(groups), noun)} stored more "
                         f"than once)")
    n_skipped = len(dataset.skipped)
    if n_skipped and n_skipped / (n_skipped + len(dataset.samples)) > MANY_SKIPPED_FRACTION:
        warnings_.append(f"{n_skipped} of {n_skipped + len(dataset.samples)} {file_noun}s skipped "
                         f"({skip_summary(dataset.skipped)})")
    return warnings_


def profile_dataset(dataset: Dataset, *, val_fraction: float = 0.2, seed: int = 0,
                    stats_sample: int = STATS_SAMPLE, stats_size: int = STATS_SIZE) -> DatasetProfile:
    """A :class:`DatasetProfile` of ``dataset``, with the split the analysis will use and its warnings."""
    counts = dataset.class_counts()
    values = np.array(list(counts.values()), dtype=np.int64)
    smallest, largest = int(values.min()), int(values.max())
    imbalance = largest / smallest if smallest else float("inf")

    plan = plan_split(dataset, val_fraction, seed)
    groups = duplicate_groups(dataset.samples)
    leaking = crossing_groups(groups, plan.train, plan.val)
    conflicting = conflicting_label_groups(groups, dataset.samples)
    mean, std = channel_statistics(dataset, seed=seed, cap=stats_sample, size=stats_size)

    warnings_ = common_warnings(dataset, counts, plan.notes, groups, leaking, conflicting)

    return DatasetProfile(
        n_samples=len(dataset.samples),
        n_classes=len(dataset.classes),
        class_counts=counts,
        samples_per_class_min=smallest,
        samples_per_class_median=float(np.median(values)),
        imbalance_ratio=float(imbalance),
        split_counts={"train": int(plan.train.size), "val": int(plan.val.size)},
        train_class_counts=dict(zip(dataset.classes,
                                    np.bincount(dataset.labels[plan.train], minlength=len(dataset.classes)).tolist())),
        image_size=image_size_summary(dataset),
        modes=dict(Counter(s.mode for s in dataset.samples).most_common()),
        channel_mean=mean,
        channel_std=std,
        skipped=dataset.skipped,
        duplicates=as_paths(groups, dataset.samples),
        leakage=as_paths(leaking, dataset.samples),
        warnings=tuple(warnings_),
    )
