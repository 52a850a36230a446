"""``tladvisor predict``: predicts what it can, lists what it skipped, takes folders and run folders,
and writes a table, CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tladvisor.cli import main
from tladvisor.errors import TLAdvisorError
from tladvisor.modeling import replace_head
from tladvisor.testing import tiny_backbone_spec
from tladvisor.tuning import model_io
from tladvisor.tuning.predict import model_folder, predict_all

from helpers import TINY_PLUGIN, write_image


class TinyHost:
    def backbone(self, name):
        return tiny_backbone_spec()


def saved_model(folder: Path) -> Path:
    spec = tiny_backbone_spec()
    model = spec.build(True)
    replace_head(model, spec, 2)
    config = model_io.model_config(spec, spec.preprocessing, strategy="full_finetune", classes=("a", "b"),
                                   val_accuracy=0.5, trial_number=0, study_name="s", params={}, learning_curve=[0.5])
    return model_io.save_model(folder, model, config)


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "run"
    saved_model(run / "best_model")
    (run / "analysis.json").write_text("{}")
    return run


def test_one_unreadable_file_is_skipped_and_the_others_are_predicted(run_dir, tmp_path):
    good = [write_image(tmp_path / f"img{i}.png", colour=(40 * i, 0, 0)) for i in range(3)]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    result = predict_all(run_dir / "best_model", [good[0], broken, good[1], tmp_path / "missing.png", good[2]],
                         device="cpu", host=TinyHost())
    assert [r["path"] for r in result.rows] == [str(p) for p in good]
    assert all(r["label"] in ("a", "b") for r in result.rows)
    reasons = {s["path"]: s["reason"] for s in result.skipped}
    assert reasons[str(broken)].startswith("cannot read image")
    assert reasons[str(tmp_path / "missing.png")] == "no such file or folder"


def test_a_folder_is_searched_recursively_for_images(run_dir, tmp_path):
    images = tmp_path / "images"
    expected = [write_image(images / "x.png"), write_image(images / "deeper" / "y.jpg"),
                write_image(images / "deeper" / "z.webp")]
    (images / "notes.txt").write_text("not an image")
    (images / ".hidden.png").write_bytes(b"")
    result = predict_all(run_dir, [images], device="cpu", host=TinyHost())
    assert sorted(r["path"] for r in result.rows) == sorted(str(p) for p in expected)
    assert result.skipped == []


def test_a_run_folder_uses_its_best_model_and_a_run_without_one_is_a_clear_error(run_dir, tmp_path):
    assert model_folder(run_dir) == run_dir / "best_model"
    assert model_folder(run_dir / "best_model") == run_dir / "best_model"
    untuned = tmp_path / "untuned"
    untuned.mkdir()
    (untuned / "analysis.json").write_text("{}")
    with pytest.raises(TLAdvisorError, match="has no best_model .*--trials N"):
        model_folder(untuned)


def run_cli(capsys, write_plugin, *args):
    plugins = write_plugin("tiny_plugin", TINY_PLUGIN)
    code = main(["--plugins-dir", str(plugins), "predict", *map(str, args), "--device", "cpu"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_predicts_the_good_files_exits_0_and_lists_the_skipped_on_stderr(run_dir, tmp_path, capsys,
                                                                           write_plugin):
    good = write_image(tmp_path / "good.png")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 broken")
    code, out, err = run_cli(capsys, write_plugin, run_dir, good, broken)
    assert code == 0
    header, row = out.strip().splitlines()
    assert header.split() == ["path", "label", "probability"] and row.startswith(str(good))
    assert f"skipped {broken}: cannot read image" in err


def test_cli_csv_and_json_formats(run_dir, tmp_path, capsys, write_plugin):
    images = tmp_path / "images"
    write_image(images / "a.png")
    write_image(images / "b" / "c.png")
    (images / "bad.png").write_bytes(b"nope")
    code, out, err = run_cli(capsys, write_plugin, run_dir, images, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["path"] for r in rows] == [str(images / "a.png"), str(images / "b" / "c.png")]
    assert all(0 <= float(r["probability"]) <= 1 for r in rows) and "skipped" in err

    code, out, _ = run_cli(capsys, write_plugin, run_dir, images, "--format", "json")
    document = json.loads(out)
    assert code == 0 and len(document["predictions"]) == 2
    assert document["skipped"] == [{"path": str(images / "bad.png"), "reason": document["skipped"][0]["reason"]}]


def test_cli_nothing_predictable_is_one_error_line_and_status_2(run_dir, tmp_path, capsys, write_plugin):
    code, out, err = run_cli(capsys, write_plugin, run_dir, tmp_path / "nothing-here")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and out == ""
    assert lines[-1] == "error: nothing could be predicted (1 input skipped)"


def test_a_file_name_that_is_not_utf8_is_printed_escaped(run_dir, tmp_path, capsys, write_plugin):
    import os

    folder = tmp_path / "odd"
    folder.mkdir()
    name = os.fsdecode(b"caf\xe9.png")  # Latin-1 bytes: a lone surrogate in Python
    write_image(folder / name)
    (folder / os.fsdecode(b"bad\xff.png")).write_bytes(b"nope")
    code, out, err = run_cli(capsys, write_plugin, run_dir, folder)
    assert code == 0 and "caf\\xe9.png" in out and "bad\\xff.png: cannot read image" in err


def test_a_file_given_and_also_inside_a_given_folder_is_predicted_once(tmp_path):
    """#26 item 7: it was predicted twice."""
    from tladvisor.tuning.predict import collect_images

    images = tmp_path / "images"
    first, second = write_image(images / "a.png"), write_image(images / "sub" / "b.png")
    found, skipped = collect_images([first, images, images / "sub", tmp_path / "images" / ".." / "images" / "a.png"])
    assert found == [first, second] and skipped == []
