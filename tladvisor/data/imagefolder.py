"""ImageFolder layout: ``root/<class>/<image>``, or ``root/{train,val|test}/<class>/<image>``.

Class folders are searched recursively. Hidden files and folders (``.name``, ``__MACOSX``) are
ignored, and so are files whose extension is not an image one (counted in a note, not "skipped").
Symlinks are followed: the folder is the user's own layout (manifests, which are data, are stricter).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tladvisor.data.assemble import Candidate, build_dataset
from tladvisor.data.images import DEFAULT_MAX_PIXELS, looks_like_image
from tladvisor.data.wording import counted
from tladvisor.records import Dataset, SkippedFile

SPLIT_FOLDER_NAMES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val",
    "test": "test", "testing": "test",
}
LAYOUT_HINT = ("expected class folders (DIR/<class>/<image>.jpg, optionally under DIR/train and DIR/val) "
               "or a CSV/Parquet manifest with path and label columns")


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def visible_subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not _is_hidden(p.name) and p.is_dir())


def _visible_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not _is_hidden(p.name) and p.is_file())


class _Scan:
    """What a walk over the folders found: candidates, files skipped before decoding, notes."""

    def __init__(self, wanted: Callable[[Path], bool] = looks_like_image, noun: str = "image") -> None:
        self.wanted, self.noun = wanted, noun  # which files are samples (the text loader wants .txt files)
        self.candidates: list[Candidate] = []
        self.skipped: list[SkippedFile] = []
        self.notes: list[str] = []
        self.ignored_extensions: Counter[str] = Counter()

    def loose_files(self, folder: Path) -> None:
        """Images lying next to the class folders belong to no class: say so."""
        for path in _visible_files(folder):
            if self.wanted(path):
                self.skipped.append(SkippedFile(str(path), "not inside a class folder (no label)"))
            else:
                self.ignored_extensions[path.suffix.lower() or "(none)"] += 1

    def class_folder(self, folder: Path, split: str | None) -> None:
        found = 0
        for directory, subdirs, files in os.walk(folder):
            subdirs[:] = sorted(d for d in subdirs if not _is_hidden(d))
            for name in sorted(files):
                path = Path(directory) / name
                if _is_hidden(name):
                    continue
                if self.wanted(path):
                    self.candidates.append(Candidate(path, folder.name, split))
                    found += 1
                else:
                    self.ignored_extensions[path.suffix.lower() or "(none)"] += 1
        if found == 0:
            where = f"{split}/{folder.name}" if split else folder.name
            self.notes.append(f"folder '{where}' holds no {self.noun} files, so it is not a class")

    def classes_under(self, folder: Path, split: str | None) -> None:
        self.loose_files(folder)
        for class_folder in visible_subfolders(folder):
            self.class_folder(class_folder, split)

    def note_ignored_extensions(self) -> None:
        if self.ignored_extensions:
            listing = ", ".join(f"{ext} x{n}" for ext, n in self.ignored_extensions.most_common(5))
            total = sum(self.ignored_extensions.values())
            article = "an" if self.noun[0] in "aeiou" else "a"
            self.notes.append(f"ignored {counted(total, 'file')} without {article} {self.noun} extension ({listing})")


def _split_folders(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in visible_subfolders(root):
        split = SPLIT_FOLDER_NAMES.get(folder.name.lower())
        if split and split not in found:
            found[split] = folder
    return found


def scan_image_folder(root: Path, wanted: Callable[[Path], bool] = looks_like_image, noun: str = "image") -> _Scan:
    """Find candidate images (files ``wanted`` picks) and their labels (and splits) without opening any of them."""
    scan = _Scan(wanted, noun)
    splits = _split_folders(root)
    subfolders = visible_subfolders(root)
    if "train" in splits and ("val" in splits or "test" in splits):
        held_out = splits.get("val") or splits["test"]
        if "val" in splits and "test" in splits:
            scan.notes.append(f"validation uses '{splits['val'].name}/'; '{splits['test'].name}/' is left "
                              f"untouched as a held-out test set")
        elif "val" not in splits:
            scan.notes.append(f"no val/ folder: '{held_out.name}/' is used for validation")
        others = [f.name for f in subfolders if f not in splits.values()]
        if others:
            scan.notes.append(f"folders next to train/ and val/ ignored: {', '.join(others)}")
        scan.loose_files(root)
        scan.classes_under(splits["train"], "train")
        scan.classes_under(held_out, "val")
    elif list(splits) == ["train"] and len(subfolders) == 1:
        scan.notes.append("only a train/ folder: a stratified validation split will be made from it")
        scan.loose_files(root)
        scan.classes_under(splits["train"], None)
    else:
        scan.classes_under(root, None)
    scan.note_ignored_extensions()
    return scan


def load_image_folder(root: Path, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Dataset:
    """Load an ImageFolder-layout dataset; every image is validated (see :mod:`tladvisor.data.validate`)."""
    root = Path(root)
    scan = scan_image_folder(root)
    return build_dataset(root, scan.candidates, source_format="imagefolder", max_pixels=max_pixels,
                         skipped=scan.skipped, notes=scan.notes, layout_hint=LAYOUT_HINT)
