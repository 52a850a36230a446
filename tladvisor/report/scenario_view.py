"""The four-scenario map section: where the dataset lies on the textbook rule's map, what the rule gives there, and
what was recommended."""

from __future__ import annotations

from typing import Any

from tladvisor.advice.recommend import SMALL_PER_CLASS, scenario_strategy
from tladvisor.advice.similarity import SIMILARITY_THRESHOLD
from tladvisor.report import charts
from tladvisor.report.svg import finite, fmt

DEFAULT_SMALL_PER_CLASS = SMALL_PER_CLASS
DEFAULT_SIMILARITY_THRESHOLD = SIMILARITY_THRESHOLD


def scenario_view(analysis: dict) -> dict[str, Any] | None:
    from tladvisor.report.view import strategy_label  # the page's one labeller; view imports this module

    backbones = analysis.get("backbones") or ()
    recommendation = analysis.get("recommendation") or {}
    size = recommendation.get("size") or {}
    small = size.get("small_per_class") if finite(size.get("small_per_class")) else DEFAULT_SMALL_PER_CLASS
    threshold = (size.get("similarity_threshold") if finite(size.get("similarity_threshold"))
                 else DEFAULT_SIMILARITY_THRESHOLD)
    per_class = _samples_per_class(analysis, size)
    if not backbones or per_class is None:
        return None
    chosen = recommendation.get("backbone")
    points = [{"name": str(b.get("name")), "samples_per_class": per_class,
               "similarity": (b.get("similarity") or {}).get("value"),
               "spread": (b.get("similarity") or {}).get("spread"), "highlight": b.get("name") == chosen}
              for b in backbones]
    anchor = next((p for p in points if p["highlight"]), points[0])
    similarity = anchor["similarity"]
    # The recommendation's own verdicts (Recommendation.size) when it stored them; recomputed only for an
    # analysis written before they were (or by a plugin that leaves them out).
    small_data = size["small"] if isinstance(size.get("small"), bool) else per_class < small
    similar = (size["similar"] if isinstance(size.get("similar"), bool) and anchor["highlight"]
               else finite(similarity) and similarity >= threshold)
    prior = scenario_strategy(small=small_data, similar=similar)
    textbook = (recommendation.get("learned") or {}).get("textbook") or {}
    return {
        "chart": charts.scenario_map(points, "Four-scenario map: samples per class against similarity",
                                     small_per_class=small, similarity_threshold=threshold),
        "samples_per_class": fmt(per_class),
        "small_per_class": fmt(small),
        "similarity_threshold": fmt(threshold),
        "backbone": anchor["name"],
        "similarity": fmt(similarity),
        "prior": prior,
        "prior_label": strategy_label(prior),
        "recommended": recommendation.get("strategy"),
        "recommended_label": strategy_label(recommendation.get("strategy")),
        # the rule's own pick, overrides applied, beside the learned prior's (tladvisor.advice.learned)
        "textbook": textbook.get("strategy"),
        "textbook_label": strategy_label(textbook.get("strategy")) if textbook else None,
        "textbook_config": textbook.get("label"),
        "recommended_config": (recommendation.get("learned") or {}).get("pick_config"),
        "thresholds_defaulted": "small_per_class" not in size or "similarity_threshold" not in size,
    }


def _samples_per_class(analysis: dict, size: dict) -> float | None:
    if finite(size.get("samples_per_class")):
        return float(size["samples_per_class"])
    dataset = analysis.get("dataset") or {}
    median = (dataset.get("profile") or {}).get("samples_per_class_median")
    if finite(median):
        return float(median)
    if dataset.get("n_classes"):
        return dataset.get("n_samples", 0) / dataset["n_classes"]
    return None
