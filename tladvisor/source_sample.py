"""``--source-sample``: a sample of the backbone's source domain that the user supplies.

For images, a folder of images; for texts, a text file (one text per line) or a folder of ``.txt`` files (one
text each). Their embeddings give the distances to the source (Fréchet, MMD); for texts, their hidden-state
moments also give the per-stage shift (:mod:`tladvisor.embed_text`).
"""

from __future__ import annotations

from pathlib import Path

from tladvisor.data.images import looks_like_image
from tladvisor.data.text_intake import check_text, decode_marking
from tladvisor.errors import DatasetError


def source_sample_paths(folder: Path | None) -> list[Path]:
    """The images of an image source sample, in a stable order (for texts: the files that hold them)."""
    if folder is None:
        return []
    folder = Path(folder)
    if folder.is_file() and folder.suffix.lower() == ".txt":
        return [folder]
    if not folder.is_dir():
        raise DatasetError(f"--source-sample {folder}: not a folder (or, for texts, a .txt file)")
    paths = sorted(p for p in folder.rglob("*") if (looks_like_image(p) or p.suffix.lower() == ".txt") and p.is_file())
    if not paths:
        raise DatasetError(f"--source-sample {folder}: no images or .txt files found")
    return paths


def read_source_texts(paths: list[Path]) -> list[str]:
    """The texts of a text source sample: each line of a single .txt file, else each .txt file whole; empty and
    undecodable ones are left out."""
    paths = [p for p in paths if p.suffix.lower() == ".txt"]
    if len(paths) == 1:
        texts = decode_marking(paths[0].read_bytes()).splitlines()
    else:
        texts = [decode_marking(p.read_bytes()) for p in paths]
    return [t.strip() for t in texts if check_text(t) is None]
