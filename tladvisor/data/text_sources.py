"""The two text layouts: class folders of ``.txt`` files (one text per file), and manifests with a text column.

Class folders follow the image layout (``root/<class>/<file>.txt``, optionally under ``train/`` and
``val/``); a manifest (CSV, TSV, JSON Lines, Parquet) has a text column, a label column and maybe a split
column, read as for images (:mod:`tladvisor.data.manifest`). Bytes that are not UTF-8 skip their text,
not the whole file.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from tladvisor.data.imagefolder import scan_image_folder
from tladvisor.data.images import looks_like_image
from tladvisor.data.manifest import (LABEL_COLUMNS, SPLIT_COLUMNS, SPLIT_VALUES, _normalise_splits, cell_text,
                                     find_column, manifest_format, named_column, read_table)
from tladvisor.data.assemble import Candidate
from tladvisor.data.text_intake import (MAX_TEXT_BYTES, TextCandidate, build_text_dataset, decode_marking,
                                        undecodable_bytes)
from tladvisor.errors import DatasetError
from tladvisor.records import Dataset, SkippedFile

TEXT_SUFFIXES = (".txt",)
TEXT_COLUMNS = ("text", "sentence", "review", "content", "document", "body", "utterance", "comment")
TEXT_FOLDER_HINT = "expected class folders of .txt files (DIR/<class>/<name>.txt, one text per file)"


def is_text_file(path: Path) -> bool:
    return path.suffix.lower() in TEXT_SUFFIXES


def folder_holds_texts(root: Path) -> bool:
    """True when the class folders under ``root`` hold .txt files and no images (auto-detection; one walk)."""
    found = scan_image_folder(root, lambda p: is_text_file(p) or looks_like_image(p), "sample").candidates
    return bool(found) and all(is_text_file(c.path) for c in found)


def load_text_folder(root: Path) -> Dataset:
    """Load ``root/<class>/<name>.txt`` files, one text each; too large files are skipped, with the reason."""
    root = Path(root)
    scan = scan_image_folder(root, is_text_file, "text")
    skipped = list(scan.skipped)
    candidates = []
    for candidate in scan.candidates:
        text = _read_text_file(candidate, skipped)
        if text is not None:
            candidates.append(TextCandidate(candidate.path, text, candidate.label, candidate.split))
    return build_text_dataset(root, candidates, source_format="textfolder", skipped=skipped, notes=scan.notes,
                              layout_hint=TEXT_FOLDER_HINT)


def _read_text_file(candidate: Candidate, skipped: list[SkippedFile]) -> str | None:
    try:
        size = candidate.path.stat().st_size
        if size > MAX_TEXT_BYTES:
            skipped.append(SkippedFile(str(candidate.path), f"text file of {size / 1e6:.1f} MB, larger than "
                                                            f"{MAX_TEXT_BYTES / 1e6:.0f} MB: one sample is one document"))
            return None
        return decode_marking(candidate.path.read_bytes())
    except OSError as error:
        skipped.append(SkippedFile(str(candidate.path), f"unreadable ({error.strerror or error})"))
        return None


def _row_start_lines(manifest: Path) -> list[int]:
    """The line each data row of a CSV/TSV starts on: a quoted text may span lines, so row n is not line n + 1."""
    tsv = manifest.suffix.lower() == ".tsv"
    reader = csv.reader(io.StringIO(decode_marking(manifest.read_bytes())), delimiter="\t" if tsv else ",",
                        quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL)
    starts, previous_end = [], 0
    for _ in reader:
        starts.append(previous_end + 1)
        previous_end = reader.line_num
    return starts[1:]  # the header aside


def text_column_of(table, text_column: str | None, manifest: Path) -> str | None:
    """The manifest's text column: the one named (an error when absent), else the first usual name, else None."""
    if text_column:
        return named_column(manifest, table.columns, "--text-column", text_column)
    return find_column(table.columns, TEXT_COLUMNS)


def load_text_manifest(manifest: Path, *, text_column: str | None = None, label_column: str | None = None,
                       table=None) -> Dataset:
    """Load a manifest whose rows hold the texts themselves. ``table``: the manifest already read (with
    :func:`~tladvisor.data.text_intake.decode_marking`), when the caller read it to detect the modality."""
    manifest = Path(manifest)
    if table is None:
        table = read_table(manifest, decode_marking)
    text_col = text_column_of(table, text_column, manifest)
    label_col = (named_column(manifest, table.columns, "--label-column", label_column) if label_column
                 else find_column(table.columns, LABEL_COLUMNS))
    split_col = find_column(table.columns, SPLIT_COLUMNS)
    for kind, column, names in (("text", text_col, TEXT_COLUMNS), ("label", label_col, LABEL_COLUMNS)):
        if column is None:
            raise DatasetError(f"manifest {manifest} has no {kind} column (columns: {', '.join(map(str, table.columns))}); "
                               f"name one of: {', '.join(names)}, or pass --{kind}-column NAME")
    is_csv = manifest_format(manifest) == "csv"
    first_lines = _row_start_lines(manifest) if is_csv else []
    skipped: list[SkippedFile] = []
    candidates: list[Candidate | TextCandidate] = []
    splits = table[split_col].tolist() if split_col is not None else [None] * len(table)
    for index, (text, label, raw_split) in enumerate(zip(table[text_col].tolist(), table[label_col].tolist(), splits)):
        line = first_lines[index] if index < len(first_lines) else index + 2
        row = f"row {index + 1} (line {line})" if is_csv else f"row {index + 1}"
        label, raw_split = cell_text(label), cell_text(raw_split)
        if not label:
            skipped.append(SkippedFile(f"{manifest} {row}", f"{row}: no label"))
            continue
        bad = undecodable_bytes(label)
        if bad is not None:
            skipped.append(SkippedFile(f"{manifest} {row}", f"{row}: label not UTF-8 ({bad})"))
            continue
        split = SPLIT_VALUES.get(raw_split.lower()) if raw_split else None
        if raw_split and split is None:
            skipped.append(SkippedFile(f"{manifest} {row}", f"{row}: unknown split '{raw_split}' (use train, val or test)"))
            continue
        candidates.append(TextCandidate(manifest, cell_text(text), label, split, origin=row))
    notes = [f"manifest columns: text='{text_col}', label='{label_col}'"
             + (f", split='{split_col}'" if split_col is not None else "")]
    candidates = _normalise_splits(candidates, notes)
    return build_text_dataset(manifest.parent, candidates, source_format=manifest_format(manifest), skipped=skipped,
                              notes=notes, layout_hint=f"check the '{text_col}' and '{label_col}' columns of {manifest.name}")
