"""Opening user images safely and turning any PIL mode into correct 8-bit RGB.

(Owner: the data-intake work; keep ``open_rgb``'s signature: training and embedding call it.)

Why not just ``image.convert("RGB")``: PIL clips 16-bit and 32-bit greyscale at 255 instead of
scaling (a 16-bit PNG turns almost white), and drops alpha onto black. Here alpha is composited on
white, high-bit-depth data is scaled to 0..255, and the EXIF orientation is applied.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tladvisor.records import MAX_IMAGE_PIXELS

IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
    ".ppm", ".pgm", ".pbm", ".pnm",
})
"""File extensions treated as images when scanning folders (compared lower-case)."""

DEFAULT_MAX_PIXELS = MAX_IMAGE_PIXELS  # the one definition lives in records (AnalysisOptions' default)

_ORIENTATION_TAG = 0x0112
_TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})


def looks_like_image(path: Path) -> bool:
    """True for a non-hidden file whose extension is an image extension."""
    return not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation (1..8); 1 when absent or unreadable (a broken EXIF block is not fatal)."""
    try:
        value = int(image.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # malformed EXIF raises all sorts of errors; the pixels are still fine
        return 1
    return value if value in _TRANSPOSE_FOR_ORIENTATION else 1


def oriented_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) as displayed, i.e. after the EXIF orientation is applied."""
    width, height = image.size
    return (height, width) if exif_orientation(image) in (5, 6, 7, 8) else (width, height)


def apply_orientation(image: Image.Image) -> Image.Image:
    method = _TRANSPOSE_FOR_ORIENTATION.get(exif_orientation(image))
    return image if method is None else image.transpose(method)


def _scaled_to_uint8(values: np.ndarray, full_scale: float | None) -> np.ndarray:
    """Map integer/float pixel values to 0..255: by a known full scale, else by the data's range."""
    values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if full_scale is None:
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) * 255.0 if high > low else np.zeros_like(values)
    else:
        scaled = values * (255.0 / full_scale)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _high_bit_depth_to_l(image: Image.Image) -> Image.Image:
    """Greyscale I;16*, I (32-bit int) or F (float) to 8-bit L, scaled rather than clipped."""
    values = np.asarray(image)
    if image.mode.startswith("I;16"):
        full_scale: float | None = 65535.0
    else:
        low, high = float(np.nanmin(values)), float(np.nanmax(values))
        if image.mode == "F" and low >= 0.0 and high <= 1.0:
            full_scale = 1.0  # the usual float image convention
        elif low >= 0.0 and high <= 255.0:
            full_scale = 255.0  # 8-bit data stored wide
        elif low >= 0.0 and high <= 65535.0:
            full_scale = 65535.0  # 16-bit data (some PNG/TIFF readers give mode I)
        else:
            full_scale = None  # unknown range: stretch what is there
    return Image.fromarray(_scaled_to_uint8(values, full_scale))  # 2-D uint8: mode L


def _composited_on_white(image: Image.Image) -> Image.Image:
    if image.mode == "La":  # premultiplied: PIL converts it only to LA
        image = image.convert("LA")
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB: alpha (incl. palette transparency) on white, high bit depth scaled."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _ALPHA_MODES or (mode in ("P", "L", "RGB") and "transparency" in image.info):
        return _composited_on_white(image)
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _high_bit_depth_to_l(image).convert("RGB")
    return image.convert("RGB")  # 1, L, P, CMYK, YCbCr, ... : PIL's conversions are right for these


def open_rgb(path: str | Path) -> Image.Image:
    """Open an image file as an RGB PIL image, EXIF orientation applied.

    Fully decodes the file, so a truncated image raises ``OSError`` here rather than yielding
    grey bottom rows. PIL's global decompression-bomb check stays in force.
    """
    with Image.open(path) as image:
        image.load()
        rgb = to_rgb(apply_orientation(image))
        return rgb.copy() if rgb is image else rgb
