"""The Dataset section's numbers for a text dataset: lengths in words, a few texts per class, skips and leakage.

:func:`tladvisor.report.view.dataset_view` hands text datasets here; the template draws the lengths and the
example texts where it draws image sizes and thumbnails for images. Texts are escaped by the template.
"""

from __future__ import annotations

from typing import Any

from tladvisor.report import charts
from tladvisor.report.svg import finite, fmt

MAX_TABLE_ROWS = 200


def text_dataset_view(dataset: dict, profile: dict, class_chart, facts: list[tuple[str, str]]) -> dict[str, Any]:
    text = profile.get("text") or {}
    lengths = text.get("lengths") or {}
    rows = [(name, {k: v for k, v in quantiles.items() if finite(v)}) for name, quantiles in lengths.items()
            if isinstance(quantiles, dict)]
    skipped = dataset.get("skipped") or []
    examples = text.get("examples") or {}
    return {
        "modality": "text",
        "root": dataset.get("root"),
        "facts": facts,
        "notes": list(dataset.get("notes") or ()),
        "class_chart": class_chart,
        "length_chart": charts.range_chart(rows[:1], "Text length", axis_label="words"),
        "length_rows": [(name, [f"{quantiles[k]:,.0f}" for k in ("min", "median", "q95", "max") if k in quantiles])
                        for name, quantiles in rows],
        "examples": [{"name": name, "texts": list(texts)} for name, texts in examples.items()],
        "example_classes_hidden": max(0, len(dataset.get("class_counts") or {}) - len(examples)),
        "duplicate_rule": text.get("duplicate_rule", ""),
        "skipped": skipped[:MAX_TABLE_ROWS],
        "skipped_hidden": max(0, len(skipped) - MAX_TABLE_ROWS),
        "leakage": [list(group) for group in (profile.get("leakage") or ())[:20]],
        "n_leakage": len(profile.get("leakage") or ()),
        "n_duplicates": len(profile.get("duplicates") or ()),
    }


def text_backbone_facts(backbone: dict) -> list[tuple[str, str]]:
    """A text backbone's card facts: texts measured, tokens per text, the longest input and the share cut."""
    facts = backbone.get("input_facts") or {}
    tokens = facts.get("tokens") or {}
    share = facts.get("truncated_share")
    return [("texts measured", fmt(backbone.get("n_measured"))),
            ("tokens per text (median, max)", f"{fmt(tokens.get('median'))}, {fmt(tokens.get('max'))}" if tokens else "—"),
            ("longest input", f"{facts['max_length']} tokens" if facts.get("max_length") else "—"),
            ("texts cut", f"{share:.0%}" if finite(share) else "—"),
            ("features", "from cache" if backbone.get("from_cache") else "computed"),
            ("seconds", fmt(backbone.get("seconds")))]
