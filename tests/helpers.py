"""Generated datasets for tests: small PNG folders whose classes differ in a learnable way."""

from __future__ import annotations

import io
import struct
import zlib
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


def write_image(path: Path, colour=(120, 60, 30), size=(16, 12), mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)
    return path


def png_with_header_only(path: Path, width: int, height: int) -> Path:
    """A tiny file that claims width x height pixels: a decompression bomb by its header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def write_messy_folder(root: Path) -> Path:
    """Good images plus every kind of bad file a user's folder holds (see test_data_loading)."""
    for i in range(3):
        write_image(root / "cat" / f"cat{i}.png", colour=(200, 10 * i, 0))
        write_image(root / "dog" / f"dog{i}.jpg", colour=(0, 10 * i, 200))
    write_image(root / "lonely" / "only.png")  # a class with a single image
    (root / "cat" / "empty.jpg").write_bytes(b"")
    noise = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "JPEG")
    (root / "cat" / "truncated.jpg").write_bytes(buffer.getvalue()[:-400])
    (root / "dog" / "notes.png").write_text("this is not a picture")
    Image.new("RGB", (8, 8), (200, 40, 60)).convert("CMYK").save(root / "dog" / "cmyk.jpg", quality=95)
    Image.fromarray(np.full((6, 5), 257 * 50, dtype=np.uint16)).save(root / "cat" / "deep.png")
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    palette.putpixel((0, 0), 1)
    palette.save(root / "cat" / "palette.png", transparency=0)
    write_image(root / "dog" / "huge.png", size=(300, 200))  # over the low limit set below
    png_with_header_only(root / "dog" / "bomb.png", 100_000, 100_000)  # over PIL's own hard limit
    (root / "dog" / ".hidden.png").write_text("hidden files are ignored")
    (root / "dog" / "README.txt").write_text("non-image extensions are ignored")
    return root


def analyze_tiny(plugins: Path, data: Path, tmp_path: Path, *extra: str, out: Path | None = None,
                 run_name: str | None = "run") -> int:
    """``tladvisor analyze`` in-process with the tiny backbone; outputs and caches under ``tmp_path``."""
    from tladvisor.cli import main

    args = ["--plugins-dir", str(plugins), "analyze", str(data), "--backbone", "tiny_cnn",
            "--out", str(out or tmp_path / "reports"), "--cache-dir", str(tmp_path / "cache"), "--device", "cpu"]
    if run_name:
        args += ["--run-name", run_name]
    return main([*args, *extra])


def dependency_missing(reason: str):
    """A test whose dependency (a server, a browser, fonts, a package) is absent: skipped on a developer's
    machine, but a failure under ``CI=true``, where scripts/test.sh installs every dependency, so a CI run
    that could not test something is red, not silently green."""
    import os

    import pytest

    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and a test dependency is missing: {reason}", pytrace=False)
    pytest.skip(reason)


def require_module(name: str, reason: str):
    """``pytest.importorskip`` that fails under ``CI=true`` (see :func:`dependency_missing`)."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        dependency_missing(reason)
