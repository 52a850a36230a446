"""The dataset profile: counts, sizes, colour statistics, duplicates, leakage and warnings, with numbers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from tladvisor.data.imagefolder import load_image_folder
from tladvisor.data.profile import profile_dataset
from tladvisor.plugins import PluginHost
from tladvisor.records import AnalysisOptions, to_jsonable


def write_image(path: Path, colour, size, marker: int = 0) -> Path:
    """A solid image; ``marker`` changes one pixel so that files differ in content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, colour)
    image.putpixel((0, 0), (marker % 256, marker // 256, 0) if colour[0] == 0 else (255, 0, marker % 256))
    image.save(path)
    return path


@pytest.fixture
def red_and_blue(tmp_path) -> Path:
    for i in range(30):
        write_image(tmp_path / "red" / f"{i}.png", (255, 0, 0), (32, 16), marker=i)
    for i in range(2):
        write_image(tmp_path / "blue" / f"{i}.png", (0, 0, 255), (16, 16), marker=i)
    return tmp_path


def test_profile_numbers(red_and_blue):
    profile = profile_dataset(load_image_folder(red_and_blue), val_fraction=0.2, seed=0)
    assert (profile.n_samples, profile.n_classes) == (32, 2)
    assert profile.class_counts == {"blue": 2, "red": 30}
    assert profile.samples_per_class_min == 2 and profile.samples_per_class_median == 16.0
    assert profile.imbalance_ratio == pytest.approx(15.0)
    assert profile.split_counts == {"train": 25, "val": 7}  # 6 of 30 red, 1 of 2 blue
    assert profile.train_class_counts == {"blue": 1, "red": 24}
    assert profile.image_size["width"]["min"] == 16 and profile.image_size["width"]["median"] == 32
    assert profile.image_size["aspect"]["max"] == pytest.approx(2.0)
    assert profile.modes == {"RGB": 32}
    red_share = 30 * 512 / (30 * 512 + 2 * 256)  # pixel-weighted
    assert profile.channel_mean[0] == pytest.approx(red_share, abs=2e-3)
    assert profile.channel_mean[2] == pytest.approx(1 - red_share, abs=2e-3)
    assert profile.channel_std[0] == pytest.approx((red_share * (1 - red_share)) ** 0.5, abs=2e-3)
    assert profile.duplicates == () and profile.leakage == ()
    assert any("imbalanced" in w and "15.0x" in w for w in profile.warnings)
    assert any("fewer than 5 images" in w and "'blue' (2)" in w for w in profile.warnings)
    json.dumps(to_jsonable(profile))  # analysis.json must be able to carry it


def test_duplicates_across_train_and_val_are_leakage(tmp_path):
    for split in ("train", "val"):
        for cls, colour in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
            for i in range(3):
                write_image(tmp_path / split / cls / f"{i}.png", colour, (8, 8), marker=i + (10 if split == "val" else 0))
    leaked = tmp_path / "val" / "a" / "leak.png"
    shutil.copy(tmp_path / "train" / "a" / "0.png", leaked)
    shutil.copy(tmp_path / "train" / "b" / "0.png", tmp_path / "train" / "b" / "copy.png")  # same side
    profile = profile_dataset(load_image_folder(tmp_path))
    assert len(profile.duplicates) == 2
    assert profile.leakage == ((str(tmp_path / "train" / "a" / "0.png"), str(leaked)),)
    assert any(w.startswith("leakage: 1 image") for w in profile.warnings)


def test_many_skipped_files_are_a_warning(red_and_blue):
    for i in range(3):
        (red_and_blue / "red" / f"bad{i}.jpg").write_bytes(b"")
    profile = profile_dataset(load_image_folder(red_and_blue))
    assert len(profile.skipped) == 3
    assert any(w == "3 of 35 files skipped (empty file x3)" for w in profile.warnings)


def test_hook_profile_dataset_through_the_plugin_host(red_and_blue):
    host = PluginHost(load_entry_points=False, default_plugins=("tladvisor.builtin.datasets",))
    options = AnalysisOptions(source=red_and_blue, val_fraction=0.5, seed=1)
    dataset = host.call_first("load_dataset", source=red_and_blue, options=options)
    profile = host.call_first("profile_dataset", dataset=dataset, options=options)
    assert profile.split_counts == {"train": 16, "val": 16}  # options.val_fraction reached the profiler
    assert not host.failures


@pytest.mark.parametrize("counts, warned", [((30, 30, 20, 8, 5), True), ((12, 4), True), ((15, 10, 8), False)])
def test_one_imbalance_threshold_for_the_warning_and_the_balanced_metrics(tmp_path, counts, warned):
    """#26 item 5: a 6x set once got balanced metrics (from 1.5x) but no warning (from 10x only)."""
    from tladvisor.data.profile import IMBALANCE_RATIO
    from tladvisor.tuning.imbalance import unbalanced

    for k, n in enumerate(counts):
        for i in range(n):
            write_image(tmp_path / f"c{k}" / f"{i}.png", (40 * k, 255 - i, 9 * k), (16, 16), marker=i)
    profile = profile_dataset(load_image_folder(tmp_path), val_fraction=0.2, seed=0)
    said = any(w.startswith("classes are imbalanced") for w in profile.warnings)
    assert said == warned == unbalanced(profile.class_counts) == (max(counts) / min(counts) >= IMBALANCE_RATIO)
