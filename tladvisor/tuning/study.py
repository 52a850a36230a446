"""The Optuna study: resumable search from the recommendation, shared by any number of worker processes.

Re-running the same command continues the same study (``load_if_exists``) until it holds the requested
number of finished trials (COMPLETE and PRUNED count; FAIL does not, up to a cap so a broken setup
cannot loop). Finished trials are never repeated: the sampler is seeded with the seed plus the number
of trials already stored, so a resumed run draws new points instead of replaying the first run's.

Many workers, one study (``tladvisor analyze`` plus any number of ``tladvisor worker``, see
:mod:`tladvisor.tuning.worker` and docs/scale-out.md):

* **What a worker needs** is stored in the study's ``user_attrs`` by the process that runs ``analyze``
  (:meth:`Tuner.describe`): the options, the recommendation, the backbone names, a fingerprint of the
  data and the heartbeat settings. ``options.trials`` there is the budget every worker reads live.
* **The budget is global and exact.** A *claim* is a trial that is COMPLETE, PRUNED, RUNNING or WAITING.
  Before asking, a worker checks that the claims leave room; after asking it keeps its trial only if
  fewer than ``budget`` claims have a smaller trial number, else it closes the trial at once as
  FAIL with the user attribute ``not_run`` (it never trained; the report leaves it out). Storages
  number trials in creation order under a lock, and a claim only ever leaves (by failing), so a trial's
  count of smaller-numbered claims can only fall: two workers racing for the last slot agree on who
  won, and the study can never hold more than ``budget`` finished trials. Workers whose slot is taken
  wait (poll) until the budget is met instead of leaving, so a trial of a worker that dies is still
  retried by someone.
* **Crashed workers.** Each trial records its process (host, boot id, PID namespace, pid, start time)
  and, on RDB storages (PostgreSQL, SQLite...), a heartbeat every ``heartbeat_interval`` seconds. A
  RUNNING trial whose heartbeat is older than ``grace_period``, or whose process on this same machine no
  longer exists, is closed as FAIL (reason "worker lost ...") by whichever worker notices first (the
  state change is atomic in the storage, so exactly one does), and that one queues it again as a
  WAITING trial with the same parameters (system attributes ``failed_trial``/``retry_history``, as
  Optuna's ``RetryHeartbeatStaleTrialCallback`` writes them; at most :data:`MAX_RETRIES` times). A worker
  that comes back after its trial was closed finds the trial finished and drops its result: nothing is
  counted twice.
* **The best model** is compared and saved under an exclusive file lock beside it
  (``<run>/best_model.lock``), so two workers finishing at once cannot interleave their renames, and a
  slower, worse trial cannot overwrite a better model saved meanwhile by another worker.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import math
import os
import socket
import threading
import time
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from tladvisor import __version__
from tladvisor.backbones import BackboneSpec
from tladvisor.device import describe, pick_device
from tladvisor import interrupts
from tladvisor.errors import TLAdvisorError
from tladvisor.plugins import one_line
from tladvisor.records import AnalysisOptions, Dataset, Recommendation, TuningResult, to_jsonable
from tladvisor.tuning import model_io, results
from tladvisor.tuning.data import TuningData
from tladvisor.tuning.search import backbone_choices, recommendation_params
from tladvisor.tuning.strategies import TrialConfig
from tladvisor.tuning.trainer import TrainedModel, TrialFailed, train_trial

try:
    import fcntl
except ImportError:  # Windows: one process per run folder there
    fcntl = None

log = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
CLAIMS = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
"""Trials that hold a place in the budget: finished ones, and those running or queued to run."""
DEFAULT_STUDY_NAME = "tladvisor"

HEARTBEAT_INTERVAL = 30  # seconds between a running trial's heartbeats (RDB storages)
GRACE_PERIOD = 120  # a RUNNING trial without a heartbeat for this long belongs to a lost worker
MAX_RETRIES = 3  # a trial whose worker died this often is not queued again (it may be what kills them)
MAX_POLL_INTERVAL = 5.0  # seconds a worker waits between looks while the last trials run elsewhere
SQLITE_BUSY_TIMEOUT = 60  # seconds a SQLite writer waits for another process's lock instead of failing
CONNECT_TIMEOUT = 10  # seconds to reach a database server

# Study user_attrs: what a worker on another machine needs to join (written by Tuner.describe).
ATTR_FORMAT = "tladvisor_study_format"
ATTR_OPTIONS = "options"
ATTR_RECOMMENDATION = "recommendation"
ATTR_BACKBONES = "backbones"
ATTR_DATASET = "dataset"
ATTR_HEARTBEAT = "heartbeat"
STUDY_FORMAT = 1

# Trial attributes.
NOT_RUN = "not_run"  # user attr: the trial lost the race for the last slots and never trained
WORKER = "worker"  # user attr: "host:pid" of the process that ran the trial (shown in optuna-dashboard)
PROCESS = "tladvisor_process"  # system attr: the process identity used to tell a dead worker on this machine

_PATH_OPTIONS = ("source", "out_dir", "cache_dir", "source_sample", "plugins_dir", "run_dir")


# --- storage ---------------------------------------------------------------------------------------------


def storage_url(options: AnalysisOptions) -> str | None:
    """``options.storage``, else SQLite in the run folder, else None (in memory: nothing to resume)."""
    if options.storage:
        return options.storage
    if options.run_dir is not None:
        return f"sqlite:///{(Path(options.run_dir) / 'study.db').resolve()}"
    return None


def is_journal_path(url: str) -> bool:
    """A storage given as a plain file path (no ``scheme://``) is an Optuna journal file."""
    return "://" not in url


def display_url(url: str | None) -> str:
    """The storage URL without its password: it ends up in analysis.json and the report."""
    if url is None:
        return "in-memory"
    if is_journal_path(url):
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL: show only its scheme
        return url.split("://", 1)[0] + "://..."


def _where(url: str) -> str:
    """The host:port (or file) a storage URL points at, for error messages (never the password)."""
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:
        return display_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or "an in-memory SQLite database"
    default_ports = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}
    port = parsed.port or default_ports.get(parsed.get_backend_name())
    return f"{parsed.host or 'localhost'}:{port}" if port else (parsed.host or "localhost")


def _ensure_folder_of(url: str | None) -> None:
    if not url:
        return
    prefix = "sqlite:///"
    if is_journal_path(url):
        Path(url).expanduser().parent.mkdir(parents=True, exist_ok=True)
    elif url.startswith(prefix) and url[len(prefix):] not in ("", ":memory:"):
        Path(url[len(prefix):]).parent.mkdir(parents=True, exist_ok=True)


NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "ceph", "glusterfs",
                       "fuse.sshfs", "fuse.glusterfs", "9p")


def network_filesystem(path: str | Path, mounts_file: str | Path = "/proc/mounts") -> str | None:
    """The type of the network file system ``path`` is on (``nfs``, ``lustre``...), or None (local, or unknown)."""
    try:
        mounts = Path(mounts_file).read_text().splitlines()
    except OSError:
        return None
    target = str(Path(path).expanduser().resolve())
    best, kind = "", None
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount_point = parts[1].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) > len(best):
            best, kind = mount_point, parts[2]
    return kind if kind in NETWORK_FILESYSTEMS else None


def open_storage(url: str | None, *, heartbeat_interval: int | None = None,
                 grace_period: int | None = None) -> optuna.storages.BaseStorage | None:
    """The Optuna storage behind ``url``; None for in-memory.

    ``postgresql://user:password@host:port/db`` (or any SQLAlchemy URL) and ``sqlite:///path`` give an
    RDBStorage with heartbeats every ``heartbeat_interval`` s; a plain file path gives a JournalStorage
    (one file, safe for several processes on one machine or a shared file system; no heartbeats, so a
    lost worker is noticed only from the same machine). A server that cannot be reached, a missing
    database driver or a malformed URL is a one-line :class:`TLAdvisorError` without the password.
    """
    if url is None:
        return None
    _ensure_folder_of(url)
    if is_journal_path(url):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(url).expanduser()
        if path.suffix.lower() in (".db", ".sqlite", ".sqlite3"):
            raise TLAdvisorError(f"storage '{url}' looks like a SQLite file: write it as sqlite:///{path.resolve()} "
                                 "(a plain path is read as an Optuna journal file)")
        try:
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as error:
            raise TLAdvisorError(f"cannot open the journal storage {path}: {error.strerror or error}; "
                                 "check the folder exists and is writable") from None
    import sqlalchemy.exc

    if url.startswith("sqlite"):
        # Several processes on one SQLite file take turns for its write lock; wait rather than fail.
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT}}
        database = url.split(":///", 1)[1] if ":///" in url else ""
        kind = network_filesystem(Path(database).parent) if database and database != ":memory:" else None
        if kind:
            log.warning("the SQLite study %s is on a network file system (%s), where SQLite's locks are unreliable "
                        "between machines; use PostgreSQL, or a journal file (--storage PATH.journal)", database, kind)
    elif url.startswith("postgresql"):
        engine_kwargs = {"pool_pre_ping": True, "connect_args": {"connect_timeout": CONNECT_TIMEOUT}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs,
                                              heartbeat_interval=heartbeat_interval, grace_period=grace_period)
    except ImportError:
        raise TLAdvisorError(f"no database driver for storage {display_url(url)}: for PostgreSQL install it with "
                             "pip install 'tladvisor[postgres]' (psycopg)") from None
    except sqlalchemy.exc.ArgumentError as error:
        raise TLAdvisorError(f"storage URL {display_url(url)} is not valid ({one_line(error)}); write it as "
                             "postgresql://USER:PASSWORD@HOST:PORT/DATABASE or sqlite:///PATH") from None
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as error:
        cause = getattr(error, "orig", None) or error
        reason = " ".join(str(cause).split("\n")[0].split())
        raise TLAdvisorError(f"cannot reach the study storage at {_where(url)} ({reason}); check that the database "
                             "server is running and accepts connections from this machine, and the user, password "
                             "and database name in --storage") from None


def heartbeat_enabled(storage: Any) -> bool:
    return callable(getattr(storage, "get_heartbeat_interval", None)) and storage.get_heartbeat_interval() is not None


def make_pruner() -> optuna.pruners.BasePruner:
    # Median rather than Hyperband: Hyperband's brackets pay off over many trials of one fixed
    # length, while a CPU budget here is tens of trials whose lengths (``epochs``) vary. A trial is
    # stopped when its best accuracy so far is below the median of the finished trials at the same
    # epoch; judging starts once two trials have finished, and not before the third epoch, as the
    # first epochs are learning-rate warm-up for every trial.
    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)


def make_sampler(seed: int, n_existing: int, budget: int) -> optuna.samplers.TPESampler:
    # Offsetting the seed by the stored trial count keeps a resumed study reproducible without
    # replaying the random start-up points of the run before it. (Workers add their own offset too.)
    startup = max(3, min(10, budget // 3 if budget else 10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # group=True: the space is conditional (freeze_depth only for partial_freeze...); grouping
        # models each sub-space jointly instead of falling back to independent sampling. TPE's
        # constant liar (on by default) keeps parallel workers away from each other's running points.
        return optuna.samplers.TPESampler(seed=seed + n_existing, n_startup_trials=startup,
                                          multivariate=True, group=True)


# --- which process runs a trial --------------------------------------------------------------------------


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


class _Superseded(Exception):
    """This worker's trial was closed by another worker (it presumed this one dead): drop the result."""


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created if missing), held for the ``with`` block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# --- what the study holds for its workers ----------------------------------------------------------------


def dataset_fingerprint(dataset: Dataset) -> str:
    """Classes, and every image's path (relative to the root), label and content hash: the same data
    mounted elsewhere has the same fingerprint, a different copy does not."""
    root = Path(dataset.root)

    def relative(path: Path) -> str:
        try:
            return Path(path).relative_to(root).as_posix()
        except ValueError:
            return Path(path).name

    digest = hashlib.sha256("\x1f".join(dataset.classes).encode())
    for name, sample in sorted(((relative(s.path), s) for s in dataset.samples), key=lambda pair: pair[0]):
        digest.update(f"\x1e{name}\x1f{sample.label}\x1f{sample.split}\x1f{sample.digest}".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class StudyDescription:
    """What :meth:`Tuner.describe` stored in a study: everything a worker needs to join it."""

    options: AnalysisOptions
    recommendation: Recommendation
    backbones: tuple[str, ...]
    dataset: dict[str, Any]  # root, n_samples, n_classes, classes, fingerprint
    heartbeat_interval: int | None
    grace_period: int | None

    @property
    def budget(self) -> int:
        return self.options.trials


def options_from_json(data: dict[str, Any]) -> AnalysisOptions:
    known = {f.name for f in fields(AnalysisOptions)}
    values = {key: value for key, value in data.items() if key in known}
    for key in _PATH_OPTIONS:
        if values.get(key) is not None:
            values[key] = Path(values[key])
    values["backbones"] = tuple(values.get("backbones") or ())
    return AnalysisOptions(**values)


def recommendation_from_json(data: dict[str, Any]) -> Recommendation:
    known = {f.name for f in fields(Recommendation)}
    values = {key: value for key, value in data.items() if key in known}
    for key in ("rationale", "ranking", "warnings"):
        values[key] = tuple(values.get(key) or ())
    return Recommendation(**values)


def read_description(study: optuna.Study) -> StudyDescription:
    """The description a ``tladvisor analyze`` run stored in ``study``; a one-line error when there is none."""
    attrs = study.user_attrs
    if not isinstance(attrs.get(ATTR_OPTIONS), dict) or not isinstance(attrs.get(ATTR_RECOMMENDATION), dict):
        raise TLAdvisorError(f"study '{study.study_name}' was not started by `tladvisor analyze` (it holds no "
                             "options or recommendation); start it with tladvisor analyze DATA --trials N "
                             "--storage URL --study NAME")
    if int(attrs.get(ATTR_FORMAT, STUDY_FORMAT)) > STUDY_FORMAT:
        raise TLAdvisorError(f"study '{study.study_name}' was written by a newer tladvisor "
                             f"({attrs.get('tladvisor_version')}); upgrade tladvisor on this machine")
    heartbeat = attrs.get(ATTR_HEARTBEAT) or {}
    return StudyDescription(
        options=options_from_json(attrs[ATTR_OPTIONS]),
        recommendation=recommendation_from_json(attrs[ATTR_RECOMMENDATION]),
        backbones=tuple(attrs.get(ATTR_BACKBONES) or ()),
        dataset=dict(attrs.get(ATTR_DATASET) or {}),
        heartbeat_interval=heartbeat.get("interval"), grace_period=heartbeat.get("grace"))


def tuning_result(study: optuna.Study, *, storage: str, requested_trials: int, device: str,
                  model_dir: Path | None) -> TuningResult:
    """The study as the report shows it. Trials that never ran (``not_run``) are left out."""
    trials = [t for t in study.get_trials(deepcopy=False) if NOT_RUN not in t.user_attrs]
    best = results.best_complete(trials)
    if model_dir is not None and not Path(model_dir).parent.is_dir():
        model_dir = None  # the run folder is on another machine
    if model_dir is not None:
        with file_lock(_lock_path(model_dir)):
            if model_io.read_config(model_dir) is None:
                model_dir = None
    return TuningResult(
        study_name=study.study_name,
        storage=storage,
        requested_trials=requested_trials,
        trials=tuple(results.trial_record(t) for t in trials),
        best=results.trial_record(best) if best is not None else None,
        best_model_dir=str(model_dir) if model_dir is not None else None,
        device=device,
        param_importances=results.param_importances(study),
        best_by_strategy=results.best_by_strategy(trials),
    )


def _lock_path(model_dir: Path) -> Path:
    return Path(model_dir).with_name(Path(model_dir).name + ".lock")


# --- the tuner -------------------------------------------------------------------------------------------


def _close_interrupted(study: optuna.Study, trial: optuna.Trial, close) -> None:
    """Record a trial stopped by SIGINT/SIGTERM, unless it was recorded already (the signal was held back
    until its result was kept). A failure here must not hide the stop: the next run settles the trial."""
    try:
        if study._storage.get_trial(trial._trial_id).state == TrialState.RUNNING:
            close()
    except Exception:
        log.debug("trial %d left open; the next run closes it", trial.number, exc_info=True)


class Tuner:
    """Runs (or continues, or joins) the study described by ``options``; ``run`` returns a TuningResult.

    ``host`` is the PluginHost whose ``search_space`` hook draws each trial (a fresh one from
    ``options.plugins_dir`` when None). ``max_failures`` caps the FAIL trials of one run (default:
    ``max(5, budget)``); ``patience`` is the early-stopping patience in epochs. ``heartbeat_interval``
    and ``grace_period`` (seconds) are stored in a study this Tuner describes, so every worker judges
    the others by the same clock; ``poll_interval`` is how often a worker with nothing to run looks
    again (default: the heartbeat interval, at most 5 s). ``max_trials`` caps the trials this process
    runs (None: until the study's budget is met).
    """

    def __init__(self, options: AnalysisOptions, *, host=None, patience: int = 3, max_failures: int | None = None,
                 heartbeat_interval: int | None = HEARTBEAT_INTERVAL, grace_period: int | None = GRACE_PERIOD,
                 poll_interval: float | None = None, max_trials: int | None = None):
        self.options = options
        self.host = host
        self.patience = patience
        self.max_failures = max_failures
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.poll_interval = poll_interval
        self.max_trials = max_trials
        self.best_saved = -math.inf
        self.identity = process_identity()
        self.trials_run: list[int] = []  # numbers of the trials this process trained (any final state)

    # --- the study -------------------------------------------------------------------------------------

    def open_study(self, *, sampler_offset: int = 0) -> optuna.Study:
        url = storage_url(self.options)
        storage = open_storage(url, heartbeat_interval=self.heartbeat_interval, grace_period=self.grace_period)
        study = optuna.create_study(storage=storage, study_name=self.options.study_name or DEFAULT_STUDY_NAME,
                                    direction="maximize", load_if_exists=True, pruner=make_pruner())
        study.sampler = make_sampler(self.options.seed + sampler_offset, len(study.get_trials(deepcopy=False)),
                                     self.options.trials)
        return study

    @property
    def model_dir(self) -> Path | None:
        return Path(self.options.run_dir) / "best_model" if self.options.run_dir is not None else None

    def _saved_config(self) -> dict[str, Any] | None:
        if self.model_dir is None:
            return None
        with file_lock(_lock_path(self.model_dir)):
            return model_io.read_config(self.model_dir)

    def _check_same_backbones(self, study: optuna.Study, backbones: Sequence[BackboneSpec]) -> None:
        choices = backbone_choices(backbones)
        for trial in study.get_trials(deepcopy=False):
            stored = trial.distributions.get("backbone")
            if stored is not None and list(stored.choices) != choices:
                raise TLAdvisorError(
                    f"study '{study.study_name}' was searched over backbones {list(stored.choices)}, not {choices}; "
                    "use the same --backbones or another --study name")

    def describe(self, study: optuna.Study, dataset: Dataset, recommendation: Recommendation,
                 backbones: Sequence[BackboneSpec]) -> None:
        """Store in the study what a worker needs to join it (options with the budget, advice, data)."""
        options = to_jsonable(self.options)
        options["storage"] = display_url(storage_url(self.options))  # never the password
        for key in _PATH_OPTIONS:  # absolute: a worker starts from another folder, maybe another machine
            if options.get(key) is not None:
                options[key] = str(Path(options[key]).expanduser().resolve())
        attrs = {
            ATTR_FORMAT: STUDY_FORMAT,
            "tladvisor_version": __version__,
            ATTR_OPTIONS: options,
            ATTR_RECOMMENDATION: to_jsonable(recommendation),
            ATTR_BACKBONES: backbone_choices(backbones),
            ATTR_DATASET: {"root": str(Path(dataset.root).resolve()), "n_samples": len(dataset.samples),
                           "n_classes": len(dataset.classes), "classes": list(dataset.classes),
                           "fingerprint": dataset_fingerprint(dataset)},
            ATTR_HEARTBEAT: {"interval": self.heartbeat_interval, "grace": self.grace_period},
        }
        for key, value in attrs.items():
            if study.user_attrs.get(key) != value:
                study.set_user_attr(key, value)

    def budget(self, study: optuna.Study) -> int:
        """The study's budget as stored now (a later ``analyze --trials N`` may raise it), else the options'."""
        stored = study.user_attrs.get(ATTR_OPTIONS)
        if isinstance(stored, dict) and isinstance(stored.get("trials"), int):
            return stored["trials"]
        return self.options.trials

    # --- closing what dead workers left behind ---------------------------------------------------------

    def settle_interrupted(self, study: optuna.Study) -> None:
        """Close the RUNNING trials of workers that are gone, and queue each again with its parameters.

        A RUNNING trial's worker is gone when (1) its heartbeat is older than the grace period (RDB
        storages, any machine), (2) its process was on this machine and has ended, or (3) it records no
        process at all (asked outside tladvisor's workers, or by a version before them: nobody can
        ever tell it is alive). Such a trial becomes FAIL, unless the model it saved is the best model
        on disk: then it was killed between saving and recording its value, and is recorded COMPLETE.
        Live workers' trials are left alone.
        """
        storage = study._storage  # Optuna has no public API for another process's trial
        stale: set[int] = set()
        if heartbeat_enabled(storage) and hasattr(storage, "_get_stale_trial_ids"):
            stale = set(storage._get_stale_trial_ids(study._study_id))
        orphans = []
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            identity = trial.system_attrs.get(PROCESS)
            if trial._trial_id in stale:
                grace = self.grace_period or 2 * (self.heartbeat_interval or 0)
                orphans.append((trial, f"worker lost: no heartbeat for over {grace} s"))
            elif identity is None:
                orphans.append((trial, "interrupted"))
            elif process_gone(identity):
                orphans.append((trial, f"worker lost: process {worker_label(identity)} has ended"))
        saved = self._saved_config() if orphans else None
        for trial, reason in orphans:
            self._close_orphan(study, trial, reason, saved)

    def _close_orphan(self, study: optuna.Study, trial: FrozenTrial, reason: str,
                      saved: dict[str, Any] | None) -> None:
        storage = study._storage
        try:
            if saved and saved.get("study_name") == study.study_name and saved.get("trial_number") == trial.number:
                # Killed between saving the model and recording the value: the work is complete.
                storage.set_trial_user_attr(trial._trial_id, "learning_curve", saved.get("learning_curve", []))
                storage.set_trial_state_values(trial._trial_id, TrialState.COMPLETE, [float(saved["val_accuracy"])])
                return
            storage.set_trial_user_attr(trial._trial_id, "reason", reason)
            storage.set_trial_user_attr(trial._trial_id, "learning_curve", list(results.learning_curve(trial)))
            if not storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                return
        except UpdateFinishedTrialError:
            return  # another worker closed it first, and queued the retry if one was due
        log.info("trial %d closed: %s", trial.number, reason)
        if trial.params:  # a trial that never drew its parameters has nothing to repeat
            self._retry(study, trial)

    @staticmethod
    def _retry(study: optuna.Study, trial: FrozenTrial) -> None:
        history = [*trial.system_attrs.get("retry_history", []), trial.number]
        if len(history) > MAX_RETRIES:
            log.warning("trial %d lost its worker %d times; not queued again", history[0], len(history))
            return
        system_attrs = {"failed_trial": history[0], "retry_history": history,
                        "fixed_params": dict(trial.params)}
        user_attrs = {"retry_of": trial.number}
        if "source" in trial.user_attrs:
            user_attrs["source"] = trial.user_attrs["source"]
        study.add_trial(optuna.trial.create_trial(
            state=TrialState.WAITING, params=dict(trial.params), distributions=dict(trial.distributions),
            user_attrs=user_attrs, system_attrs=system_attrs))

    def enqueue_recommendation(self, study: optuna.Study, recommendation: Recommendation,
                               backbones: Sequence[BackboneSpec]) -> None:
        """The recommendation is the first trial; enqueued again only if it never ran to an end."""
        params = recommendation_params(recommendation, backbones)
        for trial in study.get_trials(deepcopy=False):
            if trial.system_attrs.get("fixed_params") == params and trial.state != TrialState.FAIL:
                return
        study.enqueue_trial(params, user_attrs={"source": "recommendation"})

    # --- claiming a place in the budget ----------------------------------------------------------------

    def _ask(self, study: optuna.Study) -> optuna.Trial:
        """``study.ask()``, except the trial carries this process's identity from the moment it is RUNNING,
        so no other worker can mistake it for an orphan (rule 3 of :meth:`settle_interrupted`)."""
        storage, study_id = study._storage, study._study_id
        study._thread_local.cached_all_trials = None  # what ask() does: the sampler sees the latest trials
        for waiting in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
            try:  # identity first: whoever wins the pop below, the trial names a live process
                storage.set_trial_system_attr(waiting._trial_id, PROCESS, self.identity)
                if storage.set_trial_state_values(waiting._trial_id, state=TrialState.RUNNING):
                    trial_id = waiting._trial_id
                    storage.set_trial_system_attr(trial_id, PROCESS, self.identity)
                    break
            except UpdateFinishedTrialError:
                continue
        else:
            template = optuna.trial.create_trial(state=TrialState.RUNNING, system_attrs={PROCESS: self.identity})
            trial_id = storage.create_new_trial(study_id, template_trial=template)
        return optuna.Trial(study, trial_id)

    def _refusal(self, study: optuna.Study, trial: optuna.Trial, budget: int) -> str | None:
        """Why ``trial`` may not run (it came after the budget was claimed, or repeats a queued trial)."""
        everything = study.get_trials(deepcopy=False)
        earlier = [t for t in everything if t.number < trial.number and t.state in CLAIMS]
        if budget and len(earlier) >= budget:
            return f"the budget of {budget} trials was claimed by other workers first"
        fixed = next((t.system_attrs.get("fixed_params") for t in everything if t.number == trial.number), None)
        if fixed is not None:
            twin = next((t for t in earlier if t.system_attrs.get("fixed_params") == fixed), None)
            if twin is not None:
                return f"queued twice: trial {twin.number} runs these parameters"
        return None

    def _claim(self, study: optuna.Study, budget: int) -> optuna.Trial | None:
        """A trial this process may run, or None when the ask lost the race for the last places."""
        trial = self._ask(study)
        refusal = self._refusal(study, trial, budget)
        if refusal is None:
            return trial
        storage = study._storage
        try:
            storage.set_trial_user_attr(trial._trial_id, NOT_RUN, refusal)
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            pass
        log.info("trial %d not run: %s", trial.number, refusal)
        return None

    # --- one trial -------------------------------------------------------------------------------------

    def _suggest(self, trial: optuna.Trial, recommendation: Recommendation,
                 backbones: Sequence[BackboneSpec]) -> dict[str, Any]:
        params = self.host.call_first("search_space", trial=trial, recommendation=recommendation,
                                      backbones=list(backbones), options=self.options)
        if params is None:
            failures = [f.error for f in self.host.failures if f.hook == "search_space"]
            detail = f": {failures[-1]}" if failures else ""
            raise TrialFailed(f"no search_space plugin returned parameters{detail}")
        return dict(params)

    def run_trial(self, study: optuna.Study, trial: optuna.Trial, data: TuningData, recommendation: Recommendation,
                  by_name: dict[str, BackboneSpec], device: torch.device) -> TrialState | None:
        """Run and record one trial (saving its model when it beats the saved one); return its final state,
        or None when another worker closed the trial meanwhile (this result is then dropped)."""
        started = time.perf_counter()
        curve: list[float] = []
        reported: set[int] = set()
        self.trials_run.append(trial.number)

        def on_epoch(epoch: int, value: float) -> None:
            del curve[epoch:]  # an out-of-memory retry starts again at epoch 0
            curve.append(value)
            if epoch not in reported:  # stored as intermediate values: a killed trial keeps its curve
                reported.add(epoch)
                try:
                    trial.report(value, epoch)
                except UpdateFinishedTrialError:
                    raise _Superseded() from None
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch + 1}: best val accuracy {max(curve):.3f} "
                                         "is below the median of finished trials")

        def finish(state: TrialState, reason: str | None = None, value: float | None = None) -> TrialState | None:
            try:
                trial.set_user_attr("duration", round(time.perf_counter() - started, 3))
                trial.set_user_attr("learning_curve", list(curve))
                if reason:
                    trial.set_user_attr("reason", reason)
                stored = study.tell(trial, value, state=state, skip_if_finished=True)
            except UpdateFinishedTrialError:
                return superseded()
            if stored.state != state or (value is not None and stored.value != value):
                return superseded()
            return state

        def superseded() -> None:
            log.warning("trial %d was closed by another worker meanwhile (this one was presumed lost); "
                        "its result is dropped and the retry counts instead", trial.number)
            return None

        with Heartbeat(study._storage, trial._trial_id, self.heartbeat_interval if heartbeat_enabled(study._storage)
                       else None):
            try:
                trial.set_user_attr(WORKER, worker_label(self.identity))
                trial.set_user_attr("device", describe(device))
                params = self._suggest(trial, recommendation, list(by_name.values()))
                trial.set_user_attr("params", params)
                if params.get("backbone") not in by_name:
                    raise TrialFailed(f"backbone '{params.get('backbone')}' is not among those tuned "
                                      f"({', '.join(by_name)})")
                config = TrialConfig.from_params(params, batch_size=self.options.batch_size, patience=self.patience,
                                                 image_size=self.options.image_size)
                spec = by_name[config.backbone]
                trained = train_trial(spec, config, data, device, seed=self.options.seed + trial.number,
                                      on_epoch=on_epoch)
                curve[:] = trained.learning_curve
                self._record_success(trial, trained)
                with interrupts.deferred():  # trained: a stop signal waits until the result is kept
                    # Saved before the value is recorded: a kill in between is recovered by settle_interrupted.
                    self._save_if_best(study, trial, spec, config, data, trained, params)
                    return finish(TrialState.COMPLETE, value=trained.accuracy)
            except (_Superseded, UpdateFinishedTrialError):
                return superseded()
            except optuna.TrialPruned as pruned:
                return finish(TrialState.PRUNED, str(pruned) or "pruned")
            except TrialFailed as failed:
                return finish(TrialState.FAIL, str(failed))
            except Exception as error:  # failures are data: record why, keep searching
                log.debug("trial %d failed", trial.number, exc_info=True)
                return finish(TrialState.FAIL, one_line(error))
            except BaseException as stop:  # SIGINT/SIGTERM: close the trial honestly, then stop
                why = interrupts.reason(stop)  # bound now: 'stop' is unbound once the except block ends
                _close_interrupted(study, trial, lambda: finish(TrialState.FAIL, why))
                raise

    @staticmethod
    def _record_success(trial: optuna.Trial, trained: TrainedModel) -> None:
        trial.set_user_attr("best_epoch", trained.best_epoch + 1)
        trial.set_user_attr("batch_size", trained.batch_size)
        trial.set_user_attr("stopped_early", trained.stopped_early)
        for key, value in trained.extras.items():
            trial.set_user_attr(key, value)

    def _save_if_best(self, study: optuna.Study, trial: optuna.Trial, spec: BackboneSpec, config: TrialConfig,
                      data: TuningData, trained: TrainedModel, params: dict[str, Any]) -> bool:
        """Compare with the model on disk and replace it if this trial is better, under the run's lock.

        Better means a higher validation accuracy, or the same one from an earlier trial (the report's
        best trial wins ties the same way). Another worker may have saved a better model since this
        process last looked, which is why the comparison is made again under the lock.
        """
        if self.model_dir is None or trained.accuracy < self.best_saved:  # the saved accuracy only ever rises
            return False
        with file_lock(_lock_path(self.model_dir)):
            saved = model_io.read_config(self.model_dir)
            if saved and saved.get("study_name") == study.study_name:
                current = (float(saved["val_accuracy"]), -int(saved.get("trial_number", -1)))
                if current >= (trained.accuracy, -trial.number):
                    self.best_saved = current[0]
                    return False
            if study._storage.get_trial(trial._trial_id).state != TrialState.RUNNING:
                raise _Superseded()  # closed by another worker: its retry will save the model if it is best
            preprocessing = spec.preprocessing_at(self.options.image_size)
            model_config = model_io.model_config(
                spec, preprocessing, strategy=config.strategy, classes=data.classes, val_accuracy=trained.accuracy,
                trial_number=trial.number, study_name=study.study_name, params=params,
                learning_curve=trained.learning_curve)
            model_io.save_model(self.model_dir, trained.model, model_config)
            self.best_saved = trained.accuracy
        trial.set_user_attr("model_saved_by", worker_label(self.identity))
        return True

    # --- the whole search ------------------------------------------------------------------------------

    def start(self, dataset: Dataset, recommendation: Recommendation, backbones: Sequence[BackboneSpec], *,
              join: bool = False) -> optuna.Study:
        """Open the study and make it ready for workers; no trial runs yet.

        ``join=False`` (``tladvisor analyze``): create or continue the study, store its description
        (:meth:`describe`) and enqueue the recommendation. ``join=True`` (``tladvisor worker``): open a
        study another process described, without changing what it stores.
        """
        if not backbones:
            raise TLAdvisorError("no backbone to tune; check --backbones and `tladvisor backbones`")
        # A joining worker draws from its own random stream: workers started together must not propose
        # the same start-up points.
        offset = zlib.crc32(worker_label(self.identity).encode()) % 1_000_003 if join else 0
        study = self.open_study(sampler_offset=offset)
        self._check_same_backbones(study, backbones)
        if not join:
            self.describe(study, dataset, recommendation, backbones)
        self.settle_interrupted(study)
        if not join:
            self.enqueue_recommendation(study, recommendation, backbones)
        return study

    def run(self, dataset: Dataset, recommendation: Recommendation, backbones: Sequence[BackboneSpec], *,
            join: bool = False) -> TuningResult:
        """Tune until the study holds its budget of finished trials (every worker's count); return the
        whole study's result. ``join`` as in :meth:`start`."""
        if self.host is None:
            from tladvisor.plugins import PluginHost

            self.host = PluginHost(self.options.plugins_dir)
        device = pick_device(self.options.device)
        study = self.start(dataset, recommendation, backbones, join=join)
        data = TuningData(dataset, self.options, device)
        by_name = {spec.name: spec for spec in backbones}

        saved = self._saved_config()
        # The bar a trial must beat to replace the saved model (one from another study does not count).
        self.best_saved = (float(saved["val_accuracy"]) if saved and saved.get("study_name") == study.study_name
                           else -math.inf)
        self._search(study, data, recommendation, by_name, device)
        return self.result(study, device)

    def _wait_time(self) -> float:
        if self.poll_interval is not None:
            return self.poll_interval
        return min(MAX_POLL_INTERVAL, float(self.heartbeat_interval or MAX_POLL_INTERVAL))

    def _can_wait_for(self, study: optuna.Study, running: list[FrozenTrial]) -> bool:
        """Whether a lost worker among those running would be noticed from here (else waiting may never end)."""
        if heartbeat_enabled(study._storage):
            return True
        me = self.identity
        return all(isinstance(t.system_attrs.get(PROCESS), dict)
                   and all(t.system_attrs[PROCESS].get(k) == me[k] for k in ("host", "boot", "pidns"))
                   for t in running)

    def _search(self, study: optuna.Study, data: TuningData, recommendation: Recommendation,
                by_name: dict[str, BackboneSpec], device: torch.device) -> None:
        options = self.options
        deadline = time.monotonic() + options.timeout if options.timeout else None
        failures = 0
        while True:
            self.settle_interrupted(study)
            budget = self.budget(study)
            max_failures = self.max_failures if self.max_failures is not None else max(5, budget)
            trials = study.get_trials(deepcopy=False)
            finished = sum(t.state in FINISHED for t in trials)
            if budget and finished >= budget:
                break
            if not budget and deadline is None:
                break  # no budget at all: nothing to run
            if deadline is not None and time.monotonic() >= deadline:
                break
            if failures >= max_failures:
                log.warning("stopping the search after %d failed trials in this run", failures)
                break
            if self.max_trials is not None and len(self.trials_run) >= self.max_trials:
                break
            claims = sum(t.state in CLAIMS for t in trials)
            waiting = sum(t.state == TrialState.WAITING for t in trials)
            if budget and claims >= budget and not waiting:
                # Every place is taken by running trials: stay, to retry any whose worker is lost.
                running = [t for t in trials if t.state == TrialState.RUNNING]
                if not self._can_wait_for(study, running):
                    log.info("the last %d trials run on other machines; leaving them to their workers", len(running))
                    break
                pause = self._wait_time()
                if deadline is not None:
                    pause = max(0.0, min(pause, deadline - time.monotonic()))
                time.sleep(pause)
                continue
            trial = self._claim(study, budget)
            if trial is None:
                continue
            if self.run_trial(study, trial, data, recommendation, by_name, device) == TrialState.FAIL:
                failures += 1
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()

    def result(self, study: optuna.Study, device: torch.device) -> TuningResult:
        return tuning_result(study, storage=display_url(storage_url(self.options)),
                             requested_trials=self.budget(study), device=describe(device), model_dir=self.model_dir)
