"""Sample images as small JPEG ``data:`` URIs, so the report needs no file next to it and no server."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from PIL import Image

from tladvisor.data.images import apply_orientation, open_rgb, to_rgb

THUMBNAIL_PIXELS = 80  # longest side; shown at 60 CSS pixels, sharp on a 1.3x screen
JPEG_QUALITY = 72
MAX_THUMBNAILS = 72  # all classes together: about 3 KB each keeps the report far below 1 MB


def thumbnail_data_uri(path: str | Path, root: str | Path | None = None) -> str | None:
    """A JPEG data URI of the image at ``path`` (relative paths also tried under ``root``), or None.

    A file that moved, vanished or does not decode is simply left out: a report re-rendered months
    later must still render.
    """
    path = Path(path)
    candidates = [path] if path.is_absolute() or root is None else [path, Path(root) / path]
    for candidate in candidates:
        try:
            if not candidate.is_file():
                continue
            image = _open_small(candidate, THUMBNAIL_PIXELS)
            image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
        except Exception:  # any decoder error: PIL raises many kinds, including DecompressionBombError
            continue
        return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return None


def _open_small(path: Path, size: int) -> Image.Image:
    """Like ``open_rgb``, but a JPEG decodes at reduced scale: a 12-megapixel photo in ~10 ms, not ~350."""
    with Image.open(path) as image:
        if image.format != "JPEG":
            return open_rgb(path)
        image.draft("RGB", (size * 2, size * 2))  # DCT scaling keeps at least twice the thumbnail size
        image.load()
        rgb = to_rgb(apply_orientation(image))
        return rgb.copy() if rgb is image else rgb


def class_thumbnails(examples: dict[str, list[str]], root: str | None = None,
                     budget: int = MAX_THUMBNAILS) -> list[dict]:
    """``[{"name": class, "images": [{"uri", "path"}]}]`` sharing ``budget`` thumbnails fairly between classes.

    With many classes each gets fewer images (at least one) and classes past the budget are left out;
    the caller says how many.
    """
    if not examples:
        return []
    per_class = max(1, min(6, budget // max(len(examples), 1)))
    grid = []
    for name, paths in list(examples.items())[:budget]:
        images = []
        for path in paths:
            if len(images) == per_class:
                break
            uri = thumbnail_data_uri(path, root)
            if uri:
                images.append({"uri": uri, "path": str(path)})
        grid.append({"name": name, "images": images, "n_paths": len(paths)})
    return grid
