"""Worker processes for the benchmarks that end when the process that started them ends.

A ProcessPoolExecutor's workers outlive a killed parent: after `kill` of a run, two orphans went on
training for minutes and skewed the next run's CPU timings. Each worker watches its parent instead.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

POLL_SECONDS = 2.0


def _exit_when_orphaned(parent_pid: int) -> None:
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(POLL_SECONDS)
        os._exit(1)  # the parent is gone: nobody will read this worker's result

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def worker_pool(jobs: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_exit_when_orphaned, initargs=(os.getpid(),))
