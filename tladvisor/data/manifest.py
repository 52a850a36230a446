"""CSV or Parquet manifests: one row per image, with a path column, a label column, maybe a split.

Relative paths resolve against the manifest's folder, or against an image root when one is given
(``--image-root``); no path may leave that folder (no ``..`` out of it, no absolute path elsewhere,
no symlink pointing out): a manifest is data, possibly from someone else, and must not make
tladvisor read arbitrary files. With an image root, a path written relative to the manifest
(``../images/x.png`` from ``manifests/``) is found too, as long as it lands inside the root. Such a row stops the load with
:class:`UnsafeFileError`. Rows without a label, repeated rows and unknown split names are skipped
with a reason instead.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from tladvisor.data.assemble import Candidate, build_dataset
from tladvisor.data.images import DEFAULT_MAX_PIXELS
from tladvisor.errors import DatasetError, UnsafeFileError
from tladvisor.records import Dataset, SkippedFile

if TYPE_CHECKING:
    import pandas as pd

MANIFEST_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", ".jsonl", ".ndjson")
PATH_COLUMNS = ("path", "filepath", "file_path", "file", "image", "image_path", "filename", "file_name")
LABEL_COLUMNS = ("label", "class", "target", "category", "class_name", "label_name")
SPLIT_COLUMNS = ("split", "subset", "partition", "set", "fold")
SPLIT_VALUES = {
    "train": "train", "training": "train", "trn": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test", "tst": "test",
}


def manifest_format(manifest: Path) -> str:
    """"csv", "parquet" or "jsonl" (a Dataset's ``source_format``)."""
    suffix = manifest.suffix.lower()
    return "csv" if suffix in (".csv", ".tsv") else "jsonl" if suffix in (".jsonl", ".ndjson") else "parquet"


def is_manifest(source: Path) -> bool:
    return source.is_file() and source.suffix.lower() in MANIFEST_SUFFIXES


def read_table(manifest: Path, decode: Callable[[bytes], str] | None = None) -> pd.DataFrame:
    """The manifest as a table of text cells. ``decode`` turns the file's bytes into text (default: strict
    UTF-8); the text loader passes one that marks bad bytes, to skip those rows instead of the file."""
    import pandas as pd  # here, not at the top: every command loads this module, few read a manifest

    suffix = manifest.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(manifest)
        data = manifest.read_bytes()
        content = decode(data) if decode else data.decode("utf-8").removeprefix("\ufeff")
        if suffix in (".jsonl", ".ndjson"):
            return _jsonl_table(manifest, content)
        # Everything as text, and an empty cell stays "" (so a class named "NA" is not lost). A TSV has no
        # quoting: a text that starts with a quote must not swallow the rows after it.
        if suffix == ".tsv":
            return pd.read_csv(io.StringIO(content), sep="\t", dtype=str, keep_default_na=False,
                               quoting=csv.QUOTE_NONE)
        return pd.read_csv(io.StringIO(content), sep=",", dtype=str, keep_default_na=False)
    except DatasetError:
        raise
    except Exception as error:
        raise DatasetError(f"cannot read manifest {manifest}: {' '.join(str(error).split())}; "
                           f"it must be a CSV (comma-separated, header row), JSON Lines or Parquet file") from None


def _jsonl_table(manifest: Path, content: str) -> pd.DataFrame:
    """One JSON object per line; blank lines are allowed, anything else that is not an object is an error."""
    import pandas as pd

    rows = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetError(f"manifest {manifest} line {number} is not JSON ({error.msg}); "
                               "a JSON Lines manifest holds one object per line") from None
        if not isinstance(row, dict):
            raise DatasetError(f"manifest {manifest} line {number} is a JSON {type(row).__name__}, not an object "
                               "with named fields")
        rows.append({str(k): "" if v is None else v if isinstance(v, str) else json.dumps(v) for k, v in row.items()})
    return pd.DataFrame(rows, dtype=str).fillna("")


def find_column(columns, wanted: tuple[str, ...]) -> str | None:
    """The first column whose name (case and spaces ignored) is one of ``wanted``, in their order."""
    by_name = {str(column).strip().lower(): column for column in columns}
    return next((by_name[name] for name in wanted if name in by_name), None)


def cell_text(value) -> str:
    """A cell as text: '' for missing, '3' (not '3.0') for integral numbers."""
    import pandas as pd  # already imported by read_table: a dictionary look-up

    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def safe_resolve(manifest: Path, root: Path, row: str, raw: str, image_root: bool = False) -> Path:
    """Resolve a manifest path against ``root``; refuse anything that lands outside it.

    With ``image_root``, a relative path that is not a file under the root but is one when read
    against the manifest's own folder (and still inside the root) resolves there."""
    given = Path(raw)
    resolved = (given if given.is_absolute() else root / given).resolve()
    if image_root and not given.is_absolute() and not (resolved.is_relative_to(root) and resolved.exists()):
        beside_manifest = (manifest.parent / given).resolve()
        if beside_manifest.is_relative_to(root) and beside_manifest.exists():
            resolved = beside_manifest
    if not resolved.is_relative_to(root):
        where = "the image root" if image_root else "the manifest's folder"
        fix = ("" if image_root else " or pass --image-root DIR")
        raise UnsafeFileError(
            f"manifest {manifest} {row}: path '{raw}' resolves outside {where} {root} "
            f"(to {resolved}); keep images under that folder and list them by relative path{fix}")
    return resolved


class _Rows:
    """Turns manifest rows into candidates, collecting what is skipped and why."""

    def __init__(self, manifest: Path, row_name, image_root: Path | None = None):
        self.manifest = manifest
        self.image_root = image_root is not None
        self.root = (image_root if image_root is not None else manifest.parent).resolve()
        self.row_name = row_name
        self.candidates: list[Candidate] = []
        self.skipped: list[SkippedFile] = []
        self.first_row: dict[Path, tuple[str, str]] = {}  # resolved path -> (row name, label)

    def add(self, index: int, raw_path: str, label: str, raw_split: str | None) -> None:
        row = self.row_name(index)
        if not raw_path:
            self.skipped.append(SkippedFile(f"{self.manifest} {row}", f"{row}: no path"))
            return
        try:
            path = safe_resolve(self.manifest, self.root, row, raw_path, self.image_root)
        except (RuntimeError, OSError) as error:  # a symlink loop, a name too long: no file to read
            reason = "symlink loop" if "loop" in str(error).lower() or "symbolic links" in str(error) else error
            self.skipped.append(SkippedFile(f"{self.manifest} {row}", f"{row}: path '{raw_path}' cannot be "
                                                                      f"resolved ({reason})"))
            return
        if not label:
            self.skipped.append(SkippedFile(str(path), f"{row}: no label"))
            return
        if path in self.first_row:
            first, first_label = self.first_row[path]
            clash = "" if label == first_label else f" with a different label ('{label}' vs '{first_label}')"
            self.skipped.append(SkippedFile(str(path), f"{row}: duplicate row, same file as {first}{clash}"))
            return
        split = None
        if raw_split:
            split = SPLIT_VALUES.get(raw_split.lower())
            if split is None:
                self.skipped.append(SkippedFile(
                    str(path), f"{row}: unknown split '{raw_split}' (use train, val or test)"))
                return
        self.first_row[path] = (row, label)
        self.candidates.append(Candidate(path, label, split, origin=row))


def _normalise_splits(candidates: list[Candidate], notes: list[str]) -> list[Candidate]:
    """train/val are kept; test is validation only when there is no val; no val at all: no split."""
    splits = {c.split for c in candidates}
    if "test" in splits:
        if "val" in splits:
            notes.append(f"{sum(c.split == 'test' for c in candidates)} test rows left out "
                         f"(held-out test set; validation uses the val rows)")
            candidates = [c for c in candidates if c.split != "test"]
        else:
            notes.append("no val rows: the test rows are used for validation")
            candidates = [replace(c, split="val") if c.split == "test" else c for c in candidates]
    if splits & {"train", "val", "test"} and not any(c.split == "val" for c in candidates):
        notes.append("the split column has no validation rows: a stratified split will be made")
        candidates = [replace(c, split=None) for c in candidates]
    elif any(c.split is None for c in candidates) and any(c.split for c in candidates):
        notes.append(f"{sum(c.split is None for c in candidates)} rows without a split are used for training")
        candidates = [replace(c, split="train") if c.split is None else c for c in candidates]
    return candidates


def named_column(manifest: Path, columns, option: str, name: str) -> str:
    """The column the user named (exact, else ignoring case and spaces); an error listing the columns."""
    found = name if name in columns else find_column(columns, (name.strip().lower(),))
    if found is None:
        raise DatasetError(f"manifest {manifest} has no column '{name}' ({option}); its columns: "
                           f"{', '.join(map(str, columns))}")
    return found


def load_manifest(manifest: Path, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, path_column: str | None = None,
                  label_column: str | None = None, image_root: Path | None = None) -> Dataset:
    """Load a dataset listed in a CSV/TSV/Parquet manifest; every image is validated.

    ``path_column`` / ``label_column`` name the columns (default: the first usual name found);
    ``image_root`` is the folder relative paths resolve against and may not leave (default: the
    manifest's folder)."""
    manifest = Path(manifest)
    if image_root is not None and not Path(image_root).is_dir():
        raise DatasetError(f"--image-root {image_root}: not a folder")
    table = read_table(manifest)
    path_column = (named_column(manifest, table.columns, "--path-column", path_column) if path_column
                   else find_column(table.columns, PATH_COLUMNS))
    label_column = (named_column(manifest, table.columns, "--label-column", label_column) if label_column
                    else find_column(table.columns, LABEL_COLUMNS))
    split_column = find_column(table.columns, SPLIT_COLUMNS)
    for kind, column, names in (("path", path_column, PATH_COLUMNS), ("label", label_column, LABEL_COLUMNS)):
        if column is None:
            raise DatasetError(
                f"manifest {manifest} has no {kind} column (columns: {', '.join(map(str, table.columns))}); "
                f"name one of: {', '.join(names)}, or pass --{kind}-column NAME")

    is_csv = manifest.suffix.lower() in (".csv", ".tsv")
    rows = _Rows(manifest, (lambda i: f"row {i + 1} (line {i + 2})") if is_csv else (lambda i: f"row {i + 1}"),
                 image_root)
    paths = table[path_column].tolist()
    labels = table[label_column].tolist()
    splits = table[split_column].tolist() if split_column is not None else [None] * len(table)
    for index, (raw_path, label, raw_split) in enumerate(zip(paths, labels, splits)):
        rows.add(index, cell_text(raw_path), cell_text(label), cell_text(raw_split) or None)

    notes: list[str] = [f"manifest columns: path='{path_column}', label='{label_column}'"
                        + (f", split='{split_column}'" if split_column is not None else "")]
    candidates = _normalise_splits(rows.candidates, notes)
    return build_dataset(
        rows.root, candidates, source_format=manifest_format(manifest),
        max_pixels=max_pixels, skipped=rows.skipped, notes=notes,
        layout_hint=f"check the '{path_column}' and '{label_column}' columns of {manifest.name}")
