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


def load_source(source: str | Path, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, path_column: str | None = None,
                label_column: str | None = None, image_root: Path | None = None) -> Dataset:
    """Load a dataset folder or manifest; raise :class:`DatasetError` (one line) when neither.

    The column names and the image root apply to a manifest only; given for a folder, they are an error."""
    source = Path(source).expanduser()
    if source.is_dir():
        given = [option for option, value in (("--path-column", path_column), ("--label-column", label_column),
                                              ("--image-root", image_root)) if value]
        if given:
            raise DatasetError(f"{' and '.join(given)} apply to a manifest (CSV/Parquet), and {source} is a folder")
        return load_image_folder(source, max_pixels=max_pixels)
    if is_manifest(source):
        return load_manifest(source, max_pixels=max_pixels, path_column=path_column, label_column=label_column,
                             image_root=Path(image_root).expanduser() if image_root else None)
    if not source.exists():
        raise DatasetError(f"dataset not found: {source} does not exist; {WHAT_TO_GIVE}")
    raise DatasetError(f"cannot read {source} as a dataset (unknown file type '{source.suffix}'); {WHAT_TO_GIVE}")
