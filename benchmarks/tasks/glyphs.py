"""Glyphs rendered from installed fonts: letters, font identity (fine-grained), scripts, math symbols.

Source: TrueType files under /usr/share/fonts (see fonts.py). Every image is one draw with a random
font size, position, small rotation, ink and paper grey, and mild blur, so train, val and test images
are different renderings (the glyph shapes themselves are shared: this is recognising a glyph, not
generalising across handwriting).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .common import IMAGE_PX, TaskSpec, Writer
from .fonts import font_paths, load, missing_fonts

FAMILY = "glyphs"
DEJAVU = ("DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif-Bold.ttf",
          "DejaVuSans-Oblique.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSansCondensed.ttf")


def render(text: str, font_path, rng: np.random.Generator, size_range: tuple[int, int] = (34, 50),
           rotate: float = 12.0, canvas: int = 96) -> Image.Image:
    """``text`` drawn once on a grey paper, jittered, rotated a little, blurred a little."""
    paper, ink = int(rng.integers(170, 256)), int(rng.integers(0, 90))
    image = Image.new("L", (canvas, canvas), paper)
    draw = ImageDraw.Draw(image)
    font = load(font_path, int(rng.integers(*size_range)))
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    width, height = right - left, bottom - top
    x = (canvas - width) / 2 - left + rng.uniform(-0.1, 0.1) * canvas
    y = (canvas - height) / 2 - top + rng.uniform(-0.1, 0.1) * canvas
    draw.text((x, y), text, fill=ink, font=font)
    image = image.rotate(rng.uniform(-rotate, rotate), Image.Resampling.BILINEAR, fillcolor=paper)
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 1.0)))
    return image.resize((IMAGE_PX, IMAGE_PX), Image.Resampling.BICUBIC)


def _render_classes(writer: Writer, rng: np.random.Generator, counts: dict[str, int], texts: dict[str, object],
                    fonts: list, size_range=(34, 50)) -> None:
    for label, text in texts.items():
        for split, n in counts.items():
            for _ in range(n):
                chosen = text(rng) if callable(text) else text
                writer.save(split, label, render(chosen, fonts[int(rng.integers(len(fonts)))], rng, size_range))


LETTERS = tuple("ABDEGHKMNQRSWXYZ")


def build_letters(writer: Writer, rng: np.random.Generator, counts: dict[str, int]) -> None:
    _render_classes(writer, rng, counts, {c: c for c in LETTERS}, font_paths(DEJAVU))


FONT_ID = {"sans": "DejaVuSans.ttf", "sans_condensed": "DejaVuSansCondensed.ttf", "serif": "DejaVuSerif.ttf",
           "serif_condensed": "DejaVuSerifCondensed.ttf", "mono": "DejaVuSansMono.ttf",
           "sans_light": "DejaVuSans-ExtraLight.ttf"}
LOOKALIKES = {"liberation_sans": "LiberationSans-Regular.ttf", "free_sans": "FreeSans.ttf",
              "dejavu_sans": "DejaVuSans.ttf", "liberation_serif": "LiberationSerif-Regular.ttf",
              "free_serif": "FreeSerif.ttf"}
WORD_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _word(rng: np.random.Generator) -> str:
    return "".join(WORD_LETTERS[i] for i in rng.integers(0, 26, size=int(rng.integers(3, 5))))


def _build_font_classes(fonts: dict[str, str]):
    def build(writer: Writer, rng: np.random.Generator, counts: dict[str, int]) -> None:
        for label, name in fonts.items():
            path = font_paths((name,))[0]
            for split, n in counts.items():
                for _ in range(n):
                    writer.save(split, label, render(_word(rng), path, rng, (22, 32), rotate=4.0))
    return build


# Letters DejaVu Sans covers in each script (a few per script; words are drawn from them).
SCRIPTS = {"latin": "abdefghkmnprstuvwxyz", "greek": "αβγδεζηθλμξπρσφχψω", "cyrillic": "бвгджзийлпфцчшщыэюя",
           "armenian": "աբգդեզէըթժիլխծկհձղճմ", "georgian": "აბგდევზთიკლმნოპჟრსტ", "hebrew": "אבגדהוזחטיכלמנסעפצקרשת"}


def build_scripts(writer: Writer, rng: np.random.Generator, counts: dict[str, int]) -> None:
    path = font_paths(("DejaVuSans.ttf",))

    def word_of(letters: str):
        return lambda r: "".join(letters[i] for i in r.integers(0, len(letters), size=int(r.integers(3, 5))))
    _render_classes(writer, rng, counts, {k: word_of(v) for k, v in SCRIPTS.items()}, path, (20, 30))


SYMBOLS = {"sum": "∑", "product": "∏", "integral": "∫", "partial": "∂", "nabla": "∇", "approx": "≈",
           "not_equal": "≠", "less_equal": "≤", "plus_minus": "±", "infinity": "∞", "element_of": "∈",
           "for_all": "∀"}


def build_symbols(writer: Writer, rng: np.random.Generator, counts: dict[str, int]) -> None:
    _render_classes(writer, rng, counts, SYMBOLS, font_paths(("DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf")))


TASKS = (
    TaskSpec("glyph-letters", FAMILY, "glyph", "DejaVu fonts (fonts-dejavu-core), 8 faces",
             "16 capital letters, rendered with jitter", LETTERS, 5, 10, 20, build_letters, missing_fonts(*DEJAVU)),
    TaskSpec("glyph-font-identity", FAMILY, "fine-grained (typeface)", "DejaVu fonts (fonts-dejavu-core), 6 faces",
             "which DejaVu face renders a random lower-case word (sans vs condensed vs light...)",
             tuple(FONT_ID), 20, 15, 30, _build_font_classes(FONT_ID), missing_fonts(*FONT_ID.values())),
    TaskSpec("glyph-lookalike-typefaces", FAMILY, "fine-grained (typeface)",
             "Liberation (fonts-liberation), GNU FreeFont (fonts-freefont-ttf), DejaVu",
             "Arial-, Helvetica- and Times-metric look-alike faces rendering a random word",
             tuple(LOOKALIKES), 100, 20, 30, _build_font_classes(LOOKALIKES), missing_fonts(*LOOKALIKES.values())),
    TaskSpec("glyph-scripts", FAMILY, "script identification", "DejaVu Sans (fonts-dejavu-core)",
             "which of 6 scripts a short random word is written in", tuple(SCRIPTS), 10, 15, 25, build_scripts,
             missing_fonts("DejaVuSans.ttf")),
    TaskSpec("symbols-math", FAMILY, "symbol", "DejaVu Sans/Serif/Mono math symbols (fonts-dejavu-core)",
             "12 mathematical symbols", tuple(SYMBOLS), 8, 10, 20, build_symbols,
             missing_fonts("DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf")),
)
