"""split_indices: deterministic, stratified, leak-free, and respectful of a dataset's own split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tladvisor.data.split import plan_split, split_indices
from tladvisor.errors import DatasetError
from tladvisor.records import Dataset, Sample


def make_dataset(counts: list[int], splits=None, digests=None) -> Dataset:
    samples = []
    for label, n in enumerate(counts):
        for i in range(n):
            index = len(samples)
            samples.append(Sample(path=Path(f"/d/{label}/{i}.png"), label=label,
                                  split=splits[index] if splits else None,
                                  digest=digests[index] if digests else f"h{index}"))
    return Dataset(root=Path("/d"), classes=tuple(f"c{k}" for k in range(len(counts))), samples=tuple(samples))


def test_stratified_split_takes_the_fraction_of_every_class():
    dataset = make_dataset([50, 20, 10])
    train, val = split_indices(dataset, 0.2, seed=0)
    labels = dataset.labels
    assert np.bincount(labels[val]).tolist() == [10, 4, 2]
    assert np.bincount(labels[train]).tolist() == [40, 16, 8]
    assert train.dtype == np.int64 and (np.diff(train) > 0).all()


def test_same_seed_same_split_other_seed_other_split():
    dataset = make_dataset([30, 30])
    first = split_indices(dataset, 0.25, seed=7)
    again = split_indices(dataset, 0.25, seed=7)
    other = split_indices(dataset, 0.25, seed=8)
    assert np.array_equal(first[1], again[1]) and np.array_equal(first[0], again[0])
    assert not np.array_equal(first[1], other[1])


def test_single_image_class_stays_in_training_and_is_reported():
    dataset = make_dataset([10, 1, 2])
    plan = plan_split(dataset, 0.2, seed=0)
    labels = dataset.labels
    assert 1 in labels[plan.train] and 1 not in labels[plan.val]
    assert np.bincount(labels[plan.val], minlength=3).tolist() == [2, 0, 1]  # 2 images: one each side
    assert plan.notes and "'c1' (1)" in plan.notes[0] and "not validated" in plan.notes[0]


def test_identical_files_stay_on_one_side():
    digests = ["same"] * 6 + [f"u{i}" for i in range(14)] + [f"v{i}" for i in range(20)]
    dataset = make_dataset([20, 20], digests=digests)
    for seed in range(10):
        train, val = split_indices(dataset, 0.3, seed=seed)
        sides = {("val" if i in set(val.tolist()) else "train") for i in range(6)}
        assert len(sides) == 1


def test_existing_split_is_respected():
    splits = ["train", "train", "val", None, "train", "val"]
    dataset = make_dataset([3, 3], splits=splits)
    plan = plan_split(dataset, 0.5, seed=3)
    assert plan.predefined
    assert plan.train.tolist() == [0, 1, 3, 4] and plan.val.tolist() == [2, 5]


def test_val_only_class_in_existing_split_is_reported():
    dataset = make_dataset([2, 1], splits=["train", "val", "val"])
    assert any("'c1'" in note and "no training images" in note for note in plan_split(dataset).notes)


def test_bad_fraction_is_a_dataset_error():
    with pytest.raises(DatasetError, match="val_fraction must be between 0 and 1"):
        split_indices(make_dataset([4, 4]), 1.5)


@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.integers(1, 30), min_size=2, max_size=6),
       fraction=st.floats(0.05, 0.6), seed=st.integers(0, 1000))
def test_split_is_a_partition_and_keeps_every_class_in_training(counts, fraction, seed):
    dataset = make_dataset(counts)
    train, val = split_indices(dataset, fraction, seed)
    assert sorted(train.tolist() + val.tolist()) == list(range(len(dataset.samples)))
    assert set(dataset.labels[train].tolist()) == set(range(len(counts)))
    for label, n in enumerate(counts):
        n_val = int((dataset.labels[val] == label).sum())
        assert n_val == (0 if n < 2 else min(n - 1, max(1, round(fraction * n))))
