"""Tiny SVG building blocks for the report's charts: elements, scales, axes, number formats.

Every chart is inline SVG with no JavaScript, so the report stays one small file that opens offline and
prints. All text that reaches the SVG goes through ``markupsafe.escape`` here: class names and paths come
from users.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from tladvisor.strategies import strategy_colours

FONT_SIZE = 11
MUTED = "#6b7280"
GRID = "#e5e7eb"
INK = "#1f2937"

PALETTE = ("#3b6fb6", "#e8833a", "#3a9e6f", "#c8475b", "#8a63b8", "#2aa3b8", "#c9a227", "#d36aa8",
           "#6b7a8f", "#8c5a3c")
"""Categorical colours (classes, series); the eleventh class reuses the first colour."""

STRATEGY_COLOURS = strategy_colours()
"""The built-in strategies' colours (a run's own, plugins' included, are in analysis.json ``strategies``)."""


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


# --- numbers ----------------------------------------------------------------------------------------


def fmt(value, digits: int = 3) -> str:
    """A number as a reader wants it: 3 significant digits, small learning rates as 3.0e-04, None as —."""
    if value is None or isinstance(value, bool):
        return "—" if value is None else str(value)
    if not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return "—"
    if value != 0 and abs(value) < 1e-2:
        return f"{value:.1e}"
    if abs(value) >= 10 ** digits - 0.5:  # 1,250 rather than 1.25e+03 (a pixel size, a count)
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def num(value: float) -> str:
    """A coordinate for an SVG attribute: one decimal is plenty on screen and keeps the file small."""
    text = f"{value:.1f}"
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return "0" if text == "-0" else text


def finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --- elements ---------------------------------------------------------------------------------------


def element(tag: str, content=None, **attrs) -> Markup:
    """``<tag attrs>content</tag>``; attribute names use ``_`` for ``-`` and ``class_`` for ``class``."""
    parts = [f"<{tag}"]
    for name, value in attrs.items():
        if value is None:
            continue
        name = "class" if name == "class_" else name.replace("_", "-")
        text = num(value) if isinstance(value, float) else str(value)
        parts.append(f' {name}="{escape(text)}"')
    if content is None:
        return Markup("".join(parts) + "/>")
    if isinstance(content, (list, tuple)):
        content = Markup("").join(content)
    # Plain str concatenation: adding a str to Markup would escape the str (the tag itself).
    return Markup("".join(parts) + ">" + str(escape(content)) + f"</{tag}>")


def text(x: float, y: float, content, *, anchor: str = "start", size: int = FONT_SIZE, fill: str = INK,
         weight: str | None = None, baseline: str | None = None, **attrs) -> Markup:
    return element("text", str(content), x=float(x), y=float(y), text_anchor=anchor if anchor != "start" else None,
                   font_size=size if size != FONT_SIZE else None, fill=fill if fill != INK else None,
                   font_weight=weight, dominant_baseline=baseline, **attrs)


def line(x1: float, y1: float, x2: float, y2: float, stroke: str = GRID, width: float = 1, **attrs) -> Markup:
    return element("line", x1=float(x1), y1=float(y1), x2=float(x2), y2=float(y2), stroke=stroke,
                   stroke_width=width if width != 1 else None, **attrs)


def rect(x: float, y: float, width: float, height: float, fill: str, **attrs) -> Markup:
    return element("rect", x=float(x), y=float(y), width=float(max(width, 0)), height=float(max(height, 0)),
                   fill=fill, **attrs)


def polyline(points: Iterable[tuple[float, float]], stroke: str, width: float = 1.5, **attrs) -> Markup:
    coordinates = " ".join(f"{num(x)},{num(y)}" for x, y in points)
    return element("polyline", points=coordinates, fill="none", stroke=stroke, stroke_width=width, **attrs)


def tooltip(shape_tag: str, title: str, **attrs) -> Markup:
    """A shape with a hover tooltip (SVG ``<title>``), e.g. the exact value behind a bar."""
    return element(shape_tag, element("title", title), **attrs)


def svg(width: int, height: int, parts: Sequence[Markup], label: str, class_: str = "chart") -> Markup:
    """The chart's root element; it scales to its container through the viewBox."""
    return element("svg", [element("title", label), *parts],
                   viewBox=f"0 0 {width} {height}", role="img", aria_label=label, class_=class_,
                   style=f"max-width:{width}px", font_size=FONT_SIZE)


# --- scales and axes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinearScale:
    lo: float
    hi: float
    start: float  # pixel position of lo
    end: float  # pixel position of hi

    def __call__(self, value: float) -> float:
        span = self.hi - self.lo
        fraction = 0.5 if span == 0 else (value - self.lo) / span
        return self.start + fraction * (self.end - self.start)

    def ticks(self, count: int = 5) -> list[float]:
        return nice_ticks(self.lo, self.hi, count)


@dataclass(frozen=True)
class LogScale:
    lo: float
    hi: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        low, high = math.log10(self.lo), math.log10(self.hi)
        fraction = (math.log10(max(value, self.lo * 1e-3)) - low) / ((high - low) or 1)
        return self.start + fraction * (self.end - self.start)

    def ticks(self, count: int = 5) -> list[float]:
        first, last = math.ceil(math.log10(self.lo) - 1e-9), math.floor(math.log10(self.hi) + 1e-9)
        return [10.0 ** power for power in range(first, last + 1)]


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 times a power of ten) covering [lo, hi]."""
    if not (finite(lo) and finite(hi)) or hi <= lo:
        return [lo] if finite(lo) else []
    raw_step = (hi - lo) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw_step)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, value = [], first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def nice_max(value: float) -> float:
    """The smallest round number at or above ``value`` (an axis end)."""
    if not finite(value) or value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    return next(m * magnitude for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if m * magnitude >= value - 1e-12)


def y_axis(scale, x: float, x_end: float, label: str = "", tick_format=fmt, count: int = 5) -> list[Markup]:
    """Horizontal grid lines with tick labels on the left, and a rotated axis label."""
    parts = []
    for tick in scale.ticks(count):
        y = scale(tick)
        parts.append(line(x, y, x_end, y))
        parts.append(text(x - 5, y + 3.5, tick_format(tick), anchor="end", fill=MUTED))
    if label:
        middle = (scale.start + scale.end) / 2
        parts.append(text(12, middle, label, anchor="middle", fill=MUTED, transform=f"rotate(-90 12 {num(middle)})"))
    return parts


def x_axis(scale, y: float, y_top: float, label: str = "", tick_format=fmt, count: int = 5,
           grid: bool = True) -> list[Markup]:
    """Vertical grid lines with tick labels below, and the axis label under them."""
    parts = []
    for tick in scale.ticks(count):
        x = scale(tick)
        if grid:
            parts.append(line(x, y_top, x, y))
        parts.append(text(x, y + 14, tick_format(tick), anchor="middle", fill=MUTED))
    if label:
        parts.append(text((scale.start + scale.end) / 2, y + 30, label, anchor="middle", fill=MUTED))
    return parts


def legend(entries: Sequence[tuple[str, ...]], x: float, y: float, width: float, marker: str = "rect") -> list[Markup]:
    """Colour keys ``(name, colour[, marker])`` laid out left to right, wrapping at ``width``."""
    parts, cursor_x, cursor_y = [], x, y
    for name, fill, *own_marker in entries:
        label = shorten(name, 28)
        item_width = 18 + 6.2 * len(label) + 14
        if cursor_x + item_width > x + width and cursor_x > x:
            cursor_x, cursor_y = x, cursor_y + 16
        if (own_marker[0] if own_marker else marker) == "line":
            parts.append(line(cursor_x, cursor_y - 4, cursor_x + 12, cursor_y - 4, stroke=fill, width=2.5))
        else:
            parts.append(rect(cursor_x, cursor_y - 9, 10, 10, fill, rx=2))
        parts.append(text(cursor_x + 16, cursor_y, label))
        cursor_x += item_width
    return parts


def legend_height(entries: Sequence[tuple[str, ...]], width: float) -> float:
    rows, cursor = 1, 0.0
    for name, *_ in entries:
        item_width = 18 + 6.2 * len(shorten(name, 28)) + 14
        if cursor + item_width > width and cursor > 0:
            rows, cursor = rows + 1, 0.0
        cursor += item_width
    return rows * 16


def shorten(label: str, limit: int) -> str:
    label = str(label)
    return label if len(label) <= limit else label[: limit - 1] + "…"
