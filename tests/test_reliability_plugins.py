"""A plugin that raises in any hook is isolated and named, in the terminal and in analysis.json/report.

Each test drops a plugin that raises into the plugins folder beside the tiny backbone and runs the CLI.
Where another implementation can stand in (the built-ins), the run completes with exit 0 and the
failure named; where the run cannot go on, the one error line names the plugin that broke it.
"""

from __future__ import annotations

import inspect
import json

import pytest

from tladvisor import hookspecs

from helpers import TINY_PLUGIN, analyze_tiny, write_image_folder

HOOKS = sorted(name for name, value in vars(hookspecs).items()
               if inspect.isfunction(value) and hasattr(value, "tladvisor_spec"))
TUNING_HOOKS = {"search_space", "tune", "register_strategies"}
ONLY_WHEN_STOPPED = {"tuning_so_far"}  # called by an interrupted run: tests/test_reliability_interrupts.py
# called only for a backbone name no plugin registered: tests/test_backbone_resolution.py
ONLY_ON_DEMAND = {"resolve_backbone"}


def raising_plugin(hook: str) -> str:
    arguments = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    return f'''
from tladvisor import hookimpl

@hookimpl
def {hook}({arguments}):
    raise RuntimeError("boom in {hook} <b>&")
'''


@pytest.fixture
def data(tmp_path):
    return write_image_folder(tmp_path / "data", n_classes=3, per_class=8)


analyze = analyze_tiny


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("[")]


def test_every_hook_is_covered():
    assert set(HOOKS) == {"load_dataset", "profile_dataset", "register_backbones", "resolve_backbone", "measure_backbone",
                          "summarise_similarity", "recommend", "register_strategies", "search_space", "tune",
                          "tuning_so_far",
                          "report_sections", "write_report"}


@pytest.mark.parametrize("hook", sorted(set(HOOKS) - ONLY_WHEN_STOPPED - ONLY_ON_DEMAND))
def test_a_plugin_raising_in_any_hook_is_named_and_the_run_completes(hook, data, tmp_path, write_plugin, capsys):
    write_plugin("tiny_plugin", TINY_PLUGIN)
    plugins = write_plugin("boom", raising_plugin(hook))
    trials = ["--trials", "1"] if hook in TUNING_HOOKS else []

    assert analyze(plugins, data, tmp_path, *trials) == 0

    expected = f"plugin 'boom' failed in {hook}: RuntimeError: boom in {hook} <b>&"
    assert expected in error_lines(capsys.readouterr().err)
    run_dir = tmp_path / "reports" / "run"
    analysis = json.loads((run_dir / "analysis.json").read_text())
    failures = [f for f in analysis["plugin_failures"] if f["plugin"] == "boom"]
    assert failures and all(f == {"plugin": "boom", "hook": hook, "error": f"RuntimeError: boom in {hook} <b>&"}
                            for f in failures)
    assert [f for f in analysis["plugin_failures"] if f["plugin"] != "boom"] == []  # nothing else broke
    html = (run_dir / "index.html").read_text()
    assert "boom in " + hook + " &lt;b&gt;&amp;" in html and "<b>&" not in html
    # the rest of the run stands: the built-ins stood in for the broken plugin
    assert analysis["dataset"]["n_samples"] == 24
    assert analysis["backbones"][0]["name"] == "tiny_cnn" and analysis["recommendation"]["backbone"] == "tiny_cnn"
    if hook in TUNING_HOOKS:
        finished = [t for t in analysis["tuning"]["trials"] if t["state"] in ("COMPLETE", "PRUNED")]
        assert len(finished) == 1 and finished[0]["params"]["backbone"] == "tiny_cnn"


def test_a_plugin_that_fails_to_import_is_named_and_the_run_completes(data, tmp_path, write_plugin, capsys):
    write_plugin("tiny_plugin", TINY_PLUGIN)
    plugins = write_plugin("broken", "import tladvisor\ndef broken(:\n")
    assert analyze(plugins, data, tmp_path) == 0
    assert any(line.startswith("plugin 'broken' failed in import: ") and "SyntaxError" in line
               for line in error_lines(capsys.readouterr().err))
    analysis = json.loads((tmp_path / "reports" / "run" / "analysis.json").read_text())
    assert [f["plugin"] for f in analysis["plugin_failures"]] == ["broken"]


# --- where the run cannot go on, the one line names the plugin -------------------------------------


def test_the_only_loader_that_could_read_the_source_fails(tmp_path, write_plugin, capsys):
    write_plugin("tiny_plugin", TINY_PLUGIN)
    plugins = write_plugin("boom", raising_plugin("load_dataset"))
    source = tmp_path / "images.h5"  # only a plugin could read this; the built-in loader cannot
    source.write_bytes(b"\x89HDF\r\n\x1a\n")

    assert analyze(plugins, source, tmp_path) == 2

    (line,) = error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: cannot read {source} as a dataset")
    assert line.endswith("(plugin 'boom' failed in load_dataset: RuntimeError: boom in load_dataset <b>&)")
    assert not (tmp_path / "reports").exists()


def test_the_plugin_offering_the_requested_backbone_fails_to_register_it(data, tmp_path, write_plugin, capsys):
    plugins = write_plugin("boom", raising_plugin("register_backbones"))
    assert analyze(plugins, data, tmp_path) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert line.startswith("error: unknown backbone 'tiny_cnn'")
    assert "(plugin 'boom' failed in register_backbones: RuntimeError: boom in register_backbones <b>&)" in line


def test_the_backbone_that_cannot_be_built_fails_the_measure_stage_by_name(data, tmp_path, write_plugin, capsys):
    plugins = write_plugin("tiny_plugin", TINY_PLUGIN.replace(
        "register(tiny_backbone_spec())",
        "from dataclasses import replace\n"
        "    register(replace(tiny_backbone_spec(), build=lambda pretrained: 1 / 0))"))
    assert analyze(plugins, data, tmp_path) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert line.startswith("error: every backbone failed to measure: ZeroDivisionError")
    assert "plugin 'tiny_plugin' failed in measure" in line


def test_every_backbone_failed_names_only_the_measure_failures_when_some_were_left_out(data, tmp_path, write_plugin,
                                                                                      capsys):
    write_plugin("boom", raising_plugin("profile_dataset"))  # an earlier failure, not a measuring one
    plugins = write_plugin("tiny_plugin", TINY_PLUGIN.replace(
        "register(tiny_backbone_spec())",
        "from dataclasses import replace\n"
        "    from tladvisor.errors import WeightsUnavailableError\n"
        "    def no_weights(pretrained):\n"
        "        raise WeightsUnavailableError('no weights offline for no_weights')\n"
        "    register(replace(tiny_backbone_spec(), build=lambda pretrained: 1 / 0))\n"
        "    register(replace(tiny_backbone_spec(), name='no_weights', build=no_weights))"))
    assert analyze(plugins, data, tmp_path, "--backbone", "no_weights") == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert line.startswith("error: every backbone failed to measure: ZeroDivisionError: division by zero (plugin"), line


def test_the_built_in_tuner_failing_is_an_error_after_the_advice_is_written(data, tmp_path, write_plugin, capsys,
                                                                             monkeypatch):
    from tladvisor.tuning import study

    def broken(*_args, **_kwargs):
        raise RuntimeError("tuner broke")

    monkeypatch.setattr(study.Tuner, "run", broken)
    plugins = write_plugin("tiny_plugin", TINY_PLUGIN)

    assert analyze(plugins, data, tmp_path, "--trials", "2") == 2

    run_dir = tmp_path / "reports" / "run"
    (line,) = error_lines(capsys.readouterr().err)
    assert line == (f"error: tuning did not run; the advice is in {run_dir / 'index.html'} "
                    "(plugin 'tladvisor.builtin.tuning' failed in tune: RuntimeError: tuner broke)")
    analysis = json.loads((run_dir / "analysis.json").read_text())
    assert analysis["recommendation"] is not None and analysis["tuning"] is None
    assert analysis["plugin_failures"] == [{"plugin": "tladvisor.builtin.tuning", "hook": "tune",
                                            "error": "RuntimeError: tuner broke"}]


def test_the_built_in_report_writer_failing_is_an_error_not_a_silent_success(data, tmp_path, write_plugin, capsys,
                                                                             monkeypatch):
    import tladvisor.report.writer as report

    def broken(*_args, **_kwargs):
        raise ValueError("renderer broke")

    monkeypatch.setattr(report, "render_report", broken)
    plugins = write_plugin("tiny_plugin", TINY_PLUGIN)

    assert analyze(plugins, data, tmp_path) == 2

    (line,) = error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: no report was written to {tmp_path / 'reports' / 'run'}")
    assert "(plugin 'tladvisor.builtin.report' failed in write_report: ValueError: renderer broke)" in line
