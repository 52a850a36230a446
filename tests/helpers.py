"""Generated datasets for tests: small PNG folders whose classes differ in a learnable way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tladvisor.records import Dataset, Sample


def write_image_folder(root: Path, n_classes: int = 3, per_class: int = 12, size: int = 32, seed: int = 0,
                       greyscale: bool = False) -> Path:
    """``root/<class>/<i>.png``; class k has a brighter k-th colour channel plus noise, so it is learnable."""
    rng = np.random.default_rng(seed)
    for k in range(n_classes):
        folder = root / f"class_{k}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.normal(0.35, 0.12, (size, size, 3))
            pixels[..., k % 3] += 0.35
            pixels = (np.clip(pixels, 0, 1) * 255).astype(np.uint8)
            image = Image.fromarray(pixels)
            if greyscale:
                image = image.convert("L")
            image.save(folder / f"{i}.png")
    return root


def dataset_from_folder(root: Path) -> Dataset:
    """A Dataset record without the loader (for tests of later stages)."""
    classes = tuple(sorted(p.name for p in root.iterdir() if p.is_dir()))
    samples = tuple(Sample(path, label, digest=f"{path.parent.name}/{path.name}")
                    for label, name in enumerate(classes) for path in sorted((root / name).glob("*.png")))
    return Dataset(root, classes, samples)


TINY_PLUGIN = '''
from tladvisor import hookimpl
from tladvisor.testing import tiny_backbone_spec

@hookimpl
def register_backbones(register):
    register(tiny_backbone_spec())
'''
