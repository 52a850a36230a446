"""Identical files (same content hash): duplicates, train/val leakage, and conflicting labels."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from tladvisor.records import Sample


def duplicate_groups(samples: Sequence[Sample]) -> list[list[int]]:
    """Index groups of samples with identical content (2+ members), in order of first appearance."""
    by_digest: dict[str, list[int]] = defaultdict(list)
    for index, sample in enumerate(samples):
        if sample.digest:
            by_digest[sample.digest].append(index)
    return [group for group in by_digest.values() if len(group) > 1]


def crossing_groups(groups: Iterable[list[int]], train: Iterable[int], val: Iterable[int]) -> list[list[int]]:
    """Groups with members on both sides of a split: the same image trains and validates (leakage)."""
    train_set, val_set = set(map(int, train)), set(map(int, val))
    return [g for g in groups if any(i in train_set for i in g) and any(i in val_set for i in g)]


def conflicting_label_groups(groups: Iterable[list[int]], samples: Sequence[Sample]) -> list[list[int]]:
    """Groups whose identical files carry different labels (label noise)."""
    return [g for g in groups if len({samples[i].label for i in g}) > 1]


def where(sample) -> str:
    """Where a sample is: its file, and for a text from a manifest the row too."""
    origin = getattr(sample, "origin", "")
    return f"{sample.path} {origin}" if origin else str(sample.path)


def as_paths(groups: Iterable[list[int]], samples: Sequence[Sample]) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(where(samples[i]) for i in group) for group in groups)
