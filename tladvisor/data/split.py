"""Train/validation split: the dataset's own when it has one, else stratified and deterministic.

The made split keeps identical files (same content hash) on the same side, so it cannot leak,
and keeps every class in training: a class with a single image cannot be validated and is reported.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tladvisor.data.wording import counted, sample_noun
from tladvisor.errors import DatasetError
from tladvisor.records import Dataset


@dataclass(frozen=True, eq=False)
class SplitPlan:
    train: np.ndarray  # indices into Dataset.samples, sorted
    val: np.ndarray
    predefined: bool  # True when the dataset's own train/val split was used
    notes: tuple[str, ...] = ()  # classes that could not be split as asked, and why


def has_predefined_split(dataset: Dataset) -> bool:
    splits = {sample.split for sample in dataset.samples}
    return "val" in splits and "train" in splits


def _predefined(dataset: Dataset) -> SplitPlan:
    is_val = np.fromiter((s.split == "val" for s in dataset.samples), dtype=bool, count=len(dataset.samples))
    labels = dataset.labels
    notes = []
    train_counts = np.bincount(labels[~is_val], minlength=len(dataset.classes))
    val_counts = np.bincount(labels[is_val], minlength=len(dataset.classes))
    no_train = [dataset.classes[c] for c in np.flatnonzero(train_counts == 0)]
    no_val = [dataset.classes[c] for c in np.flatnonzero(val_counts == 0)]
    if no_train:
        notes.append(f"{counted(len(no_train), 'class has', 'classes have')} no training {sample_noun(dataset)}s, "
                     f"only validation ones: {_names(no_train)}")
    if no_val:
        notes.append(f"{counted(len(no_val), 'class has', 'classes have')} no validation {sample_noun(dataset)}s: "
                     f"{_names(no_val)}")
    return SplitPlan(np.flatnonzero(~is_val), np.flatnonzero(is_val), predefined=True, notes=tuple(notes))


def _names(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def content_groups(dataset: Dataset, indices: Sequence[int] | None = None) -> dict[int, list[list[int]]]:
    """Per label, groups of sample indices (of ``indices``, all when None) that must stay together
    (identical content): the split keeps them on one side, cross-validation in one fold."""
    by_digest: dict[str, list[int]] = {}
    groups_by_label: dict[int, list[list[int]]] = defaultdict(list)
    for index in (range(len(dataset.samples)) if indices is None else [int(i) for i in indices]):
        sample = dataset.samples[index]
        if sample.digest and sample.digest in by_digest:
            by_digest[sample.digest].append(index)
            continue
        group = [index]
        if sample.digest:
            by_digest[sample.digest] = group
        groups_by_label[sample.label].append(group)  # a group goes with its first member's label
    return groups_by_label


def _stratified(dataset: Dataset, val_fraction: float, seed: int) -> SplitPlan:
    rng = np.random.default_rng(seed)
    groups_by_label = content_groups(dataset)
    train: list[int] = []
    val: list[int] = []
    unsplittable = []
    for label in range(len(dataset.classes)):
        groups = groups_by_label.get(label, [])
        n_class = sum(len(g) for g in groups)
        if len(groups) < 2:
            unsplittable.append(f"'{dataset.classes[label]}' ({n_class})")
            train.extend(i for g in groups for i in g)
            continue
        target = min(n_class - 1, max(1, round(val_fraction * n_class)))
        taken = 0
        for position in rng.permutation(len(groups)):
            group = groups[position]
            if taken < target and n_class - taken - len(group) >= 1:
                val.extend(group)
                taken += len(group)
            else:
                train.extend(group)
    notes = ()
    if unsplittable:
        notes = (f"{counted(len(unsplittable), 'class has', 'classes have')} a single distinct {sample_noun(dataset)}, "
                 f"kept for training and not "
                 f"validated: {', '.join(unsplittable[:5])}" + (" ..." if len(unsplittable) > 5 else ""),)
    return SplitPlan(np.array(sorted(train), dtype=np.int64), np.array(sorted(val), dtype=np.int64),
                     predefined=False, notes=notes)


def plan_split(dataset: Dataset, val_fraction: float = 0.2, seed: int = 0) -> SplitPlan:
    """The split with the notes explaining it; see :func:`split_indices`."""
    if has_predefined_split(dataset):
        return _predefined(dataset)
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(f"val_fraction must be between 0 and 1 (got {val_fraction}); 0.2 is a usual choice")
    return _stratified(dataset, val_fraction, seed)


def split_indices(dataset: Dataset, val_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(train_idx, val_idx)``: sorted int64 indices into ``dataset.samples``.

    The dataset's own split when it has train and val samples (samples without a split train);
    otherwise about ``val_fraction`` of each class goes to validation, chosen with ``seed``.
    """
    plan = plan_split(dataset, val_fraction, seed)
    return plan.train, plan.val
