"""Embeddings of the target texts per text backbone, computed once and cached: :mod:`tladvisor.features.embed` for text.

One pass through the pretrained encoder gives each text's pooled embedding and, through hooks on every
stage (the embeddings, each transformer layer), the per-channel mean and variance of the hidden states over
real tokens. Against the same statistics of the backbone's source sample (texts like its pretraining data),
stage by stage, they give where in the encoder the target stops looking like the source: the text analogue
of the BatchNorm shift (LayerNorm keeps no running statistics, so the source's come from its sample). A
second pass through a randomly initialised copy gives what pretraining is worth. Texts are tokenised once
(:mod:`tladvisor.data.token_store`) and embedded in length order, so each batch pads little.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tladvisor.runtime import device as devices
from tladvisor.runtime import progress
from tladvisor.backbones import BackboneSpec
from tladvisor.features.bn_statistics import gaussian_shift
from tladvisor.data.profile import distribution
from tladvisor.data.token_store import TokenBatches, Tokens, tokenize
from tladvisor.features.embed import cache_features, feature_cache_file, read_feature_cache
from tladvisor.modeling import EmbeddingReader, resolve_member
from tladvisor.records import Dataset, FeatureSet, StageShift

VARIANCE_FLOOR = 1e-6  # LayerNorm's eps scale: keeps the KL finite for a channel that is constant on one side


class HiddenStatistics:
    """Per stage, per channel: count, sum and sum of squares of the stage's output over real (unpadded) tokens."""

    def __init__(self, model: nn.Module, spec: BackboneSpec):
        self.mask: torch.Tensor | None = None  # (batch, length) bool, set before each forward
        self.sums: dict[str, list] = {}
        self.handles = []
        for stage in spec.stages:
            module = resolve_member(model, stage.members[-1])
            if isinstance(module, nn.Module):
                self.handles.append(module.register_forward_hook(self._hook(stage.name)))

    def _hook(self, name: str):
        def keep(_module, _inputs, output):
            hidden = output[0] if isinstance(output, (tuple, list)) else output
            if self.mask is None or hidden.dim() != 3:
                return
            tokens = hidden[self.mask].double()  # (real tokens, channels)
            total = self.sums.setdefault(name, [0, 0.0, 0.0])
            total[0] += tokens.shape[0]
            total[1] = total[1] + tokens.sum(0)
            total[2] = total[2] + tokens.square().sum(0)
        return keep

    def moments(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        result = {}
        for name, (count, total, squares) in self.sums.items():
            if count:
                mean = (total / count).cpu().numpy()
                var = np.maximum((squares / count).cpu().numpy() - mean ** 2, 0.0) + VARIANCE_FLOOR
                result[name] = (mean, var)
        return result

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def _embed(model: nn.Module, spec: BackboneSpec, tokens: Tokens, batch_size: int, device: torch.device,
           statistics: bool = False, counter=None) -> tuple[np.ndarray, dict]:
    """Pooled embeddings of every text of ``tokens`` in their order, and the per-stage moments when asked."""
    model = devices.prepare_model(model, device).eval()
    reader = EmbeddingReader(model, spec)
    stats = HiddenStatistics(model, spec) if statistics else None
    batches = TokenBatches(tokens, np.arange(len(tokens)), np.zeros(len(tokens), dtype=np.int64), spec.text.pad_id,
                           batch_size, device, by_length=True)
    features = []
    try:
        with torch.inference_mode(), devices.autocast(device):
            for ids, _labels in batches:
                if stats is not None:
                    stats.mask = ids != spec.text.pad_id
                embedding, _ = reader(ids)
                features.append(embedding.float().cpu().numpy())
                if counter is not None:
                    counter.advance(len(ids))
    finally:
        reader.close()
        if stats is not None:
            stats.close()
    ordered = np.empty((len(tokens), spec.feature_dim), dtype=np.float32)
    ordered[batches.order] = np.concatenate(features) if features else ordered[:0]
    return ordered, (stats.moments() if stats is not None else {})


def text_stage_shifts(spec: BackboneSpec, target: dict, source: dict) -> tuple[StageShift, ...]:
    """Each stage's shift: :func:`tladvisor.features.bn_statistics.gaussian_shift` of the target's hidden-state moments
    against the source sample's."""
    return tuple(StageShift(stage.name, gaussian_shift(*target[stage.name], *source[stage.name]), 1)
                 for stage in spec.stages if stage.name in target and stage.name in source)


def length_facts(tokens: Tokens, max_length: int) -> dict:
    """Tokens per text (before truncation) and the share of texts longer than the backbone takes."""
    return {"tokens": distribution(tokens.full_lengths.astype(np.float64)), "max_length": int(max_length),
            "truncated_share": round(tokens.truncated_share(max_length), 4)}


def extract_text_features(spec: BackboneSpec, dataset: Dataset, indices: Sequence[int] | None = None, *,
                          device: str | torch.device = "auto", batch_size: int = 64, cache_dir: Path | None = None,
                          with_random: bool = True, source_texts: Sequence[str] = (), seed: int = 0,
                          key: str | None = None) -> FeatureSet:
    """Embed the texts ``dataset.samples[indices]`` (all when None) with ``spec``; read the cache when present.

    ``source_texts``: a sample of the backbone's source domain (its plugin's, or ``--source-sample``): their
    embeddings feed the distances to the source, their hidden-state moments the stage shifts.
    ``key``: the :func:`tladvisor.features.embed.feature_key` of these arguments (the caller's cache entry).
    """
    if spec.text is None:
        raise ValueError(f"{spec.name} is not a text backbone (its spec has no text preprocessing)")
    device = devices.pick_device(device) if isinstance(device, str) else device
    indices = np.arange(len(dataset.samples)) if indices is None else np.asarray(indices, dtype=np.int64)
    labels = np.array([dataset.samples[i].label for i in indices], dtype=np.int64)
    cache_path = feature_cache_file(cache_dir, spec.name, key) if cache_dir and key else None
    if cache_path is not None:
        cached = read_feature_cache(cache_path, spec.name, spec.text.max_length, labels, indices)
        if cached is not None:
            return cached

    started = time.perf_counter()
    tokens = tokenize(spec.text, [dataset.samples[i].text for i in indices], cache_dir)
    source_tokens = tokenize(spec.text, list(source_texts), cache_dir) if source_texts else None
    passes = len(indices) * (2 if with_random else 1) + (len(source_texts) if source_tokens is not None else 0)
    counter = progress.current().counter(f"embedding texts with {spec.name}", passes, unit="texts")
    model = spec.build(True)
    features, target_moments = _embed(model, spec, tokens, batch_size, device, statistics=True, counter=counter)
    source_features, stage_shift = None, ()
    if source_tokens is not None and len(source_tokens):
        source_features, source_moments = _embed(model, spec, source_tokens, batch_size, device, statistics=True,
                                                 counter=counter)
        stage_shift = text_stage_shifts(spec, target_moments, source_moments)
    del model
    random_features = None
    if with_random:
        with torch.random.fork_rng(devices=[]):  # the caller's random stream stays as it was
            torch.manual_seed(seed)
            random_model = spec.build(False)
        random_features, _ = _embed(random_model, spec, tokens, batch_size, device, counter=counter)
    result = FeatureSet(
        backbone=spec.name, image_size=spec.text.max_length, features=features, labels=labels, sample_indices=indices,
        source_probs=None, random_features=random_features, source_sample_features=source_features,
        stage_shift=stage_shift, seconds=time.perf_counter() - started,
        input_facts=length_facts(tokens, spec.text.max_length), modality="text")
    if cache_path is not None:
        cache_features(cache_path, result)
    return result
