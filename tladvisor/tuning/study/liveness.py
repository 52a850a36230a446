"""Which process runs a trial, and whether it still lives: a process identity that tells a dead worker on
this machine, and the heartbeat a running trial records on RDB storages (any machine)."""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

from tladvisor.text import one_line

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 30  # seconds between a running trial's heartbeats (RDB storages)
GRACE_PERIOD = 120  # a RUNNING trial without a heartbeat for this long belongs to a lost worker

# Trial attributes.
WORKER = "worker"  # user attr: "host:pid" of the process that ran the trial (shown in optuna-dashboard)
PROCESS = "tladvisor_process"  # system attr: the process identity used to tell a dead worker on this machine


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a process from /proc, or None where unavailable."""
    text = _read_text(f"/proc/{pid}/stat")
    if ")" not in text:
        return None
    after = text.rsplit(")", 1)[1].split()  # the command name may hold spaces and parentheses
    try:
        return after[0], int(after[19])
    except (IndexError, ValueError):
        return None


def process_identity() -> dict[str, Any]:
    """What tells this process apart from any other, on any machine, at any time."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    stat = _proc_stat(os.getpid())
    return {"host": socket.gethostname(), "boot": _read_text("/proc/sys/kernel/random/boot_id"),
            "pidns": namespace, "pid": os.getpid(), "started": stat[1] if stat else None}


def process_gone(identity: Any) -> bool:
    """True when ``identity`` is a process of this machine (same host, boot, PID namespace) that has ended.

    False whenever it cannot be told from here (another machine, another container): heartbeats decide then.
    """
    if not isinstance(identity, dict):
        return False
    me = process_identity()
    if any(identity.get(key) != me[key] for key in ("host", "boot", "pidns")):
        return False
    pid = identity.get("pid")
    if not isinstance(pid, int) or pid <= 0 or pid == me["pid"]:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # it exists, owned by another user
    except OSError:
        return False
    stat = _proc_stat(pid)
    if stat is None:
        return False
    state, started = stat
    if state in ("Z", "X"):  # killed, not yet reaped by its parent
        return True
    return identity.get("started") is not None and started != identity["started"]  # the pid was reused


def worker_label(identity: dict[str, Any]) -> str:
    return f"{identity.get('host')}:{identity.get('pid')}"


class Heartbeat:
    """Records a trial's heartbeat now and then every ``interval`` seconds, from a daemon thread."""

    def __init__(self, storage: Any, trial_id: int, interval: int | None):
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "Heartbeat":
        if self.interval is not None:
            self.storage.record_heartbeat(self.trial_id)  # watchable from the first instant
            self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{self.trial_id}", daemon=True)
            self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception as error:  # a database hiccup: the next beat may pass; the grace period covers it
                log.warning("heartbeat of trial %s not recorded: %s", self.trial_id, one_line(error))

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
