"""SIGINT and SIGTERM stop a run cleanly: the trial in progress is closed with its reason and partial
learning curve, the report and analysis.json are written from what exists, the exit code is 128 + the
signal, one line says what was kept, and the same command resumes without losing a finished trial.

The signal is sent by the process to itself from inside a plugin (the backbone's forward pass during
training, or a measuring hook), so it lands at a known point every time; the real handler runs, as it
would for ``kill -TERM`` from outside (tests/test_reliability_kill.py sends one from outside too).
"""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path

import pytest


from helpers import analyze_tiny, write_image_folder

SIGNALLING_PLUGIN = '''
import os
import signal
from dataclasses import replace

from tladvisor import hookimpl
from tladvisor.testing import TinyConvNet, tiny_backbone_spec
from tladvisor.tuning.search import suggest_params

SIGNAL = os.environ.get("TLADVISOR_TEST_SIGNAL", "")  # SIGINT or SIGTERM
WHEN = os.environ.get("TLADVISOR_TEST_SIGNAL_WHEN", "")  # "training:<n>" (n-th training step) or "measuring"
training_steps = 0


class SignallingNet(TinyConvNet):
    def forward(self, x):
        global training_steps
        if self.training and WHEN.startswith("training:"):
            training_steps += 1
            if training_steps == int(WHEN.split(":")[1]):
                os.kill(os.getpid(), getattr(signal, SIGNAL))
        return super().forward(x)


BASE = tiny_backbone_spec()


def build(pretrained):
    model = BASE.build(pretrained)
    model.__class__ = SignallingNet  # same layers and weights, a forward that can send the signal
    return model


@hookimpl
def register_backbones(register):
    register(replace(BASE, build=build))


@hookimpl
def search_space(trial, recommendation, backbones, options):
    # Every trial fine-tunes (feature extraction would train on cached features, never calling forward).
    params = dict(suggest_params(trial, recommendation, backbones, options))
    params.update(strategy="full_finetune", freeze_depth=0, epochs=6, gradual_unfreeze=False)
    return params


@hookimpl
def measure_backbone(backbone, features, dataset, options):
    if WHEN == "measuring":
        os.kill(os.getpid(), getattr(signal, SIGNAL))
    return None
'''


@pytest.fixture
def setup(tmp_path, write_plugin):
    plugins = write_plugin("signalling", SIGNALLING_PLUGIN)
    data = write_image_folder(tmp_path / "data", n_classes=3, per_class=10)
    return plugins, data


def analyze(plugins: Path, data: Path, tmp_path: Path, trials: int) -> int:
    return analyze_tiny(plugins, data, tmp_path, "--trials", str(trials), "--batch-size", "64")


def message_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("[")]  # not Optuna's log


def stored_trials(run_dir: Path) -> dict[int, tuple[str, float | None, str | None, list]]:
    """number -> (state, value, reason, learning curve) straight from the study's SQLite file."""
    with sqlite3.connect(f"file:{run_dir / 'study.db'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT trial_id, number, state FROM trials").fetchall()
        result = {}
        for trial_id, number, state in rows:
            value = db.execute("SELECT value FROM trial_values WHERE trial_id = ?", (trial_id,)).fetchone()
            attrs = dict(db.execute("SELECT key, value_json FROM trial_user_attributes WHERE trial_id = ?",
                                    (trial_id,)).fetchall())
            result[number] = (state, value[0] if value else None, json.loads(attrs.get("reason", "null")),
                              json.loads(attrs.get("learning_curve", "[]")))
    return result


@pytest.mark.parametrize("signal_name, exit_code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_during_a_trial_closes_it_writes_the_report_and_the_same_command_resumes(
        setup, tmp_path, capsys, monkeypatch, signal_name, exit_code):
    plugins, data = setup
    run_dir = tmp_path / "reports" / "run"
    # trial 0 (the recommendation) trains one epoch per step: the signal arrives during its 2nd epoch
    monkeypatch.setenv("TLADVISOR_TEST_SIGNAL", signal_name)
    monkeypatch.setenv("TLADVISOR_TEST_SIGNAL_WHEN", "training:2")
    handlers_before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)

    assert analyze(plugins, data, tmp_path, trials=2) == exit_code

    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers_before
    (line,) = message_lines(capsys.readouterr().err)
    assert line.startswith(f"interrupted by {signal_name} while tuning: kept 1 backbone measurement")
    assert "0 of 2 finished trials" in line and str(run_dir / "index.html") in line
    assert line.endswith("run the same command again to resume")

    analysis = json.loads((run_dir / "analysis.json").read_text())
    assert analysis["environment"]["interrupted"] == f"by {signal_name} while tuning"
    assert analysis["recommendation"]["backbone"] == "tiny_cnn" and len(analysis["backbones"]) == 1
    trial, *queued = analysis["tuning"]["trials"]
    assert all(t["state"] == "WAITING" for t in queued)  # the race's other contenders, still to run
    assert (trial["number"], trial["state"], trial["reason"]) == (0, "FAIL", f"interrupted by {signal_name}")
    assert len(trial["learning_curve"]) == 1  # the epoch it finished before the signal
    assert stored_trials(run_dir)[0][0] == "FAIL"
    assert stored_trials(run_dir)[0][2:] == (f"interrupted by {signal_name}", trial["learning_curve"])
    html = (run_dir / "index.html").read_text()
    assert f"interrupted by {signal_name}" in html and f"This run was stopped by {signal_name} while tuning" in html
    assert not [p for p in run_dir.rglob("*") if p.name.startswith(".")]  # no temporary file left

    # The same command again (after either signal): the study continues to 2 finished trials; the
    # interrupted one stays as it was.
    monkeypatch.delenv("TLADVISOR_TEST_SIGNAL_WHEN")
    assert analyze(plugins, data, tmp_path, trials=2) == 0
    stored = stored_trials(run_dir)
    assert stored[0] == ("FAIL", None, f"interrupted by {signal_name}", trial["learning_curve"])
    assert sum(state in ("COMPLETE", "PRUNED") for state, *_ in stored.values()) == 2
    analysis = json.loads((run_dir / "analysis.json").read_text())
    assert "interrupted" not in analysis["environment"]
    # a race trial still waiting from the first run was closed unrun and queued again after the recommendation:
    # never trained, so the report leaves it out
    unrun = {n for n, (state, value, reason, curve) in stored.items() if state == "FAIL" and not curve and n > 0}
    assert [t["number"] for t in analysis["tuning"]["trials"]] == sorted(set(stored) - unrun)


def test_a_signal_while_measuring_writes_the_dataset_part_of_the_report(setup, tmp_path, capsys, monkeypatch):
    plugins, data = setup
    monkeypatch.setenv("TLADVISOR_TEST_SIGNAL", "SIGINT")
    monkeypatch.setenv("TLADVISOR_TEST_SIGNAL_WHEN", "measuring")

    assert analyze(plugins, data, tmp_path, trials=0) == 130

    (line,) = message_lines(capsys.readouterr().err)
    run_dir = tmp_path / "reports" / "run"
    assert line == (f"interrupted by SIGINT while measuring tiny_cnn: kept the report {run_dir / 'index.html'}; "
                    "run the same command again to resume")
    analysis = json.loads((run_dir / "analysis.json").read_text())
    assert analysis["dataset"]["n_samples"] == 30
    assert analysis["backbones"] == [] and analysis["recommendation"] is None and analysis["tuning"] is None
    assert analysis["environment"]["interrupted"] == "by SIGINT while measuring tiny_cnn"
    assert (run_dir / "index.html").is_file()
    # the features computed before the signal are cached: the next run measures without a forward pass
    monkeypatch.delenv("TLADVISOR_TEST_SIGNAL_WHEN")
    assert analyze(plugins, data, tmp_path, trials=0) == 0
    analysis = json.loads((run_dir / "analysis.json").read_text())
    assert analysis["backbones"][0]["from_cache"] is True and analysis["recommendation"] is not None


def test_the_python_api_keeps_the_report_on_keyboard_interrupt(setup, tmp_path, monkeypatch):
    from tladvisor.advisor import Advisor
    from tladvisor.records import AnalysisOptions

    plugins, data = setup
    import tladvisor.advisor as advisor_module

    def ctrl_c(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(advisor_module.Advisor, "measure", ctrl_c)
    options = AnalysisOptions(source=data, out_dir=tmp_path / "reports", run_name="api", backbones=("tiny_cnn",),
                              cache_dir=tmp_path / "cache", plugins_dir=plugins, device="cpu")
    with pytest.raises(KeyboardInterrupt) as stopped:
        Advisor(options).run()
    assert stopped.value.kept.startswith("while measuring tiny_cnn: kept the report")
    analysis = json.loads((tmp_path / "reports" / "api" / "analysis.json").read_text())
    assert analysis["environment"]["interrupted"] == "by SIGINT while measuring tiny_cnn"


PLUGIN_TUNER = '''
from tladvisor import hookimpl
from tladvisor.records import TrialRecord, TuningResult
from tladvisor.testing import tiny_backbone_spec


@hookimpl
def register_backbones(register):
    register(tiny_backbone_spec())


@hookimpl
def tune(request):
    raise KeyboardInterrupt  # stopped half-way through the plugin's own search


@hookimpl
def tuning_so_far(options, connect, host):
    trial = TrialRecord(number=0, state="COMPLETE", value=0.75, params={"backbone": "tiny_cnn"}, duration_s=1.0)
    return TuningResult(study_name="plugin-study", storage="plugin-storage", requested_trials=options.trials,
                        trials=(trial,), best=trial, best_model_dir=None, device="cpu")
'''


def test_hook_tuning_so_far_a_stopped_run_reports_the_plugin_tuners_trials(tmp_path, write_plugin):
    """The report of a run stopped while a plugin tunes shows that plugin's trials, not the built-in study's."""
    from tladvisor.advisor import Advisor
    from tladvisor.records import AnalysisOptions

    plugins = write_plugin("plugin_tuner", PLUGIN_TUNER)
    data = write_image_folder(tmp_path / "data", n_classes=3, per_class=6)
    options = AnalysisOptions(source=data, out_dir=tmp_path / "reports", run_name="api", backbones=("tiny_cnn",),
                              cache_dir=tmp_path / "cache", plugins_dir=plugins, device="cpu", trials=3)
    with pytest.raises(KeyboardInterrupt) as stopped:
        Advisor(options).run()
    assert "1 of 3 finished trials (study 'plugin-study' in plugin-storage)" in stopped.value.kept
    analysis = json.loads((tmp_path / "reports" / "api" / "analysis.json").read_text())
    assert analysis["tuning"]["study_name"] == "plugin-study"
    assert [t["value"] for t in analysis["tuning"]["trials"]] == [0.75]


def test_a_stopped_run_names_a_tuning_so_far_plugin_that_raises_and_still_writes_its_report(tmp_path, write_plugin):
    from tladvisor.advisor import Advisor
    from tladvisor.records import AnalysisOptions

    first_line = "    trial = TrialRecord("
    source = PLUGIN_TUNER.replace(first_line, "    raise RuntimeError('no trials here')\n" + first_line)
    plugins = write_plugin("plugin_tuner", source)
    data = write_image_folder(tmp_path / "data", n_classes=3, per_class=6)
    options = AnalysisOptions(source=data, out_dir=tmp_path / "reports", run_name="api", backbones=("tiny_cnn",),
                              cache_dir=tmp_path / "cache", plugins_dir=plugins, device="cpu", trials=3)
    with pytest.raises(KeyboardInterrupt) as stopped:
        Advisor(options).run()
    kept = stopped.value.kept  # the built-in stood in: it has no study of its own, so no trials
    assert kept.startswith("while tuning: kept") and "the report" in kept and "finished trials" not in kept
    analysis = json.loads((tmp_path / "reports" / "api" / "analysis.json").read_text())
    assert analysis["tuning"] is None
    assert {"plugin": "plugin_tuner", "hook": "tuning_so_far",
            "error": "RuntimeError: no trials here"} in analysis["plugin_failures"]


def test_a_librarys_cleanup_error_after_a_stop_is_not_printed_but_other_errors_are(monkeypatch):
    import logging

    from tladvisor.runtime.interrupts import CleanupAfterStop, Interrupted

    monkeypatch.delenv("TLADVISOR_DEBUG", raising=False)
    cleanup = CleanupAfterStop()

    def record_of(error: BaseException) -> logging.LogRecord:
        return logging.LogRecord("sqlalchemy.pool", logging.ERROR, __file__, 1, "Exception closing cursor", (),
                                 (type(error), error, error.__traceback__))

    try:
        try:
            raise Interrupted("SIGTERM", int(signal.SIGTERM))  # the stop lands inside a fetch...
        except Interrupted:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")  # noqa: B904 (as a library does)
    except sqlite3.ProgrammingError as error:
        after_stop = error
    assert not cleanup.filter(record_of(after_stop))
    assert cleanup.filter(record_of(sqlite3.ProgrammingError("a real storage error")))
    assert cleanup.filter(logging.LogRecord("x", logging.WARNING, __file__, 1, "no error attached", (), None))
    monkeypatch.setenv("TLADVISOR_DEBUG", "1")
    assert cleanup.filter(record_of(after_stop))  # --debug shows everything

    from click.testing import CliRunner

    from tladvisor.cli import cli

    root = logging.getLogger()
    try:
        assert CliRunner().invoke(cli, ["backbones"]).exit_code == 0
        assert any(isinstance(f, CleanupAfterStop) for handler in root.handlers for f in handler.filters)
    finally:
        for handler in root.handlers:
            handler.filters = [f for f in handler.filters if not isinstance(f, CleanupAfterStop)]
