"""Bundled example datasets: written offline, deterministic, small, and loadable for a real analysis."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from tladvisor.data.examples import EXAMPLES, write_example
from tladvisor.data.images import open_rgb
from tladvisor.data.profile import profile_dataset
from tladvisor.data.sources import load_source
from tladvisor.errors import DatasetError

EXPECTED = {"photos": (6, 40, 96, "RGB"), "textures": (4, 40, 64, "L"), "digits": (10, 30, 32, "L"),
            "noisy-digits": (10, 30, 32, "L")}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_is_written_small_and_loads_cleanly(tmp_path, name):
    n_classes, per_class, side, mode = EXPECTED[name]
    dest = write_example(name, tmp_path / name)
    dataset = load_source(dest)
    assert len(dataset.classes) == n_classes and not dataset.skipped
    assert set(dataset.class_counts().values()) == {per_class}
    assert {(s.width, s.height, s.mode) for s in dataset.samples} == {(side, side, mode)}
    assert sum(p.stat().st_size for p in dest.rglob("*") if p.is_file()) < 2_000_000
    profile = profile_dataset(dataset)
    assert profile.duplicates == () and profile.warnings == ()


def test_examples_are_deterministic_per_seed(tmp_path):
    def contents(dest):
        return [s.digest for s in load_source(dest).samples]

    first = contents(write_example("digits", tmp_path / "a", seed=3))
    assert contents(write_example("digits", tmp_path / "b", seed=3)) == first
    assert contents(write_example("digits", tmp_path / "c", seed=4)) != first
    assert contents(write_example("digits", tmp_path / "a", seed=3)) == first  # rewriting its own output is fine


def test_photos_classes_are_learnable_from_pixels(tmp_path):
    """A real analysis needs a real signal: even colour histograms tell the photos apart."""
    dataset = load_source(write_example("photos", tmp_path / "p"))

    def colour_histogram(path):
        rgb = np.asarray(open_rgb(path))
        return np.concatenate([np.histogram(rgb[..., c], bins=8, range=(0, 256))[0] for c in range(3)])

    features = np.stack([colour_histogram(s.path) for s in dataset.samples]) / (96 * 96)
    accuracy = cross_val_score(KNeighborsClassifier(3), features, dataset.labels, cv=4).mean()
    assert accuracy > 0.9
    profile = profile_dataset(dataset)
    assert all(0.2 < m < 0.7 for m in profile.channel_mean) and all(s > 0.15 for s in profile.channel_std)


def test_noisy_digits_are_the_digits_under_noise_harder_but_still_learnable(tmp_path):
    """The README's example: its images are the digits example's (same specimens), with sigma-0.45 noise
    that a nearest-neighbour on raw pixels still reads far above chance (0.1), less well than the clean ones."""
    clean, noisy = (load_source(write_example(name, tmp_path / name)) for name in ("digits", "noisy-digits"))

    def pixel_knn(dataset):
        x = np.stack([np.asarray(open_rgb(s.path))[..., 0].ravel() / 255.0 for s in dataset.samples])
        return cross_val_score(KNeighborsClassifier(3), x, dataset.labels, cv=3).mean()
    residual = [np.abs(np.asarray(open_rgb(n.path), float) - np.asarray(open_rgb(c.path), float)).mean()
                for c, n in zip(clean.samples[:20], noisy.samples[:20])]
    assert 40 < float(np.mean(residual)) < 120  # heavy noise on the same specimens
    assert pixel_knn(clean) > 0.85 and 0.3 < pixel_knn(noisy) < pixel_knn(clean) - 0.05


def test_unknown_example_and_occupied_folder_are_one_line_errors(tmp_path):
    with pytest.raises(DatasetError,
                       match="unknown example 'cats'; choose one of: photos, textures, digits, noisy-digits, stdlib-docs"):
        write_example("cats", tmp_path / "x")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("precious")
    with pytest.raises(DatasetError, match="not empty"):
        write_example("digits", tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.txt").read_text() == "precious"


def test_every_example_is_described():
    text_examples = {"stdlib-docs"}  # tests/test_text_data.py checks it
    assert set(EXAMPLES) == set(EXPECTED) | text_examples and all(len(text) > 20 for text in EXAMPLES.values())
