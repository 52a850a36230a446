"""CSV/Parquet manifests: column detection, relative paths, splits, bad rows, and paths escaping the root."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from tladvisor.data.manifest import load_manifest
from tladvisor.data.sources import load_source
from tladvisor.errors import DatasetError, UnsafeFileError


def write_image(path: Path, colour=(10, 20, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), colour).save(path)


@pytest.fixture
def images(tmp_path) -> Path:
    root = tmp_path / "data"
    for i in range(4):
        write_image(root / "img" / f"r{i}.png", colour=(200, i, 0))
        write_image(root / "img" / f"b{i}.png", colour=(0, i, 200))
    return root


def test_csv_with_relative_paths_and_common_column_names(images):
    rows = [{"FilePath": f"img/{c}{i}.png", "Category": label, "extra": "x"}
            for c, label in (("r", "red"), ("b", "blue")) for i in range(4)]
    manifest = images / "labels.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    dataset = load_source(manifest)
    assert dataset.source_format == "csv"
    assert dataset.classes == ("blue", "red")
    assert dataset.class_counts() == {"blue": 4, "red": 4}
    assert all(s.path.is_absolute() and s.path.is_file() and s.split is None for s in dataset.samples)
    assert "path='FilePath', label='Category'" in dataset.notes[0]


def test_parquet_with_integer_labels_and_split_column(images):
    rows = [{"image": f"img/{c}{i}.png", "target": target, "subset": "validation" if i == 3 else "train"}
            for c, target in (("r", 10), ("b", 2)) for i in range(4)]
    manifest = images / "labels.parquet"
    pd.DataFrame(rows).to_parquet(manifest)
    dataset = load_source(manifest)
    assert dataset.source_format == "parquet"
    assert dataset.classes == ("2", "10")  # numeric order, so label index follows the number
    splits = sorted((s.path.name, s.split) for s in dataset.samples)
    assert ("b3.png", "val") in splits and ("r0.png", "train") in splits
    assert sum(s.split == "val" for s in dataset.samples) == 2


def test_missing_labels_duplicate_rows_and_bad_splits_are_skipped_not_fatal(images):
    manifest = images / "m.csv"
    manifest.write_text(
        "path,label\n"
        "img/r0.png,red\n"
        "img/r1.png,\n"            # no label
        "img/r0.png,red\n"         # exact duplicate row
        "./img/r0.png,blue\n"      # same file again, other label
        "img/missing.png,red\n"    # file not there
        ",red\n"                   # no path
        "img/b0.png,blue\n"
        "img/b1.png,blue\n"
    )
    dataset = load_manifest(manifest)
    reasons = [item.reason for item in dataset.skipped]
    assert "row 2 (line 3): no label" in reasons
    assert "row 3 (line 4): duplicate row, same file as row 1 (line 2)" in reasons
    assert any(r.startswith("row 4 (line 5): duplicate row") and "different label ('blue' vs 'red')" in r
               for r in reasons)
    assert "row 5 (line 6): file not found" in reasons
    assert "row 6 (line 7): no path" in reasons
    assert dataset.class_counts() == {"blue": 2, "red": 1}


@pytest.mark.parametrize("bad_path", ["../outside.png", "img/../../outside.png", "ABSOLUTE"])
def test_manifest_path_escaping_its_folder_is_refused(images, bad_path):
    write_image(images.parent / "outside.png")
    if bad_path == "ABSOLUTE":
        bad_path = str(images.parent / "outside.png")
    manifest = images / "m.csv"
    pd.DataFrame({"path": ["img/r0.png", "img/b0.png", bad_path], "label": ["r", "b", "r"]}).to_csv(manifest, index=False)
    with pytest.raises(UnsafeFileError) as error:
        load_source(manifest)
    message = str(error.value)
    assert "\n" not in message
    assert "row 3 (line 4)" in message and f"'{bad_path}'" in message and "outside the manifest's folder" in message


def test_symlink_pointing_out_of_the_manifest_folder_is_refused(images):
    write_image(images.parent / "secret.png")
    os.symlink(images.parent / "secret.png", images / "img" / "link.png")
    manifest = images / "m.parquet"
    pd.DataFrame({"file": ["img/r0.png", "img/link.png"], "class": ["r", "b"]}).to_parquet(manifest)
    with pytest.raises(UnsafeFileError, match=r"row 2: path 'img/link.png' resolves outside"):
        load_source(manifest)


def test_absolute_path_inside_the_folder_is_fine(images):
    manifest = images / "m.csv"
    pd.DataFrame({"path": [str(images / "img" / "r0.png"), "img/b0.png"], "label": ["r", "b"]}).to_csv(
        manifest, index=False)
    assert load_source(manifest).class_counts() == {"b": 1, "r": 1}


def test_manifest_without_a_label_column_names_the_columns(images):
    manifest = images / "m.csv"
    pd.DataFrame({"path": ["img/r0.png"], "colour": ["r"]}).to_csv(manifest, index=False)
    with pytest.raises(DatasetError, match=r"has no label column \(columns: path, colour\); name one of: label"):
        load_source(manifest)


def test_test_rows_become_validation_only_without_val_rows(images):
    manifest = images / "m.csv"
    rows = [(f"img/{c}{i}.png", c, "test" if i == 0 else "train") for c in "rb" for i in range(4)]
    pd.DataFrame(rows, columns=["path", "label", "split"]).to_csv(manifest, index=False)
    dataset = load_source(manifest)
    assert sum(s.split == "val" for s in dataset.samples) == 2
    assert any("test rows are used for validation" in note for note in dataset.notes)


def test_split_column_with_only_train_rows_means_no_split(images):
    manifest = images / "m.csv"
    rows = [(f"img/{c}{i}.png", c, "train") for c in "rb" for i in range(4)]
    pd.DataFrame(rows, columns=["path", "label", "split"]).to_csv(manifest, index=False)
    assert {s.split for s in load_source(manifest).samples} == {None}
