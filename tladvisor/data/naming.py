"""A readable name for the data a run analyses, for its run folder (``<name>-<hash>``).

A folder is named by itself. A manifest's file name is often generic (``labels.csv``,
``train.csv``), so a manifest is named by its image root when one is given, else by the folder it
sits in (or that folder's parent when the folder is called ``manifests``, ``labels``...), plus its
own name when that says something.
"""

from __future__ import annotations

from pathlib import Path

GENERIC_NAMES = frozenset({
    "manifest", "manifests", "label", "labels", "annotation", "annotations", "meta", "metadata", "data",
    "dataset", "index", "csv", "splits", "split", "lists", "train", "training", "all", "images", "files",
})


def data_name(source: Path, image_root: Path | None = None) -> str:
    """``flowers`` for ``flowers/`` or ``flowers/manifests/labels.csv``; ``flowers-2024`` for
    ``flowers/2024.csv``."""
    source = Path(source).resolve()
    if source.is_dir():
        return source.stem  # as run names always were, so a re-run finds its folder
    stem = source.stem
    if image_root is not None:
        folder = Path(image_root).resolve()
    else:
        folder = source.parent
        if folder.name.lower() in GENERIC_NAMES and folder.parent != folder:
            folder = folder.parent
    name = folder.name or stem
    if stem.lower() not in GENERIC_NAMES and stem != name:
        name = f"{name}-{stem}"
    return name
