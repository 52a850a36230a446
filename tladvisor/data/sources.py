"""Which loader reads what the user pointed at: a folder (ImageFolder) or a manifest file."""

from __future__ import annotations

from pathlib import Path

from tladvisor.data.imagefolder import load_image_folder
from tladvisor.data.images import DEFAULT_MAX_PIXELS
from tladvisor.data.manifest import MANIFEST_SUFFIXES, is_manifest, load_manifest
from tladvisor.errors import DatasetError
from tladvisor.records import Dataset

WHAT_TO_GIVE = ("give a folder of class folders (DIR/<class>/<image>) or a manifest "
                f"({', '.join(MANIFEST_SUFFIXES)}) with path and label columns")


def load_source(source: str | Path, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Dataset:
    """Load a dataset folder or manifest; raise :class:`DatasetError` (one line) when neither."""
    source = Path(source).expanduser()
    if source.is_dir():
        return load_image_folder(source, max_pixels=max_pixels)
    if is_manifest(source):
        return load_manifest(source, max_pixels=max_pixels)
    if not source.exists():
        raise DatasetError(f"dataset not found: {source} does not exist; {WHAT_TO_GIVE}")
    raise DatasetError(f"cannot read {source} as a dataset (unknown file type '{source.suffix}'); {WHAT_TO_GIVE}")
