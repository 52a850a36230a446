"""Checking one image file: is it usable, and what is it (size, mode, content hash)?

Each file is opened and fully decoded on its own, so memory stays bounded by one image whatever
the dataset size. Nothing here changes PIL's global settings: truncated images stay errors, and
the decompression-bomb warning is turned into an error only inside this check.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from tladvisor.data.images import apply_orientation, oriented_size, to_rgb
from tladvisor.text import one_line

_HASH_CHUNK = 1 << 20
_DRAFT_ABOVE_PIXELS = 16_000_000  # large JPEGs are validated at reduced scale (still decoded fully)


@dataclass(frozen=True)
class ImageFacts:
    width: int  # as displayed (EXIF orientation applied)
    height: int
    mode: str  # PIL mode before conversion
    digest: str  # blake2b of the file bytes


class UnusableImage(Exception):
    """The file cannot be used as an image; ``str(error)`` is the reason shown to the user."""


def file_digest(path: Path) -> str:
    """Content hash of a file (blake2b, 128 bit), read in chunks."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _bomb_reason(pixels: int, limit: int) -> str:
    return (f"decompression-bomb guard: {pixels:,} pixels exceeds the limit of {limit:,} "
            f"(raise max_image_pixels if the image is genuine)")


def _decode(path: Path, max_pixels: int | None) -> tuple[int, int, str]:
    with Image.open(path) as image:
        width, height = oriented_size(image)
        if max_pixels is not None and width * height > max_pixels:
            raise UnusableImage(_bomb_reason(width * height, max_pixels))
        mode = image.mode
        if image.format == "JPEG" and width * height > _DRAFT_ABOVE_PIXELS:
            image.draft(image.mode, (width // 4, height // 4))  # DCT scaling: less memory, same checks
        image.load()  # full decode: truncated or corrupt data fails here
        to_rgb(apply_orientation(image))  # what open_rgb will do later must work now
        return width, height, mode


def inspect_image(path: Path, *, max_pixels: int | None = None) -> ImageFacts:
    """Validate one image file; raise :class:`UnusableImage` with a one-line reason if unusable."""
    try:
        if not path.is_file():
            raise UnusableImage("file not found" if not path.exists() else "not a regular file")
        if path.stat().st_size == 0:
            raise UnusableImage("empty file (0 bytes)")
        digest = file_digest(path)
    except OSError as error:
        raise UnusableImage(f"cannot read the file ({error.strerror or error})") from None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PIL's chatter about EXIF or palettes is not the user's problem
        if max_pixels is None or max_pixels <= (Image.MAX_IMAGE_PIXELS or 0):
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # else our own, higher cap rules
        try:
            width, height, mode = _decode(path, max_pixels)
        except UnusableImage:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise UnusableImage(f"decompression-bomb guard (PIL): {_first_sentence(error)}") from None
        except UnidentifiedImageError:
            raise UnusableImage("not an image (no image format recognised in the file's bytes)") from None
        except OSError as error:
            text = str(error)
            if "truncated" in text or "broken data stream" in text:
                raise UnusableImage("truncated image (the file ends before the image data does)") from None
            raise UnusableImage(f"corrupt image ({_first_sentence(error)})") from None
        except MemoryError:
            raise UnusableImage("too large to decode in memory") from None
        except Exception as error:  # SyntaxError, ValueError, struct.error...: PIL's ways of saying corrupt
            raise UnusableImage(f"corrupt image ({type(error).__name__}: {_first_sentence(error)})") from None
    return ImageFacts(width=width, height=height, mode=mode, digest=digest)


def _first_sentence(error: BaseException) -> str:
    text = one_line(error, with_type=False)
    return text.split(". ")[0].rstrip(".")
