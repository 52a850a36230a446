"""Progress while a run works: counts with rate and ETA, one line per trial, plain lines off a terminal."""

from __future__ import annotations

import io
import json
import re

import pytest
from rich.console import Console

from tladvisor.runtime import progress
from tladvisor.tuning.study.trial_progress import TrialProgress

from helpers import TINY_PLUGIN, analyze_tiny, write_image_folder


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_count_says_done_total_rate_and_time_left():
    clock = Clock()
    counter = progress.Counter(progress.Reporter(), "embedding with resnet18", 2000, clock=clock)
    clock.now = 16.0
    counter.done = 640
    assert counter.text() == "embedding with resnet18: 640/2000 images, 40 img/s, ETA 34 s"
    counter.done, clock.now = 2000, 50.0
    assert counter.text() == "embedding with resnet18: 2000/2000 images, 40 img/s"


def test_off_a_terminal_lines_are_plain_time_stamped_and_counts_are_rate_limited():
    stream, clock = io.StringIO(), Clock()
    reporter = progress.LogReporter(stream, clock=clock, wall=lambda: 0.0, interval=10.0)
    reporter.stage("measuring tiny_cnn")
    counter = progress.Counter(reporter, "embedding with tiny_cnn", 300, clock=clock)
    for second in range(1, 31):  # 10 images a second for 30 s
        clock.now = float(second)
        counter.advance(10)
    reporter.line("trial 1/2 feature_extraction val 0.900 (best 0.900) 3 s")
    lines = [line.split(" ", 1)[1] for line in stream.getvalue().splitlines()]
    assert all(re.match(r"\[\d\d:\d\d:\d\d\] ", line) for line in stream.getvalue().splitlines())
    assert lines == [
        "measuring tiny_cnn",
        "embedding with tiny_cnn: 100/300 images, 10 img/s, ETA 20 s",  # 10 s after the stage line
        "embedding with tiny_cnn: 200/300 images, 10 img/s, ETA 10 s",
        "embedding with tiny_cnn: 300/300 images, 10 img/s",  # the last count always
        "trial 1/2 feature_extraction val 0.900 (best 0.900) 3 s",
    ]


def test_a_file_name_that_is_not_utf8_is_escaped_not_fatal():
    stream = io.StringIO()
    progress.LogReporter(stream, wall=lambda: 0.0).stage("loading data/caf\udce9")
    assert stream.getvalue().endswith("] loading data/caf\\xe9\n")


def test_the_console_decides_the_reporter_and_quiet_silences_it():
    piped = Console(file=io.StringIO(), force_terminal=False)
    with progress.for_console(piped) as reporter:
        assert isinstance(reporter, progress.LogReporter) and progress.current() is reporter
    terminal = Console(file=io.StringIO(), force_terminal=True)
    with progress.for_console(terminal) as reporter:
        assert isinstance(reporter, progress.TerminalReporter)
    with progress.for_console(piped, quiet=True) as reporter:
        assert type(reporter) is progress.Reporter
    assert type(progress.current()) is progress.Reporter  # restored: library use stays silent


def test_trial_lines_count_against_the_budget_with_an_eta():
    stream, clock = io.StringIO(), Clock()
    view = TrialProgress(budget=5, deadline=None, several_backbones=False, show_metrics=True, clock=clock)
    with progress.reporting(progress.LogReporter(stream, wall=lambda: 0.0)):
        view.started(2, {"backbone": "b", "strategy": "partial_freeze", "freeze_depth": 4, "epochs": 8}, number=3)
        view.finished("COMPLETE", value=0.912, curve=[0.8, 0.912], best=0.930, seconds=41.0, reason=None,
                      metrics={"balanced_accuracy": 0.85, "macro_f1": 0.84, "worker": "x"}, finished_now=3)
        view.started(3, {"backbone": "b", "strategy": "full_finetune", "epochs": 8}, number=5)
        view.finished("PRUNED", value=None, curve=[0.3, 0.5, 0.55], best=0.930, seconds=19.0,
                      reason="pruned at epoch 3: best val accuracy 0.550 is below the median", metrics={},
                      finished_now=4)
    lines = [line.split(" ", 1)[1] for line in stream.getvalue().splitlines()]
    assert lines == [
        "trial #3 partial_freeze@4: training, up to 8 epochs; 2/5 finished",
        "trial #3 partial_freeze@4 val 0.912, balanced 0.850, macro-F1 0.840 (best 0.930) 41 s; 3/5 finished, "
        "about 1 min 22 s left",
        "trial #5 full_finetune: training, up to 8 epochs; 3/5 finished",  # #4 ran in another worker
        "trial #5 full_finetune pruned at epoch 3, val 0.550 (best 0.930) 19 s; 4/5 finished, about 30 s left",
    ]


@pytest.fixture
def plugins_dir(write_plugin):
    return write_plugin("tiny_plugin", TINY_PLUGIN)


def test_analyze_with_output_redirected_prints_progress_lines_and_quiet_prints_none(plugins_dir, tmp_path, capsys):
    data = write_image_folder(tmp_path / "data", n_classes=3, per_class=10)
    assert analyze_tiny(plugins_dir, data, tmp_path, "--trials", "2", "--batch-size", "8") == 0
    err = [line.split(" ", 1)[1] for line in capsys.readouterr().err.splitlines() if re.match(r"\[\d\d:\d\d:\d\d\] ", line)]
    assert "measuring tiny_cnn" in err
    embedded = r"embedding with tiny_cnn and its random-init copy: 60/60 images, [\d.]+ img/s"
    assert any(re.fullmatch(embedded, line) for line in err)
    assert any(line.startswith("measured tiny_cnn: 30 images at 32 px") for line in err)
    assert "tuning: 2 trials" in err
    trial_lines = [line for line in err if line.startswith("trial ") and ": training" not in line]
    assert len(trial_lines) == 2 and trial_lines[0].startswith("trial #0 ") and trial_lines[1].startswith("trial #1 ")
    assert "; 1/2 finished" in trial_lines[0] and "; 2/2 finished" in trial_lines[1]
    # 30 images: each trial is scored on 3 cross-validation folds, and its line gives their spread
    assert re.search(r" (val [01]\.\d{3} ± [01]\.\d{3} SE over 3 folds \(best [01]\.\d{3}\)|pruned at epoch \d.*|"
                     r"failed: .*) \d+ s", trial_lines[1])

    analysis = json.loads((tmp_path / "reports" / "run" / "analysis.json").read_text())
    assert analysis["tuning"]["stop_reason"].startswith("the budget of 2 finished trials is met")
    assert analyze_tiny(plugins_dir, data, tmp_path, "--quiet", run_name="quiet") == 0
    assert capsys.readouterr().err == ""


def test_a_trial_the_deadline_stopped_says_it_did_not_finish_with_its_best_epoch_so_far():
    stream, clock = io.StringIO(), Clock()
    view = TrialProgress(budget=8, deadline=clock(), several_backbones=False, show_metrics=False, clock=clock)
    with progress.reporting(progress.LogReporter(stream, wall=lambda: 0.0)):
        view.started(1, {"backbone": "b", "strategy": "full_finetune", "epochs": 8}, number=1)
        view.finished("PRUNED", value=None, curve=[0.85, 0.88], best=0.873, seconds=20.0,
                      reason="stopped by the --timeout deadline during epoch 3 (its 2 finished epochs kept)",
                      metrics={}, finished_now=1)
    line = stream.getvalue().splitlines()[-1].split(" ", 1)[1]
    assert line == ("trial #1 full_finetune stopped by the --timeout deadline during epoch 3 (its 2 finished epochs "
                    "kept), best epoch so far val 0.880; not finished (best finished trial 0.873) 20 s; 1/8 finished")


def test_the_time_left_counts_the_running_trials_folds_and_epochs():
    """#26 item 4: under cross-validation the estimate once said 'about 6 s left' before an 86 s trial and
    grew during one trial. 3 folds of 10 epochs at 2 s an epoch: the trial takes 60 s, whatever the moment."""
    stream, clock = io.StringIO(), Clock()
    view = TrialProgress(budget=2, deadline=None, several_backbones=False, show_metrics=False, clock=clock)
    with progress.reporting(progress.LogReporter(stream, wall=lambda: 0.0)):
        view.started(0, {"backbone": "b", "strategy": "full_finetune", "epochs": 10}, number=0)
        view.fold(0, 3)
        lefts = []
        for epoch in range(10):
            clock.now += 2.0
            lefts.append(view._left(finished=0, running=True))
            view.epoch(epoch, 0.5)
        assert lefts[0] == ""  # nothing to extrapolate from before the first epoch ends
        first = view._left(finished=0, running=True)
        view.fold(1, 3)
        clock.now += 10.0
        later = view._left(finished=0, running=True)
    # after fold 0 (20 s): 40 s of this trial and a 60 s trial to come
    assert first == "; about 1 min 40 s left"
    assert later == "; about 1 min 30 s left"  # 10 s later, 10 s less: it does not grow
