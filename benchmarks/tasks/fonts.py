"""Finding installed font files (the glyph and document families render text with them).

Fonts are looked up by file name under ``FONT_DIRS`` (Debian: fonts-dejavu-core ships DejaVu, which
most images have; fonts-liberation and fonts-freefont-ttf add Liberation and GNU FreeFont). A task
whose fonts are absent is skipped with a message naming the Debian package to install.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

FONT_DIRS = tuple(p for p in os.environ.get("TLADVISOR_FONT_DIRS", "/usr/share/fonts:/usr/local/share/fonts").split(":") if p)
PACKAGES = {"DejaVu": "fonts-dejavu-core", "Liberation": "fonts-liberation", "Free": "fonts-freefont-ttf"}


@lru_cache(maxsize=1)
def installed_fonts() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in FONT_DIRS:
        root = Path(folder)
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                if path.suffix.lower() in (".ttf", ".otf"):
                    found.setdefault(path.name, path)
    return found


def font_paths(names: tuple[str, ...]) -> list[Path]:
    fonts = installed_fonts()
    return [fonts[n] for n in names if n in fonts]


def missing_fonts(*names: str):
    """A ``TaskSpec.missing`` check: the reason when any of ``names`` (file names) is not installed."""
    def check() -> str | None:
        absent = [n for n in names if n not in installed_fonts()]
        if not absent:
            return None
        packages = sorted({p for prefix, p in PACKAGES.items() for n in absent if n.startswith(prefix)})
        return (f"font file(s) {', '.join(absent)} not under {':'.join(FONT_DIRS)}"
                + (f" (apt-get install {' '.join(packages)})" if packages else ""))
    return check


def load(path: Path, size: int):
    from PIL import ImageFont

    return ImageFont.truetype(str(path), size)
