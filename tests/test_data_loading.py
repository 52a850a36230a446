"""ImageFolder loading: bad files are skipped with reasons, odd modes load, unusable datasets are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tladvisor.data.imagefolder import load_image_folder
from tladvisor.data.images import open_rgb
from tladvisor.data.sources import load_source
from tladvisor.errors import DatasetError
from tladvisor.plugins import PluginHost
from tladvisor.records import AnalysisOptions

from helpers import png_with_header_only, write_image, write_messy_folder


@pytest.fixture
def messy_folder(tmp_path) -> Path:
    return write_messy_folder(tmp_path / "messy")


def reasons_by_name(dataset) -> dict[str, str]:
    return {Path(item.path).name: item.reason for item in dataset.skipped}


def test_messy_folder_skips_bad_files_with_reasons(messy_folder):
    dataset = load_image_folder(messy_folder, max_pixels=50_000)
    reasons = reasons_by_name(dataset)
    assert set(reasons) == {"empty.jpg", "truncated.jpg", "notes.png", "huge.png", "bomb.png"}
    assert "empty file" in reasons["empty.jpg"]
    assert "truncated" in reasons["truncated.jpg"]
    assert "not an image" in reasons["notes.png"]
    assert "60,000 pixels exceeds the limit of 50,000" in reasons["huge.png"]
    assert "decompression-bomb" in reasons["bomb.png"]
    assert all(Path(item.path).is_absolute() for item in dataset.skipped)
    assert all("README.txt" not in item.path for item in dataset.skipped)
    assert any(".txt x1" in note for note in dataset.notes)

    assert dataset.classes == ("cat", "dog", "lonely")
    assert dataset.class_counts() == {"cat": 5, "dog": 4, "lonely": 1}
    by_name = {s.path.name: s for s in dataset.samples}
    assert (by_name["cmyk.jpg"].mode, by_name["deep.png"].mode, by_name["palette.png"].mode) == ("CMYK", "I;16", "P")
    assert (by_name["deep.png"].width, by_name["deep.png"].height) == (5, 6)
    assert len(by_name["cat0.png"].digest) == 32


def test_messy_folder_odd_modes_convert_to_the_right_rgb(messy_folder):
    dataset = load_image_folder(messy_folder, max_pixels=50_000)
    by_name = {s.path.name: s.path for s in dataset.samples}
    assert np.asarray(open_rgb(by_name["deep.png"]))[0, 0].tolist() == [50, 50, 50]
    palette = np.asarray(open_rgb(by_name["palette.png"]))
    assert palette[0, 0].tolist() == [0, 255, 0] and palette[1, 1].tolist() == [255, 255, 255]
    cmyk = np.asarray(open_rgb(by_name["cmyk.jpg"])).astype(int)
    assert np.abs(cmyk[4, 4] - [200, 40, 60]).max() <= 6


def test_real_bomb_between_pil_limits_is_caught_without_touching_pil(tmp_path):
    write_image(tmp_path / "a" / "ok.png")
    png_with_header_only(tmp_path / "a" / "big.png", 10_000, 10_000)  # 1e8 pixels: PIL warns, not errors
    write_image(tmp_path / "b" / "ok.png")
    limit_before = Image.MAX_IMAGE_PIXELS
    dataset = load_image_folder(tmp_path, max_pixels=None)  # only PIL's limit: its warning must be caught
    assert "decompression-bomb guard (PIL)" in reasons_by_name(dataset)["big.png"]
    assert Image.MAX_IMAGE_PIXELS == limit_before


def test_hidden_folders_and_loose_files(tmp_path):
    for cls in ("a", "b"):
        write_image(tmp_path / cls / "x.png")
        write_image(tmp_path / cls / "nested" / "y.png")
    write_image(tmp_path / ".git" / "z.png")
    write_image(tmp_path / "loose.png")
    dataset = load_image_folder(tmp_path)
    assert dataset.class_counts() == {"a": 2, "b": 2}
    assert reasons_by_name(dataset) == {"loose.png": "not inside a class folder (no label)"}


def test_train_val_folders_are_respected(tmp_path):
    for split, n in (("train", 3), ("val", 1)):
        for cls in ("ant", "bee"):
            for i in range(n):
                write_image(tmp_path / split / cls / f"{i}.png", colour=(i, len(split), 5))
    write_image(tmp_path / "val" / "wasp" / "0.png")  # a class only in val: the class list is the union
    dataset = load_image_folder(tmp_path)
    assert dataset.classes == ("ant", "bee", "wasp")
    splits = [(dataset.classes[s.label], s.split) for s in dataset.samples]
    assert splits.count(("ant", "train")) == 3 and splits.count(("ant", "val")) == 1
    assert ("wasp", "val") in splits


def test_test_folder_is_validation_when_there_is_no_val(tmp_path):
    for split in ("train", "test"):
        for cls in ("a", "b"):
            write_image(tmp_path / split / cls / "0.png")
    dataset = load_image_folder(tmp_path)
    assert sorted(s.split for s in dataset.samples) == ["train", "train", "val", "val"]
    assert any("test/" in note for note in dataset.notes)


def test_numeric_class_names_sort_numerically(tmp_path):
    for cls in ("10", "2", "1"):
        write_image(tmp_path / cls / "0.png")
    assert load_image_folder(tmp_path).classes == ("1", "2", "10")


def test_single_class_folder_is_one_line_error(tmp_path):
    for i in range(3):
        write_image(tmp_path / "cat" / f"{i}.png")
    with pytest.raises(DatasetError, match=r"only one class \('cat', 3 images\)") as error:
        load_source(tmp_path)
    assert "\n" not in str(error.value)


def test_empty_folder_is_one_line_error(tmp_path):
    with pytest.raises(DatasetError, match="no images found in") as error:
        load_source(tmp_path)
    assert "\n" not in str(error.value) and "DIR/<class>/<image>" in str(error.value)


def test_folder_of_only_broken_images_says_why(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.jpg").write_bytes(b"")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "y.png").write_text("nope")
    with pytest.raises(DatasetError, match=r"no usable images .*2 files skipped \(empty file x1, not an image x1\)"):
        load_source(tmp_path)


def test_missing_and_unknown_sources(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_source(tmp_path / "nowhere")
    (tmp_path / "data.zip").write_bytes(b"PK")
    with pytest.raises(DatasetError, match="unknown file type '.zip'"):
        load_source(tmp_path / "data.zip")


def test_hook_load_dataset_reads_a_folder_through_the_plugin_host(messy_folder):
    host = PluginHost(load_entry_points=False, default_plugins=("tladvisor.builtin.datasets",))
    options = AnalysisOptions(source=messy_folder, max_image_pixels=50_000)
    dataset = host.call_first("load_dataset", source=messy_folder, options=options)
    assert dataset.class_counts() == {"cat": 5, "dog": 4, "lonely": 1}
    assert "huge.png" in reasons_by_name(dataset)
    default = host.call_first("load_dataset", source=messy_folder, options=AnalysisOptions(source=messy_folder))
    assert "huge.png" not in reasons_by_name(default)  # 60,000 pixels is fine under the default cap


def test_hook_load_dataset_raises_dataset_error_for_unusable_source(tmp_path):
    host = PluginHost(load_entry_points=False, default_plugins=("tladvisor.builtin.datasets",))
    with pytest.raises(DatasetError, match="no images found"):
        host.pm.hook.load_dataset(source=tmp_path, options=AnalysisOptions(source=tmp_path))
