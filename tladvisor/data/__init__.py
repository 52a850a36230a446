"""Dataset intake: loaders, image validation, profile, split, bundled examples.

Where things are: ``images`` (open any image as RGB), ``validate`` (is one file usable),
``imagefolder`` / ``manifest`` (find labelled files), ``assemble`` (validate them into a Dataset),
``sources`` (pick the loader: ``load_source``), ``split`` (``split_indices``), ``duplicates``,
``profile`` (``profile_dataset``), ``examples`` (``write_example``). Nothing is imported here, so
``from tladvisor.data.images import open_rgb`` stays cheap.
"""
