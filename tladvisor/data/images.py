"""Opening user images safely. (Owner: the data-intake work; keep ``open_rgb``'s signature.)"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageOps


def open_rgb(path: str | Path) -> Image.Image:
    """Open an image file as an RGB PIL image, EXIF orientation applied."""
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        return image.convert("RGB")
