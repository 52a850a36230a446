"""From analysis.json data to what each report section shows: facts, tables, charts, warnings.

Reads only the analysis dict (never records), so a report re-rendered from an old analysis.json looks
the same as the first one. Missing pieces (a run that stopped early, a measure a plugin did not provide)
give an empty part, never an error.
"""

from __future__ import annotations

import shlex
from collections import Counter
from pathlib import Path
from typing import Any

from markupsafe import Markup

from tladvisor.data.wording import counted, reason_kind
from tladvisor.report import charts, glossary
from tladvisor.report.charts import Bar
from tladvisor.report.learned_view import learned_view
from tladvisor.report.scenario_view import scenario_view  # noqa: F401  (a section of this page, in its own module)
from tladvisor.report.svg import STRATEGY_COLOURS, finite, fmt
from tladvisor.report.text_view import text_backbone_facts, text_dataset_view
from tladvisor.report.thumbnails import class_thumbnails
from tladvisor.strategies import NEUTRAL_COLOUR
from tladvisor.measures import names

# Thresholds drawn when an analysis.json does not say which ones its advice used: the rule's own.
MAX_TABLE_ROWS = 200
SKIPPED_NAMED = 3  # skipped files named in the warning (all are listed in the Dataset section)
MAX_LABELLED_CLASSES = 40
RANDOM_MARKERS = ("_random", "random_", " (random)", "_random_init")
GREYSCALE_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


def strategy_label(strategy: str | None) -> str:
    return (strategy or "—").replace("_", " ")


def run_strategy_colours(analysis: dict) -> dict[str, str]:
    """Each strategy's colour: the built-ins', then what the run's registry stored (plugins' strategies)."""
    stored = analysis.get("strategies") if isinstance(analysis.get("strategies"), dict) else {}
    return {**STRATEGY_COLOURS, **{str(name): entry["colour"] for name, entry in stored.items()
                                   if isinstance(entry, dict) and isinstance(entry.get("colour"), str)}}


def accuracy_text(value) -> str:
    """An accuracy with three decimals, always (1.000, not 1)."""
    return f"{value:.3f}" if finite(value) else "—"


# --- verdict ----------------------------------------------------------------------------------------


def verdict_view(analysis: dict) -> dict[str, Any]:
    recommendation = analysis.get("recommendation")
    view: dict[str, Any] = {"warnings": collect_warnings(analysis), "recommendation": None, "best_trial": None,
                            "learned": None}
    if recommendation:
        n_stages = recommendation.get("n_stages") or 0
        depth = recommendation.get("freeze_depth") or 0
        stage_names = _stage_names(analysis, recommendation.get("backbone"), n_stages)
        rates = recommendation.get("learning_rates") or {}
        confidence = recommendation.get("confidence")
        view["recommendation"] = {
            "backbone": recommendation.get("backbone"),
            "strategy": recommendation.get("strategy"),
            "strategy_label": strategy_label(recommendation.get("strategy")),
            "strategy_meaning": glossary.explain(recommendation.get("strategy"), analysis.get("strategies")),
            "strategy_colour": run_strategy_colours(analysis).get(recommendation.get("strategy"), NEUTRAL_COLOUR),
            "freeze_depth": depth,
            "n_stages": n_stages,
            "freeze_text": f"{depth} of {n_stages} stages frozen",
            "stage_strip": charts.stage_strip(stage_names, depth, f"{depth} of {n_stages} stages frozen"),
            "learning_rates": [(name.replace("_", " "), "frozen" if name == "backbone" and value == 0 else fmt(value))
                               for name, value in rates.items()],
            "confidence": fmt(confidence, 2),
            "confidence_percent": round(100 * confidence) if finite(confidence) else None,
            "confidence_word": _confidence_word(confidence),
            "rationale": list(recommendation.get("rationale") or ()),
            "epochs": recommendation.get("epochs"),
        }
    view["learned"] = learned_view(recommendation, analysis.get("tuning"))
    best = (analysis.get("tuning") or {}).get("best")
    if best and finite(best.get("value")):
        from tladvisor.report.tuning_view import trial_accuracy_text  # "± spread over K folds" when CV ran

        view["best_trial"] = {"number": best.get("number"), "value": trial_accuracy_text(best),
                              "strategy": strategy_label((best.get("params") or {}).get("strategy"))}
    versus = (analysis.get("tuning") or {}).get("versus_advice")
    view["versus_advice"] = versus if versus and versus.get("summary") else None
    return view


def _confidence_word(confidence) -> str:
    if not finite(confidence):
        return ""
    return "low" if confidence < 0.4 else "moderate" if confidence < 0.7 else "high"


def _stage_names(analysis: dict, backbone: str | None, n_stages: int) -> list[str]:
    for measured in analysis.get("backbones") or ():
        names = [stage.get("stage") for stage in measured.get("stage_shift") or ()]
        if measured.get("name") == backbone and len(names) == n_stages:
            return [str(name) for name in names]
    return [f"stage {i + 1}" for i in range(n_stages)]


def collect_warnings(analysis: dict) -> list[dict[str, str]]:
    """Everything a reader must see before trusting the verdict, each once, with where it comes from.

    The report's verdict shows them all; ``tladvisor analyze`` ends with the same list in the terminal
    (less the plugin failures, which it prints to stderr as they happen).
    """
    found: list[dict[str, str]] = []

    def add(kind: str, message: str) -> None:
        if message and all(message != item["text"] for item in found):
            found.append({"kind": kind, "text": str(message)})

    interrupted = (analysis.get("environment") or {}).get("interrupted")
    if interrupted:  # written by a run stopped with SIGINT/SIGTERM: it shows only what was finished
        add("interrupted", f"This run was stopped {interrupted}: the report shows what was finished by then. "
                           "Run the same command again to resume.")
    for failure in analysis.get("plugin_failures") or ():
        add("plugin failure", f"Plugin '{failure.get('plugin')}' failed in {failure.get('hook')}: "
                              f"{failure.get('error')}. Results from the other plugins still stand.")
    for name, reason in (analysis.get("backbones_left_out") or {}).items():
        add("backbone left out", f"{name} was not measured: {reason}")
    for message in (analysis.get("recommendation") or {}).get("warnings") or ():
        add("recommendation", message)
    for measured in analysis.get("backbones") or ():
        for message in measured.get("warnings") or ():
            add(str(measured.get("name")), message)
    dataset = analysis.get("dataset")
    if dataset is None:
        add("dataset", "The dataset could not be loaded, so nothing was measured.")
        return found
    profile = dataset.get("profile") or {}
    for message in profile.get("warnings") or ():
        add("dataset", message)
    leakage = profile.get("leakage") or ()
    if leakage and not any("leak" in item["text"].lower() for item in found):
        add("leakage", f"{len(leakage)} group(s) of identical images appear in both train and validation: "
                       "validation accuracy is optimistic until they are removed.")
    # Imbalance warnings are the profiler's call (its threshold); they arrive with profile["warnings"].
    skipped = dataset.get("skipped") or ()
    if skipped and not any("skipped" in item["text"].lower() for item in found):
        kinds = Counter(reason_kind(str(item.get("reason") or "")) for item in skipped if isinstance(item, dict))
        summary = ", ".join(f"{kind} x{n}" for kind, n in kinds.most_common(3))
        names = [Path(str(item.get("path") or "")).name for item in skipped[:SKIPPED_NAMED] if isinstance(item, dict)]
        more = f" and {len(skipped) - len(names)} more" if len(skipped) > len(names) else ""
        add("skipped files", f"{counted(len(skipped), 'file')} skipped ({summary}: {', '.join(names)}{more}) and not "
                             "analysed; the reasons are in the report's Dataset section.")
    n_samples = dataset.get("n_samples") or 0
    grey = sum(n for mode, n in (profile.get("modes") or {}).items() if mode in GREYSCALE_MODES and finite(n))
    if grey and n_samples:
        add("dataset", f"{grey / n_samples:.0%} of the images ({grey:,} of {n_samples:,}) are greyscale, "
                       "fed to the backbones as 3 equal RGB channels.")
    measured = [b.get("n_measured") for b in analysis.get("backbones") or () if finite(b.get("n_measured"))]
    if measured and n_samples and min(measured) < n_samples:
        noun = "texts" if profile.get("modality") == "text" else "images"
        add("sample", f"measured {min(measured):,} of {n_samples:,} {noun} per backbone "
                      "(a stratified sample; --max-samples raises it).")
    return found


# --- dataset ----------------------------------------------------------------------------------------


def dataset_view(analysis: dict) -> dict[str, Any] | None:
    dataset = analysis.get("dataset")
    if dataset is None:
        return None
    profile = dataset.get("profile") or {}
    counts = dataset.get("class_counts") or {}
    ordered = sorted(counts.items(), key=lambda item: -item[1])
    noun = "texts" if profile.get("modality") == "text" else "images"
    if len(ordered) <= MAX_LABELLED_CLASSES:
        class_chart = charts.bar_chart([Bar(name, count) for name, count in ordered], f"{noun.capitalize()} per class",
                                       axis_label=noun, value_format=lambda v: f"{v:,.0f}")
    else:
        class_chart = charts.column_chart([count for _, count in ordered], f"{noun.capitalize()} per class, largest "
                                          "first", axis_label=noun)
    if profile.get("modality") == "text":
        return text_dataset_view(dataset, profile, class_chart, _dataset_facts(dataset, profile))
    grid = class_thumbnails(dataset.get("examples") or {}, dataset.get("root"))
    skipped = dataset.get("skipped") or []
    image_size = profile.get("image_size") or {}
    return {
        "modality": "image",
        "root": dataset.get("root"),
        "facts": _dataset_facts(dataset, profile),
        "notes": list(dataset.get("notes") or ()),
        "class_chart": class_chart,
        "thumbnails": grid,
        "thumbnail_classes_hidden": max(0, len(dataset.get("examples") or {}) - len(grid)),
        "size_chart": charts.range_chart(_quantile_rows(image_size, pixels=True), "Image width and height",
                                         axis_label="pixels"),
        "aspect_chart": charts.range_chart(_quantile_rows(image_size, pixels=False), "Aspect ratio",
                                           axis_label="width / height"),
        "size_table": _size_table(image_size),
        "skipped": skipped[:MAX_TABLE_ROWS],
        "skipped_hidden": max(0, len(skipped) - MAX_TABLE_ROWS),
        "leakage": [list(group) for group in (profile.get("leakage") or ())[:20]],
        "n_leakage": len(profile.get("leakage") or ()),
        "n_duplicates": len(profile.get("duplicates") or ()),
    }


def _dataset_facts(dataset: dict, profile: dict) -> list[tuple[str, str]]:
    noun = "texts" if profile.get("modality") == "text" else "images"
    facts = [(noun, fmt(dataset.get("n_samples"))), ("classes", fmt(dataset.get("n_classes")))]
    if profile:
        facts += [("smallest class", fmt(profile.get("samples_per_class_min"))),
                  ("median per class", fmt(profile.get("samples_per_class_median"))),
                  ("imbalance (largest / smallest)", fmt(profile.get("imbalance_ratio")))]
        splits = profile.get("split_counts") or {}
        if splits:
            facts.append(("splits", ", ".join(f"{name} {fmt(n)}" for name, n in splits.items())))
        modes = profile.get("modes") or {}
        if modes:
            facts.append(("colour modes", ", ".join(f"{name} {fmt(n)}" for name, n in modes.items())))
        if profile.get("channel_mean"):
            facts.append(("channel mean (R, G, B)", ", ".join(fmt(v, 2) for v in profile["channel_mean"])))
        if profile.get("channel_std"):
            facts.append(("channel std (R, G, B)", ", ".join(fmt(v, 2) for v in profile["channel_std"])))
        facts.append(("duplicate groups", fmt(len(profile.get("duplicates") or ()))))
    facts.append(("skipped files", fmt(len(dataset.get("skipped") or ()))))
    facts.append(("format", str(dataset.get("source_format") or "—")))
    return facts


def _quantile_rows(image_size: dict, pixels: bool) -> list[tuple[str, dict[str, float]]]:
    rows = []
    for name, quantiles in image_size.items():
        if isinstance(quantiles, dict) and ("aspect" in name.lower()) != pixels:
            rows.append((name, {k: v for k, v in quantiles.items() if finite(v)}))
    return rows


def _size_table(image_size: dict) -> dict[str, Any]:
    """Rows = measure (width, height, aspect...), columns = the quantiles the profiler reported."""
    columns: list[str] = []
    rows, scalars = [], []
    for name, value in image_size.items():
        if isinstance(value, dict):
            for key in value:
                if key not in columns:
                    columns.append(key)
            rows.append((name, value))
        else:
            scalars.append((name, fmt(value)))
    return {"columns": columns, "rows": [(name, [fmt(values.get(c)) for c in columns]) for name, values in rows],
            "scalars": scalars}


# --- similarity -------------------------------------------------------------------------------------


def similarity_view(analysis: dict) -> dict[str, Any] | None:
    backbones = list(analysis.get("backbones") or ())
    if not backbones:
        return None
    recommendation = analysis.get("recommendation") or {}
    chosen = recommendation.get("backbone")
    backbones = _ranked(backbones, recommendation.get("ranking") or ())
    class_names = (analysis.get("dataset") or {}).get("classes") or []
    summary = charts.bar_chart(
        [Bar(str(b.get("name")), (b.get("similarity") or {}).get("value"), (b.get("similarity") or {}).get("spread"),
             fill=charts.ACCENT if b.get("name") == chosen else charts.SOFT,
             note="recommended" if b.get("name") == chosen else "") for b in backbones],
        "Summary similarity to the source domain, per backbone", max_value=1.0,
        axis_label="similarity (0 = unlike the source domain, 1 = like it)")
    text = ((analysis.get("dataset") or {}).get("profile") or {}).get("modality") == "text"
    cards = []
    for backbone in backbones:
        is_chosen = backbone.get("name") == chosen
        depth = recommendation.get("freeze_depth") if is_chosen else None
        stages = [(str(s.get("stage")), s.get("value"), s.get("n_layers") or 0) for s in backbone.get("stage_shift") or ()]
        similarity = backbone.get("similarity") or {}
        cards.append({
            "name": backbone.get("name"),
            "recommended": is_chosen,
            "similarity": fmt(similarity.get("value")),
            "similarity_spread": fmt(similarity.get("spread")) if finite(similarity.get("spread")) else None,
            "text": text,
            "facts": text_backbone_facts(backbone) if text else [
                ("images measured", fmt(backbone.get("n_measured"))),
                ("input size", f"{backbone.get('image_size')} px" if backbone.get("image_size") else "—"),
                ("features", "from cache" if backbone.get("from_cache") else "computed"),
                ("seconds", fmt(backbone.get("seconds")))],
            "warnings": list(backbone.get("warnings") or ()),
            "stage_chart": charts.stage_shift_chart(stages, f"Per-stage shift of {backbone.get('name')}",
                                                    freeze_depth=depth),
            "peak_stage": max(stages, key=lambda s: s[1] if finite(s[1]) else -1)[0] if stages else None,
            "probe_chart": _probe_chart(backbone),
            "scatter": charts.scatter_chart(backbone.get("embedding_2d") or (), class_names,
                                            f"2-D projection of {backbone.get('name')} embeddings, by class"),
        })
    return {"summary_chart": summary, "cards": cards, "scores": _scores_table(backbones),
            "ranking": _ranking_table(recommendation.get("ranking") or ())}


def _ranked(backbones: list[dict], ranking) -> list[dict]:
    order = {row.get("backbone"): i for i, row in enumerate(ranking) if isinstance(row, dict)}
    return sorted(backbones, key=lambda b: (order.get(b.get("name"), len(order)),
                                            -((b.get("similarity") or {}).get("value") or 0)))


def probe_pairs(scores: dict[str, dict]) -> list[tuple[str, dict, dict]]:
    """``(probe, pretrained score, random-init score)`` for every score that has a ``<name>_random`` twin."""
    pairs = []
    for name, score in scores.items():
        for marker in RANDOM_MARKERS:
            base = name.replace(marker, "") if marker in name else None
            if base and base != name and base in scores:
                pairs.append((base, scores[base], score))
                break
    return pairs


def _probe_chart(backbone: dict) -> Markup:
    scores = backbone.get("scores") or {}
    pairs = probe_pairs(scores)
    probe, gain = scores.get(names.LINEAR_PROBE_ACCURACY), scores.get(names.PRETRAINING_GAIN)
    if not pairs and probe and gain and finite(probe.get("value")) and finite(gain.get("value")):
        # Only the gain was recorded: the random-init accuracy is the probe minus that gain.
        pairs = [(names.LINEAR_PROBE_ACCURACY, probe, {"value": probe["value"] - gain["value"], "spread": gain.get("spread")})]
    groups = [(base.replace("_", " "), [("pretrained", pre.get("value"), pre.get("spread")),
                                        ("random init", rnd.get("value"), rnd.get("spread"))])
              for base, pre, rnd in pairs]
    if not groups:
        return Markup("")
    top = max((v for _, series in groups for _, v, _ in series if finite(v)), default=1.0)
    return charts.grouped_bar_chart(groups, f"Probe accuracy of {backbone.get('name')}: pretrained vs random init",
                                    series_fills={"pretrained": charts.ACCENT, "random init": "#c9ccd3"},
                                    max_value=1.0 if top <= 1 else charts.nice_max(top))


def _scores_table(backbones: list[dict]) -> dict[str, Any]:
    names: list[str] = []
    details: dict[str, str] = {}
    for backbone in backbones:
        for name, score in (backbone.get("scores") or {}).items():
            if name not in names:
                names.append(name)
            if score.get("detail") and name not in details:
                details[name] = score["detail"]
    rows = []
    for name in names:
        cells = []
        for backbone in backbones:
            score = (backbone.get("scores") or {}).get(name)
            if score is None:
                cells.append(None)
                continue
            normalised = score.get("normalised")
            cells.append({"value": fmt(score.get("value")), "sort": score.get("value"),
                          "spread": fmt(score.get("spread")) if finite(score.get("spread")) else "",
                          "normalised": fmt(normalised, 2) if finite(normalised) else "—",
                          "bar": round(100 * min(max(normalised, 0), 1)) if finite(normalised) else None,
                          "detail": score.get("detail") or ""})
        higher = next(((b.get("scores") or {})[name].get("higher_is_better", True) for b in backbones
                       if name in (b.get("scores") or {})), True)
        rows.append({"name": name, "higher_is_better": higher, "detail": details.get(name, ""), "cells": cells})
    return {"backbones": [b.get("name") for b in backbones], "rows": rows}


def _ranking_table(ranking) -> dict[str, Any] | None:
    rows = [row for row in ranking if isinstance(row, dict)]
    if not rows:
        return None
    columns = ["backbone"] + [key for key in dict.fromkeys(k for row in rows for k in row) if key != "backbone"]
    return {"columns": [c.replace("_", " ") for c in columns],
            "rows": [[(fmt(row.get(c)) if c != "backbone" else str(row.get(c)), row.get(c) if finite(row.get(c)) else None)
                      for c in columns] for row in rows]}


# --- reproduce --------------------------------------------------------------------------------------


def reproduce_view(analysis: dict) -> dict[str, Any]:
    environment = analysis.get("environment") or {}
    tuning = analysis.get("tuning") or {}
    options = analysis.get("options") or {}
    run_dir = analysis.get("out_dir") or str(Path(str(options.get("out_dir") or "reports")) / str(analysis.get("run_id")))
    model_dir = tuning.get("best_model_dir")
    extra = {k: v for k, v in environment.items() if k not in ("versions", "device", "command", "seed", "created")}
    return {
        "command": environment.get("command"),
        "versions": sorted((str(k), str(v)) for k, v in (environment.get("versions") or {}).items()),
        "seed": environment.get("seed"),
        "device": environment.get("device"),
        "environment": [(k, v if isinstance(v, str) else fmt(v) if finite(v) else str(v)) for k, v in extra.items()],
        "study": tuning.get("study_name"),
        "storage": tuning.get("storage"),
        "model_dir": model_dir,
        "predict_command": f"tladvisor predict {shlex.quote(model_dir) if model_dir else 'MODEL_DIR'} IMAGE...",
        "report_command": f"tladvisor report {shlex.quote(run_dir)}",
        "timings": [(name, fmt(seconds)) for name, seconds in (analysis.get("timings") or {}).items()],
        "plugin_failures": analysis.get("plugin_failures") or [],
        "options": [(k, "—" if v is None else str(v)) for k, v in options.items()],
    }
