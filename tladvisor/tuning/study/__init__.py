"""The Optuna study: resumable search from the recommendation, shared by any number of worker processes.

Re-running the same command continues the same study (``load_if_exists``) until it holds the requested
number of finished trials (COMPLETE and PRUNED count; FAIL does not, up to a cap so a broken setup
cannot loop, nor does a trial the ``--timeout`` deadline stopped). Finished trials are never repeated:
the sampler is seeded with the seed plus the number of trials already stored, so a resumed run draws
new points instead of replaying the first run's.

Many workers, one study (``tladvisor analyze`` plus any number of ``tladvisor worker``, see
:mod:`tladvisor.tuning.worker` and docs/scale-out.md):

* **What a worker needs** is stored in the study's ``user_attrs`` by the process that runs ``analyze``
  (:meth:`Tuner.describe`): the options, the recommendation, the backbone names, a fingerprint of the
  data and the heartbeat settings. ``options.trials`` there is the budget every worker reads live.
* **The budget is global and exact.** A *claim* is a trial that is COMPLETE, PRUNED, RUNNING or WAITING,
  unless it was cut short (failed, or stopped by the deadline: :func:`.claims.cut_short`).
  Before asking, a worker checks that the claims leave room; after asking it keeps its trial only if
  fewer than ``budget`` claims have a smaller trial number, else it closes the trial at once as
  FAIL with the user attribute ``not_run`` (it never trained; the report leaves it out). Storages
  number trials in creation order under a lock, and a claim only ever leaves (by failing or by the deadline), so a trial's
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

A package, one concern per module: :mod:`.storage` (URLs, opening, sampler and pruner),
:mod:`.liveness` (process identity, heartbeat), :mod:`.description` (what the study stores for its
workers, data fingerprint), :mod:`.claims` (budget and claiming), :mod:`.recovery` (trials of lost
workers), :mod:`.best_model` (the locked compare-and-save), :mod:`.trial_run` (one trial),
:mod:`.result` (the study as the report shows it), :mod:`.tuner` (the search loop) and
:mod:`.optuna_access` (the only use of Optuna's private attributes). The names below are re-exported.
"""

from tladvisor.runtime.atomic import file_lock
from tladvisor.tuning.study.best_model import BestModel
from tladvisor.tuning.results import NOT_RUN
from tladvisor.tuning.study.claims import CLAIMS, FINISHED
from tladvisor.tuning.study.description import (StudyDescription, dataset_fingerprint, options_from_json,
                                                read_description, recommendation_from_json)
from tladvisor.tuning.study.liveness import (GRACE_PERIOD, HEARTBEAT_INTERVAL, PROCESS, WORKER, Heartbeat,
                                             process_gone, process_identity, worker_label)
from tladvisor.tuning.study.recovery import MAX_RETRIES
from tladvisor.tuning.study.result import tuning_result
from tladvisor.tuning.study.storage import (DEFAULT_STUDY_NAME, display_url, heartbeat_enabled, is_journal_path,
                                            network_filesystem, open_storage, storage_url)
from tladvisor.tuning.study.tuner import Tuner

__all__ = [
    "CLAIMS", "DEFAULT_STUDY_NAME", "FINISHED", "GRACE_PERIOD", "HEARTBEAT_INTERVAL", "MAX_RETRIES", "NOT_RUN",
    "PROCESS", "WORKER", "BestModel", "Heartbeat", "StudyDescription", "Tuner", "dataset_fingerprint",
    "display_url", "file_lock", "heartbeat_enabled", "is_journal_path", "network_filesystem", "open_storage",
    "options_from_json", "process_gone", "process_identity", "read_description", "recommendation_from_json",
    "storage_url", "tuning_result", "worker_label",
]
