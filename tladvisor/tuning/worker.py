"""Join a tuning study from another process or machine: what ``tladvisor worker`` runs.

``tladvisor analyze DATA --trials N --storage URL --study NAME`` measures, recommends, creates the study
and stores in it everything a worker needs (options, recommendation, backbone names, a fingerprint of
the data, heartbeat settings: see :mod:`tladvisor.tuning.study`). On any machine that reaches the
storage and reads the data, at the same path or at ``data=`` when it is mounted elsewhere,
:func:`run_worker` joins the study and runs trials until it holds N finished trials, counting every
worker's. It tunes through the ``tune`` hook, as ``analyze`` does, with ``join=True``: a plugin that
replaces the tuner runs on the workers too. The budget, the retries of trials whose worker died and
the best model are shared through the storage and the run folder; docs/scale-out.md shows the commands.

Storages: ``postgresql://USER:PASSWORD@HOST:PORT/DB`` for several machines (heartbeats tell a lost
worker within the grace period); for several processes on one machine the run's own SQLite file
(``sqlite:///<run>/study.db``, the default of ``analyze``) or a journal file given as a plain path.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

from tladvisor.errors import DatasetError, OutputError, TLAdvisorError
from tladvisor.records import Dataset, TuneRequest, TuningResult, to_jsonable
from tladvisor.runtime.atomic import file_lock, write_text_atomic
from tladvisor.tuning.study import (StudyDescription, dataset_fingerprint, display_url, process_identity,
                                    read_description, tuning_result, worker_label)
from tladvisor.tuning.study.storage import load_existing_study

log = logging.getLogger(__name__)

WAIT_POLL_SECONDS = 2.0  # how often a worker started before its study looks for it again
REPORT_LOCK = ".report.lock"


@dataclass(frozen=True)
class WorkerResult:
    """What one worker did, and the whole study as it stood when the worker stopped."""

    worker: str  # "host:pid"
    trials_run: tuple[int, ...]  # numbers of the trials this worker trained (any final state)
    tuning: TuningResult  # every worker's trials
    report: Path | None  # the report re-rendered from the storage, when the run folder is reachable
    timeout: float | None = None  # the study's --timeout (seconds from this worker's own start), None without


def load_description(storage: str, study_name: str, *, wait: float = 0.0) -> StudyDescription:
    """What ``tladvisor analyze`` stored in the study; waits up to ``wait`` seconds for it to appear."""
    deadline = time.monotonic() + wait
    while True:
        study = load_existing_study(storage, study_name)
        if study is not None and (study.user_attrs or time.monotonic() >= deadline):
            return read_description(study)
        if time.monotonic() >= deadline:
            raise TLAdvisorError(
                f"no study '{study_name}' in {display_url(storage)}: start it first with tladvisor analyze DATA "
                f"--trials N --storage URL --study {study_name} (or give the worker --wait SECONDS), and check "
                "the name (optuna studies --storage URL lists them)")
        time.sleep(min(WAIT_POLL_SECONDS, max(0.0, deadline - time.monotonic())))


def _check_same_data(dataset: Dataset, description: StudyDescription, study_name: str) -> None:
    expected = description.dataset
    if not expected.get("fingerprint") or dataset_fingerprint(dataset) == expected["fingerprint"]:
        return
    here = f"{len(dataset.samples)} images in {len(dataset.classes)} classes"
    there = f"{expected.get('n_samples')} images in {expected.get('n_classes')} classes"
    detail = f"{here} here, {there} in the study" if here != there else f"{here}, but other files or labels"
    raise DatasetError(f"{dataset.root}: not the data study '{study_name}' was started on ({detail}); point "
                       f"--data at a copy of {expected.get('root')}")


def _usable_run_dir(run_dir: Path | None) -> Path | None:
    if run_dir is None:
        return None
    try:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create the run folder {run_dir} (where the best model is kept) on this machine: "
                          f"{error.strerror or error}; share it with the machine that ran analyze, or pass "
                          "--run-dir DIR") from None
    return Path(run_dir)


def run_worker(storage: str, study_name: str, *, host, trials: int | None = None, plugins_dir=None,
               data: str | Path | None = None, run_dir: str | Path | None = None, device: str | None = None,
               wait: float = 0.0, image_root: str | Path | None = None) -> WorkerResult:
    """Join the study ``study_name`` in ``storage`` and run its trials until its budget is met.

    storage: the URL given to ``analyze --storage`` (``postgresql://user:password@host:5432/db``,
        ``sqlite:///abs/path/study.db``, or a journal file path).
    study_name: the ``--study`` name (``analyze`` prints it; by default the run name).
    host: the caller's PluginHost (the CLI's; ``PluginHost(plugins_dir)`` from Python): the worker
        builds none of its own. The study's backbones must be registered here too.
    trials: at most this many trials from this worker (None: until the study holds its budget).
    data: the dataset's location on this machine, when it is not at the path ``analyze`` read it from;
        it must be the same data (checked against a fingerprint of paths, labels and contents).
    image_root: the manifest's image folder on this machine (``analyze --image-root``), when it is not at
        the path ``analyze`` read it from; replaced like ``data``.
    run_dir: where the best model and report are kept, when the analyze run's folder is not reachable
        at the same path (default: that folder, e.g. on a shared file system).
    device: ``cpu``, ``cuda``, ``cuda:N``; default: the one the study was started with (``auto``).
    wait: seconds to wait for the study to be created (workers launched together with ``analyze``).

    Tunes through the ``tune`` hook with ``join=True``, ``max_trials=trials`` and ``on_trial`` (which
    collects ``trials_run``), like ``analyze`` but joining; the built-in tuner (the ``Tuner``) then
    stops when the study holds its budget of finished (COMPLETE + PRUNED) trials, counting every
    worker's; while the last trials run elsewhere it waits, so it can retry one whose worker dies.
    Returns a :class:`WorkerResult`; re-renders the run's report from the storage when the run folder
    holds one. User errors (unreachable storage, unknown study, other data, unknown backbone) and a
    ``tune`` that returned nothing (its plugin failed) raise a one-line :class:`~tladvisor.errors.TLAdvisorError`.

    The CLI command is a thin layer over this::

        result = run_worker(storage, study, host=obj.host, data=data, image_root=image_root, run_dir=run_dir,
                            trials=trials, device=device, wait=wait)
        out.print(f"{result.worker} ran trials #2, #3; ...")
    """
    description = load_description(storage, study_name, wait=wait)
    stored = description.options
    cache_dir = stored.cache_dir if stored.cache_dir is not None and Path(stored.cache_dir).is_dir() else None
    options = replace(stored, storage=storage, study_name=study_name, plugins_dir=plugins_dir,
                      source=Path(data) if data is not None else stored.source, cache_dir=cache_dir,
                      image_root=Path(image_root) if image_root is not None else stored.image_root,
                      run_dir=_usable_run_dir(Path(run_dir) if run_dir is not None else stored.run_dir),
                      device=device or stored.device)
    if not Path(options.source).exists():
        also = " (and --image-root DIR, its images)" if options.image_root is not None and image_root is None else ""
        hint = f"pass --data PATH{also} where it is mounted here" if data is None else "check --data"
        raise DatasetError(f"{options.source}: no such file or folder on this machine (the study's data); {hint}")
    if options.image_root is not None and not Path(options.image_root).is_dir():
        hint = "pass --image-root DIR where it is mounted here" if image_root is None else "check --image-root"
        raise DatasetError(f"{options.image_root}: no such folder on this machine (the study's image root); {hint}")
    dataset = host.call("load_dataset", source=Path(options.source), options=options)
    if dataset is None:
        raise DatasetError(f"{options.source}: no loader could read it")
    _check_same_data(dataset, description, study_name)
    backbones = [host.backbone(name) for name in description.backbones]

    # The same hook as analyze tunes through (join=True): a plugin that replaces the tuner runs here too.
    trials_run: list[int] = []
    failures_before = len(host.failures)
    result = host.call("tune", request=TuneRequest(dataset, description.recommendation, tuple(backbones), options,
                                                   host=host, join=True, max_trials=trials,
                                                   on_trial=trials_run.append))
    if result is None:
        failed = "; ".join(f"plugin '{f.plugin}' failed in {f.hook}: {f.error}" for f in host.failures[failures_before:])
        raise TLAdvisorError(f"tuning did not run on this worker: no tune plugin joined study '{study_name}'"
                             + (f" ({failed})" if failed else ""))
    report = refresh_report(options.run_dir, result, host=host) if options.run_dir is not None else None
    return WorkerResult(worker=worker_label(process_identity()), trials_run=tuple(trials_run), tuning=result,
                        report=report, timeout=options.timeout)


def load_tuning_result(storage: str, study_name: str, *, run_dir: str | Path | None = None) -> TuningResult:
    """The study's TuningResult built from the storage alone (any machine, any time, workers running or not)."""
    study = load_existing_study(storage, study_name)
    if study is None:
        raise TLAdvisorError(f"no study '{study_name}' in {display_url(storage)}")
    description = read_description(study)
    run_dir = Path(run_dir) if run_dir is not None else description.options.run_dir
    devices = sorted({str(t.user_attrs["device"]) for t in study.get_trials(deepcopy=False) if "device" in t.user_attrs})
    return tuning_result(study, storage=display_url(storage), requested_trials=description.budget,
                         device=", ".join(devices) or "unknown",
                         model_dir=Path(run_dir) / "best_model" if run_dir is not None else None)


def refresh_report(run_dir: str | Path, tuning: TuningResult, *, host=None) -> Path | None:
    """Put ``tuning`` into ``run_dir/analysis.json`` and re-render the report; None when there is no report yet.

    The rest of analysis.json (dataset, measures, advice) is kept as ``analyze`` wrote it, except that a
    password in ``options.storage`` is masked. Plugin report sections come from ``host``'s plugins
    (a fresh PluginHost when None), built from the stored analysis as at the first render.
    """
    from tladvisor.report.analysis_json import ANALYSIS_FILENAME, analysis_json_chunks, load_analysis
    from tladvisor.report.writer import rerender

    run_dir = Path(run_dir)
    if not (run_dir / ANALYSIS_FILENAME).is_file():
        return None
    with file_lock(run_dir / REPORT_LOCK):
        analysis = load_analysis(run_dir)
        analysis["tuning"] = to_jsonable(tuning)
        options = analysis.get("options")
        if isinstance(options, dict) and isinstance(options.get("storage"), str):
            options["storage"] = display_url(options["storage"])  # the database password stays out of reports
        write_text_atomic(run_dir / ANALYSIS_FILENAME, analysis_json_chunks(analysis))
        return rerender(run_dir, host=host)
