"""Thread counts that fit the machine: each tladvisor process takes its share of the cores.

Two processes that each run as many threads as there are cores slow each other down several
times over (OpenMP threads spin at barriers while the other process holds the core). So every
``tladvisor`` process, at start (:func:`configure_threads`, called from the CLI entry, which the
``worker`` command goes through too), chooses one count and gives it to torch's intra-op pool, its
inter-op pool, OpenMP and the BLAS libraries (environment variables for libraries not loaded yet,
threadpoolctl for those already loaded).

The count, first match wins: ``--threads N``; the ``TLADVISOR_THREADS`` variable; ``OMP_NUM_THREADS``
(kept when a user or a scheduler set it); otherwise the cores this process may use (CPU affinity and
the cgroup CPU quota, the smaller) divided by the number of tladvisor processes running on this
machine for this user, itself included, at least 1, re-counted every few seconds while the process
computes (:class:`Rebalancer`).

Processes are counted through a registry of lock files (:class:`ProcessRegistry`): each process holds
an exclusive ``flock`` on its own file for as long as it lives. The kernel drops the lock when a
process ends, however it ends, so a crashed run is never counted and a reused pid cannot be
mistaken for it; unlocked files are removed by whoever finds them. A process that started alone
drops to its share within ``REBALANCE_SECONDS`` of a second one starting (and takes the cores back
when it ends); OpenMP threads wait passively (``OMP_WAIT_POLICY=PASSIVE`` unless set), so that the
brief oversubscription in between costs a fair share rather than spinning. An explicit count
(``--threads``, ``TLADVISOR_THREADS``, ``OMP_NUM_THREADS``) is never changed.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

THREADS_ENV = "TLADVISOR_THREADS"
REGISTRY_ENV = "TLADVISOR_RUNTIME_DIR"  # where the lock files live (default: a per-user temp folder)
_BLAS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
_PLANNED_ENV = "TLADVISOR_PLANNED_THREADS"  # marks OMP_NUM_THREADS as set by a plan, for child processes


@dataclass(frozen=True)
class ThreadPlan:
    """The counts one process uses, and where they came from (for ``--debug`` and the benchmarks)."""

    intra_op: int  # torch.set_num_threads: the threads one operator (a convolution, a matmul) uses
    inter_op: int  # torch.set_num_interop_threads: operators run side by side (TorchScript forks)
    blas: int  # OpenMP, OpenBLAS/MKL under numpy, scipy and scikit-learn
    source: str  # "--threads", TLADVISOR_THREADS, OMP_NUM_THREADS or "cores/processes"


def choose_threads(cores: int, processes: int, requested: int | None = None, *,
                   source: str = "requested") -> ThreadPlan:
    """The thread counts for one of ``processes`` tladvisor processes sharing ``cores`` cores.

    A request wins as given (a user may oversubscribe on purpose). Otherwise each process gets
    ``cores // processes`` (the remainder stays idle rather than make one process's threads wait on a
    shared core), at least 1. The inter-op pool gets the same count: tladvisor runs one operator at
    a time, so it only needs to be no larger than the share. BLAS runs between torch operators, never
    beside them, and gets the same count too.
    """
    if requested is not None:
        if requested < 1:
            raise ValueError(f"thread count must be at least 1, got {requested}")
        share = requested
    else:
        share = max(1, max(1, cores) // max(1, processes))
        source = "cores/processes"
    return ThreadPlan(intra_op=share, inter_op=share, blas=share, source=source)


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by the cgroup CPU quota (containers)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    return max(1, min(cores, quota) if quota is not None else cores)


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """CPUs allowed by the cgroup quota, rounded up (``None`` when unlimited or not on Linux).

    cgroup v2: ``cpu.max`` holds ``"<quota> <period>"`` or ``"max <period>"``; v1:
    ``cpu/cpu.cfs_quota_us`` (-1 = unlimited) and ``cpu/cpu.cfs_period_us``.
    """
    try:
        fields = (root / "cpu.max").read_text().split()
        quota, period = fields[0], fields[1]
    except (OSError, IndexError):
        try:
            quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    try:
        quota_us, period_us = float(quota), float(period)
    except ValueError:  # "max"
        return None
    if quota_us <= 0 or period_us <= 0:
        return None
    return max(1, math.ceil(quota_us / period_us))


class ProcessRegistry:
    """Live tladvisor processes of this user on this machine, one ``flock``-held file each."""

    def __init__(self, folder: Path | None = None):
        default = Path(tempfile.gettempdir()) / f"tladvisor-{_user_id()}" / "processes"
        self.folder = Path(folder or os.environ.get(REGISTRY_ENV) or default)
        self._handle = None

    def register(self) -> None:
        """Hold a lock file until this process ends (no-op where ``fcntl`` or the folder is unavailable)."""
        if self._handle is not None or _fcntl() is None:
            return
        fcntl = _fcntl()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            # Lock a temporary name, then rename: a counter never sees the final name unlocked
            # (it would take the file for a dead process's and remove it).
            temporary = self.folder / f".{os.getpid()}.{id(self)}.tmp"
            handle = open(temporary, "w")  # held open (and locked) for the process's lifetime
        except OSError as error:
            log.debug("process registry unavailable (%s): counting this process alone", error)
            return
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.replace(temporary, self.folder / f"{os.getpid()}.lock")
        except OSError as error:
            handle.close()
            temporary.unlink(missing_ok=True)
            log.debug("process registry unavailable (%s): counting this process alone", error)
            return
        self._handle = handle
        atexit.register(self._unregister, self.folder / f"{os.getpid()}.lock")

    def _unregister(self, path: Path) -> None:
        if path.stem != str(os.getpid()):
            return  # a forked child running its parent's exit handlers: the parent is still alive
        path.unlink(missing_ok=True)  # tidiness only: a file left by a crash is unlocked, hence not counted
        self._handle.close()

    def count(self) -> int:
        """Live registered processes (this one included when registered); stale files are removed."""
        fcntl = _fcntl()
        if fcntl is None:
            return 1
        live = 0
        try:
            entries = list(self.folder.glob("*.lock"))
        except OSError:
            return 1
        for entry in entries:
            try:
                with open(entry, "a") as probe:
                    try:
                        fcntl.flock(probe.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        live += 1  # its owner holds the lock: running
                        continue
                    entry.unlink(missing_ok=True)  # nobody holds it: its process has ended
            except OSError:
                continue
        return max(1, live)


def _fcntl():
    try:
        import fcntl
    except ImportError:  # Windows: no registry, each process counts itself alone
        return None
    return fcntl


def _user_id() -> str:
    return str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")


_PLAN: ThreadPlan | None = None
REBALANCE_SECONDS = 2.0  # how often a process with an automatic share re-counts its neighbours


def configure_threads(requested: int | None = None) -> ThreadPlan:
    """Register this process, choose its :class:`ThreadPlan` and apply it to torch, OpenMP and BLAS.

    Call once at process start, before heavy work (later calls return the first plan). Torch's
    inter-op count can only be set before its first parallel work; if that has happened it is left.
    An automatic share (no request) is kept current by :class:`Rebalancer`.
    """
    global _PLAN
    if _PLAN is not None:
        return _PLAN
    registry = ProcessRegistry()
    registry.register()
    cores = available_cores()
    plan = plan_from_environment(requested, cores=cores, processes=registry.count())
    apply_plan(plan)
    if plan.source == "cores/processes":
        Rebalancer(registry, cores, plan).install()
    _PLAN = plan
    log.debug("threads: %s", plan)
    return plan


class Rebalancer:
    """Re-counts the processes at most every ``REBALANCE_SECONDS`` and resizes this process's pools.

    Runs from a global module forward pre-hook, so in the thread that runs the model (OpenMP and
    torch's thread count are per calling thread) and only while the process computes; between two
    checks a forward costs one clock read. A process that started alone thus drops to its share
    within seconds of a second run starting, and takes the cores back when that run ends.
    """

    def __init__(self, registry: ProcessRegistry, cores: int, plan: ThreadPlan):
        self.registry, self.cores, self.plan = registry, cores, plan
        self.pid, self.thread = os.getpid(), threading.get_ident()
        self.next_check = 0.0

    def install(self) -> None:
        from torch.nn.modules.module import register_module_forward_pre_hook

        register_module_forward_pre_hook(self._hook)

    def _hook(self, _module, _inputs) -> None:
        now = time.monotonic()
        if now < self.next_check or os.getpid() != self.pid or threading.get_ident() != self.thread:
            return  # not yet, or a forked data-loader worker / another thread: not ours to resize
        self.next_check = now + REBALANCE_SECONDS
        self.rebalance()

    def rebalance(self) -> ThreadPlan:
        plan = choose_threads(self.cores, self.registry.count())
        if plan.intra_op != self.plan.intra_op:
            import torch
            from threadpoolctl import threadpool_limits

            torch.set_num_threads(plan.intra_op)
            threadpool_limits(limits=plan.blas)
            log.debug("threads: rebalanced to %s", plan)
            self.plan = plan
        return self.plan


def plan_from_environment(requested: int | None, *, cores: int, processes: int,
                          environ: dict[str, str] | None = None) -> ThreadPlan:
    """:func:`choose_threads` with the request taken from ``--threads``, then the environment."""
    environ = os.environ if environ is None else environ
    if requested is not None:
        return choose_threads(cores, processes, requested, source="--threads")
    for name in (THREADS_ENV, "OMP_NUM_THREADS"):
        value = environ.get(name, "").strip()
        if name == "OMP_NUM_THREADS" and value and value == environ.get(_PLANNED_ENV):
            continue  # set by a tladvisor parent's plan, not by a user: this process counts for itself
        if value:
            try:
                return choose_threads(cores, processes, int(value), source=name)
            except ValueError:
                raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}") from None
    return choose_threads(cores, processes)


def apply_plan(plan: ThreadPlan) -> None:
    """Give ``plan`` to every thread pool: env variables first, so libraries loaded later read them."""
    for name in _BLAS_ENV:
        os.environ[name] = str(plan.blas)
    os.environ[_PLANNED_ENV] = str(plan.blas)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads sleep instead of spinning
    import torch  # after the variables: its OpenMP runtime reads them when it starts

    torch.set_num_threads(plan.intra_op)
    if torch.get_num_interop_threads() != plan.inter_op:
        try:
            torch.set_num_interop_threads(plan.inter_op)
        except RuntimeError:  # already used in this process: it keeps its size
            pass
    from threadpoolctl import threadpool_limits  # numpy/scipy/sklearn libraries already loaded

    threadpool_limits(limits=plan.blas)


SMALL_ARITHMETIC_VALUES = 1 << 24  # 16.8 M values: e.g. 8,000 embeddings of 2,048 dimensions


@contextmanager
def blas_threads_for(values: int) -> Iterator[None]:
    """One BLAS and OpenMP thread for numpy, scipy and scikit-learn arithmetic on at most
    :data:`SMALL_ARITHMETIC_VALUES` values; on more, the process keeps its count.

    Many small products and factorisations (probe fits on cross-validation folds, LogME's subsets) pay the
    threads' hand-offs more than they gain: on this project's 2-core VM the probes on 1,050 x 1,280 features
    took 5.1-5.4 s at two BLAS threads and 1.2-1.3 s at one, the transferability scores 1.6 s and 1.1-1.5 s
    (docs/benchmarks.md, "The measure stage").
    """
    if values > SMALL_ARITHMETIC_VALUES:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield
