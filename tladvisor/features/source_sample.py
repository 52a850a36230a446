"""``--source-sample``: a sample of the backbones' source domain that the user supplies.

For images, a folder of images (as before text existed: only image files count). For texts, a ``.txt``
file (one text per line) or a folder of ``.txt`` files (one text each). Their embeddings give the distances
to the source (Fréchet, MMD); for texts, their hidden-state moments also give the per-stage shift
(:mod:`tladvisor.features.embed_text`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from tladvisor.data.images import looks_like_image
from tladvisor.data.text_intake import check_text, decode_marking
from tladvisor.errors import DatasetError

log = logging.getLogger(__name__)


def source_sample_paths(given: Path | None, modality: str = "image") -> list[Path]:
    """The files of the source sample, in a stable order: images, or for texts the .txt file(s)."""
    if given is None:
        return []
    given = Path(given)
    if modality == "text":
        if given.is_file():
            return [given]
        if not given.is_dir():
            raise DatasetError(f"--source-sample {given}: not a .txt file or a folder of .txt files")
        paths = sorted(p for p in given.rglob("*.txt") if p.is_file())
        if not paths:
            raise DatasetError(f"--source-sample {given}: no .txt files found")
        return paths
    if not given.is_dir():
        raise DatasetError(f"--source-sample {given}: not a folder")
    paths = sorted(p for p in given.rglob("*") if looks_like_image(p) and p.is_file())  # the loaders' rule
    if not paths:
        raise DatasetError(f"--source-sample {given}: no images found")
    return paths


def read_source_texts(given: Path | None) -> list[str]:
    """The texts of a text source sample: each line of a file, or each .txt file of a folder whole; empty and
    undecodable ones are left out (and an empty result is said, since the stage shift then cannot be had)."""
    if given is None:
        return []
    given = Path(given)
    if given.is_file():
        texts = decode_marking(given.read_bytes()).splitlines()
    else:
        texts = [decode_marking(p.read_bytes()) for p in source_sample_paths(given, "text")]
    usable = [t.strip() for t in texts if check_text(t) is None]
    if not usable:
        log.warning("--source-sample %s holds no usable text: no distances to the source, no stage shift", given)
    return usable
