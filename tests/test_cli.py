"""The command line as a user meets it: exit codes, one-line errors, outputs on disk."""

import json
import re
from pathlib import Path
import subprocess
import sys

import pytest

from tladvisor.cli import main

from helpers import TINY_PLUGIN, analyze_tiny, write_image_folder

from tladvisor.advice.recommend import scenario_strategy


@pytest.fixture
def plugins_dir(write_plugin):
    return write_plugin("tiny_plugin", TINY_PLUGIN)


@pytest.fixture
def data(tmp_path):
    return write_image_folder(tmp_path / "data", n_classes=3, per_class=10)


def analyze(plugins_dir, data, tmp_path, *extra):
    return analyze_tiny(plugins_dir, data, tmp_path, *extra, run_name=None)


def test_analyze_writes_analysis_json_and_report(plugins_dir, data, tmp_path, capsys):
    assert analyze(plugins_dir, data, tmp_path, "--run-name", "r1") == 0
    run_dir = tmp_path / "reports" / "r1"
    analysis = json.loads((run_dir / "analysis.json").read_text())
    assert analysis["schema_version"] >= 1
    assert analysis["dataset"]["n_samples"] == 30
    assert analysis["dataset"]["n_classes"] == 3
    assert analysis["dataset"]["class_counts"] == {"class_0": 10, "class_1": 10, "class_2": 10}
    (backbone,) = analysis["backbones"]
    assert backbone["name"] == "tiny_cnn"
    assert 0 <= backbone["similarity"]["value"] <= 1
    assert "linear_probe_accuracy" in backbone["scores"]
    rec = analysis["recommendation"]
    assert rec["backbone"] == "tiny_cnn"
    # The advice follows from the numbers it records: 10 images per class are small data, similar or not
    # by the recorded similarity, and the four-scenario prior stands unless a rationale line overrides it.
    size = rec["size"]
    assert size["small"] is True and size["samples_per_class"] < size["small_per_class"]
    assert size["similarity"] == backbone["similarity"]["value"]
    assert size["similar"] == (size["similarity"] >= size["similarity_threshold"])
    prior = scenario_strategy(size["small"], size["similar"])
    overrides = [r for r in rec["rationale"] if r.startswith("Override")]
    assert any(r.endswith(f"gives {prior}.") for r in rec["rationale"])
    textbook = rec["learned"]["textbook"]  # the rule, kept beside the learned prior's pick
    assert (textbook["strategy"] == prior) == (not overrides)
    learned = rec["learned"]
    assert learned["applied"] and learned["configs"][learned["pick"]]["strategy"] == rec["strategy"]
    assert learned["configs"][learned["pick"]]["freeze_depth"] == rec["freeze_depth"]
    assert learned["provenance"]["tasks"] and learned["outside"]  # tiny_cnn at 32 px is not what it was fitted on
    depth = {"feature_extraction": 3, "full_finetune": 0, "from_scratch": 0}.get(rec["strategy"])
    assert rec["freeze_depth"] == depth if depth is not None else 1 <= rec["freeze_depth"] <= 2
    assert rec["n_stages"] == 3
    assert rec["rationale"] and all(isinstance(s, str) for s in rec["rationale"])
    assert analysis["tuning"] is None
    # embed is a stage of its own, timed apart from measuring (a first run: the forward passes take time)
    assert list(analysis["timings"]) == ["load", "profile", "embed", "measure", "recommend"]
    assert analysis["timings"]["embed"] > 0 and analysis["timings"]["measure"] >= 0
    assert (run_dir / "index.html").is_file()
    page = (run_dir / "index.html").read_text()
    assert "What the learned prior predicted" in page  # the verdict's table, one row per config
    pick_row = re.search(r'<tr class="highlight"><td class="mono">([^<]+)</td><td class="mono">([^<]+)</td>', page)
    assert pick_row and pick_row.group(1) == learned["pick_config"]
    assert pick_row.group(2) == f"{100 * learned['predicted_gain'][learned['pick']]:+.1f}"
    flat_page = " ".join(page.split())
    assert f"textbook four-scenario rule gives <strong>{textbook['label']}</strong>" in flat_page
    if learned["pick_config"] != textbook["label"]:  # the map says the two differ, with both configs
        assert f"learned prior's ({learned['pick_config']}), not the rule's ({textbook['label']})" in flat_page
    else:
        assert f"learned prior's pick ({learned['pick_config']}) agrees" in flat_page
    out = capsys.readouterr().out
    assert "Recommendation" in out and "tiny_cnn" in out


def test_same_command_reuses_the_run_folder_and_the_feature_cache(plugins_dir, data, tmp_path):
    assert analyze(plugins_dir, data, tmp_path) == 0
    assert analyze(plugins_dir, data, tmp_path) == 0
    (run_dir,) = (tmp_path / "reports").iterdir() if False else [
        p for p in (tmp_path / "reports").iterdir() if p.is_dir()]
    analysis = json.loads((run_dir / "analysis.json").read_text())
    assert analysis["backbones"][0]["from_cache"] is True


@pytest.mark.parametrize("make, expected", [
    (lambda root: root / "missing", "no such file or folder"),
    (lambda root: root.mkdir() or root, "no images"),
    (lambda root: write_image_folder(root, n_classes=1, per_class=5), "class"),
])
def test_bad_data_exits_non_zero_with_one_line(make, expected, plugins_dir, tmp_path, capsys):
    source = make(tmp_path / "bad")
    code = analyze(plugins_dir, source, tmp_path)
    # Progress lines ("[12:00:00] loading ...") go to stderr too off a terminal; the error is one line.
    err = "\n".join(line for line in capsys.readouterr().err.splitlines() if not line.startswith("[")).strip()
    assert code != 0
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error:") and expected in err.lower()
    assert not (tmp_path / "reports").exists() or not list((tmp_path / "reports").rglob("analysis.json"))


def test_unknown_backbone_suggests_the_closest_name(data, tmp_path, capsys):
    code = main(["analyze", str(data), "--backbone", "resnet81", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown backbone 'resnet81'" in err and "resnet18" in err


def test_backbones_json_lists_torchvision_zoo_and_offline_lite0(capsys):
    assert main(["backbones", "--json"]) == 0
    listed = {b["name"]: b for b in json.loads(capsys.readouterr().out)["backbones"]}
    for name in ("resnet18", "resnet50", "efficientnet_b0", "mobilenet_v3_large", "convnext_tiny", "vit_b_16"):
        assert name in listed and listed[name]["plugin"] == "tladvisor.builtin.torchvision_zoo"
    assert listed["efficientnet_lite0"]["weights_available"] is True
    assert listed["efficientnet_lite0"]["feature_dim"] == 1280


def test_plugins_dir_plugin_shows_in_plugins_and_backbones(plugins_dir, capsys):
    assert main(["--plugins-dir", str(plugins_dir), "plugins", "--json"]) == 0
    plugins = {p["name"]: p for p in json.loads(capsys.readouterr().out)["plugins"]}
    assert plugins["tiny_plugin"]["hooks"] == ["register_backbones"]
    assert main(["--plugins-dir", str(plugins_dir), "backbones", "--json"]) == 0
    names = [b["name"] for b in json.loads(capsys.readouterr().out)["backbones"]]
    assert "tiny_cnn" in names


def test_examples_lists_and_writes(tmp_path, capsys):
    assert main(["examples"]) == 0
    assert "photos" in capsys.readouterr().out
    assert main(["examples", "nope", str(tmp_path / "x")]) == 2
    assert "photos" in capsys.readouterr().err


def test_console_script_error_has_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tladvisor.cli", "analyze", str(tmp_path / "nothing")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.strip().splitlines() if not line.startswith("[")]  # not progress
    assert errors == [f"error: {tmp_path / 'nothing'}: no such file or folder"]


def test_messy_folder_is_analysed_to_the_end_with_every_bad_file_reported(plugins_dir, tmp_path):
    from helpers import write_messy_folder

    data = write_messy_folder(tmp_path / "messy")
    assert analyze(plugins_dir, data, tmp_path, "--run-name", "messy", "--max-image-pixels", "50000") == 0
    analysis = json.loads((tmp_path / "reports" / "messy" / "analysis.json").read_text())
    skipped = {Path(item["path"]).name: item["reason"] for item in analysis["dataset"]["skipped"]}
    assert set(skipped) == {"empty.jpg", "truncated.jpg", "notes.png", "huge.png", "bomb.png"}
    assert all(reason for reason in skipped.values())
    assert "pixels" in skipped["huge.png"] and "pixels" in skipped["bomb.png"]
    # odd modes were converted and kept; the one-image class is kept and warned about
    assert analysis["dataset"]["class_counts"] == {"cat": 5, "dog": 4, "lonely": 1}
    assert any("lonely" in w for w in analysis["dataset"]["profile"]["warnings"])
    html = (tmp_path / "reports" / "messy" / "index.html").read_text()
    for name in skipped:
        assert name in html


def test_worker_joins_the_study_of_an_analysis_and_fills_its_budget(plugins_dir, data, tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    assert analyze(plugins_dir, data, tmp_path, "--run-name", "shared", "--trials", "2", "--storage", storage,
                   "--study", "s1", "--image-size", "32") == 0
    capsys.readouterr()
    assert main(["--plugins-dir", str(plugins_dir), "worker", "--storage", storage, "--study", "s1"]) == 0
    out = capsys.readouterr().out
    assert "study 's1' has finished 2 of 2 requested" in out  # the budget was already met: the worker runs none
    assert main(["--plugins-dir", str(plugins_dir), "worker", "--storage", storage, "--study", "nope"]) == 2
    assert "no study 'nope'" in capsys.readouterr().err


def test_a_bad_option_is_one_error_line_naming_the_help_to_read(tmp_path, capsys):
    for argv, expected in ((["analyze", str(tmp_path), "--cv-folds", "0"], "tladvisor analyze --help"),
                           (["analyze", str(tmp_path), "--trials", "-1"], "tladvisor analyze --help"),
                           (["analyze", str(tmp_path), "--timeout", "0"], "tladvisor analyze --help"),  # was advice only
                           (["--threads", "0", "plugins"], "tladvisor --help"),
                           (["nosuch"], "tladvisor --help")):
        assert main(argv) == 2
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and f"(see `{expected}`)" in lines[0], (argv, lines)


def test_a_worker_of_a_timeout_only_study_says_no_trial_cap_not_of_0():
    from types import SimpleNamespace

    from tladvisor.cli import worker_summary

    trials = [SimpleNamespace(state=state) for state in ("COMPLETE", "PRUNED", "PRUNED", "FAIL")]
    tuning = SimpleNamespace(trials=trials, requested_trials=0, study_name="s1")
    line = worker_summary(SimpleNamespace(worker="h:1", trials_run=(2, 3), tuning=tuning, timeout=20.0))
    assert line == "h:1 ran trials #2, #3; study 's1' has finished 3 trials (no trial cap; --timeout 20 s)"
    assert "3/0" not in line


def test_the_backbones_table_names_every_plugin_in_full(capsys, monkeypatch):
    """#26 item 7: the plugin column was cut ('efficientnet…') at 120 columns."""
    import io

    from rich.console import Console

    import tladvisor.cli as cli_module

    stream = io.StringIO()
    monkeypatch.setattr(cli_module, "out", Console(file=stream, width=120, force_terminal=False))
    assert main(["backbones"]) == 0
    table = stream.getvalue()
    assert "…" not in table
    from tladvisor.plugins import PluginHost

    for plugin in {b.plugin for b in PluginHost().backbones().values()}:
        assert plugin in table


def test_an_analysis_builds_its_analysis_dict_once(plugins_dir, data, tmp_path, monkeypatch, capsys):
    """#25 item 2: it was built three times a run (sections, analysis.json, the terminal's warnings)."""
    import tladvisor.report.sections as sections_module
    import tladvisor.report.writer as writer_module

    calls = []
    real = sections_module.build_analysis

    def counted(run):
        calls.append(run.run_id)
        return real(run)
    monkeypatch.setattr(sections_module, "build_analysis", counted)
    monkeypatch.setattr(writer_module, "build_analysis", counted)
    assert analyze(plugins_dir, data, tmp_path, "--run-name", "once") == 0
    assert len(calls) == 1
    assert "Warnings (" in capsys.readouterr().out  # the terminal's warnings, read from analysis.json
