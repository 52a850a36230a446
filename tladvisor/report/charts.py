"""The report's charts, each a function from plain numbers to an inline SVG (``markupsafe.Markup``).

Charts know nothing about analysis.json: ``view.py`` picks the numbers, these draw them. Sizes are in
viewBox units; the SVG scales down to narrow screens and prints crisply.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup

from tladvisor.advice.recommend import scenario_strategy

from tladvisor.report.svg import (
    GRID, INK, MUTED, STRATEGY_COLOURS, LinearScale, LogScale, colour, element, finite, fmt, legend,
    legend_height, line, nice_max, num, polyline, rect, shorten, svg, text, tooltip, x_axis, y_axis,
)
from tladvisor.strategies import NEUTRAL_COLOUR

ACCENT = "#3b6fb6"
SOFT = "#9fb7dd"


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    spread: float | None = None  # drawn as an error whisker (value ± spread)
    fill: str = SOFT
    note: str = ""  # printed after the value, e.g. "recommended"


# --- bars -------------------------------------------------------------------------------------------


def bar_chart(bars: Sequence[Bar], label: str, *, max_value: float | None = None, width: int = 500,
              value_format=fmt, axis_label: str = "") -> Markup:
    """Horizontal bars with their labels on the left, values (and ± spread) on the right."""
    bars = [bar for bar in bars if finite(bar.value)]
    if not bars:
        return Markup("")
    label_width = min(190, 12 + 6.4 * max(len(shorten(bar.label, 30)) for bar in bars))
    row, top = 22, 8
    height = top + row * len(bars) + (44 if axis_label else 28)
    left, right = label_width, width - 110
    high = max_value or nice_max(max(bar.value + (bar.spread or 0) for bar in bars))
    scale = LinearScale(0, high, left, right)
    bottom = top + row * len(bars)
    parts = x_axis(scale, bottom, top, axis_label, value_format, count=4)
    for index, bar in enumerate(bars):
        y = top + index * row
        middle = y + row / 2
        parts.append(text(left - 8, middle + 4, shorten(bar.label, 30), anchor="end"))
        end = scale(max(0.0, min(bar.value, high)))
        parts.append(tooltip("rect", f"{bar.label}: {value_format(bar.value)}", x=float(left), y=float(y + 4),
                             width=float(max(end - left, 0.5)), height=float(row - 8), fill=bar.fill, rx=2))
        value_end = end
        if bar.spread and finite(bar.spread):
            low, high_end = scale(max(0.0, bar.value - bar.spread)), scale(min(high, bar.value + bar.spread))
            parts += [line(low, middle, high_end, middle, stroke=INK, width=1.2),
                      line(low, middle - 4, low, middle + 4, stroke=INK, width=1.2),
                      line(high_end, middle - 4, high_end, middle + 4, stroke=INK, width=1.2)]
            value_end = max(end, high_end)
        value_text = value_format(bar.value) + (f" ± {value_format(bar.spread)}" if bar.spread else "")
        if bar.note:
            value_text += f"  {bar.note}"
        parts.append(text(value_end + 6, middle + 4, value_text, fill=MUTED))
    return svg(width, height, parts, label)


def column_chart(values: Sequence[float], label: str, *, width: int = 500, height: int = 180,
                 axis_label: str = "") -> Markup:
    """Thin vertical bars without per-bar labels (many classes, sorted by the caller)."""
    if not values:
        return Markup("")
    left, right, top, bottom = 52, width - 10, 10, height - 22
    scale = LinearScale(0, nice_max(max(values)), bottom, top)
    parts = y_axis(scale, left, right, axis_label)
    step = (right - left) / len(values)
    for index, value in enumerate(values):
        parts.append(rect(left + index * step, scale(value), max(step * 0.85, 0.6), bottom - scale(value), SOFT))
    parts.append(text(left, height - 6, "largest class", fill=MUTED))
    parts.append(text(right, height - 6, "smallest class", fill=MUTED, anchor="end"))
    return svg(width, height, parts, label)


def grouped_bar_chart(groups: Sequence[tuple[str, Sequence[tuple[str, float, float | None]]]], label: str, *,
                      series_fills: dict[str, str], width: int = 500, max_value: float = 1.0) -> Markup:
    """One row per group (e.g. a probe), one thin bar per series (e.g. pretrained / random) inside it."""
    groups = [(name, [s for s in series if finite(s[1])]) for name, series in groups]
    groups = [(name, series) for name, series in groups if series]
    if not groups:
        return Markup("")
    bar_height, gap = 13, 12
    label_width = min(190, 12 + 6.4 * max(len(shorten(name, 30)) for name, _ in groups))
    left, right = label_width, width - 90
    scale = LinearScale(0, max_value, left, right)
    keys = list(series_fills.items())
    top = 6 + legend_height(keys, width - left)
    y = top
    body = []
    for name, series in groups:
        group_height = bar_height * len(series)
        body.append(text(left - 8, y + group_height / 2 + 4, shorten(name, 30), anchor="end"))
        for series_name, value, spread in series:
            fill = series_fills.get(series_name, SOFT)
            end = scale(max(0.0, min(value, max_value)))
            body.append(tooltip("rect", f"{name}, {series_name}: {fmt(value)}", x=float(left), y=float(y + 1),
                                width=float(max(end - left, 0.5)), height=float(bar_height - 2), fill=fill))
            value_end = end
            if spread and finite(spread):
                low, high = scale(max(0.0, value - spread)), scale(min(max_value, value + spread))
                body.append(line(low, y + bar_height / 2, high, y + bar_height / 2, stroke=INK, width=1.1))
                value_end = max(end, high)
            body.append(text(value_end + 5, y + bar_height - 3, fmt(value), fill=MUTED, size=10))
            y += bar_height
        y += gap
    bottom = y - gap + 4
    parts = x_axis(scale, bottom, top - 2, "", fmt, count=5) + body + legend(keys, left, 14, width - left)
    return svg(width, int(bottom + 22), parts, label)


# --- stages -----------------------------------------------------------------------------------------


def stage_shift_chart(stages: Sequence[tuple[str, float, int]], label: str, *, freeze_depth: int | None = None,
                      width: int = 500, height: int = 210) -> Markup:
    """Shift from the source statistics per stage (stem first), the frozen stages shaded."""
    stages = [stage for stage in stages if finite(stage[1])]
    if not stages:
        return Markup("")
    left, right, top, bottom = 52, width - 10, 22, height - 40
    scale = LinearScale(0, nice_max(max(value for _, value, _ in stages)), bottom, top)
    step = (right - left) / len(stages)
    parts = []
    if freeze_depth:
        frozen = min(freeze_depth, len(stages))
        parts.append(rect(left, top - 16, step * frozen, bottom - top + 16, "#eef2f8"))
        parts.append(text(left + 4, top - 5, f"frozen ({frozen} stage{'s' if frozen != 1 else ''})", fill=MUTED))
        if frozen < len(stages):
            parts.append(text(left + step * frozen + 4, top - 5, "trained", fill=MUTED))
    parts += y_axis(scale, left, right, "shift")
    peak = max(range(len(stages)), key=lambda i: stages[i][1])
    for index, (name, value, n_layers) in enumerate(stages):
        x = left + index * step
        fill = ACCENT if index == peak else SOFT
        parts.append(tooltip("rect", f"{name}: shift {fmt(value)} over {n_layers} BatchNorm layer(s)",
                             x=float(x + step * 0.18), y=float(scale(value)), width=float(step * 0.64),
                             height=float(max(bottom - scale(value), 0.5)), fill=fill, rx=2))
        parts.append(text(x + step / 2, scale(value) - 4, fmt(value), anchor="middle", fill=MUTED, size=10))
        parts.append(text(x + step / 2, bottom + 14, shorten(name, max(4, int(step / 6.5))), anchor="middle"))
    parts.append(text((left + right) / 2, height - 8, "stage (input side → output side)", anchor="middle", fill=MUTED))
    return svg(width, height, parts, label)


def stage_strip(stage_names: Sequence[str], freeze_depth: int, label: str, *, width: int = 560) -> Markup:
    """Boxes for the backbone's stages: the first ``freeze_depth`` frozen, the rest trained."""
    if not stage_names:
        return Markup("")
    height, gap = 46, 4
    step = (width - gap) / len(stage_names)
    parts = []
    for index, name in enumerate(stage_names):
        frozen = index < freeze_depth
        x = index * step + gap / 2
        parts.append(rect(x, 2, step - gap, 26, "#c9d6ea" if frozen else "#dcefe4", rx=4,
                          stroke="#7d93b8" if frozen else "#6fae88"))
        parts.append(text(x + (step - gap) / 2, 19, shorten(name, max(3, int(step / 6.8))), anchor="middle"))
    parts.append(text(0, 42, "frozen" if freeze_depth else "", fill=MUTED))
    parts.append(text(width, 42, "trained →" if freeze_depth < len(stage_names) else "", fill=MUTED, anchor="end"))
    return svg(width, height, parts, label)


# --- points -----------------------------------------------------------------------------------------


def scatter_chart(points: Sequence[Sequence[float]], class_names: Sequence[str], label: str, *,
                  width: int = 420, height: int = 340, max_points: int = 600) -> Markup:
    """2-D projection of the embeddings, one colour per class (at most ``max_points`` drawn, evenly picked)."""
    points = [p for p in points if len(p) >= 3 and finite(p[0]) and finite(p[1])]
    if not points:
        return Markup("")
    if len(points) > max_points:  # a stride keeps every class in proportion
        stride = len(points) / max_points
        points = [points[int(i * stride)] for i in range(max_points)]
    used = sorted({int(p[2]) for p in points})
    keys = [(class_names[i] if 0 <= i < len(class_names) else f"class {i}", colour(i)) for i in used[:20]]
    key_height = legend_height(keys, width - 20)
    top, bottom, left, right = 8, height - 8, 10, width - 10
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    pad_x, pad_y = (max(xs) - min(xs)) * 0.05 or 1, (max(ys) - min(ys)) * 0.05 or 1
    x_scale = LinearScale(min(xs) - pad_x, max(xs) + pad_x, left, right)
    y_scale = LinearScale(min(ys) - pad_y, max(ys) + pad_y, bottom, top)
    parts = [rect(left, top, right - left, bottom - top, "none", stroke=GRID)]
    for x, y, class_index, *_ in points:
        parts.append(element("circle", cx=float(x_scale(x)), cy=float(y_scale(y)), r=2.6,
                             fill=colour(int(class_index)), fill_opacity=0.75))
    parts += legend(keys, left, height + 14, width - 20)
    if len(used) > len(keys):
        parts.append(text(right, height + key_height + 12, f"+{len(used) - len(keys)} more classes",
                          anchor="end", fill=MUTED))
    return svg(width, int(height + key_height + 18), parts, label)


def scenario_map(points: Sequence[dict], label: str, *, small_per_class: float, similarity_threshold: float,
                 width: int = 540, height: int = 380) -> Markup:
    """The four-scenario map: samples per class (log) against similarity, this dataset's backbones on it.

    ``points``: dicts with ``name``, ``samples_per_class``, ``similarity``, ``spread``, ``highlight``.
    """
    left, right, top, bottom = 56, width - 16, 14, height - 44
    counts = [p["samples_per_class"] for p in points if finite(p.get("samples_per_class"))]
    low = 10 ** math.floor(math.log10(max(1.0, min([small_per_class / 30, *counts]))))
    high = 10 ** math.ceil(math.log10(max([small_per_class * 30, *(c * 3 for c in counts)])))
    x_scale = LogScale(low, high, left, right)
    y_scale = LinearScale(0, 1, bottom, top)
    split_x, split_y = x_scale(small_per_class), y_scale(similarity_threshold)
    regions = [  # (x0, y0, x1, y1, strategy, caption) in pixels: the rule's quadrants (recommend.SCENARIOS)
        (left, top, split_x, split_y, scenario_strategy(small=True, similar=True), "small · similar"),
        (split_x, top, right, split_y, scenario_strategy(small=False, similar=True), "large · similar"),
        (left, split_y, split_x, bottom, scenario_strategy(small=True, similar=False), "small · different"),
        (split_x, split_y, right, bottom, scenario_strategy(small=False, similar=False), "large · different"),
    ]
    parts = []
    for x0, y0, x1, y1, strategy, caption in regions:
        fill = STRATEGY_COLOURS[strategy]
        parts.append(rect(x0, y0, x1 - x0, y1 - y0, fill, fill_opacity=0.10))
        parts.append(text((x0 + x1) / 2, (y0 + y1) / 2 - 2, strategy.replace("_", " "), anchor="middle",
                          fill=fill, weight="600", size=13))
        parts.append(text((x0 + x1) / 2, (y0 + y1) / 2 + 14, caption, anchor="middle", fill=MUTED))
    parts += y_axis(y_scale, left, right, "similarity to the source domain", count=5)
    parts += x_axis(x_scale, bottom, top, "samples per class (log scale)", fmt_count)
    parts += [line(split_x, top, split_x, bottom, stroke="#9ca3af", stroke_dasharray="4 3"),
              line(left, split_y, right, split_y, stroke="#9ca3af", stroke_dasharray="4 3")]
    parts.append(text(split_x + 4, bottom - 4, f"{fmt_count(small_per_class)} / class", fill=MUTED, size=10))
    parts.append(text(right - 4, split_y - 4, f"similarity {fmt(similarity_threshold)}", anchor="end",
                      fill=MUTED, size=10))
    ordered = sorted(points, key=lambda p: bool(p.get("highlight")))  # the recommended one on top
    for point in ordered:
        if not (finite(point.get("samples_per_class")) and finite(point.get("similarity"))):
            continue
        x, y = x_scale(point["samples_per_class"]), y_scale(min(max(point["similarity"], 0.0), 1.0))
        ink = INK if point.get("highlight") else "#6b7280"
        spread = point.get("spread")
        if finite(spread) and spread:
            y_low, y_high = y_scale(max(0.0, point["similarity"] - spread)), y_scale(min(1.0, point["similarity"] + spread))
            parts.append(line(x, y_low, x, y_high, stroke=ink, width=1.3))
        radius = 6 if point.get("highlight") else 4
        parts.append(tooltip("circle", f"{point['name']}: similarity {fmt(point['similarity'])}, "
                                       f"{fmt_count(point['samples_per_class'])} samples per class",
                             cx=float(x), cy=float(y), r=radius, fill=ink, stroke="white", stroke_width=1.5))
        anchor = "end" if x > right - 150 else "start"
        offset = -10 if anchor == "end" else 10
        parts.append(text(x + offset, y + 4, shorten(point["name"], 32), anchor=anchor,
                          weight="600" if point.get("highlight") else None, fill=ink,
                          paint_order="stroke", stroke="white", stroke_width=3))
    return svg(width, height, parts, label)


def fmt_count(value: float) -> str:
    return f"{value:,.0f}" if value >= 1 else fmt(value)


# --- tuning -----------------------------------------------------------------------------------------


def history_chart(trials: Sequence[dict], label: str, *, width: int = 520, height: int = 260,
                  strategy_colours: Mapping[str, str] = STRATEGY_COLOURS) -> Markup:
    """Objective per trial (complete: dots; pruned or stopped by the deadline: rings at the best epoch they
    reached; failed: crosses at the bottom) and the running best of the completed ones."""
    if not trials:
        return Markup("")
    keys = [(name.replace("_", " "), fill) for name, fill in strategy_colours.items()
            if any(t.get("strategy") == name for t in trials)] + [("running best", INK, "line")]
    left, right, bottom = 52, width - 14, height - 40
    top = 16 + legend_height(keys, right - left)
    numbers = [t["number"] for t in trials]
    values = [t["value"] for t in trials if finite(t.get("value"))] + [
        reached for t in trials if t.get("state") == "PRUNED" and finite(reached := _reached(t))]
    low = min(0.0, *values) if values and min(values) < 0 else 0.0
    high = nice_max(max(values)) if values else 1.0
    x_scale = LinearScale(min(numbers) - 0.5, max(numbers) + 0.5, left, right)
    y_scale = LinearScale(low, high, bottom, top)
    parts = y_axis(y_scale, left, right, "validation accuracy")
    parts += x_axis(x_scale, bottom, top, "trial", lambda v: f"{v:.0f}", count=min(10, len(trials)), grid=False)
    best, steps = None, []
    for trial in sorted(trials, key=lambda t: t["number"]):
        value = trial.get("value")
        if trial.get("state") == "COMPLETE" and finite(value) and (best is None or value > best):
            best = value
        if best is not None:
            steps.append((x_scale(trial["number"]), y_scale(best)))
    if steps:
        stair = [steps[0]]
        for x, y in steps[1:]:
            stair += [(x, stair[-1][1]), (x, y)]
        parts.append(polyline(stair, stroke=INK, width=1.6, stroke_dasharray="5 3"))
    for trial in trials:
        x, state, value = x_scale(trial["number"]), trial.get("state"), trial.get("value")
        title = f"trial #{trial['number']}: {state}" + (f", {fmt(value)}" if finite(value) else "")
        if trial.get("reason"):
            title += f" ({trial['reason']})"
        if state == "COMPLETE" and finite(value):
            parts.append(tooltip("circle", title, cx=float(x), cy=float(y_scale(value)), r=4.5,
                                 fill=strategy_colours.get(trial.get("strategy"), NEUTRAL_COLOUR)))
        elif state == "PRUNED":  # no objective, but the epochs it ran reached something: drawn there
            reached = value if finite(value) else _reached(trial)
            y = y_scale(reached) if finite(reached) else bottom - 6
            if finite(reached) and not finite(value):
                title += f", reached {fmt(reached)} before it stopped"
            parts.append(tooltip("circle", title, cx=float(x), cy=float(y), r=4.5, fill="white",
                                 stroke="#6b7280", stroke_width=1.5))
        elif state in ("FAIL", "FAILED"):
            y = bottom - 6
            parts.append(element("path", element("title", title), d=f"M{num(x - 4)},{num(y - 4)}l8,8m0,-8l-8,8",
                                 stroke="#c8475b", stroke_width=2))
    parts += legend(keys, left, 14, right - left)
    return svg(width, height, parts, label)


def _reached(trial: dict) -> float:
    """The best validation accuracy a trial's epochs reached (nan without a learning curve)."""
    curve = [v for v in trial.get("learning_curve") or () if finite(v)]
    return max(curve) if curve else math.nan


def parallel_coordinates(trials: Sequence[dict], axes: Sequence[str], label: str, *,
                         width: int = 1000, height: int = 310) -> Markup:
    """One polyline per completed trial across its parameters, coloured by its objective.

    Numeric axes are linear, or logarithmic when the values span over two orders of magnitude (learning
    rates); categorical axes (strategy, backbone) spread their categories evenly.
    """
    trials = [t for t in trials if finite(t.get("value"))]
    if not trials or not axes:
        return Markup("")
    columns = [*axes, "value"]
    left, right, top, bottom = 40, width - 70, 40, height - 34
    step = (right - left) / max(len(columns) - 1, 1)
    positions, parts = {}, []
    for index, name in enumerate(columns):
        x = left + index * step
        raw = [t["value"] if name == "value" else t["params"].get(name) for t in trials]
        parts.append(line(x, top, x, bottom, stroke="#9ca3af"))
        stagger = 14 if step < 110 and index % 2 else 0  # neighbouring names would overlap otherwise
        parts.append(text(x, top - 10 - stagger, shorten(name, 18), anchor="middle", weight="600"))
        to_y, ticks = _axis_mapping(raw, top, bottom)
        positions[name] = to_y
        for value, tick_label in ticks:
            parts.append(text(x + 4, to_y(value) + 3.5, shorten(tick_label, 14), fill=MUTED, size=9,
                              paint_order="stroke", stroke="white", stroke_width=3))
    values = [t["value"] for t in trials]
    low, high = min(values), max(values)
    for trial in sorted(trials, key=lambda t: t["value"]):  # the best drawn last, on top
        points = []
        for index, name in enumerate(columns):
            raw = trial["value"] if name == "value" else trial["params"].get(name)
            y = positions[name](raw)
            if y is not None:
                points.append((left + index * step, y))
        shade = 0.5 if high == low else (trial["value"] - low) / (high - low)
        parts.append(element("polyline", element("title", f"trial #{trial['number']}: {fmt(trial['value'])}"),
                             points=" ".join(f"{num(x)},{num(y)}" for x, y in points), fill="none",
                             stroke=_blend("#c7d2e3", "#1d4e9e", shade), stroke_width=1.2 + 1.6 * shade,
                             stroke_opacity=0.85))
    parts.append(text(right + 8, bottom + 24, "darker = better", anchor="end", fill=MUTED, size=10))
    return svg(width, height, parts, label)


def _axis_mapping(raw: Sequence, top: float, bottom: float):
    """(value -> y or None, [(tick value, tick label)]) for one parallel-coordinates axis."""
    numbers = [v for v in raw if finite(v)]
    if numbers and len(numbers) == len([v for v in raw if v is not None]):
        low, high = min(numbers), max(numbers)
        if low > 0 and high / low > 100:
            scale = LogScale(low, high, bottom, top)
            ticks = [low, math.sqrt(low * high), high]
        else:
            scale = LinearScale(low, high, bottom, top)
            ticks = [low, high] if high != low else [low]
        return (lambda v: scale(v) if finite(v) else None), [(t, fmt(t)) for t in ticks]
    categories = sorted({str(v) for v in raw if v is not None})
    spacing = (bottom - top) / max(len(categories) - 1, 1)
    where = {name: (bottom - i * spacing if len(categories) > 1 else (top + bottom) / 2)
             for i, name in enumerate(categories)}
    return (lambda v: where.get(str(v)) if v is not None else None), [(c, c) for c in categories]


def _blend(start: str, end: str, fraction: float) -> str:
    a = [int(start[i:i + 2], 16) for i in (1, 3, 5)]
    b = [int(end[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * fraction):02x}" for x, y in zip(a, b))


def line_chart(series: Sequence[tuple[str, str, Sequence[float]]], label: str, *, x_label: str, y_label: str,
               width: int = 520, height: int = 260, y_max: float | None = 1.0) -> Markup:
    """Lines over 1-based steps (epochs), one per ``(name, colour, values)``."""
    series = [(name, fill, values) for name, fill, values in series if any(finite(v) for v in values)]
    if not series:
        return Markup("")
    longest = max(len(values) for _, _, values in series)
    keys = [(name, fill) for name, fill, _ in series]
    left, right, bottom = 52, width - 14, height - 40
    top = 12 + legend_height(keys, right - left)
    every = [v for _, _, values in series for v in values if finite(v)]
    x_scale = LinearScale(1, max(longest, 2), left, right)
    y_scale = LinearScale(0, y_max or nice_max(max(every)), bottom, top)
    parts = y_axis(y_scale, left, right, y_label)
    parts += x_axis(x_scale, bottom, top, x_label, lambda v: f"{v:.0f}", count=min(10, longest), grid=False)
    for _name, fill, values in series:
        points = [(x_scale(i + 1), y_scale(v)) for i, v in enumerate(values) if finite(v)]
        parts.append(polyline(points, stroke=fill, width=2.2))
        for x, y in points:
            parts.append(element("circle", cx=float(x), cy=float(y), r=2.4, fill=fill))
    parts += legend(keys, left, 14, right - left, marker="line")
    return svg(width, height, parts, label)


def range_chart(rows: Sequence[tuple[str, dict[str, float]]], label: str, *, axis_label: str = "",
                width: int = 500) -> Markup:
    """Quantile ranges per row: a line from min to max, a box over the middle quantiles, a median tick."""
    rows = [(name, {k: v for k, v in q.items() if finite(v)}) for name, q in rows]
    rows = [(name, q) for name, q in rows if q]
    if not rows:
        return Markup("")
    row, top, left, right = 26, 6, 70, width - 16
    bottom = top + row * len(rows)
    every = [v for _, q in rows for v in q.values()]
    scale = LinearScale(min(0.0, min(every)), nice_max(max(every)), left, right)
    parts = x_axis(scale, bottom, top, axis_label, count=5)
    for index, (name, quantiles) in enumerate(rows):
        middle = top + index * row + row / 2
        ordered = sorted(quantiles.values())
        parts.append(text(left - 8, middle + 4, shorten(name, 10), anchor="end"))
        parts.append(line(scale(ordered[0]), middle, scale(ordered[-1]), middle, stroke=MUTED, width=1.2))
        box_low = _first(quantiles, ("q25", "p25"), ordered[1] if len(ordered) > 3 else ordered[0])
        box_high = _first(quantiles, ("q75", "p75"), ordered[-2] if len(ordered) > 3 else ordered[-1])
        parts.append(rect(scale(box_low), middle - 7, scale(box_high) - scale(box_low), 14, SOFT, rx=2))
        median = _first(quantiles, ("median", "q50", "p50"), ordered[len(ordered) // 2])
        parts.append(line(scale(median), middle - 8, scale(median), middle + 8, stroke=INK, width=2))
        summary = " · ".join(f"{key} {fmt(value)}" for key, value in quantiles.items())
        parts.append(element("title", f"{name}: {summary}"))
    return svg(width, int(bottom + (44 if axis_label else 28)), parts, label)


def _first(mapping: dict[str, float], keys: Sequence[str], default: float) -> float:
    return next((mapping[key] for key in keys if key in mapping), default)
