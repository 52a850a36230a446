"""Benchmark workers end with the run that started them (benchmarks/common/workers.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PARENT = f"""
import os, sys, time
sys.path.insert(0, {str(ROOT)!r})
from benchmarks.common.workers import worker_pool
if __name__ == "__main__":
    pool = worker_pool(1)
    pool.submit(time.sleep, 0)  # start the worker
    time.sleep(0.5)
    print(*[p for p in pool._processes], flush=True)
    pool.submit(time.sleep, 600)  # a unit that would run for ten minutes
    time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone for our purpose
        return stat.read().split(")")[-1].split()[0] != "Z"


def test_workers_exit_when_the_run_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline().split()[0])
    assert _alive(worker)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 15
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(worker)
