"""Resource faults: memory running out in a trial, an output folder that cannot be written, a study
storage that cannot be reached. Each is one clear line and a non-zero exit (or, for a trial, a failed
trial with its reason while the study goes on), and nothing finished before is lost.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tladvisor.tuning import trainer

from helpers import TINY_PLUGIN, analyze_tiny, write_image_folder


@pytest.fixture
def plugins(write_plugin):
    return write_plugin("tiny_plugin", TINY_PLUGIN)


@pytest.fixture
def data(tmp_path):
    return write_image_folder(tmp_path / "data", n_classes=3, per_class=8)


analyze = analyze_tiny


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("[")]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- memory ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("error, reason", [
    (torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)"), "out of memory at batch size 64, and again at 32"),
    (MemoryError("cannot allocate 12 GiB (simulated)"), "MemoryError: cannot allocate 12 GiB (simulated)"),
])
def test_running_out_of_memory_fails_that_trial_and_the_study_goes_on(error, reason, plugins, data, tmp_path,
                                                                      monkeypatch, capsys):
    train_once = trainer._train_once
    attempts = []

    def short_of_memory(spec, config, data, device, seed, on_epoch):
        if seed == 1:  # trial 1 (the seed is the run's seed plus the trial number)
            attempts.append(config.batch_size)
            raise error
        return train_once(spec, config, data, device, seed, on_epoch)

    monkeypatch.setattr(trainer, "_train_once", short_of_memory)

    assert analyze(plugins, data, tmp_path, "--trials", "3", "--batch-size", "64") == 0

    analysis = json.loads((tmp_path / "reports" / "run" / "analysis.json").read_text())
    trials = {t["number"]: t for t in analysis["tuning"]["trials"]}
    assert (trials[1]["state"], trials[1]["reason"]) == ("FAIL", reason)
    assert attempts == ([64, 32] if isinstance(error, torch.cuda.OutOfMemoryError) else [64])
    assert sum(t["state"] in ("COMPLETE", "PRUNED") for t in trials.values()) == 3
    assert analysis["tuning"]["best"]["number"] != 1
    assert error_lines(capsys.readouterr().err) == []


# --- the output folder -------------------------------------------------------------------------------


def test_an_output_folder_under_a_file_is_refused_before_any_work(plugins, data, tmp_path, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file")

    assert analyze(plugins, data, tmp_path, out=blocker / "reports") == 2

    (line,) = error_lines(capsys.readouterr().err)
    assert line == (f"error: cannot create the run folder {blocker / 'reports' / 'run'}: {blocker} is not a folder; "
                    "choose another output folder (--out)")
    assert not (tmp_path / "cache").exists()  # refused before measuring anything


def test_an_unwritable_report_keeps_the_earlier_results(plugins, data, tmp_path, capsys):
    assert analyze(plugins, data, tmp_path, "--trials", "1") == 0
    run_dir = tmp_path / "reports" / "run"
    (run_dir / "index.html").unlink()
    (run_dir / "index.html").mkdir()  # something in the way of the report
    before = snapshot(run_dir), snapshot(tmp_path / "cache")
    capsys.readouterr()

    assert analyze(plugins, data, tmp_path, "--trials", "1") == 2

    (line,) = error_lines(capsys.readouterr().err)
    assert line.startswith("error: cannot write index.html in folder") and "directory" in line.lower()
    after = snapshot(run_dir), snapshot(tmp_path / "cache")
    assert after[1] == before[1]
    assert {k: v for k, v in after[0].items() if k != "analysis.json"} == \
           {k: v for k, v in before[0].items() if k != "analysis.json"}  # study and best model untouched
    assert json.loads((run_dir / "analysis.json").read_text())["tuning"]["requested_trials"] == 1


# --- the study storage -------------------------------------------------------------------------------


@pytest.mark.parametrize("storage, expected", [
    ("postgresql://nobody@127.0.0.1:1/x", "cannot reach the study storage at 127.0.0.1:1"),
    ("nosuchdb://host/x", "storage URL nosuchdb://host/x is not valid"),
    ("sqlite:///{blocker}/study.db", "cannot create the --storage folder {blocker}: {blocker} is not a folder"),
])
def test_a_storage_that_cannot_be_used_is_one_line_before_measuring(storage, expected, plugins, data, tmp_path,
                                                                   capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    assert analyze(plugins, data, tmp_path, "--trials", "1") == 0  # earlier, finished work
    run_dir = tmp_path / "reports" / "run"
    before = snapshot(run_dir), snapshot(tmp_path / "cache")
    capsys.readouterr()

    code = analyze(plugins, data, tmp_path, "--trials", "2", "--storage", storage.format(blocker=blocker))

    (line,) = error_lines(capsys.readouterr().err)
    assert code == 2 and line.startswith("error: ") and expected.format(blocker=blocker) in line, line
    assert (snapshot(run_dir), snapshot(tmp_path / "cache")) == before  # nothing finished was touched
