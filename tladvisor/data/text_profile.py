"""Describing a loaded text dataset: classes and balance, text lengths, duplicates, a few examples per class.

Lengths are counted in words and characters here, before any backbone is chosen; each text backbone's
measurement adds its own length in tokens and the share it truncates (its tokenizer decides).
Duplicates are texts equal once case, spacing and punctuation are ignored
(:func:`tladvisor.data.text_intake.text_digest`): the split keeps them on one side.
"""

from __future__ import annotations

import numpy as np

from tladvisor.data.duplicates import as_paths, conflicting_label_groups, crossing_groups, duplicate_groups
from tladvisor.data.profile import common_warnings, distribution
from tladvisor.data.split import plan_split
from tladvisor.records import Dataset, DatasetProfile

EXAMPLES_PER_CLASS = 3
EXAMPLE_CHARACTERS = 240  # an example longer than this is shortened in the profile (the data is not changed)
EXAMPLE_CLASSES = 30  # classes shown with examples; the report lists the rest by count only
SHORT_TEXT_WORDS = 3


def shorten(text: str, limit: int = EXAMPLE_CHARACTERS) -> str:
    """``text`` on one line, cut at a word boundary to at most ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[:limit - 1].rsplit(" ", 1)[0] or flat[:limit - 1]
    return cut + "…"


def examples_by_class(dataset: Dataset, seed: int = 0, per_class: int = EXAMPLES_PER_CLASS) -> dict[str, list[str]]:
    """Up to ``per_class`` texts of each class (a seeded choice), shortened, for a person to read."""
    rng = np.random.default_rng(seed)
    labels = dataset.labels
    chosen: dict[str, list[str]] = {}
    for index, name in enumerate(dataset.classes[:EXAMPLE_CLASSES]):
        members = np.flatnonzero(labels == index)
        picks = np.sort(rng.choice(members, size=min(per_class, len(members)), replace=False))
        chosen[name] = [shorten(dataset.samples[i].text) for i in picks]
    return chosen


def length_summary(dataset: Dataset) -> dict[str, dict[str, float]]:
    words = np.array([len(s.text.split()) for s in dataset.samples], dtype=np.float64)
    characters = np.array([len(s.text) for s in dataset.samples], dtype=np.float64)
    return {"words": distribution(words), "characters": distribution(characters)}


def profile_texts(dataset: Dataset, *, val_fraction: float = 0.2, seed: int = 0) -> DatasetProfile:
    """A :class:`DatasetProfile` of a text dataset (``profile.text`` holds what is particular to text)."""
    counts = dataset.class_counts()
    values = np.array(list(counts.values()), dtype=np.int64)
    smallest, largest = int(values.min()), int(values.max())
    plan = plan_split(dataset, val_fraction, seed)
    groups = duplicate_groups(dataset.samples)
    leaking = crossing_groups(groups, plan.train, plan.val)
    conflicting = conflicting_label_groups(groups, dataset.samples)
    warnings_ = common_warnings(dataset, counts, plan.notes, groups, leaking, conflicting, noun="text",
                                file_noun="text")
    lengths = length_summary(dataset)
    short = sum(len(s.text.split()) < SHORT_TEXT_WORDS for s in dataset.samples)
    if short / len(dataset.samples) > 0.1:
        warnings_.append(f"{short} of {len(dataset.samples)} texts have fewer than {SHORT_TEXT_WORDS} words; "
                         "check that the text column holds the texts")
    return DatasetProfile(
        n_samples=len(dataset.samples),
        n_classes=len(dataset.classes),
        class_counts=counts,
        samples_per_class_min=smallest,
        samples_per_class_median=float(np.median(values)),
        imbalance_ratio=float(largest / smallest) if smallest else float("inf"),
        split_counts={"train": int(plan.train.size), "val": int(plan.val.size)},
        train_class_counts=dict(zip(dataset.classes,
                                    np.bincount(dataset.labels[plan.train], minlength=len(dataset.classes)).tolist())),
        skipped=dataset.skipped,
        duplicates=as_paths(groups, dataset.samples),
        leakage=as_paths(leaking, dataset.samples),
        warnings=tuple(warnings_),
        modality="text",
        text={"lengths": lengths, "examples": examples_by_class(dataset, seed),
              "duplicate_rule": "equal once case, spacing and punctuation are ignored"},
    )
