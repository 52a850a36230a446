"""Rendered structured tasks of the VTAB kind: count, orientation, position, distance, shape in clutter.

Drawn with PIL from nothing but a seed (after CLEVR-count, dSprites orientation and position,
CLEVR-distance): the classes differ in the scene's structure, not in its textures. The clutter task
puts shapes on crops of the scikit-image photos.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .common import IMAGE_PX, TaskSpec, Writer, crop, module_missing, split_bands

FAMILY = "structured"
CANVAS = 144  # drawn at twice the written size, then downsampled (anti-aliased edges)


def _background(rng: np.random.Generator) -> Image.Image:
    """A random two-colour gradient with faint noise."""
    a, b = rng.integers(60, 200, size=3), rng.integers(60, 200, size=3)
    t = np.linspace(0, 1, CANVAS)[None, :, None]
    angle = rng.uniform(0, math.pi)
    ramp = (np.cos(angle) * t + np.sin(angle) * t.transpose(1, 0, 2)) / (abs(np.cos(angle)) + abs(np.sin(angle)))
    pixels = a + (b - a) * np.clip(ramp, 0, 1) + rng.normal(0, 6, (CANVAS, CANVAS, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.choice([0, 255], size=3) * 0.8 + rng.integers(0, 50, size=3))


def _polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    corners = {"triangle": 3, "square": 4, "pentagon": 5, "star": 10, "cross": 12}[kind]
    points = []
    for i in range(corners):
        radius = r
        if kind == "star":
            radius = r if i % 2 == 0 else r * 0.45
        if kind == "cross":  # a plus sign as a 12-gon
            unit = [(1, 0.33), (0.33, 0.33), (0.33, 1), (-0.33, 1), (-0.33, 0.33), (-1, 0.33),
                    (-1, -0.33), (-0.33, -0.33), (-0.33, -1), (0.33, -1), (0.33, -0.33), (1, -0.33)][i]
            x, y = unit[0] * r, unit[1] * r
        else:
            theta = 2 * math.pi * i / corners
            x, y = radius * math.cos(theta), radius * math.sin(theta)
        c, s = math.cos(angle), math.sin(angle)
        points.append((cx + c * x - s * y, cy + s * x + c * y))
    return points


def _shape(draw: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, r: float, angle: float, fill) -> None:
    if kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    else:
        draw.polygon(_polygon(kind, cx, cy, r, angle), fill=fill)


def _finish(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 0.8)))
    return image.resize((IMAGE_PX, IMAGE_PX), Image.Resampling.LANCZOS)


SHAPES = ("circle", "triangle", "square", "pentagon", "star", "cross")
COUNTS = tuple(str(n) for n in range(1, 7))


def build_count(writer: Writer, rng: np.random.Generator, counts: dict[str, int]) -> None:
    """1 to 6 non-overlapping shapes of random kinds, sizes and colours."""
    for label in COUNTS:
        for split, n in counts.items():
            for _ in range(n):
                image = _background(rng)
                draw = ImageDraw.Draw(image)
                placed: list[tuple[float, float, float]] = []
                while len(placed) < int(label):
                    r = rng.uniform(8, 16)
                    cx, cy = rng.uniform(r, CANVAS - r, size=2)
                    if all(math.hypot(cx - x, cy - y) > r + q + 3 for x, y, q in placed):
                        placed.append((cx, cy, r))
                        _shape(draw, str(rng.choice(SHAPES)), cx, cy, r, rng.uniform(0, 2 * math.pi), _colour(rng))
                writer.save(split, label, _finish(image, rng))


ORIENTATIONS = tuple(range(0, 180, 30))


def build_orientation(writer: Writer, rng: np.random.Generator, counts: dict[str, int]) -> None:
    """An elongated bar (a thin rectangle with one rounded end) at one of 6 orientations, +-5 degrees."""
    for degrees in ORIENTATIONS:
        for split, n in counts.items():
            for _ in range(n):
                image = _background(rng)
                draw = ImageDraw.Draw(image)
                cx, cy = rng.uniform(45, CANVAS - 45, size=2)
                length, width = rng.uniform(25, 40), rng.uniform(4, 8)
                angle = math.radians(degrees + rng.uniform(-5, 5))
                dx, dy = math.cos(angle), -math.sin(angle)
                px, py = -dy * width, dx * width
                corners = [(cx - dx * length + px, cy - dy * length + py), (cx + dx * length + px, cy + dy * length + py),
                           (cx + dx * length - px, cy + dy * length - py), (cx - dx * length - px, cy - dy * length - py)]
                draw.polygon(corners, fill=_colour(rng))
                writer.save(split, f"deg{degrees:03d}", _finish(image, rng))


POSITIONS = ("left", "centre_left", "centre", "centre_right", "right")


def build_position(writer: Writer, rng: np.random.Generator, counts: dict[str, int]) -> None:
    """One shape; the class is its horizontal position (5 bins), the vertical one is random."""
    bin_width = CANVAS / len(POSITIONS)
    for index, label in enumerate(POSITIONS):
        for split, n in counts.items():
            for _ in range(n):
                image = _background(rng)
                r = rng.uniform(7, 12)
                cx = rng.uniform(index * bin_width + r * 0.5, (index + 1) * bin_width - r * 0.5)
                cy = rng.uniform(r, CANVAS - r)
                _shape(ImageDraw.Draw(image), str(rng.choice(SHAPES)), cx, cy, r, rng.uniform(0, 6.3), _colour(rng))
                writer.save(split, label, _finish(image, rng))


DISTANCES = ("near", "middle", "far", "very_far")


def build_distance(writer: Writer, rng: np.random.Generator, counts: dict[str, int]) -> None:
    """A ground plane under a horizon; one object stands on it at a distance bin. Perspective makes it
    smaller and higher as it recedes, and its true size varies by a factor 1.6, so size alone misleads."""
    bins = ((2.0, 3.0), (3.0, 4.5), (4.5, 7.0), (7.0, 11.0))
    for label, (near, far) in zip(DISTANCES, bins):
        for split, n in counts.items():
            for _ in range(n):
                horizon = rng.uniform(0.3, 0.45) * CANVAS
                sky, ground = rng.integers(120, 230, size=3), rng.integers(40, 140, size=3)
                pixels = np.empty((CANVAS, CANVAS, 3))
                pixels[:int(horizon)] = sky
                pixels[int(horizon):] = ground
                pixels += rng.normal(0, 8, pixels.shape)
                image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
                depth = rng.uniform(near, far)
                focal = 60.0
                base_y = horizon + focal * 1.5 / depth  # camera 1.5 units above the ground
                r = focal * rng.uniform(0.25, 0.4) / depth
                cx = rng.uniform(r + 5, CANVAS - r - 5)
                _shape(ImageDraw.Draw(image), str(rng.choice(SHAPES)), cx, base_y - r, r, 0.0, _colour(rng))
                writer.save(split, label, _finish(image, rng))


def build_clutter(writer: Writer, rng: np.random.Generator, counts: dict[str, int]) -> None:
    """One small shape of a class on a crop of a natural photo (the scikit-image scenes), outlined."""
    from .photos import scenes

    bands = [split_bands(p) for p in scenes().values()]
    for kind in SHAPES:
        for split, n in counts.items():
            for _ in range(n):
                image = crop(bands[int(rng.integers(len(bands)))][split], rng, (0.2, 0.4)).resize((CANVAS, CANVAS))
                r = rng.uniform(12, 22)
                cx, cy = rng.uniform(r, CANVAS - r, size=2)
                draw = ImageDraw.Draw(image)
                _shape(draw, kind, cx, cy, r + 2, 0.3, (255, 255, 255))
                _shape(draw, kind, cx, cy, r, 0.3, _colour(rng))
                writer.save(split, kind, _finish(image, rng))


TASKS = (
    TaskSpec("vtab-count", FAMILY, "count", "rendered (PIL), CLEVR-count-like",
             "how many shapes (1-6) are on a gradient background", COUNTS, 100, 20, 30, build_count),
    TaskSpec("vtab-orientation", FAMILY, "orientation", "rendered (PIL), dSprites-orientation-like",
             "orientation of a bar, 6 bins of 30 degrees", tuple(f"deg{d:03d}" for d in ORIENTATIONS),
             30, 15, 30, build_orientation),
    TaskSpec("vtab-position", FAMILY, "position", "rendered (PIL), dSprites-position-like",
             "horizontal position of one shape, 5 bins", POSITIONS, 15, 15, 30, build_position),
    TaskSpec("vtab-distance", FAMILY, "distance", "rendered (PIL), CLEVR-distance-like ground plane",
             "distance bin of an object on a ground plane under perspective", DISTANCES, 200, 20, 40,
             build_distance),
    TaskSpec("shape-in-clutter", FAMILY, "shape on clutter", "rendered shapes on scikit-image/-learn photo crops",
             "which of 6 shapes is drawn on a natural-photo background", SHAPES, 50, 15, 30, build_clutter,
             module_missing("skimage", "sklearn")),
)
