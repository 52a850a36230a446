"""Cached measurements: a re-run on the same data skips the probes as well as the forward passes.

The key is the feature-cache key plus everything else a measurement depends on: the seed, and the
name and version of every plugin that measures or summarises (a new plugin version measures anew).
Entries are JSON written atomically; an unreadable entry is ignored and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import replace
from pathlib import Path

from tladvisor import __version__
from tladvisor.runtime.atomic import write_atomic
from tladvisor.records import BackboneMeasurement, Score, StageShift, to_jsonable

log = logging.getLogger(__name__)

FORMAT = 2  # 2: LogME maximised to convergence (cached 1s hold the 100-step fixed point)
MEASURING_HOOKS = ("measure_backbone", "summarise_similarity")


def measurement_key(feature_key: str, plugins: list[tuple[str, str]], seed: int) -> str:
    """``plugins``: (name, version) of every implementation of the measuring hooks."""
    text = f"format={FORMAT}|tladvisor={__version__}|{feature_key}|seed={seed}|" + \
           ";".join(f"{name}={version}" for name, version in plugins)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def read(path: Path) -> BackboneMeasurement | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return replace(_measurement(data), from_cache=True)
    except Exception as error:  # whatever is wrong with an entry (a cache is not trusted), measure again
        log.warning("measurement cache entry %s is unreadable (%s); measuring again", path, error)
        return None


def write(path: Path, measurement: BackboneMeasurement) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(to_jsonable(measurement))
    write_atomic(path, lambda handle: handle.write(text.encode()))


def _score(data: dict) -> Score:
    value = data["value"]
    return Score(value=float("nan") if value is None else float(value), spread=_optional_float(data.get("spread")),
                 normalised=_optional_float(data.get("normalised")),
                 higher_is_better=bool(data.get("higher_is_better", True)), detail=str(data.get("detail", "")))


def _optional_float(value) -> float | None:
    return None if value is None else float(value)


def _measurement(data: dict) -> BackboneMeasurement:
    return BackboneMeasurement(
        backbone=data["backbone"], similarity=_score(data["similarity"]),
        scores={name: _score(score) for name, score in data["scores"].items()},
        stage_shift=tuple(StageShift(s["stage"], float(s["value"]), int(s["n_layers"])) for s in data["stage_shift"]),
        n_measured=int(data["n_measured"]), image_size=int(data["image_size"]), seconds=float(data["seconds"]),
        warnings=tuple(str(w) for w in data["warnings"]),
        embedding_2d=tuple((float(x), float(y), int(label)) for x, y, label in data["embedding_2d"]),
        n_stages=int(data.get("n_stages", 0)), stage_names=tuple(data.get("stage_names", ())))
