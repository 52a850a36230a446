"""Which loader reads what the user pointed at: a folder or a manifest file, of images or of texts.

The modality is found from the data unless the user forces it (``--modality``): a folder whose class
folders hold ``.txt`` files and no images is text; a manifest with a text column and no path column is text.
"""

from __future__ import annotations

from pathlib import Path

from tladvisor.data.imagefolder import load_image_folder
from tladvisor.data.images import DEFAULT_MAX_PIXELS
from tladvisor.data.manifest import MANIFEST_SUFFIXES, PATH_COLUMNS, find_column, is_manifest, load_manifest, read_table
from tladvisor.data.text_intake import decode_marking
from tladvisor.data.text_sources import folder_holds_texts, load_text_folder, load_text_manifest, text_column_of
from tladvisor.errors import DatasetError
from tladvisor.records import Dataset

MODALITIES = ("auto", "image", "text")
WHAT_TO_GIVE = ("give a folder of class folders (DIR/<class>/<image or .txt file>) or a manifest "
                f"({', '.join(MANIFEST_SUFFIXES)}) with path (or text) and label columns")


def load_source(source: str | Path, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, path_column: str | None = None,
                label_column: str | None = None, image_root: Path | None = None, text_column: str | None = None,
                modality: str = "auto") -> Dataset:
    """Load a dataset folder or manifest; raise :class:`DatasetError` (one line) when neither.

    The column names and the image root apply to a manifest only; given for a folder, they are an error."""
    source = Path(source).expanduser()
    if modality not in MODALITIES:
        raise DatasetError(f"--modality {modality}: use one of {', '.join(MODALITIES)}")
    if source.is_dir():
        given = [option for option, value in (("--path-column", path_column), ("--label-column", label_column),
                                              ("--image-root", image_root), ("--text-column", text_column)) if value]
        if given:
            raise DatasetError(f"{' and '.join(given)} apply to a manifest (CSV/Parquet/JSONL), and {source} is a folder")
        if modality == "text" or (modality == "auto" and folder_holds_texts(source)):
            return load_text_folder(source)
        return load_image_folder(source, max_pixels=max_pixels)
    if is_manifest(source):
        if modality == "image" or path_column or image_root:
            return _image_manifest(source, max_pixels, path_column, label_column, image_root, text_column)
        table = read_table(source, decode_marking)
        text_col = text_column_of(table, text_column, source)  # an explicit --text-column means text
        path_col = find_column(table.columns, PATH_COLUMNS)
        if modality == "text" or text_column or (text_col is not None and path_col is None):
            return load_text_manifest(source, text_column=text_column, label_column=label_column, table=table)
        try:
            return _image_manifest(source, max_pixels, path_column, label_column, image_root, text_column)
        except DatasetError as error:
            if text_col is None:
                raise
            raise DatasetError(f"{error}; it also has a text column ('{text_col}'): for texts, pass --modality "
                               "text") from None
    if not source.exists():
        raise DatasetError(f"dataset not found: {source} does not exist; {WHAT_TO_GIVE}")
    raise DatasetError(f"cannot read {source} as a dataset (unknown file type '{source.suffix}'); {WHAT_TO_GIVE}")


def _image_manifest(source: Path, max_pixels, path_column, label_column, image_root, text_column) -> Dataset:
    if text_column:
        raise DatasetError(f"--text-column applies to a text manifest, and {source} is read as images "
                           "(it has a path column, or --modality image, --path-column or --image-root was given)")
    return load_manifest(source, max_pixels=max_pixels, path_column=path_column, label_column=label_column,
                         image_root=Path(image_root).expanduser() if image_root else None)
