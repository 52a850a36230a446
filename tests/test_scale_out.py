"""Many workers, one study (one machine): the stored description, the exact global budget, lost workers'
trials closed and retried once, results of a superseded worker dropped, the best model saved under a lock,
and the errors a user can cause. The PostgreSQL test with real worker processes is test_scale_out_postgres.py."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import torch
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from tladvisor.errors import DatasetError, TLAdvisorError
from tladvisor.plugins import PluginHost
from tladvisor.records import AnalysisOptions, Recommendation
from tladvisor.testing import tiny_backbone_spec
from tladvisor.tuning import model_io, search
from tladvisor.tuning.data import TuningData
from tladvisor.tuning.search import suggest_params
from tladvisor.tuning.study import claims
from tladvisor.tuning.study.optuna_access import storage_of, study_id, trial_id
from tladvisor.tuning.study import (NOT_RUN, PROCESS, Heartbeat, Tuner, display_url, network_filesystem,
                                    open_storage, process_gone, process_identity, read_description, trial_run)
from tladvisor.tuning.trainer import TrainedModel
from tladvisor.tuning.worker import load_tuning_result, run_worker

RECOMMENDATION = Recommendation(
    backbone="tiny_cnn", strategy="partial_freeze", freeze_depth=1, n_stages=3,
    learning_rates={"head": 1e-2, "backbone": 1e-3, "layer_decay": 0.8}, confidence=0.6,
    rationale=("test",), epochs=4)
TINY_PLUGIN = """
from tladvisor import hookimpl
from tladvisor.testing import tiny_backbone_spec

@hookimpl
def register_backbones(register):
    register(tiny_backbone_spec())
"""


@pytest.fixture(autouse=True)
def small_and_quiet(monkeypatch):
    monkeypatch.setattr(search, "EPOCHS_CPU", (3, 4))
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    from tladvisor.tuning.synthetic import write_shapes_dataset

    return write_shapes_dataset(tmp_path_factory.mktemp("shapes") / "shapes", n_classes=3, per_class=10, size=32).root


@pytest.fixture
def host(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "tiny.py").write_text(TINY_PLUGIN)
    return PluginHost(plugins, load_entry_points=False)


@pytest.fixture
def options(shapes_root, tmp_path):
    return AnalysisOptions(source=shapes_root, run_dir=tmp_path / "run", cache_dir=tmp_path / "cache",
                           val_fraction=0.3, batch_size=16, seed=0, study_name="shapes", device="cpu", trials=3,
                           storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")


def loaded(host, options):
    return host.call_first("load_dataset", source=options.source, options=options)


def started(host, options, **tuner_kwargs):
    tuner = Tuner(options, host=host, **tuner_kwargs)
    return tuner, tuner.start(loaded(host, options), RECOMMENDATION, [tiny_backbone_spec()])


def foreign(pid: int | None = None, host: str | None = None) -> dict:
    identity = process_identity()
    if pid is not None:
        identity.update(pid=pid, started=None)
    if host is not None:
        identity["host"] = host
    return identity


def running_trial(study: optuna.Study, identity: dict | None, params: dict | None = None) -> int:
    """A RUNNING trial as another worker leaves it: its process identity and drawn parameters."""
    template = optuna.trial.create_trial(
        state=TrialState.RUNNING, params=params or {}, system_attrs={PROCESS: identity} if identity else {},
        distributions={name: FloatDistribution(1e-4, 1e-1, log=True) for name in params or {}})
    created = storage_of(study).create_new_trial(study_id(study), template_trial=template)
    return storage_of(study).get_trial(created).number


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# --- what the study holds --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_the_study_holds_what_a_worker_needs_with_absolute_paths_and_no_password(host, options, tmp_path, kind):
    if kind == "journal":
        options = replace(options, storage=str(tmp_path / "run" / "study.journal"))
    _, study = started(host, replace(options, run_dir=Path("relative-run")), heartbeat_interval=7, grace_period=21)
    description = read_description(optuna.load_study(study_name="shapes", storage=open_storage(options.storage)))
    assert description.options.run_dir == Path("relative-run").resolve() and description.options.run_dir.is_absolute()
    assert description.options.source == Path(options.source).resolve()
    assert (description.budget, description.options.batch_size, description.options.val_fraction) == (3, 16, 0.3)
    assert description.recommendation == RECOMMENDATION
    assert description.backbones == ("tiny_cnn",)
    assert (description.heartbeat_interval, description.grace_period) == (7, 21)
    assert description.dataset["n_samples"] == 30 and len(description.dataset["fingerprint"]) == 64
    assert [t.state for t in study.trials] == [TrialState.WAITING]  # the recommendation, queued once

    remote = "postgresql://tuner:s3cret@db.example:5432/studies"
    tuner = Tuner(replace(options, storage=remote), host=host)
    tuner.describe(study, loaded(host, options), RECOMMENDATION, [tiny_backbone_spec()])
    assert study.user_attrs["options"]["storage"] == "postgresql://tuner:***@db.example:5432/studies"
    assert "s3cret" not in str(study.user_attrs)


def test_a_study_not_started_by_analyze_is_refused_in_one_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'other.db'}"
    optuna.create_study(study_name="plain", storage=url)
    with pytest.raises(TLAdvisorError, match=r"^study 'plain' was not started by `tladvisor analyze`"):
        run_worker(url, "plain", host=PluginHost(load_entry_points=False))
    with pytest.raises(TLAdvisorError, match=r"^no study 'missing' in sqlite:///.*other.db: start it first"):
        run_worker(url, "missing", host=PluginHost(load_entry_points=False))


# --- the budget --------------------------------------------------------------------------------------------


def test_two_workers_racing_for_the_last_place_agree_on_the_winner(host, options):
    first, study = started(host, replace(options, trials=2))
    second = Tuner(replace(options, trials=2), host=host)
    second.identity = foreign(pid=first.identity["pid"] + 1)
    study.add_trial(optuna.trial.create_trial(value=0.5))  # one trial already finished
    # Both passed the "is there room?" check before either asked: the one asked first (lower number) wins.
    winner = first._claim(study, 2)
    loser = second._claim(study, 2)
    assert winner is not None and loser is None
    states = {t.number: t.state for t in study.trials}
    refused = [t for t in study.trials if NOT_RUN in t.user_attrs]
    assert len(refused) == 1 and refused[0].state == TrialState.FAIL and refused[0].number > winner.number
    assert refused[0].user_attrs[NOT_RUN] == "the budget of 2 trials was claimed by other workers first"
    assert states[winner.number] == TrialState.RUNNING
    # A place is only given back by failing: then the next claim wins it.
    study.tell(winner, state=TrialState.FAIL)
    again = second._claim(study, 2)
    assert again is not None and again.number > refused[0].number
    assert sum(t.state in (TrialState.COMPLETE, TrialState.RUNNING) for t in study.trials) == 2


def test_the_recommendation_queued_twice_runs_once(host, options):
    tuner, study = started(host, options)
    study.enqueue_trial(dict(study.trials[0].system_attrs["fixed_params"]), user_attrs={"source": "recommendation"})
    assert tuner._claim(study, 3) is not None
    assert tuner._claim(study, 3) is None  # the duplicate is closed without training
    assert study.trials[1].user_attrs[NOT_RUN] == "queued twice: trial #0 runs these parameters"


def test_workers_together_finish_exactly_the_budget_and_leave_refused_trials_out_of_the_report(host, options):
    tuner, study = started(host, replace(options, trials=3))
    rival = Tuner(options, host=host)
    rival.identity = foreign(host="elsewhere")  # a live worker on another machine
    real_run_trial = Tuner.run_trial
    polls = []

    def run_trial_then_the_rival_claims_the_rest(self, study, trial, *args):
        state = real_run_trial(self, study, trial, *args)
        assert rival._claim(study, 3) is not None and rival._claim(study, 3) is not None
        assert rival._claim(study, 3) is None  # one claim too many: refused, never trained
        return state

    def rival_finishes_while_we_wait():
        polls.append(len(study.trials))
        for trial in study.get_trials(states=(TrialState.RUNNING,)):
            study.tell(trial.number, 0.25)
        return 0.0

    tuner.run_trial = run_trial_then_the_rival_claims_the_rest.__get__(tuner)
    tuner._wait_time = rival_finishes_while_we_wait
    result = tuner.run(loaded(host, options), RECOMMENDATION, [tiny_backbone_spec()])
    stored = study.get_trials()
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in stored) == 3
    assert tuner.trials_run == [0] and polls == [4]  # it waited for the rival instead of running a fourth trial
    assert [t.number for t in stored if NOT_RUN in t.user_attrs] == [3]
    assert [t.number for t in result.trials] == [0, 1, 2] and result.requested_trials == 3


# --- lost workers ------------------------------------------------------------------------------------------


def test_a_dead_worker_on_this_machine_is_noticed_at_once_and_its_trial_retried_once(host, options):
    tuner, study = started(host, options, heartbeat_interval=None)
    params = {"lr_head": 0.003}
    dead = running_trial(study, foreign(pid=dead_pid()), params)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alive = running_trial(study, foreign(pid=sleeper.pid), params)
        assert process_gone(foreign(pid=dead_pid())) and not process_gone(foreign(pid=sleeper.pid))
        tuner.settle_interrupted(study)
        Tuner(options, host=host, heartbeat_interval=None).settle_interrupted(study)  # a second worker looks too
        trials = study.get_trials()
        assert trials[alive].state == TrialState.RUNNING
    finally:
        sleeper.kill()
        sleeper.wait()
    assert trials[dead].state == TrialState.FAIL
    assert trials[dead].user_attrs["reason"].startswith("worker lost: process ") and \
        trials[dead].user_attrs["reason"].endswith("has ended")
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == dead]
    assert len(retries) == 1 and retries[0].state == TrialState.WAITING and retries[0].params == params
    assert retries[0].user_attrs["retry_of"] == dead


def test_a_worker_whose_heartbeat_stops_loses_its_trial_to_a_retry_with_the_same_parameters(host, options):
    tuner, study = started(host, options, heartbeat_interval=1, grace_period=3)
    params = {"lr_head": 0.02}
    silent = running_trial(study, foreign(host="machine-that-died"), params)
    beating = running_trial(study, foreign(host="machine-that-lives"), params)
    storage_of(study).record_heartbeat(trial_id(study.trials[silent]))
    with Heartbeat(storage_of(study), trial_id(study.trials[beating]), 1):
        time.sleep(4.5)  # SQLite's clock has whole seconds: silent 4 s > grace 3 s > 2 s since a beat
        tuner.settle_interrupted(study)
    trials = study.get_trials()
    assert trials[beating].state == TrialState.RUNNING
    assert (trials[silent].state, trials[silent].user_attrs["reason"]) == (
        TrialState.FAIL, "worker lost: no heartbeat for over 3 s")
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == silent)
    assert tuner._claim(study, 10).number == 0  # the queue in order: the recommendation, then the retry
    claimed = tuner._claim(study, 10)
    assert claimed.number == retry.number
    drawn = suggest_params(claimed, RECOMMENDATION, [tiny_backbone_spec()], options)
    assert drawn["lr_head"] == params["lr_head"]


def test_a_worker_presumed_lost_drops_its_result_instead_of_counting_it_twice(host, options, monkeypatch):
    tuner, study = started(host, options)
    real_train = trial_run.train_trial

    def closed_by_another_worker_midway(spec, config, data, device, *, seed, on_epoch):
        def on_epoch_then_closed(epoch, value):
            on_epoch(epoch, value)
            if epoch == 0:
                running = trial_id(study.get_trials(states=(TrialState.RUNNING,))[0])
                storage_of(study).set_trial_state_values(running, TrialState.FAIL)
        return real_train(spec, config, data, device, seed=seed, on_epoch=on_epoch_then_closed)

    monkeypatch.setattr(trial_run, "train_trial", closed_by_another_worker_midway)
    data = TuningData(loaded(host, options), options, torch.device("cpu"))
    trial = tuner._claim(study, 3)
    state = tuner.run_trial(study, trial, data, RECOMMENDATION, {"tiny_cnn": tiny_backbone_spec()}, torch.device("cpu"))
    assert state is None
    stored = study.get_trials()[trial.number]
    assert stored.state == TrialState.FAIL and stored.value is None and "duration" not in stored.user_attrs
    assert model_io.read_config(options.run_dir / "best_model") is None


# --- the best model ----------------------------------------------------------------------------------------


def test_workers_saving_at_once_keep_the_best_model_whole(host, options, monkeypatch):
    _, study = started(host, options)
    spec = tiny_backbone_spec()
    accuracies = [0.4, 0.9, 0.6, 0.9, 0.7, 0.5]  # two trials tie at 0.9: the earlier one is the best
    trials = []
    for _ in accuracies:
        trials.append(claims.ask(study, Tuner(options, host=host).identity))
    real_save = model_io.save_model

    def slow_save(model_dir, model, config):  # widen the window in which two saves could interleave
        time.sleep(0.05)
        return real_save(model_dir, model, config)

    monkeypatch.setattr(model_io, "save_model", slow_save)

    def save(trial, accuracy):
        model = spec.build(False)
        with torch.no_grad():
            model.fc.bias.fill_(trial.number)  # the weights say which trial they came from
        trained = TrainedModel(accuracy=accuracy, learning_curve=[accuracy], best_epoch=0, batch_size=16,
                               stopped_early=False, assemble=lambda: model)
        config = SimpleNamespace(strategy="full_finetune")
        Tuner(options, host=host)._save_if_best(study, trial, spec, config, SimpleNamespace(classes=("a", "b", "c")),
                                                trained, {"strategy": "full_finetune"})

    threads = [threading.Thread(target=save, args=(t, a)) for t, a in zip(trials, accuracies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    saved = model_io.read_config(options.run_dir / "best_model")
    best = trials[accuracies.index(0.9)]
    assert (saved["trial_number"], saved["val_accuracy"]) == (best.number, 0.9)
    from safetensors.torch import load_file

    weights = load_file(str(options.run_dir / "best_model" / model_io.MODEL_FILE))
    assert torch.all(weights["fc.bias"] == best.number)
    assert not list(options.run_dir.glob(".best_model-tmp-*")) and not (options.run_dir / "best_model.previous").exists()
    assert not (options.run_dir / "best_model.lock").exists()  # removed once the last save is done


def test_the_best_model_follows_the_umask_like_the_other_outputs(tmp_path):
    model = tiny_backbone_spec().build(False)
    before = os.umask(0o027)  # neither 0644 nor mkdtemp's private 0700/0600: only the umask gives this
    try:
        model_io.save_model(tmp_path / "best_model", model, {"backbone": "tiny_cnn"})
    finally:
        os.umask(before)
    folder = tmp_path / "best_model"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o750
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {
        model_io.MODEL_FILE: 0o640, model_io.CONFIG_FILE: 0o640}


# --- joining from elsewhere, and the errors a user can cause ------------------------------------------------


def test_a_worker_reads_the_data_at_another_mount_point_but_refuses_other_data(host, options, tmp_path):
    tuner, study = started(host, replace(options, trials=1))
    tuner.run(loaded(host, options), RECOMMENDATION, [tiny_backbone_spec()])  # the lead ran the whole budget
    moved = shutil.copytree(options.source, tmp_path / "mounted-elsewhere")
    result = run_worker(options.storage, "shapes", host=host, data=moved)
    assert result.trials_run == () and len(result.tuning.trials) == 1 and result.tuning.requested_trials == 1
    assert result.worker == f"{process_identity()['host']}:{process_identity()['pid']}"

    (moved / next(p.name for p in moved.iterdir() if p.is_dir()) / "000.png").unlink()
    with pytest.raises(DatasetError, match=r"not the data study 'shapes' was started on \(29 images in 3 classes here, "
                                           r"30 images in 3 classes in the study\); point --data at a copy of "):
        run_worker(options.storage, "shapes", host=host, data=moved)
    with pytest.raises(DatasetError, match=r"no such file or folder on this machine .*check --data"):
        run_worker(options.storage, "shapes", host=host, data=tmp_path / "nowhere")

    rebuilt = load_tuning_result(options.storage, "shapes")
    assert [(t.number, t.state, t.value) for t in rebuilt.trials] == \
        [(t.number, t.state, t.value) for t in result.tuning.trials]
    assert rebuilt.device == result.tuning.device


OWN_TUNER = """
from tladvisor import hookimpl
from tladvisor.records import TuningResult

@hookimpl(tryfirst=True)
def tune(request):
    options, join, max_trials, on_trial = request.options, request.join, request.max_trials, request.on_trial
    said = (f"{{[b.name for b in request.backbones]}} {{request.recommendation.strategy}} "
            f"{{len(request.dataset.samples)}} images, study {{options.study_name}}")
    {body}
    return TuningResult(study_name=said, storage=options.storage, requested_trials=options.trials, trials=(), best=None)
"""


def test_hook_tune_is_how_a_worker_tunes_so_a_plugin_tuner_runs_on_workers_too(host, options, tmp_path):
    _, study = started(host, options)  # what analyze leaves: the described study, the advice queued

    def worker_with(name, body="pass", **host_kwargs):
        (tmp_path / name).mkdir()
        (tmp_path / name / "tiny.py").write_text(TINY_PLUGIN)
        (tmp_path / name / "own_tuner.py").write_text(OWN_TUNER.format(body=body))
        return run_worker(options.storage, "shapes", trials=2,
                          host=PluginHost(tmp_path / name, load_entry_points=False, **host_kwargs))

    # A tuner plugin that ignores the worker's fields is called by workers too.
    result = worker_with("plain")
    assert result.tuning.study_name == "['tiny_cnn'] partial_freeze 30 images, study shapes"
    assert result.trials_run == () and result.tuning.requested_trials == 3
    result = worker_with("joining", body='on_trial(7); said += f" join={join} max={max_trials}"')
    assert result.tuning.study_name.endswith("study shapes join=True max=2") and result.trials_run == (7,)
    assert [t.state for t in study.get_trials()] == [TrialState.WAITING]  # the built-in tuner never ran
    with pytest.raises(TLAdvisorError, match=r"^tuning did not run on this worker: no tune plugin joined study "
                                             r"'shapes' \(plugin 'own_tuner' failed in tune: RuntimeError: boom\)$"):
        worker_with("broken", body='raise RuntimeError("boom")', default_plugins=("tladvisor.builtin.datasets",))


def test_the_built_in_tuner_joins_with_the_study_s_heartbeat_and_this_worker_s_cap(host, options):
    _, study = started(host, options, heartbeat_interval=7, grace_period=21)
    joining = Tuner.joining(replace(options, trials=99), host=host)
    assert (joining.heartbeat_interval, joining.grace_period) == (7, 21)
    result = run_worker(options.storage, "shapes", host=host, trials=1)
    assert result.trials_run == (0,)  # the queued advice, then this worker's cap of one trial
    assert [(t.number, t.state) for t in result.tuning.trials] == [(0, "COMPLETE")]
    assert study.get_trials()[0].params["strategy"] == RECOMMENDATION.strategy
    with pytest.raises(TLAdvisorError, match=r"^no study 'other' in sqlite:///.*study.db to join$"):
        Tuner.joining(replace(options, study_name="other"), host=host)


def test_hook_tuning_so_far_reads_a_journal_study_and_never_creates_a_missing_one(host, options, tmp_path):
    journal = replace(options, storage=str(tmp_path / "run" / "study.journal"), trials=1)
    tuner, _ = started(host, journal)
    tuner.run(loaded(host, journal), RECOMMENDATION, [tiny_backbone_spec()])
    so_far = host.call_first("tuning_so_far", options=journal, connect=True, host=host)
    assert so_far is not None and [t.state for t in so_far.trials] == ["COMPLETE"]  # the same opening as workers'
    assert so_far.storage == journal.storage
    assert host.call_first("tuning_so_far", options=replace(journal, study_name="other"), connect=True) is None
    missing = replace(journal, storage=str(tmp_path / "nowhere" / "study.journal"))
    assert host.call_first("tuning_so_far", options=missing, connect=True) is None
    assert not (tmp_path / "nowhere").exists()


def test_a_worker_takes_the_image_root_of_a_manifest_at_another_mount_point(host, options, tmp_path):
    images = shutil.copytree(options.source, tmp_path / "images")  # removed below: not the shared folder
    manifest = tmp_path / "lists" / "train.csv"
    manifest.parent.mkdir()
    rows = [f"{p.relative_to(images).as_posix()},{p.parent.name}" for p in sorted(images.rglob("*.png"))]
    manifest.write_text("path,label\n" + "\n".join(rows) + "\n")
    options = replace(options, source=manifest, image_root=images, trials=1)
    tuner, study = started(host, options)
    assert read_description(study).options.image_root == images.resolve()  # a Path again, not a str
    tuner.run(loaded(host, options), RECOMMENDATION, [tiny_backbone_spec()])

    moved = shutil.copytree(images, tmp_path / "images-elsewhere")
    shutil.rmtree(images)  # gone from the path analyze read: only --image-root finds them
    with pytest.raises(DatasetError, match=r"no such folder on this machine \(the study's image root\); "
                                           r"pass --image-root DIR"):
        run_worker(options.storage, "shapes", host=host)
    result = run_worker(options.storage, "shapes", host=host, image_root=moved)
    assert result.trials_run == () and len(result.tuning.trials) == 1


BITFIT_PLUGIN = """
from tladvisor import hookimpl
from tladvisor.strategies import Strategy

@hookimpl
def register_strategies(register):
    register(Strategy("bitfit", "only biases train", trains=lambda name: name.endswith(".bias")))
"""


def test_other_strategies_than_the_study_is_searched_over_are_one_line_before_any_trial(host, options, tmp_path):
    from optuna.distributions import CategoricalDistribution

    from tladvisor.strategies import BUILT_IN_STRATEGIES

    (tmp_path / "plugins" / "bitfit.py").write_text(BITFIT_PLUGIN)
    with_bitfit = PluginHost(tmp_path / "plugins", load_entry_points=False)
    _, study = started(with_bitfit, options)
    assert read_description(study).strategies == (*BUILT_IN_STRATEGIES, "bitfit")
    with pytest.raises(TLAdvisorError, match=r"^study 'shapes' was searched over other strategies than this process "
                                             r"has \(missing here: bitfit .*\); use a new --study"):
        Tuner(options, host=host).start(loaded(host, options), RECOMMENDATION, [tiny_backbone_spec()], join=True)
    assert len(study.get_trials(deepcopy=False)) == 1  # only the queued recommendation: no trial burnt

    # a study started without the plugin, whose trials drew from the built-ins, and the plugin added since
    other = replace(options, study_name="plain")
    _, plain = started(host, other)
    plain.set_user_attr("strategies", None)  # as a study from before the list was stored: its trials tell
    plain.add_trial(optuna.trial.create_trial(
        state=TrialState.FAIL, params={"strategy": "lp_ft"},
        distributions={"strategy": CategoricalDistribution(list(BUILT_IN_STRATEGIES))}))
    with pytest.raises(TLAdvisorError, match=r"\(not in the study: bitfit\); use a new --study"):
        started(with_bitfit, other)


def test_an_unreachable_storage_is_one_line_naming_host_and_port_without_the_password():
    with pytest.raises(TLAdvisorError) as caught:
        open_storage("postgresql://tuner:s3cret@127.0.0.1:1/studies")
    message = str(caught.value)
    assert message.startswith("cannot reach the study storage at 127.0.0.1:1 (")
    assert "check that the database server is running" in message
    assert "s3cret" not in message and "\n" not in message
    with pytest.raises(TLAdvisorError, match=r"looks like a SQLite file: write it as sqlite:///"):
        open_storage("reports/study.db")
    assert display_url("reports/study.journal") == "reports/study.journal"


def test_sqlite_on_a_network_file_system_is_recognised(tmp_path):
    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/sda1 / ext4 rw 0 0\nserver:/export /shared nfs4 rw 0 0\n"
                      "server:/x /shared/local\\040disk ext4 rw 0 0\n")
    assert network_filesystem("/shared/reports/run", mounts) == "nfs4"
    assert network_filesystem("/shared/local disk/run", mounts) is None
    assert network_filesystem("/sharedfolder/run", mounts) is None
