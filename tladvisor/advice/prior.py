"""A learned prior over the transfer configs: each config's accuracy gain over feature extraction, predicted
from the measurements ``analyze`` makes (issue #22 item 6).

The honest grid (benchmarks/grid) trains every config on many tasks; :class:`GainPredictor` is fitted there, one
ridge regression per config on standardised measurement facts, and judged out of task (benchmarks/advice/loto.py).
What it learns ships as a small JSON file with its provenance (:func:`save`, :func:`load`: the grid's settings,
commits, tasks and seeds), read at run time instead of typed into code. The facts are computed here once, for
the grid's advice units and for a user's run alike (:func:`measurement_facts`), so the two cannot drift apart.

The advice reads the shipped file through :mod:`tladvisor.advice.learned`.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tladvisor.measures import names
from tladvisor.measures.shift import geometric_mean

FORMAT = 1
FACTS = ("log_train_per_class", "log_classes", "similarity", "bn_shift_geomean", "linear_probe_normalised",
         "knn", "pretraining_gain", "logme")
"""The facts a prior reads, in order, before one stage shift per stage (a backbone's own stage names)."""


def measurement_facts(measurement) -> dict[str, Any]:
    """The facts of one :class:`~tladvisor.records.BackboneMeasurement` a prior reads (beside the training
    images per class and the classes, which come from the profile): the summary similarity, the geometric mean
    and per-stage BatchNorm shift, the normalised linear probe, k-NN accuracy, pretraining gain and LogME."""

    def value(name: str) -> float | None:
        found = measurement.scores.get(name)
        return None if found is None else float(found.value)

    probe = measurement.scores.get(names.LINEAR_PROBE_ACCURACY)
    return {
        "similarity": float(measurement.similarity.value),
        "bn_shift_geomean": geometric_mean([s.value for s in measurement.stage_shift]) if measurement.stage_shift else None,
        "stage_shift": {s.stage: round(float(s.value), 4) for s in measurement.stage_shift},
        "linear_probe_normalised": probe.normalised if probe is not None else None,
        "knn": value(names.KNN_ACCURACY),
        "pretraining_gain": value(names.PRETRAINING_GAIN),
        "logme": value(names.LOGME),
    }


def fact_vector(facts: Mapping[str, Any], train_per_class: float, n_classes: int, stages: Sequence[str]) -> list[float]:
    """The prior's input row: :data:`FACTS` then the shift of each of ``stages``; a fact not measured is NaN."""

    def number(value: Any) -> float:
        return float(value) if value is not None and math.isfinite(float(value)) else math.nan
    row = [math.log(max(float(train_per_class), 1.0)), math.log(max(int(n_classes), 1))]
    row += [number(facts.get(name)) for name in FACTS[2:]]
    row += [number((facts.get("stage_shift") or {}).get(stage)) for stage in stages]
    return row


class Leak(AssertionError):
    """A prior was about to be scored on a task it was fitted on."""


def assert_out_of_task(fitted_on: Sequence[str], scored_on: Sequence[str]) -> None:
    overlap = set(fitted_on) & set(scored_on)
    if overlap:
        raise Leak(f"fitted on the task(s) it is scored on: {', '.join(sorted(overlap))}")


@dataclass
class GainPredictor:
    """Per config, ridge regression of ``accuracy(config) - accuracy(feature_extraction)`` on standardised facts;
    the facts are standardised with the training rows' mean and spread only."""

    alpha: float = 1.0
    stages: tuple[str, ...] = ()  # the stage names of the stage-shift facts, in order
    provenance: dict[str, Any] = field(default_factory=dict)

    def fit(self, features: np.ndarray, gains: Mapping[str, np.ndarray], tasks: Sequence[str]) -> GainPredictor:
        x = np.asarray(features, dtype=float)
        self.tasks_ = list(tasks)
        with warnings.catch_warnings():  # a fact no training task has: mean and spread are nan, handled below
            warnings.simplefilter("ignore", RuntimeWarning)
            self.mean_ = np.nanmean(x, axis=0) if len(x) else np.zeros(x.shape[1])
            self.scale_ = np.nanstd(x, axis=0)
        self.scale_[~np.isfinite(self.scale_) | (self.scale_ < 1e-12)] = 1.0
        self.mean_[~np.isfinite(self.mean_)] = 0.0
        z = self._standardise(x)
        self.coef_, self.intercept_, self.residual_ = {}, {}, {}
        for config, y in gains.items():
            y = np.asarray(y, dtype=float)
            centre = float(y.mean()) if len(y) else 0.0
            coef = np.linalg.solve(z.T @ z + self.alpha * np.eye(z.shape[1]), z.T @ (y - centre))
            self.coef_[config], self.intercept_[config] = coef, centre
            fitted = z @ coef + centre
            self.residual_[config] = float(np.sqrt(np.mean((y - fitted) ** 2))) if len(y) else math.inf
        return self

    def _standardise(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=float) - self.mean_) / self.scale_
        return np.where(np.isfinite(z), z, 0.0)  # a fact the advisor could not measure counts as average

    def predict(self, features: Sequence[float], task: str | None = None) -> dict[str, float]:
        """Predicted gain of each config over feature extraction; ``task`` (when known) must not be one the
        predictor was fitted on."""
        if task is not None:
            assert_out_of_task(self.tasks_, [task])
        z = self._standardise(np.asarray(features, dtype=float)[None, :])[0]
        return {config: float(z @ c + self.intercept_[config]) for config, c in self.coef_.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "model": "ridge gain over feature_extraction", "alpha": self.alpha,
                "facts": [*FACTS, *(f"stage_shift:{s}" for s in self.stages)], "stages": list(self.stages),
                "mean": self.mean_.tolist(), "scale": self.scale_.tolist(), "tasks": self.tasks_,
                "configs": {c: {"coef": self.coef_[c].tolist(), "intercept": self.intercept_[c],
                                "residual": self.residual_[c]} for c in self.coef_},
                "provenance": self.provenance}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GainPredictor:
        if data.get("format") != FORMAT:
            raise ValueError(f"a gain prior of format {data.get('format')!r}; this tladvisor reads format {FORMAT}")
        predictor = cls(alpha=float(data["alpha"]), stages=tuple(data["stages"]), provenance=dict(data["provenance"]))
        predictor.mean_, predictor.scale_ = np.array(data["mean"], dtype=float), np.array(data["scale"], dtype=float)
        predictor.tasks_ = list(data["tasks"])
        predictor.coef_ = {c: np.array(v["coef"], dtype=float) for c, v in data["configs"].items()}
        predictor.intercept_ = {c: float(v["intercept"]) for c, v in data["configs"].items()}
        predictor.residual_ = {c: float(v["residual"]) for c, v in data["configs"].items()}
        if any(len(c) != len(predictor.mean_) for c in predictor.coef_.values()) or \
                len(predictor.mean_) != len(FACTS) + len(predictor.stages):
            raise ValueError("a gain prior whose coefficients do not match its facts")
        return predictor


def save(predictor: GainPredictor, path: Path) -> None:
    """Write ``predictor`` as JSON, atomically."""
    from tladvisor.runtime.atomic import write_atomic

    text = json.dumps(predictor.to_dict(), indent=1).encode("utf-8")
    write_atomic(Path(path), lambda handle: handle.write(text), mode=0o644)


def load(path: Path) -> GainPredictor:
    return GainPredictor.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
