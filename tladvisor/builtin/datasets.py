"""Built-in plugin: the dataset loaders (class folders and manifests, of images or texts) and the profilers.

Both hooks run last (``trylast``), so a third-party loader or profiler gets the first chance.
"""

from __future__ import annotations

from pathlib import Path

from tladvisor import hookimpl
from tladvisor.data.images import DEFAULT_MAX_PIXELS
from tladvisor.data.profile import profile_dataset as describe_dataset
from tladvisor.data.sources import load_source
from tladvisor.data.text_profile import profile_texts as describe_texts


@hookimpl(trylast=True)
def load_dataset(source, options):
    """Folders and manifests; anything else is a one-line DatasetError (this is the last loader)."""
    max_pixels = getattr(options, "max_image_pixels", DEFAULT_MAX_PIXELS)
    return load_source(Path(source), max_pixels=max_pixels, path_column=getattr(options, "path_column", None),
                       label_column=getattr(options, "label_column", None),
                       image_root=getattr(options, "image_root", None),
                       text_column=getattr(options, "text_column", None), modality=getattr(options, "modality", "auto"))


@hookimpl(trylast=True)
def profile_dataset(dataset, options):
    if getattr(dataset, "modality", "image") == "text":
        return describe_texts(dataset, val_fraction=options.val_fraction, seed=options.seed)
    return describe_dataset(dataset, val_fraction=options.val_fraction, seed=options.seed)
