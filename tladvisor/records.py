"""The plain data objects each pipeline stage hands to the next (frozen dataclasses).

A stage reads the records of earlier stages and never reaches into their internals. Every record
turns into JSON-ready data with :func:`to_jsonable`; that is what ``analysis.json`` is made of.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np



# --- options ----------------------------------------------------------------------------------------


MAX_IMAGE_PIXELS = 89_478_485
"""Decompression-bomb cap per image: PIL's own default (about 89.5 megapixels). The one definition:
``--max-image-pixels``, ``AnalysisOptions`` and the loaders take their default from here."""


@dataclass(frozen=True)
class AnalysisOptions:
    """What the user asked for. Stored with the run so it can be reproduced."""

    source: Path
    out_dir: Path = Path("reports")
    run_name: str | None = None
    backbones: tuple[str, ...] = ()  # empty: every backbone whose weights are available offline
    image_size: int | None = None  # None: each backbone's native input size
    trials: int = 0
    timeout: float | None = None
    seed: int = 0
    max_samples: int = 2000  # cap on images measured per backbone (stratified sample)
    val_fraction: float = 0.2
    batch_size: int = 64
    device: str = "auto"
    cache_dir: Path | None = None
    storage: str | None = None
    study_name: str | None = None
    source_sample: Path | None = None
    plugins_dir: Path | None = None
    run_dir: Path | None = None  # filled in by the Advisor: out_dir / run name (stable across re-runs)
    num_workers: int = 0  # DataLoader worker processes
    max_image_pixels: int | None = MAX_IMAGE_PIXELS  # decompression-bomb cap per image; None: PIL's own limit only
    path_column: str | None = None  # manifest column of image paths (None: the first usual name)
    label_column: str | None = None  # manifest column of labels (None: the first usual name)
    image_root: Path | None = None  # manifest paths resolve against it and stay inside it (None: manifest's folder)
    class_weights: str = "none"  # "balanced": the training loss weights each class by its inverse frequency
    cv_folds: str = "auto"  # trials scored on K cross-validation folds: "auto" (small data), "1" (off), or K
    modality: str = "auto"  # "image", "text", or "auto": found from the data (tladvisor.data.sources)
    text_column: str | None = None  # manifest column of texts (None: the first usual name)


# --- load -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One usable image. Metadata is read once while loading so profiling never re-reads pixels."""

    path: Path
    label: int
    split: str | None = None  # "train" or "val" when the dataset defines it, else None
    width: int = 0
    height: int = 0
    mode: str = ""  # PIL mode before conversion (L, RGB, RGBA, P, CMYK, I;16, 1...)
    digest: str = ""  # content hash (exact-duplicate and leakage detection)


@dataclass(frozen=True)
class TextSample:
    """One usable text. ``path`` is where it came from (its .txt file, or the manifest with ``origin`` naming the
    row), so duplicate and skip lists name it as they name an image file."""

    path: Path
    label: int
    text: str
    split: str | None = None
    digest: str = ""  # hash of the text with case, spacing and punctuation ignored (near-duplicates, leakage)
    origin: str = ""  # "row 12 (line 13)" for a manifest row


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str


@dataclass(frozen=True)
class Dataset:
    root: Path
    classes: tuple[str, ...]
    samples: tuple[Sample, ...] | tuple[TextSample, ...]
    skipped: tuple[SkippedFile, ...] = ()
    source_format: str = "imagefolder"
    notes: tuple[str, ...] = ()  # things the loader handled that a user should know about
    modality: str = "image"  # "image" (samples are Sample) or "text" (samples are TextSample)

    @property
    def labels(self) -> np.ndarray:
        return np.fromiter((s.label for s in self.samples), dtype=np.int64, count=len(self.samples))

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.classes))
        return {name: int(c) for name, c in zip(self.classes, counts)}


# --- profile ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetProfile:
    n_samples: int
    n_classes: int
    class_counts: dict[str, int]
    samples_per_class_min: int
    samples_per_class_median: float
    imbalance_ratio: float  # largest class / smallest class
    split_counts: dict[str, int] = field(default_factory=dict)  # {"train": n, "val": n}
    image_size: dict[str, Any] = field(default_factory=dict)  # width/height/aspect quantiles
    modes: dict[str, int] = field(default_factory=dict)
    channel_mean: tuple[float, ...] = ()
    channel_std: tuple[float, ...] = ()
    skipped: tuple[SkippedFile, ...] = ()
    duplicates: tuple[tuple[str, ...], ...] = ()  # groups of paths with identical content
    leakage: tuple[tuple[str, ...], ...] = ()  # duplicate groups that cross train/val
    warnings: tuple[str, ...] = ()
    train_class_counts: dict[str, int] = field(default_factory=dict)  # per class, in the split tuning uses
    modality: str = "image"
    text: dict[str, Any] = field(default_factory=dict)  # text datasets: lengths, examples (data/text_profile.py)


# --- embed and measure ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageShift:
    """Source-free shift at one stage: target activation statistics vs the BatchNorm running stats."""

    stage: str
    value: float  # mean symmetric KL between per-channel Gaussians (0 = same statistics)
    n_layers: int


@dataclass(frozen=True, eq=False)
class FeatureSet:
    """Everything measured in one pass of the target images through one backbone."""

    backbone: str
    image_size: int
    features: np.ndarray  # (n, feature_dim) float32, pooled embeddings (input of the source head)
    labels: np.ndarray  # (n,) int64 target labels
    sample_indices: np.ndarray  # (n,) indices into Dataset.samples
    source_probs: np.ndarray | None = None  # (n, n_source_classes) softmax of the source head
    random_features: np.ndarray | None = None  # same images through a randomly initialised copy
    source_sample_features: np.ndarray | None = None  # --source-sample images, same backbone
    stage_shift: tuple[StageShift, ...] = ()
    from_cache: bool = False
    seconds: float = 0.0
    input_facts: dict[str, Any] = field(default_factory=dict)  # text: tokens per text, the share truncated
    # "text": stage_shift compares hidden states with the source sample's (not BatchNorm running statistics)
    modality: str = "image"


@dataclass(frozen=True)
class Score:
    """One measured number with its uncertainty."""

    value: float
    spread: float | None = None  # std over CV folds or bootstrap resamples
    normalised: float | None = None  # in [0, 1]; 1 = like the source domain / transfers well
    higher_is_better: bool = True
    detail: str = ""


@dataclass(frozen=True)
class BackboneMeasurement:
    backbone: str
    similarity: Score
    scores: dict[str, Score]
    stage_shift: tuple[StageShift, ...] = ()
    n_measured: int = 0  # images measured (after the stratified cap)
    image_size: int = 0
    from_cache: bool = False
    seconds: float = 0.0
    warnings: tuple[str, ...] = ()
    embedding_2d: tuple[tuple[float, float, int], ...] = ()  # PCA of the embeddings: (x, y, label)
    n_stages: int = 0  # the backbone's stage count (freeze depth counts over these)
    stage_names: tuple[str, ...] = ()  # all of the backbone's stages, in order (stage_shift may skip some)
    input_facts: dict[str, Any] = field(default_factory=dict)  # text: tokens per text, the share truncated


# --- recommend --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recommendation:
    backbone: str
    strategy: str  # one of tladvisor.strategies.ADVISED_STRATEGIES
    freeze_depth: int  # number of leading stages kept frozen
    n_stages: int
    learning_rates: dict[str, float]  # {"head": ..., "backbone": ..., "layer_decay": ...}
    confidence: float  # in [0, 1]
    rationale: tuple[str, ...]
    ranking: tuple[dict[str, Any], ...] = ()  # [{"backbone": name, "score": x, ...}] best first
    size: dict[str, Any] = field(default_factory=dict)  # the size assessment and its thresholds
    warnings: tuple[str, ...] = ()
    epochs: int = 10
    # The learned method's prediction (tladvisor.advice.learned): predicted gain per config, the contenders, the
    # race's other trials, the four-scenario rule's pick ("textbook"), the prior's provenance. Empty: rule only.
    learned: dict[str, Any] = field(default_factory=dict)


# --- tune -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialRecord:
    number: int
    state: str  # COMPLETE, PRUNED, FAIL, RUNNING, WAITING
    value: float | None
    params: dict[str, Any]
    duration_s: float | None = None
    reason: str | None = None  # why it failed or was pruned
    learning_curve: tuple[float, ...] = ()  # validation accuracy per epoch
    metrics: dict[str, float] = field(default_factory=dict)  # balanced_accuracy, macro_f1 at the best epoch
    folds: dict[str, Any] | None = None  # cross-validated trials: k, accuracies, mean, spread, images, curves


@dataclass(frozen=True)
class TuningResult:
    study_name: str
    storage: str
    requested_trials: int
    trials: tuple[TrialRecord, ...]
    best: TrialRecord | None
    best_model_dir: str | None = None
    device: str = "cpu"
    param_importances: dict[str, float] = field(default_factory=dict)
    best_by_strategy: dict[str, int] = field(default_factory=dict)  # strategy -> best trial number
    stop_reason: str | None = None  # why tuning stopped, and how to continue
    versus_advice: dict[str, Any] | None = None  # the advised trial against the best one (results.versus_advice)
    cross_validation: dict[str, Any] | None = None  # folds (1: single split), images, reason (tuning.folds)


@dataclass(frozen=True)
class TuneRequest:
    """What the ``tune`` hook is asked to do: its one argument, as pytest hands hooks one ``config``.

    - ``dataset``, ``recommendation`` (the first trial), ``backbones`` (``BackboneSpec`` list to search over),
      ``options`` (``AnalysisOptions``: the budget is ``options.trials`` finished trials and/or
      ``options.timeout`` seconds, whichever ends first);
    - ``host``: the run's ``PluginHost``, to call ``search_space`` and ``register_strategies`` through;
    - ``join``: True from ``tladvisor worker``: join the study ``analyze`` started and described
      (``options.storage`` / ``options.study_name``) and change nothing it stores; False from ``analyze``;
    - ``max_trials``: at most this many trials from this process (``worker --trials``), None: until the
      study's budget is met; ``on_trial``: called with each trial's number as this process starts it.

    A field added later gets a default, so a plugin written against this record keeps working.
    """

    dataset: Any
    recommendation: Any
    backbones: tuple[Any, ...]
    options: Any
    host: Any = None
    join: bool = False
    max_trials: int | None = None
    on_trial: Any = None


# --- report -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportSection:
    id: str
    title: str
    html: str  # already escaped
    order: int = 100


@dataclass(frozen=True)
class PluginFailure:
    plugin: str
    hook: str
    error: str  # one line


@dataclass(frozen=True)
class AnalysisRun:
    run_id: str
    out_dir: Path
    options: AnalysisOptions
    dataset: Dataset | None = None
    profile: DatasetProfile | None = None
    measurements: tuple[BackboneMeasurement, ...] = ()
    recommendation: Recommendation | None = None
    tuning: TuningResult | None = None
    plugin_failures: tuple[PluginFailure, ...] = ()
    environment: dict[str, Any] = field(default_factory=dict)  # versions, device, command
    timings: dict[str, float] = field(default_factory=dict)
    # The strategy registry as analysis.json stores it (tladvisor.strategies.describe_strategies):
    # name -> {description, pretrained, freeze, colour, plugin}; empty: the built-ins.
    strategies: dict[str, dict[str, Any]] = field(default_factory=dict)
    backbones_left_out: dict[str, str] = field(default_factory=dict)  # name -> why (weights unavailable)


# --- JSON -------------------------------------------------------------------------------------------


def to_jsonable(obj: Any) -> Any:
    """Turn records (and the numpy, Path and float values in them) into JSON-ready data.

    Non-finite floats become ``None`` so the JSON stays standard. Large arrays (features) are
    dropped: they live in the feature cache, not in reports.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        if isinstance(obj, FeatureSet):
            return None
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist()) if obj.size <= 10_000 else None
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return obj
