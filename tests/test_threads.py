"""Thread counts per process: the pure choice, the environment's say, the cgroup quota and the registry."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tladvisor.runtime import threads
from tladvisor.runtime.threads import ProcessRegistry, cgroup_cpu_quota, choose_threads, plan_from_environment


@pytest.mark.parametrize("cores,processes,expected", [
    (2, 1, 2), (2, 2, 1), (2, 3, 1), (16, 1, 16), (16, 3, 5), (16, 4, 4), (1, 5, 1), (0, 0, 1),
])
def test_each_process_gets_its_share_of_the_cores(cores, processes, expected):
    plan = choose_threads(cores, processes)
    assert (plan.intra_op, plan.inter_op, plan.blas) == (expected,) * 3
    assert plan.source == "cores/processes"
    assert plan.intra_op * max(processes, 1) <= max(cores, 1) or plan.intra_op == 1  # never oversubscribed


def test_a_request_wins_even_above_the_share():
    assert choose_threads(2, 2, 4).intra_op == 4
    with pytest.raises(ValueError, match="at least 1"):
        choose_threads(2, 1, 0)


def test_the_environment_is_read_in_order_and_a_planned_omp_count_is_not_a_request():
    share = dict(cores=8, processes=2)
    assert plan_from_environment(None, environ={}, **share).intra_op == 4
    assert plan_from_environment(3, environ={"TLADVISOR_THREADS": "2"}, **share).source == "--threads"
    both = plan_from_environment(None, environ={"TLADVISOR_THREADS": "2", "OMP_NUM_THREADS": "6"}, **share)
    assert (both.intra_op, both.source) == (2, "TLADVISOR_THREADS")
    assert plan_from_environment(None, environ={"OMP_NUM_THREADS": "6"}, **share).intra_op == 6
    inherited = {"OMP_NUM_THREADS": "8", "TLADVISOR_PLANNED_THREADS": "8"}  # a tladvisor parent set it
    assert plan_from_environment(None, environ=inherited, **share).intra_op == 4
    with pytest.raises(ValueError, match="TLADVISOR_THREADS must be a whole number"):
        plan_from_environment(None, environ={"TLADVISOR_THREADS": "many"}, **share)


@pytest.mark.parametrize("files,expected", [
    ({"cpu.max": "200000 100000\n"}, 2),
    ({"cpu.max": "150000 100000\n"}, 2),  # 1.5 CPUs: two threads, each busy part of the time
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "400000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 4),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({}, None),
])
def test_cgroup_quota_v1_and_v2(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_quota(tmp_path) == expected


def test_registry_counts_live_processes_and_forgets_a_killed_one(tmp_path):
    mine = ProcessRegistry(tmp_path)
    mine.register()
    assert mine.count() == 1
    code = ("import sys; from tladvisor.runtime.threads import ProcessRegistry; "
            "ProcessRegistry(sys.argv[1]).register(); print('registered', flush=True); sys.stdin.read()")
    other = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert other.stdout.readline().strip() == "registered"
        assert mine.count() == 2
        other.kill()  # no exit handlers run: only the kernel's release of the lock tells
        other.wait(timeout=10)
        assert mine.count() == 1
        assert sorted(p.name for p in tmp_path.glob("*.lock")) == [f"{os.getpid()}.lock"]
    finally:
        other.kill()
        other.wait(timeout=10)


def test_a_bad_thread_variable_is_one_line_and_exit_2(monkeypatch, capsys):
    from tladvisor.cli import main

    monkeypatch.setattr(threads, "_PLAN", None)
    monkeypatch.setenv("TLADVISOR_THREADS", "0")
    assert main(["analyze", "no-such-data"]) == 2  # checked before the data: the first thing a computing command does
    assert "TLADVISOR_THREADS must be a whole number of at least 1" in capsys.readouterr().err


class _Neighbours:
    """A stand-in registry whose process count the test sets."""

    def __init__(self, processes: int):
        self.processes = processes

    def count(self) -> int:
        return self.processes


def test_an_automatic_share_follows_the_number_of_processes():
    import torch
    from threadpoolctl import threadpool_limits

    neighbours = _Neighbours(2)
    rebalancer = threads.Rebalancer(neighbours, 4, choose_threads(4, 1))
    try:
        assert rebalancer.rebalance().intra_op == 2 and torch.get_num_threads() == 2
        neighbours.processes = 1  # the other run ended: the cores come back
        assert rebalancer.rebalance().intra_op == 4 and torch.get_num_threads() == 4
        neighbours.processes = 3
        rebalancer.next_check = float("inf")  # between two checks the hook leaves the pools alone
        rebalancer._hook(None, ())
        assert torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(1)
        threadpool_limits(limits=1)


def test_the_cli_applies_threads_before_the_command(monkeypatch, tmp_path):
    import torch

    from tladvisor.cli import main

    monkeypatch.setattr(threads, "_PLAN", None)
    monkeypatch.setenv("TLADVISOR_RUNTIME_DIR", str(tmp_path))
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TLADVISOR_PLANNED_THREADS"):
        monkeypatch.setenv(name, "1")  # restored after the test: the plan writes them
    before = torch.get_num_threads()
    try:
        assert main(["--threads", "3", "examples"]) == 0  # a listing command: no share taken, not registered
        assert threads._PLAN is None and list(tmp_path.glob("*.lock")) == []
        assert main(["--threads", "3", "predict", str(tmp_path / "no-model"), "x.png"]) == 2  # a computing one
        assert threads._PLAN.source == "--threads" and torch.get_num_threads() == 3
        assert os.environ["OMP_NUM_THREADS"] == "3"
        assert [p.name for p in tmp_path.glob("*.lock")] == [f"{os.getpid()}.lock"]  # registered
        monkeypatch.setattr(threads, "_PLAN", None)
        assert main(["predict", str(tmp_path / "no-model"), "x.png", "--threads", "2"]) == 2  # after the command too
        assert threads._PLAN.source == "--threads" and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_listing_commands_take_no_thread_share_and_stay_out_of_the_registry(monkeypatch, tmp_path, capsys):
    from tladvisor.cli import main

    monkeypatch.setattr(threads, "_PLAN", None)
    monkeypatch.setenv("TLADVISOR_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("TLADVISOR_THREADS", "0")  # would be refused by a computing command
    for command in (["plugins"], ["backbones"], ["report", str(tmp_path / "no-run")], ["examples"]):
        main(command)
        assert "TLADVISOR_THREADS" not in capsys.readouterr().err, command
        assert threads._PLAN is None and list(tmp_path.glob("*.lock")) == [], command


def test_the_device_line_counts_threads_in_words():
    """#26 item 7: 'cpu (1 threads)'."""
    import torch

    from tladvisor.runtime.device import describe

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert describe(torch.device("cpu")) == "cpu (1 thread)"
        torch.set_num_threads(2)
        assert describe(torch.device("cpu")) == "cpu (2 threads)"
    finally:
        torch.set_num_threads(before)


def _blas_threads() -> set[int]:
    from threadpoolctl import threadpool_info

    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_small_arithmetic_runs_on_one_blas_thread_and_large_keeps_the_process_count():
    import numpy  # noqa: F401  (loads the BLAS library threadpoolctl controls)
    from threadpoolctl import threadpool_limits

    from tladvisor.runtime.threads import SMALL_ARITHMETIC_VALUES, blas_threads_for

    with threadpool_limits(limits=2):
        before = _blas_threads()
        with blas_threads_for(1_050 * 1_280):
            assert _blas_threads() == {1}
        with blas_threads_for(SMALL_ARITHMETIC_VALUES + 1):
            assert _blas_threads() == before
        assert _blas_threads() == before


def test_the_measures_run_their_arithmetic_on_one_blas_thread(monkeypatch):
    import numpy as np
    from threadpoolctl import threadpool_limits

    from tladvisor.measures import scores
    from tladvisor.records import FeatureSet

    seen = []
    monkeypatch.setattr(scores, "probe_scores", lambda target, **kwargs: seen.append(_blas_threads()) or {})
    features = FeatureSet(backbone="x", image_size=32, features=np.random.default_rng(0).normal(size=(40, 8)),
                          labels=np.arange(40) % 2, sample_indices=np.arange(40))
    with threadpool_limits(limits=2):
        scores.measure_feature_set(features)
    assert seen == [{1}]


def test_the_report_scatter_pca_runs_on_one_blas_thread(monkeypatch):
    import numpy as np
    from threadpoolctl import threadpool_limits

    from tladvisor.measures import notes

    seen, svd = [], np.linalg.svd
    monkeypatch.setattr(np.linalg, "svd", lambda *a, **k: seen.append(_blas_threads()) or svd(*a, **k))
    rng = np.random.default_rng(0)
    with threadpool_limits(limits=2):
        points = notes.embedding_2d(rng.normal(size=(50, 16)), np.arange(50) % 3)
    assert seen == [{1}] and len(points) == 50


def test_blas_threads_come_back_when_the_arithmetic_raises():
    import numpy  # noqa: F401
    import pytest
    from threadpoolctl import threadpool_limits

    from tladvisor.runtime.threads import blas_threads_for

    with threadpool_limits(limits=2):
        before = _blas_threads()
        with pytest.raises(ZeroDivisionError):
            with blas_threads_for(10):
                raise ZeroDivisionError
        assert _blas_threads() == before
