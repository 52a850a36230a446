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

from tladvisor.runtime import device as devices
from tladvisor.runtime import progress
from tladvisor.runtime.atomic import write_atomic
from tladvisor.backbones import BackboneSpec, Preprocessing
from tladvisor.features.bn_statistics import BatchNormStatistics, stage_shifts, statistics_share
from tladvisor.modeling import EmbeddingReader, recalibrate_batchnorm
from tladvisor.records import Dataset, FeatureSet, StageShift
from tladvisor.data.decoded_store import (DecodedImages, Geometry, StoreNotWritten, building, is_built,
                                          open_sample_stores, open_stores, sample_digests, stores_for)
from tladvisor.transforms import ImageFiles, StoredBatches, eval_batch, eval_transform

log = logging.getLogger(__name__)

CACHE_FORMAT = 4  # 2: random copy's BatchNorm re-estimated; 3: on 64 images, shifts on a share; 4: every k-th image
# Images that re-estimate the random copy's BatchNorm statistics. On the three bundled examples (Lite0,
# 96 px, 2 seeds) 64 instead of 256 moved its probes' accuracy about as much as the copy's seed does
# (benchmarks/similarity/random_copy.py, docs/benchmarks.md).
RANDOM_COPY_STATISTICS_IMAGES = 64


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


def sample_key(sample) -> str:
    """What identifies a sample's content in cache keys: an image's digest (else its path), a text's exact hash
    (its ``digest`` ignores case and punctuation, so two texts differing in those would share it)."""
    text = getattr(sample, "text", None)
    if text is not None:
        return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]
    return sample.digest or str(sample.path)


def feature_key(spec: BackboneSpec, dataset: Dataset, indices: Sequence[int], *, image_size: int | None,
                with_random: bool, source_sample: Sequence[Path] = (), seed: int = 0) -> str:
    """The cache key of :func:`extract_features`'s result for these arguments."""
    samples = [dataset.samples[i] for i in indices]
    source = []
    for path in source_sample:  # by name, size and modification time: cheap, and changes when the file does
        stat = Path(path).stat()
        source.append(f"{path}:{stat.st_size}:{stat.st_mtime_ns}")
    return cache_key(spec, spec.preprocessing_at(image_size), [sample_key(s) for s in samples],
                     [s.label for s in samples],
                     extra=f"random={with_random}|seed={seed if with_random else ''}|source={'|'.join(source)}")


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


def feature_cache_file(cache_dir: Path, backbone: str, key: str) -> Path:
    """Where the features of ``backbone`` under :func:`feature_key` ``key`` are cached: the one place that
    names the file (the advisor checks it to know what is left to decode)."""
    return Path(cache_dir) / f"{backbone}-{key}.npz"


def extract_features(spec: BackboneSpec, dataset: Dataset, indices: Sequence[int] | None = None, *,
                     image_size: int | None = None, device: str | torch.device = "auto", batch_size: int = 64,
                     cache_dir: Path | None = None, with_random: bool = True,
                     source_sample: Sequence[Path] = (), num_workers: int = 0, seed: int = 0,
                     key: str | None = None) -> FeatureSet:
    """Embed ``dataset.samples[indices]`` (all when None) with ``spec``; read from the cache when present.

    ``seed`` fixes the randomly initialised copy, so the pretraining gain is the same on every run.
    ``key``: the :func:`feature_key` of exactly these arguments when the caller has it already.
    """
    device = devices.pick_device(device) if isinstance(device, str) else device
    indices = np.arange(len(dataset.samples)) if indices is None else np.asarray(indices, dtype=np.int64)
    samples = [dataset.samples[i] for i in indices]
    labels = np.array([s.label for s in samples], dtype=np.int64)
    pre = spec.preprocessing_at(image_size)
    if key is None:
        key = feature_key(spec, dataset, indices, image_size=image_size, with_random=with_random,
                          source_sample=source_sample, seed=seed)
    cache_path = feature_cache_file(cache_dir, spec.name, key) if cache_dir else None

    if cache_path is not None:
        cached = read_feature_cache(cache_path, spec.name, pre.input_size, labels, indices)
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
        cache_features(cache_path, result)
    return result


_ARRAYS = ("features", "labels", "sample_indices", "source_probs", "random_features", "source_sample_features")


def cache_features(path: Path, fs: FeatureSet) -> None:
    """Write ``fs`` to the feature cache; a full or unwritable cache costs the next run time, not this result."""
    try:
        write_feature_cache(path, fs)
    except OSError as error:
        log.warning("features not cached in %s: %s", path.parent, error.strerror or error)


def write_feature_cache(path: Path, fs: FeatureSet) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {name: getattr(fs, name) for name in _ARRAYS if getattr(fs, name) is not None}
    meta = {"backbone": fs.backbone, "image_size": fs.image_size, "seconds": fs.seconds,
            "stage_shift": [[s.stage, s.value, s.n_layers] for s in fs.stage_shift]}
    if fs.input_facts:
        meta["input_facts"] = fs.input_facts
    if fs.modality != "image":
        meta["modality"] = fs.modality
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    write_atomic(path, lambda handle: np.savez(handle, **arrays))  # a reader sees the old entry or the whole new one


def read_feature_cache(path: Path, backbone: str, image_size: int, labels: np.ndarray,
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
            stage_shift=tuple(StageShift(str(s), float(v), int(n)) for s, v, n in meta["stage_shift"]),
            input_facts=meta.get("input_facts", {}), modality=meta.get("modality", "image"), **arrays)
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
