"""Three worker processes on one study in a real PostgreSQL server; one is killed mid-trial.

The server is a throw-away one: ``initdb`` in a temporary folder, started with ``pg_ctl`` as a non-root
user on a free loopback port, stopped and deleted afterwards. scripts/test.sh installs Debian's
``postgresql`` package where it can; without it (or without the psycopg driver) the test is skipped.

Run as a script it measures the speed-up of 3 workers over 1 on the same budget::

    .venv/bin/python tests/test_scale_out_postgres.py [--trials 12] [--workers 3] [--per-class 40] [--epochs 3,5]
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
from helpers import dependency_missing, require_module

SUPERUSER = "tladvisor"
PASSWORD = "not-a-real-secret"  # loopback trust authentication ignores it; it must never be printed
BUDGET = 9

# One worker process. ``machine`` stands in for the host name, as if each worker ran on its own machine:
# then only heartbeats can tell that one has died (on one machine the dead pid would tell at once).
WORKER = textwrap.dedent("""
    import json, os, socket, sys, time
    import torch
    torch.set_num_threads(1)
    storage, study_name, machine, hang = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "hang"
    socket.gethostname = lambda: machine
    from tladvisor.tuning import search
    from tladvisor.tuning.study import trial_run
    search.EPOCHS_CPU = tuple(int(n) for n in os.environ.get("TLADVISOR_TEST_EPOCHS", "3,5").split(","))
    if hang:  # report the first epoch, then hang: the test kills this process mid-trial
        train = trial_run.train_trial
        def train_and_hang(*args, on_epoch, **kwargs):
            def report_then_hang(epoch, value):
                on_epoch(epoch, value)
                time.sleep(600)
            return train(*args, on_epoch=report_then_hang, **kwargs)
        trial_run.train_trial = train_and_hang
    from tladvisor.plugins import PluginHost
    from tladvisor.tuning.worker import run_worker
    started = time.perf_counter()
    result = run_worker(storage, study_name, host=PluginHost(), wait=60)
    print(json.dumps({"worker": result.worker, "trials_run": list(result.trials_run),
                      "seconds": round(time.perf_counter() - started, 2), "cpu_s": round(time.process_time(), 2),
                      "report": str(result.report) if result.report else None}))
""")

TINY_PLUGIN = """
from tladvisor import hookimpl
from tladvisor.testing import tiny_backbone_spec

@hookimpl
def register_backbones(register):
    register(tiny_backbone_spec())
"""


# --- a throw-away PostgreSQL server --------------------------------------------------------------------------


def postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3])
                   if p.parts[-3].isdigit() else 0)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    """``initdb`` + ``pg_ctl start`` in a temporary folder, as a non-root user; ``stop()`` removes it all."""

    def __init__(self, bin_dir: Path):
        self.bin = bin_dir
        self.folder = Path(tempfile.mkdtemp(prefix="tladvisor-pg-"))
        self.data = self.folder / "data"
        self.port = 0
        self.user_prefix: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the package's postgres user
            import pwd

            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and there is no 'postgres' user to run the server as") from None
            os.chown(self.folder, account.pw_uid, account.pw_gid)
            self.user_prefix = ["runuser", "-u", "postgres", "--"] if shutil.which("runuser") else \
                ["su", "postgres", "-s", "/bin/sh", "-c"]

    def _run(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        argv = [str(c) for c in command]
        if self.user_prefix[:1] == ["su"]:
            argv = [*self.user_prefix, " ".join(_quote(a) for a in argv)]
        else:
            argv = [*self.user_prefix, *argv]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)

    def start(self) -> "PostgresServer":
        done = self._run(self.bin / "initdb", "-D", self.data, "-A", "trust", "-U", SUPERUSER, "-E", "UTF8",
                         "--no-sync")
        if done.returncode:
            raise RuntimeError(f"initdb failed: {done.stderr.strip()[-300:]}")
        for _attempt in range(3):  # another process may take the free port between probe and start
            self.port = free_port()
            options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                       "-c synchronous_commit=off -c full_page_writes=off")
            done = self._run(self.bin / "pg_ctl", "-D", self.data, "-l", self.folder / "server.log", "-w",
                             "-t", "30", "-o", options, "start")
            if done.returncode == 0:
                break
        else:
            log = (self.folder / "server.log").read_text() if (self.folder / "server.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {(done.stderr or log).strip()[-300:]}")
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres",
                             autocommit=True) as connection:
            connection.execute("CREATE DATABASE studies")
        return self

    def url(self, database: str = "studies") -> str:
        return f"postgresql://{SUPERUSER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        if self.data.exists():
            self._run(self.bin / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


@pytest.fixture(scope="module")
def postgres():
    require_module("psycopg", "the psycopg driver is not installed (pip install 'tladvisor[postgres]')")
    bin_dir = postgres_bin()
    if bin_dir is None:
        dependency_missing("PostgreSQL is not installed (apt-get install postgresql; scripts/test.sh does it as root)")
    server = PostgresServer(bin_dir)
    try:
        server.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
        server.stop()
        dependency_missing(f"could not start a PostgreSQL server: {error}")
    yield server
    server.stop()


# --- the study -----------------------------------------------------------------------------------------------


# Seconds without a heartbeat (sent every second) before a worker counts as lost. 3 s once failed a live
# worker's trial on a loaded 2-core machine; 8 s still finds the killed one well within the test's time.
GRACE = 8


def start_study(root: Path, storage: str, study_name: str, budget: int, *, per_class: int = 12,
                grace: int = GRACE):
    """What ``tladvisor analyze`` does before tuning: data, advice, the study described, and its report."""
    import torch

    from tladvisor.plugins import PluginHost
    from tladvisor.records import AnalysisOptions, AnalysisRun, Recommendation
    from tladvisor.tuning.study import Tuner
    from tladvisor.tuning.synthetic import write_shapes_dataset

    torch.set_num_threads(1)
    plugins = root / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    (plugins / "tiny.py").write_text(TINY_PLUGIN)
    data = write_shapes_dataset(root / "shapes", n_classes=3, per_class=per_class, size=32).root
    host = PluginHost(plugins, load_entry_points=False)
    options = AnalysisOptions(source=data, run_dir=root / "run", out_dir=root, cache_dir=root / "cache",
                              val_fraction=0.25, batch_size=16, seed=0, study_name=study_name, device="cpu",
                              trials=budget, storage=storage)
    dataset = host.call_first("load_dataset", source=data, options=options)
    recommendation = Recommendation(
        backbone="tiny_cnn", strategy="partial_freeze", freeze_depth=1, n_stages=3,
        learning_rates={"head": 1e-2, "backbone": 1e-3, "layer_decay": 0.8}, confidence=0.6,
        rationale=("test",), epochs=4)
    Tuner(options, host=host, heartbeat_interval=1, grace_period=grace).start(
        dataset, recommendation, [host.backbone("tiny_cnn")])
    run = AnalysisRun(run_id=study_name, out_dir=options.run_dir, options=options, dataset=dataset,
                      recommendation=recommendation)
    host.call_each("write_report", run=run, out_dir=run.out_dir, sections=[])  # tuning: null until workers end
    return options, plugins


def spawn_worker(storage: str, study_name: str, machine: str, plugins: Path, *, hang: bool = False):
    env = {**os.environ, "TLADVISOR_PLUGINS_DIR": str(plugins), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", WORKER, storage, study_name, machine, "hang" if hang else "run"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def running_trial_of(study, pid: int):
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get("worker", "").endswith(f":{pid}") and trial.intermediate_values:
            return trial
    return None


@pytest.mark.slow
def test_three_workers_share_the_budget_exactly_and_retry_the_trial_of_one_killed_mid_trial(postgres, tmp_path):
    import optuna
    from optuna.trial import TrialState

    from tladvisor.report.writer import rerender
    from tladvisor.report.analysis_json import load_analysis
    from tladvisor.tuning.study import NOT_RUN, PROCESS, open_storage
    from tladvisor.tuning.worker import load_tuning_result, refresh_report

    started = time.monotonic()
    storage = postgres.url()
    options, plugins = start_study(tmp_path, storage, "shapes-pg", BUDGET)
    study = optuna.load_study(study_name="shapes-pg", storage=open_storage(storage))
    victim = spawn_worker(storage, "shapes-pg", "machine-0", plugins, hang=True)
    others = []
    try:
        deadline = time.monotonic() + 60
        killed = None
        while killed is None and time.monotonic() < deadline and victim.poll() is None:
            killed = running_trial_of(study, victim.pid)
            time.sleep(0.1)
        assert killed is not None, f"the victim never started a trial: {victim.communicate()[1][-2000:]}"
        others = [spawn_worker(storage, "shapes-pg", f"machine-{i}", plugins) for i in (1, 2)]
        while len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))) < 2 and \
                time.monotonic() < deadline + 30 and all(w.poll() is None for w in others):
            time.sleep(0.1)  # the others are at work...
        victim.send_signal(signal.SIGKILL)  # ...when it dies mid-trial: one epoch reported, heartbeat running
        victim.wait()
        outputs = [worker.communicate(timeout=100) for worker in others]
    finally:
        for worker in (victim, *others):
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    for worker, (_, err) in zip(others, outputs):
        assert worker.returncode == 0, err[-3000:]
    reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]

    trials = study.get_trials()
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == BUDGET  # exactly the budget, counted over all workers
    lost = trials[killed.number]
    assert lost.state == TrialState.FAIL
    assert lost.user_attrs["reason"] == f"worker lost: no heartbeat for over {GRACE} s"
    assert lost.intermediate_values and lost.user_attrs["learning_curve"] == [lost.intermediate_values[0]]
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0] in finished and retries[0].params == lost.params
    # Every other FAIL is a claim refused before training; every set of parameters finished once.
    assert all(NOT_RUN in t.user_attrs for t in trials if t.state == TrialState.FAIL and t.number != lost.number)
    drawn = [json.dumps(t.params, sort_keys=True) for t in finished]
    assert len(set(drawn)) == len(drawn)
    assert len({t.number for t in finished}) == BUDGET
    # The two survivors ran all the finished trials between them, each its share.
    by_machine = Counter(t.system_attrs[PROCESS]["host"] for t in finished)
    assert set(by_machine) == {"machine-1", "machine-2"}
    assert sorted(n for r in reports for n in r["trials_run"]) == sorted(t.number for t in finished)

    # The best model on disk is the best finished trial, whoever saved it.
    best = max((t for t in finished if t.state == TrialState.COMPLETE), key=lambda t: (t.value, -t.number))
    saved = json.loads((options.run_dir / "best_model" / "config.json").read_text())
    assert (saved["trial_number"], saved["val_accuracy"], saved["study_name"]) == (best.number, best.value, "shapes-pg")

    # The report: refreshed by the workers as they ended, and rebuilt from the storage alone.
    assert any(r["report"] for r in reports)
    analysis = load_analysis(options.run_dir)
    assert analysis["tuning"]["requested_trials"] == BUDGET and analysis["tuning"]["best"]["number"] == best.number
    assert sum(t["state"] in ("COMPLETE", "PRUNED") for t in analysis["tuning"]["trials"]) == BUDGET
    rebuilt = load_tuning_result(storage, "shapes-pg")
    assert [(t.number, t.state, t.value) for t in rebuilt.trials] == \
        [(t["number"], t["state"], t["value"]) for t in analysis["tuning"]["trials"]]
    assert rebuilt.storage == f"postgresql://{'tladvisor'}:***@127.0.0.1:{postgres.port}/studies"
    (options.run_dir / "index.html").unlink()
    page = refresh_report(options.run_dir, rebuilt).read_text()
    assert rerender(options.run_dir).read_text() == page
    # The report names the best trial as the summary and progress do ("#3"); a bare "#3" would also match
    # a CSS colour such as #1f2937, so the whole phrase is checked.
    assert f"worker lost: no heartbeat for over {GRACE} s" in page and f"trial #{best.number}: accuracy" in page
    everything = page + (options.run_dir / "analysis.json").read_text() + json.dumps(study.user_attrs)
    assert PASSWORD not in everything
    assert time.monotonic() - started < 110


def test_an_unknown_database_on_a_running_server_is_one_line(postgres):
    from tladvisor.errors import TLAdvisorError
    from tladvisor.tuning.study import open_storage

    with pytest.raises(TLAdvisorError) as caught:
        open_storage(postgres.url("no_such_database"))
    message = str(caught.value)
    assert message.startswith(f"cannot reach the study storage at 127.0.0.1:{postgres.port} (")
    assert "no_such_database" in message and PASSWORD not in message and "\n" not in message


# --- the speed-up measurement (not a test) -------------------------------------------------------------------


def measure(trials: int, workers: int, per_class: int) -> dict:
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL is not installed")
    server = PostgresServer(bin_dir).start()
    rows = {}
    try:
        for count in sorted({1, workers}):
            root = Path(tempfile.mkdtemp(prefix=f"tladvisor-bench-{count}-"))
            name = f"bench-{count}"
            options, plugins = start_study(root, server.url(), name, trials, per_class=per_class, grace=30)
            began = time.perf_counter()
            procs = [spawn_worker(server.url(), name, socket.gethostname(), plugins) for _ in range(count)]
            outs = [p.communicate() for p in procs]
            wall = time.perf_counter() - began
            for proc, (_, err) in zip(procs, outs):
                if proc.returncode:
                    raise SystemExit(err[-2000:])
            results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
            import optuna

            from tladvisor.tuning.study import open_storage

            stored = optuna.load_study(study_name=name, storage=open_storage(server.url())).get_trials()
            rows[count] = {"wall_s": round(wall, 1), "trials_per_worker": [len(r["trials_run"]) for r in results],
                           "worker_s": [r["seconds"] for r in results], "cpu_s": [r["cpu_s"] for r in results],
                           "finished": sum(t.state.name in ("COMPLETE", "PRUNED") for t in stored),
                           "training_s": round(sum(t.user_attrs.get("duration", 0) for t in stored), 1)}
            shutil.rmtree(root, ignore_errors=True)
    finally:
        server.stop()
    return rows


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="wall time of N workers against 1 on one study (PostgreSQL)")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=40, help="images per class (trial length)")
    parser.add_argument("--epochs", default="3,5", help="epoch range of the search, LOW,HIGH (trial length)")
    args = parser.parse_args()
    os.environ["TLADVISOR_TEST_EPOCHS"] = args.epochs
    rows = measure(args.trials, args.workers, args.per_class)
    for count, row in rows.items():
        print(f"{count} worker(s): {row}")
    print(f"speed-up of {args.workers} workers over 1: {rows[1]['wall_s'] / rows[args.workers]['wall_s']:.2f}x "
          f"(CPU cores: {os.cpu_count()})")
