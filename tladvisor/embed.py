"""Embeddings of the target images per backbone, computed once and cached on disk.

One pass through a pretrained backbone gives, per image, the embedding (the input of its source head),
the source-classifier probabilities (for LEEP and NCE) and, through hooks on every BatchNorm layer, the
target's activation statistics, compared stage by stage with the running statistics the network kept
from its source data (a source-free measure of where the domain shift is). A second pass through a
randomly initialised copy, its BatchNorm statistics re-estimated on the target images, gives the
features that show what pretraining is worth.

The cache key covers the selected images' content and labels, the backbone, its weights and the
preprocessing, so a second analysis of the same data skips every forward pass. The images themselves
are decoded once into a store (:mod:`tladvisor.data.decoded_store`) that every backbone of the same
resolution, and every tuning trial, reads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from tladvisor import device as devices
from tladvisor import progress
from tladvisor.atomic import write_atomic
from tladvisor.backbones import BackboneSpec, Preprocessing
from tladvisor.modeling import EmbeddingReader, recalibrate_batchnorm
from tladvisor.records import Dataset, FeatureSet, StageShift
from tladvisor.data.decoded_store import (DecodedImages, Geometry, StoreNotWritten, building, is_built,
                                          open_sample_stores, open_stores, sample_digests, stores_for)
from tladvisor.transforms import ImageFiles, StoredBatches, eval_batch, eval_transform

log = logging.getLogger(__name__)

CACHE_FORMAT = 3  # 2: the random copy's BatchNorm statistics re-estimated; 3: on 64 images, shifts on a share
# Images that re-estimate the random copy's BatchNorm statistics. On the three bundled examples (Lite0,
# 96 px, 2 seeds) 64 instead of 256 moved its probes' accuracy about as much as the copy's seed does
# (benchmarks/bench_random_copy_statistics.py, docs/benchmarks.md).
RANDOM_COPY_STATISTICS_IMAGES = 64
# Images whose BatchNorm-input statistics give the domain shift. Against every image of 580 photo crops
# (Lite0, 64 px; benchmarks/bench_data_path.py prints it), 256 moved the stage shifts by up to 5 %.
STATISTICS_IMAGES = 256


def default_cache_dir() -> Path:
    """``$TLADVISOR_CACHE``, else ``$XDG_CACHE_HOME/tladvisor/features`` (``~/.cache`` by default)."""
    if os.environ.get("TLADVISOR_CACHE"):
        return Path(os.environ["TLADVISOR_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tladvisor" / "features"


def stratified_cap(labels: np.ndarray, cap: int, seed: int = 0) -> np.ndarray:
    """At most ``cap`` indices, keeping each class's share (every class keeps at least one when possible)."""
    n = len(labels)
    if cap <= 0 or n <= cap:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.maximum(1, np.floor(counts * cap / n)).astype(int)
    chosen = []
    for cls, q in zip(classes, quota):
        members = np.flatnonzero(labels == cls)
        chosen.append(rng.choice(members, size=min(q, len(members)), replace=False))
    return np.sort(np.concatenate(chosen))


def cache_key(spec: BackboneSpec, pre: Preprocessing, digests: Sequence[str], labels: Sequence[int],
              extra: str = "") -> str:
    h = hashlib.sha256()
    # the backbone's structure too: a user editing their plugin's stages must not get stale stage shifts
    structure = ";".join(f"{s.name}:{','.join(s.members)}" for s in spec.stages)
    h.update(f"format={CACHE_FORMAT}|{spec.name}|{spec.plugin}|{spec.weights_id}|{spec.head}|{spec.feature_dim}|"
             f"{structure}|{pre.key()}|{extra}|".encode())
    for digest, label in zip(digests, labels):
        h.update(f"{digest}:{label};".encode())
    return h.hexdigest()[:32]


def feature_key(spec: BackboneSpec, dataset: Dataset, indices: Sequence[int], *, image_size: int | None,
                with_random: bool, source_sample: Sequence[Path] = (), seed: int = 0) -> str:
    """The cache key of :func:`extract_features`'s result for these arguments."""
    samples = [dataset.samples[i] for i in indices]
    source = []
    for path in source_sample:  # by name, size and modification time: cheap, and changes when the file does
        stat = Path(path).stat()
        source.append(f"{path}:{stat.st_size}:{stat.st_mtime_ns}")
    return cache_key(spec, spec.preprocessing_at(image_size), [s.digest or str(s.path) for s in samples],
                     [s.label for s in samples],
                     extra=f"random={with_random}|seed={seed if with_random else ''}|source={'|'.join(source)}")


def _fast_moments(rows: torch.Tensor, ratio: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per (image, channel) row: mean and variance over the positions from a sum and a norm; the channels
    where that cancels (squared mean above ``ratio`` times the channel's variance over the batch, within
    plus between rows) computed exactly instead."""
    positions = rows.shape[2]
    mean = rows.sum(2) / positions
    var = torch.linalg.vector_norm(rows, dim=2).square() / positions - mean.square()
    # A row variance's float32 error is about 1e-7 of its mean square; what that costs is relative to
    # the channel's whole variance over the batch.
    channel_mean = mean.mean(0)
    channel_var = var.mean(0) + mean.square().mean(0) - channel_mean.square()  # a check, not a result
    cancelled = channel_mean.square() > ratio * channel_var
    if cancelled.any():
        exact_var, exact_mean = torch.var_mean(rows[:, cancelled], dim=2, correction=0)
        mean[:, cancelled], var[:, cancelled] = exact_mean, exact_var
    return mean, var


def _merge(parts: list) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Mean, sum of squared deviations and count of rows ``(means, variances, count per row)``, in float64."""
    means = torch.cat([m.double() for m, _, _ in parts])  # (rows, channels)
    variances = torch.cat([v.double() for _, v, _ in parts])
    counts = torch.cat([torch.full((len(m),), float(n), dtype=torch.float64) for m, _, n in parts])
    counts = counts.to(means.device)[:, None]
    total = counts.sum()
    mean = (means * counts).sum(0) / total
    m2 = (variances * counts).sum(0) + (counts * (means - mean) ** 2).sum(0)
    return mean, m2, int(total.item())


class BatchNormStatistics:
    """Accumulates per-channel mean and variance of every BatchNorm2d input during forward passes.

    On the CPU, per image and channel, the mean and mean square come from two float32 reductions over
    the spatial positions that allocate nothing of the activation's size (BatchNorm's own training-mode
    moments, used before, normalise the whole activation to leave them: 3.6-4x slower on 16-32 px maps
    in a one-thread micro-benchmark, and the hooks cost 40-58 % of a bare forward pass); a channel whose
    mean dwarfs its spread, where E[x^2] - E[x]^2 in float32 loses the variance, is computed exactly.
    On a GPU every channel takes the exact path (``var_mean``), which needs no host synchronisation.
    Rows merge in float64 with Chan et al.'s formula, every :data:`MERGE_EVERY` batches and when read,
    so memory stays bounded however many batches pass.

    ``share`` < 1 keeps the leading ``ceil(share * batch)`` images of each batch (a view, no copy):
    spread over every batch, so over every part of a folder's class order. ``_forward_all`` passes
    :func:`statistics_share`, about :data:`STATISTICS_IMAGES` images in all.
    """

    # Where the squared mean passes this many times the variance, E[x^2] - E[x]^2 in float32 has lost
    # about 3 of its 7 significant digits (a relative error near 1e-4): the exact path takes over.
    CANCELLATION_RATIO = 1e3
    MERGE_EVERY = 32

    def __init__(self, model: nn.Module, share: float = 1.0):
        self.share = share
        # name -> per batch (row means, row variances, positions per row); a merged entry is one row
        self.parts: dict[str, list] = {}
        self.modules: dict[str, nn.BatchNorm2d] = {}
        self.handles = []
        for name, module in model.named_modules():
            if isinstance(module, nn.BatchNorm2d) and module.track_running_stats and module.running_mean is not None:
                self.modules[name] = module
                self.handles.append(module.register_forward_pre_hook(self._hook(name)))

    def _hook(self, name: str):
        def keep(_module, inputs):
            x = inputs[0].detach()
            if self.share < 1.0:  # the leading images of every batch: a view, and every part of the pass
                x = x[:max(1, math.ceil(x.shape[0] * self.share))]
            rows = x.float().reshape(x.shape[0], x.shape[1], -1)  # (images, channels, positions)
            positions = rows.shape[2]
            if rows.is_cuda:
                var, mean = torch.var_mean(rows, dim=2, correction=0)
            else:
                mean, var = _fast_moments(rows, self.CANCELLATION_RATIO)
            parts = self.parts.setdefault(name, [])
            parts.append((mean, var.clamp(min=0), positions))
            if len(parts) >= self.MERGE_EVERY:
                merged_mean, m2, total = _merge(parts)
                parts[:] = [(merged_mean[None], (m2 / total)[None], total)]
        return keep

    @property
    def sums(self) -> dict[str, tuple[torch.Tensor, torch.Tensor, int]]:
        """Per layer: mean, sum of squared deviations and count over every position of every image seen."""
        return {name: _merge(parts) for name, parts in self.parts.items()}

    def reset(self) -> None:
        self.parts.clear()

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()

    def layer_shift(self) -> dict[str, float]:
        """Mean over channels of the symmetric KL divergence between Gaussians N(target) and N(source)."""
        shifts = {}
        for name, (mean, m2, count) in self.sums.items():
            module = self.modules[name]
            mu_t = mean.cpu().numpy()
            var_t = (m2 / count).cpu().numpy() + module.eps
            mu_s = module.running_mean.detach().double().cpu().numpy()
            var_s = module.running_var.detach().double().cpu().numpy() + module.eps
            diff2 = (mu_t - mu_s) ** 2
            kl_ts = 0.5 * (np.log(var_s / var_t) + (var_t + diff2) / var_s - 1)
            kl_st = 0.5 * (np.log(var_t / var_s) + (var_s + diff2) / var_t - 1)
            shifts[name] = float(np.mean(0.5 * (kl_ts + kl_st)))
        return shifts


def stage_shifts(spec: BackboneSpec, layer_shift: dict[str, float]) -> tuple[StageShift, ...]:
    """Average the per-layer shifts over the BatchNorm layers inside each stage."""
    result = []
    for stage in spec.stages:
        values = [v for name, v in layer_shift.items()
                  if any(name == m or name.startswith(m + ".") for m in stage.members)]
        if values:
            result.append(StageShift(stage.name, float(np.mean(values)), len(values)))
    return tuple(result)


def statistics_share(n_images: int) -> float:
    """The share of each batch whose BatchNorm statistics are kept: about STATISTICS_IMAGES images in all."""
    return min(1.0, STATISTICS_IMAGES / max(1, n_images))


def _forward_all(model: nn.Module, spec: BackboneSpec, loader: DataLoader, device: torch.device,
                 with_bn_stats: bool, counter: progress.Counter | None = None, n_images: int | None = None,
                 ) -> tuple[np.ndarray, np.ndarray | None, dict[str, float]]:
    if with_bn_stats and n_images is None:
        raise ValueError("the BatchNorm statistics need n_images, the images this pass will see")
    model = devices.prepare_model(model, device).eval()
    reader = EmbeddingReader(model, spec)
    stats = BatchNormStatistics(model, statistics_share(n_images)) if with_bn_stats else None
    features, probs = [], []
    try:
        with torch.inference_mode(), devices.autocast(device):
            for images, _labels in loader:
                embedding, logits = reader(devices.prepare_batch(images, device))
                features.append(embedding.float().cpu().numpy())
                if logits is not None:
                    probs.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
                if counter is not None:
                    counter.advance(len(images))
    finally:
        reader.close()
        if stats:
            stats.close()
    layer_shift = stats.layer_shift() if stats else {}
    return (np.concatenate(features).astype(np.float32),
            np.concatenate(probs).astype(np.float32) if probs else None, layer_shift)


def _loader(paths, labels, pre: Preprocessing, batch_size: int, num_workers: int) -> DataLoader:
    return DataLoader(ImageFiles(paths, labels, eval_transform(pre)), batch_size=batch_size,
                      shuffle=False, num_workers=num_workers, pin_memory=torch.cuda.is_available())


def decode_images(dataset: Dataset, indices: Sequence[int], preprocessings: Sequence[Preprocessing],
                  cache_dir: Path, num_workers: int = 0) -> None:
    """Decode the images ``indices`` once into the stores of every resolution among ``preprocessings``.

    Backbones of one resolution share a store anyway; this serves backbones of several resolutions
    (a fixed-size ViT beside CNNs at ``--image-size``) from one pass instead of one each. The store
    holds the images in dataset order, the one :func:`extract_features` reads for these indices.
    """
    geometries = {Geometry.of(pre) for pre in preprocessings}
    if len(geometries) < 2:
        return  # extract_features builds the one store it needs
    try:
        open_sample_stores([dataset.samples[i] for i in np.unique(indices)], geometries, Path(cache_dir),
                           num_workers)
    except Exception as error:  # an unwritable cache or a bad image: each backbone then decodes (and fails) alone
        log.warning("images not decoded ahead into %s: %s", cache_dir, error)


@contextmanager
def _store_folder(cache_dir: Path | None) -> Iterator[Path]:
    """Where decoded images go: beside the feature cache, else (none, or unwritable) a folder removed after."""
    if cache_dir is not None:
        try:
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=cache_dir).close()
        except OSError as error:  # a full or unwritable cache costs the next run time, not this result
            log.warning("decoded images not stored in %s: %s", cache_dir, error.strerror or error)
        else:
            yield Path(cache_dir)
            return
    with tempfile.TemporaryDirectory(prefix="tladvisor-decoded-") as folder:
        yield Path(folder)


def _decoding_pass(store: DecodedImages, paths: Sequence[Path], labels: np.ndarray, pre: Preprocessing,
                   batch_size: int, num_workers: int, device: torch.device) -> Iterator:
    """Batches for the first pass while the store is being built: workers decode ahead of the compute."""
    start = 0
    for (rows,) in building([store], paths, num_workers, batch_size):
        yield eval_batch(rows, pre, device), torch.as_tensor(labels[start:start + len(rows)])
        start += len(rows)


def _random_copy(spec: BackboneSpec, device: torch.device, seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):  # the caller's random stream stays as it was
        torch.manual_seed(seed)
        return devices.prepare_model(spec.build(False), device)


def _recalibration_subset(n: int, seed: int) -> np.ndarray:
    # Images come in folder (class) order: the statistics come from a seeded random subset instead.
    return np.random.default_rng(seed).permutation(n)[:RANDOM_COPY_STATISTICS_IMAGES]


def _embed_stored(spec: BackboneSpec, dataset: Dataset, indices: np.ndarray, labels: np.ndarray,
                  pre: Preprocessing, *, cache_dir: Path | None, batch_size: int, device: torch.device,
                  with_random: bool, num_workers: int, seed: int, counter) -> tuple:
    """Features, source probabilities, layer shifts and random features, the images read from a store."""
    # The store holds the images in dataset order, whatever order they are asked in: one store serves
    # measuring (every image, or a sorted sample) and tuning (train then validation images).
    in_store = np.unique(indices)
    with _store_folder(cache_dir) as folder:
        store_samples = [dataset.samples[i] for i in in_store]
        store = stores_for([s.path for s in store_samples], sample_digests(store_samples), [Geometry.of(pre)],
                           folder)[Geometry.of(pre)]

        def stored(positions: np.ndarray) -> StoredBatches:
            return StoredBatches(store, np.searchsorted(in_store, indices[positions]), labels[positions], pre,
                                 batch_size, device)

        everything = np.arange(len(indices))
        first_pass = stored(everything)
        if not is_built(store):
            if np.array_equal(in_store, indices):  # images in store order: embed them as they are decoded
                first_pass = _decoding_pass(store, [s.path for s in store_samples], labels, pre, batch_size,
                                            num_workers, device)
            else:
                open_stores([s.path for s in store_samples], sample_digests(store_samples), [Geometry.of(pre)],
                            folder, num_workers, batch_size)
        features, probs, layer_shift = _forward_all(spec.build(True), spec, first_pass, device, with_bn_stats=True,
                                                    counter=counter, n_images=len(indices))
        random_features = None
        if with_random:
            random_model = _random_copy(spec, device, seed)
            recalibrate_batchnorm(random_model, stored(_recalibration_subset(len(indices), seed)), device)
            random_features, _, _ = _forward_all(random_model, spec, stored(everything), device, with_bn_stats=False,
                                                 counter=counter)
        store._array = None  # unmapped before a temporary folder goes
    return features, probs, layer_shift, random_features


def _embed_per_file(spec: BackboneSpec, paths: list[Path], labels: np.ndarray, pre: Preprocessing, *,
                    batch_size: int, device: torch.device, with_random: bool, num_workers: int, seed: int,
                    counter) -> tuple:
    """:func:`_embed_stored` without a store: every pass decodes the image files again (slower, same pixels)."""
    features, probs, layer_shift = _forward_all(spec.build(True), spec,
                                                _loader(paths, labels, pre, batch_size, num_workers), device,
                                                with_bn_stats=True, counter=counter, n_images=len(paths))
    random_features = None
    if with_random:
        random_model = _random_copy(spec, device, seed)
        subset = _recalibration_subset(len(paths), seed)
        recalibrate_batchnorm(random_model, _loader([paths[i] for i in subset], labels[subset], pre, batch_size,
                                                    num_workers), device)
        random_features, _, _ = _forward_all(random_model, spec, _loader(paths, labels, pre, batch_size, num_workers),
                                             device, with_bn_stats=False, counter=counter)
    return features, probs, layer_shift, random_features


def extract_features(spec: BackboneSpec, dataset: Dataset, indices: Sequence[int] | None = None, *,
                     image_size: int | None = None, device: str | torch.device = "auto", batch_size: int = 64,
                     cache_dir: Path | None = None, with_random: bool = True,
                     source_sample: Sequence[Path] = (), num_workers: int = 0, seed: int = 0) -> FeatureSet:
    """Embed ``dataset.samples[indices]`` (all when None) with ``spec``; read from the cache when present.

    ``seed`` fixes the randomly initialised copy, so the pretraining gain is the same on every run.
    """
    device = devices.pick_device(device) if isinstance(device, str) else device
    indices = np.arange(len(dataset.samples)) if indices is None else np.asarray(indices, dtype=np.int64)
    samples = [dataset.samples[i] for i in indices]
    labels = np.array([s.label for s in samples], dtype=np.int64)
    pre = spec.preprocessing_at(image_size)
    key = feature_key(spec, dataset, indices, image_size=image_size, with_random=with_random,
                      source_sample=source_sample, seed=seed)
    cache_path = Path(cache_dir) / f"{spec.name}-{key}.npz" if cache_dir else None

    if cache_path is not None:
        cached = _read_cache(cache_path, spec.name, pre.input_size, labels, indices)
        if cached is not None:
            return cached

    started = time.perf_counter()
    # Images through the network: the target (pretrained, then random copy) and the source sample.
    passes = len(samples) * (2 if with_random else 1) + len(source_sample)
    what = f"embedding with {spec.name}" + (" and its random-init copy" if with_random else "")
    counter = progress.current().counter(what, passes)
    try:
        features, probs, layer_shift, random_features = _embed_stored(
            spec, dataset, indices, labels, pre, cache_dir=cache_dir, batch_size=batch_size, device=device,
            with_random=with_random, num_workers=num_workers, seed=seed, counter=counter)
    except StoreNotWritten as error:  # a full disk costs time, not the measurement: decode file by file
        log.warning("decoded images not stored (%s); %s decodes each image as it reads it",
                    error.strerror or error, spec.name)
        features, probs, layer_shift, random_features = _embed_per_file(
            spec, [s.path for s in samples], labels, pre, batch_size=batch_size, device=device,
            with_random=with_random, num_workers=num_workers, seed=seed, counter=counter)
    source_features = None
    if source_sample:
        source_loader = _loader(list(source_sample), [0] * len(source_sample), pre, batch_size, num_workers)
        source_features, _, _ = _forward_all(spec.build(True), spec, source_loader, device, with_bn_stats=False,
                                             counter=counter)
    result = FeatureSet(
        backbone=spec.name, image_size=pre.input_size, features=features, labels=labels,
        sample_indices=indices, source_probs=probs, random_features=random_features,
        source_sample_features=source_features, stage_shift=stage_shifts(spec, layer_shift),
        from_cache=False, seconds=time.perf_counter() - started)
    if cache_path is not None:
        try:
            _write_cache(cache_path, result)
        except OSError as error:  # a full or unwritable cache costs the next run time, not this result
            log.warning("features not cached in %s: %s", cache_path.parent, error.strerror or error)
    return result


_ARRAYS = ("features", "labels", "sample_indices", "source_probs", "random_features", "source_sample_features")


def _write_cache(path: Path, fs: FeatureSet) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {name: getattr(fs, name) for name in _ARRAYS if getattr(fs, name) is not None}
    meta = {"backbone": fs.backbone, "image_size": fs.image_size, "seconds": fs.seconds,
            "stage_shift": [[s.stage, s.value, s.n_layers] for s in fs.stage_shift]}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    write_atomic(path, lambda handle: np.savez(handle, **arrays))  # a reader sees the old entry or the whole new one


def _read_cache(path: Path, backbone: str, image_size: int, labels: np.ndarray,
                indices: np.ndarray) -> FeatureSet | None:
    if not path.is_file():
        return None
    try:  # allow_pickle=False: an entry is data, and loading it must never run code
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in _ARRAYS if name in data.files}
            meta = json.loads(bytes(data["meta"]).decode())
        if not (np.array_equal(arrays["labels"], labels) and np.array_equal(arrays["sample_indices"], indices)):
            raise ValueError("labels or sample order differ from the cache key's")
        _check_shapes(arrays, len(labels))
        result = FeatureSet(
            backbone=backbone, image_size=image_size, from_cache=True, seconds=float(meta.get("seconds", 0.0)),
            stage_shift=tuple(StageShift(str(s), float(v), int(n)) for s, v, n in meta["stage_shift"]), **arrays)
    except Exception as error:  # whatever is wrong with an entry, the answer is to compute it again
        log.warning("feature cache entry %s is unreadable (%s); recomputing it", path, error)
        path.unlink(missing_ok=True)
        return None
    return result


def _check_shapes(arrays: dict[str, np.ndarray], n: int) -> None:
    """Refuse an entry whose arrays cannot be what :func:`extract_features` wrote for ``n`` images."""
    for name in ("features", "source_probs", "random_features"):
        array = arrays.get(name)
        if name == "features" and array is None:
            raise KeyError("features")
        if array is not None and (array.ndim != 2 or array.shape[0] != n or array.dtype.kind != "f"):
            raise ValueError(f"{name} has shape {array.shape} and type {array.dtype}, not ({n}, d) floats")
    sample = arrays.get("source_sample_features")
    if sample is not None and (sample.ndim != 2 or sample.dtype.kind != "f"):
        raise ValueError(f"source_sample_features has shape {sample.shape}, not (m, d) floats")
