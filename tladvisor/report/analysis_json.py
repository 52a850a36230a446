"""``analysis.json``: the machine-readable record of one run (documented in the README).

``build_analysis`` turns an :class:`~tladvisor.records.AnalysisRun` into plain JSON data; the HTML
report is rendered from that data alone, so ``tladvisor report DIR`` can re-render a report later
without the dataset or the models. ``schema_version`` goes up whenever a key changes meaning or
disappears (new keys alone do not bump it).

Schema 1 (non-finite numbers are ``null``)::

    schema_version, run_id, created (ISO 8601), out_dir, options {AnalysisOptions fields},
    environment {versions {package: version}, device, command, seed, platform, ...}, timings {stage: s},
    plugin_failures [{plugin, hook, error}], backbones_left_out {name: reason},
    dataset null | {root, source_format, notes, n_samples, n_classes, classes, class_counts {class: n},
                    skipped [{path, reason}], examples {class: [up to 6 paths]},
                    profile null | {samples_per_class_min, samples_per_class_median, imbalance_ratio,
                                    split_counts, image_size, modes, channel_mean, channel_std,
                                    duplicates, leakage, warnings}},
    backbones [{name, similarity {value, spread, normalised, higher_is_better, detail},
                scores {name: {value, spread, normalised, higher_is_better, detail}},
                stage_shift [{stage, value, n_layers}], n_measured, image_size, from_cache, seconds,
                warnings, embedding_2d [[x, y, label]], n_stages}],
    recommendation null | {backbone, strategy, freeze_depth, n_stages, learning_rates {head, backbone,
                           layer_decay}, confidence, rationale [sentence], ranking [{backbone, score, ...}],
                           size {samples_per_class, small_per_class, similarity_threshold, ...},
                           warnings, epochs, learned {} | {method, applied, pick, pick_config,
                           predicted_gain {role: gain}, configs {role: {strategy, freeze_depth, label}},
                           contenders [role], margin, outside [sentence], race [{role, strategy, freeze_depth,
                           learning_rates, epochs}], textbook {strategy, freeze_depth, label, confidence},
                           provenance {backbone, image_size, tasks, seeds, grid_settings_key, ...}}},
    tuning null | {study_name, storage, requested_trials (0: no trial cap, --timeout alone),
                   trials [{number, state, value, params, duration_s, reason, learning_curve,
                   metrics {balanced_accuracy, macro_f1}, folds null | {k, accuracies, mean, spread, images,
                   curves, best_epochs}}], best (a trial) | null, best_model_dir, device,
                   param_importances {param: importance}, best_by_strategy {strategy: trial number},
                   stop_reason, versus_advice null | {advice_trial, advice_state, advice_value, advice_params,
                   best_trial, best_value, best_params, beats_advice, gain, summary},
                   cross_validation null | {folds, images, reason}}
    strategies {name: {description, pretrained, freeze, colour, plugin}} (every registered strategy)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tladvisor.errors import OutputError
from tladvisor.records import AnalysisRun, Dataset, DatasetProfile, to_jsonable
from tladvisor.runtime.redact import redact_passwords
from tladvisor.strategies import BUILT_IN_STRATEGIES, describe_strategies

SCHEMA_VERSION = 1
EXAMPLES_PER_CLASS = 6
ANALYSIS_FILENAME = "analysis.json"

_VERSION = re.compile(r"^\d+\.\d+")  # "2.4.1+cu121" yes; "2025-01-15T..." and "Linux-6.1" no
_NOT_VERSIONS = {"created", "started", "command", "device", "platform", "seed"}
# DatasetProfile fields that are already at the top of "dataset"; the rest goes under "profile".
_PROFILE_FIELDS_LIFTED = ("n_samples", "n_classes", "class_counts", "skipped")


def build_analysis(run: AnalysisRun) -> dict[str, Any]:
    """The documented analysis.json content of ``run`` (JSON-safe: NaN and infinities are null)."""
    analysis = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run.run_id,
        "created": _created(run),
        "out_dir": str(run.out_dir),
        "options": _options(run),
        "environment": _environment(run),
        "timings": to_jsonable(run.timings),
        "plugin_failures": [to_jsonable(failure) for failure in run.plugin_failures],
        "backbones_left_out": dict(run.backbones_left_out),
        "dataset": _dataset(run.dataset, run.profile),
        "backbones": [_backbone(measurement) for measurement in run.measurements],
        "recommendation": to_jsonable(run.recommendation),
        "tuning": to_jsonable(run.tuning),
        "strategies": to_jsonable(run.strategies or describe_strategies(BUILT_IN_STRATEGIES)),
    }
    return analysis


def analysis_json_chunks(analysis: dict[str, Any]) -> Iterator[str]:
    """Serialise in chunks (for a streaming atomic write); raises on NaN rather than writing non-JSON."""
    encoder = json.JSONEncoder(indent=2, ensure_ascii=False, allow_nan=False, default=_fallback)
    for chunk in encoder.iterencode(analysis):
        # A file name that is not UTF-8 reaches Python as lone surrogates, which UTF-8 cannot encode:
        # write those as JSON escapes (\udcff), which read back to the very same path.
        yield _LONE_SURROGATE.sub(_json_escape, chunk)
    yield "\n"


def dumps_analysis(analysis: dict[str, Any]) -> str:
    return "".join(analysis_json_chunks(analysis))


def load_analysis(path: str | Path) -> dict[str, Any]:
    """Read an analysis.json (or the run folder holding one), refusing what this version cannot read."""
    path = Path(path)
    if path.is_dir():
        path = path / ANALYSIS_FILENAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise OutputError(f"{path} does not exist; point at a run folder written by `tladvisor analyze`") from None
    except (OSError, UnicodeDecodeError) as error:
        raise OutputError(f"cannot read {path}: {error}") from None
    try:
        analysis = json.loads(text)
    except json.JSONDecodeError as error:
        raise OutputError(f"{path} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}); "
                          "re-run `tladvisor analyze` to write it again") from None
    version = analysis.get("schema_version") if isinstance(analysis, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise OutputError(f"{path} has no integer schema_version: it is not a tladvisor analysis.json")
    if version > SCHEMA_VERSION:
        raise OutputError(f"{path} has schema_version {version}, newer than this tladvisor reads "
                          f"({SCHEMA_VERSION}); upgrade tladvisor to open it")
    return analysis


# --- parts ------------------------------------------------------------------------------------------


def _created(run: AnalysisRun) -> str:
    created = run.environment.get("created") or run.environment.get("started")
    if isinstance(created, datetime):
        return created.isoformat(timespec="seconds")
    if isinstance(created, str) and created:
        return created
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _options(run: AnalysisRun) -> dict[str, Any]:
    options = to_jsonable(run.options)
    if isinstance(options.get("storage"), str):
        options["storage"] = redact_passwords(options["storage"])  # a database password stays out of reports
    return options


def _environment(run: AnalysisRun) -> dict[str, Any]:
    """The run's environment with the documented keys always present.

    The Advisor records versions flat ({"torch": "2.4.1", ...}); they are gathered under "versions".
    """
    environment = to_jsonable(dict(run.environment))
    if isinstance(environment.get("command"), str):
        environment["command"] = redact_passwords(environment["command"])
    if not isinstance(environment.get("versions"), dict):
        versions = {key: value for key, value in environment.items()
                    if isinstance(value, str) and _VERSION.match(value) and key not in _NOT_VERSIONS}
        environment = {key: value for key, value in environment.items() if key not in versions}
        environment["versions"] = versions
    environment.setdefault("device", run.options.device)
    environment.setdefault("command", None)
    environment.setdefault("seed", run.options.seed)
    return environment


def _backbone(measurement) -> dict[str, Any]:
    fields = to_jsonable(measurement)
    del fields["backbone"]  # called "name" in the schema
    return {"name": measurement.backbone, **fields}


def _dataset(dataset: Dataset | None, profile: DatasetProfile | None) -> dict[str, Any] | None:
    if dataset is None:
        return None
    skipped = {item.path: item.reason for item in dataset.skipped}
    for item in profile.skipped if profile else ():  # files the profiler could not read either
        skipped.setdefault(item.path, item.reason)
    profile_rest = None
    if profile is not None:
        profile_rest = {key: value for key, value in to_jsonable(profile).items()
                        if key not in _PROFILE_FIELDS_LIFTED}
    return {
        "root": str(dataset.root),
        "source_format": dataset.source_format,
        "notes": list(dataset.notes),
        "n_samples": len(dataset.samples),
        "n_classes": len(dataset.classes),
        "classes": list(dataset.classes),
        "class_counts": dataset.class_counts(),
        "skipped": [{"path": path, "reason": reason} for path, reason in skipped.items()],
        "profile": profile_rest,
        "examples": _examples(dataset),
    }


def _examples(dataset: Dataset) -> dict[str, list[str]]:
    """Up to EXAMPLES_PER_CLASS paths per class, spread evenly over the class (not just its first files).
    None for texts: their examples are the texts themselves, in the profile (``profile.text.examples``)."""
    if getattr(dataset, "modality", "image") != "image":
        return {}
    by_label: dict[int, list[str]] = {}
    for sample in dataset.samples:
        by_label.setdefault(sample.label, []).append(str(sample.path))
    examples = {}
    for label, name in enumerate(dataset.classes):
        paths = by_label.get(label, [])
        if len(paths) > EXAMPLES_PER_CLASS:
            step = len(paths) / EXAMPLES_PER_CLASS
            paths = [paths[int(i * step)] for i in range(EXAMPLES_PER_CLASS)]
        examples[name] = paths
    return examples


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _json_escape(match: re.Match) -> str:
    return f"\\u{ord(match.group()):04x}"


def _fallback(value: Any) -> Any:
    # Whatever to_jsonable let through (a plugin's own object in environment, say) is written as text.
    return str(value)
