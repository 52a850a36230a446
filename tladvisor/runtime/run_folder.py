"""A run's folder: its stable name from the data and the options, and the checks made before any work
(the folder can be written, the tuning storage can be used), so a bad path fails in one line at once."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from tladvisor.errors import OutputError, TLAdvisorError
from tladvisor.records import AnalysisOptions

RUN_NAME_STEM_CHARACTERS = 60


def run_name_for(options: AnalysisOptions) -> str:
    """A stable name from the data and the options that change results, so a re-run continues."""
    from tladvisor.data.naming import data_name

    source = Path(options.source).resolve()
    manifest_options = tuple(str(v) for v in (options.path_column, options.label_column, options.image_root)
                             if v is not None)  # only when given, so earlier runs keep their names
    key = "|".join(str(v) for v in (source, sorted(options.backbones), options.image_size, options.seed,
                                     options.max_samples, options.val_fraction, *manifest_options))
    if options.class_weights != "none":  # another loss, another study (the default keeps earlier names)
        key += f"|class_weights={options.class_weights}"
    if str(options.cv_folds) != "auto":  # other trial scoring, another study
        key += f"|cv_folds={options.cv_folds}"
    # The name is a folder name: characters a file system or a terminal may refuse (a non-UTF-8 byte,
    # a control character) become "_", and a very long name is cut (255 bytes is the usual limit).
    name = data_name(source, options.image_root)
    stem = re.sub(r"[^\w.\- ]", "_", name).strip()[:RUN_NAME_STEM_CHARACTERS] or "data"
    return f"{stem}-{hashlib.sha256(key.encode(errors='surrogateescape')).hexdigest()[:8]}"


def check_output_folder(run_dir: Path, what: str = "the run folder",
                        fix: str = "choose another output folder (--out)") -> None:
    """Refuse an output folder that cannot be created or written, before any work is done.

    Nothing is created here: the nearest existing folder on the way is checked instead, so a run that
    fails later on bad data leaves no empty run folder behind.
    """
    existing = Path(run_dir)
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # a dangling link on the way: mkdir would fail on it
            break
        existing = existing.parent
    problem = None
    if not existing.exists() or not existing.is_dir():
        problem = f"{existing} is not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"{existing} is not writable"
    if problem:
        raise OutputError(f"cannot create {what} {run_dir}: {problem}; {fix}")


def check_storage(url: str) -> None:
    """A one-line error for a storage the tuner could not use (bad scheme, no driver, unreachable server,
    a file in a folder that cannot be created), before minutes of measuring rather than after."""
    from tladvisor.tuning import study

    if study.is_journal_path(url) or url.startswith("sqlite:///"):
        database = url[len("sqlite:///"):] if url.startswith("sqlite:///") else url
        if database in ("", ":memory:") or database.startswith("file:"):
            return
        path = Path(database).expanduser()
        if path.is_dir():
            raise TLAdvisorError(f"--storage {study.display_url(url)}: {path} is a folder, not a database file")
        check_output_folder(path.parent, what="the --storage folder",
                            fix="choose another --storage path")
        return
    storage = study.open_storage(url)  # a server: connect once now (one-line TLAdvisorError if it cannot)
    engine = getattr(storage, "engine", None)
    if engine is not None:
        engine.dispose()
