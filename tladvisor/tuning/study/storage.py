"""Where a study lives: the storage URL of a run, opening it (SQLite, PostgreSQL, journal file) with one-line
errors, and the sampler and pruner every study of tladvisor is opened with."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import optuna

from tladvisor.errors import TLAdvisorError
from tladvisor.runtime.redact import redact_passwords
from tladvisor.text import one_line
from tladvisor.records import AnalysisOptions

log = logging.getLogger(__name__)

DEFAULT_STUDY_NAME = "tladvisor"
SQLITE_BUSY_TIMEOUT = 60  # seconds a SQLite writer waits for another process's lock instead of failing
CONNECT_TIMEOUT = 10  # seconds to reach a database server


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
    return redact_passwords(url)  # the one masker (analysis.json's options and command use it too)


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


def load_existing_study(url: str, study_name: str) -> optuna.Study | None:
    """The study ``study_name`` in ``url`` as it is, or None when there is none; never creates one (nor the
    SQLite or journal file that opening a missing one would leave behind). Storage errors are one line,
    as in :func:`open_storage`."""
    file = url if is_journal_path(url) else url[len("sqlite:///"):] if url.startswith("sqlite:///") else None
    if file and file != ":memory:" and not Path(file).expanduser().is_file():
        return None
    try:
        return optuna.load_study(study_name=study_name, storage=open_storage(url))
    except KeyError:  # Optuna's "no such study"
        return None


def heartbeat_enabled(storage: Any) -> bool:
    return callable(getattr(storage, "get_heartbeat_interval", None)) and storage.get_heartbeat_interval() is not None


def make_pruner() -> optuna.pruners.BasePruner:
    # Median rather than Hyperband: Hyperband's brackets pay off over many trials of one fixed
    # length, while a CPU budget here is tens of trials whose lengths (``epochs``) vary. The median is
    # taken within the trial's own strategy (fine-tuning starts slower than a frozen head and ends
    # higher; pooled, the fast starters pruned it), judging from the third epoch, after warm-up. The race's
    # trials (the learned prior's contenders, the study's first) are judged against each other at their rungs.
    from tladvisor.tuning.pruning import StrategyMedianPruner
    from tladvisor.tuning.race import RacePruner

    return RacePruner(StrategyMedianPruner())


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

