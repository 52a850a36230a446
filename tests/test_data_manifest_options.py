"""Manifest options: named path/label columns, an image root the paths resolve against and may not
leave, and a run named after the data rather than the manifest file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tladvisor.runtime.run_folder import run_name_for
from tladvisor.cli import main
from tladvisor.data.naming import data_name
from tladvisor.data.sources import load_source
from tladvisor.errors import DatasetError, UnsafeFileError
from tladvisor.records import AnalysisOptions

from helpers import write_image


def project(tmp_path: Path, rows: list[tuple[str, str]], header=("file_name", "species")) -> Path:
    """``flowers/images/<class>/<i>.png`` and ``flowers/manifests/labels.csv`` listing ``rows``."""
    root = tmp_path / "flowers"
    for k, colour in (("rose", (200, 0, 0)), ("iris", (0, 0, 200))):
        for i in range(3):
            write_image(root / "images" / k / f"{i}.png", colour=colour)
    manifest = root / "manifests" / "labels.csv"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(",".join(header) + "\n" + "".join(f"{p},{label}\n" for p, label in rows))
    return manifest


def rows_relative_to(prefix: str) -> list[tuple[str, str]]:
    return [(f"{prefix}{k}/{i}.png", k) for k in ("rose", "iris") for i in range(3)]


def test_named_columns_and_paths_relative_to_the_manifest_inside_the_image_root(tmp_path):
    manifest = project(tmp_path, rows_relative_to("../images/"))
    with pytest.raises(DatasetError, match="no label column .*--label-column"):
        load_source(manifest, image_root=tmp_path / "flowers")
    dataset = load_source(manifest, path_column="file_name", label_column="Species", image_root=tmp_path / "flowers")
    assert sorted(dataset.classes) == ["iris", "rose"] and len(dataset.samples) == 6
    assert dataset.skipped == ()


def test_paths_resolve_against_the_image_root(tmp_path):
    manifest = project(tmp_path, rows_relative_to(""))
    dataset = load_source(manifest, path_column="file_name", label_column="species",
                          image_root=tmp_path / "flowers" / "images")
    assert len(dataset.samples) == 6
    assert all(s.path.is_relative_to((tmp_path / "flowers" / "images").resolve()) for s in dataset.samples)


def test_without_an_image_root_a_path_out_of_the_manifest_folder_is_refused(tmp_path):
    manifest = project(tmp_path, rows_relative_to("../images/"))
    with pytest.raises(UnsafeFileError, match="outside the manifest's folder .*--image-root"):
        load_source(manifest, path_column="file_name", label_column="species")


def test_a_path_may_not_escape_the_image_root(tmp_path):
    outside = write_image(tmp_path / "secret.png")
    manifest = project(tmp_path, [*rows_relative_to("../images/"), ("../../secret.png", "rose")])
    with pytest.raises(UnsafeFileError, match="outside the image root"):
        load_source(manifest, path_column="file_name", label_column="species", image_root=tmp_path / "flowers")
    assert outside.exists()


def test_unknown_column_and_options_given_for_a_folder_are_one_line_errors(tmp_path):
    manifest = project(tmp_path, rows_relative_to("../images/"))
    with pytest.raises(DatasetError, match=r"no column 'kind' \(--label-column\); its columns: file_name, species"):
        load_source(manifest, path_column="file_name", label_column="kind", image_root=tmp_path / "flowers")
    with pytest.raises(DatasetError, match="--image-root .* not a folder"):
        load_source(manifest, image_root=tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="--label-column apply to a manifest"):
        load_source(tmp_path / "flowers" / "images", label_column="x")


def test_the_run_is_named_after_the_data_not_the_manifest_file(tmp_path):
    manifest = project(tmp_path, [])
    assert data_name(manifest) == "flowers"  # manifests/ is a generic folder name: its parent names the data
    assert data_name(manifest, tmp_path / "flowers" / "images") == "images"
    (tmp_path / "birds").mkdir()
    assert data_name(tmp_path / "birds" / "2024-survey.csv") == "birds-2024-survey"
    name = run_name_for(AnalysisOptions(source=manifest, image_root=tmp_path / "flowers"))
    assert name.startswith("flowers-") and len(name) == len("flowers-") + 8
    other = run_name_for(AnalysisOptions(source=manifest, image_root=tmp_path / "flowers", label_column="species"))
    assert other != name  # the columns change the data, so they change the run


def test_analyze_takes_the_manifest_options(tmp_path, capsys):
    manifest = project(tmp_path, rows_relative_to("../images/"))
    code = main(["analyze", str(manifest), "--path-column", "file_name", "--label-column", "species",
                 "--image-root", str(tmp_path / "flowers"), "--backbone", "nowhere_net",
                 "--out", str(tmp_path / "reports")])
    # the data loads (the error is about the backbone, after loading) and is named after the data
    assert code == 2 and "nowhere_net" in capsys.readouterr().err
