"""Throughput: tladvisor's feature extraction against a bare forward loop of the same model, the feature
cache's speed-up, and a cached feature-extraction trial against one that runs the backbone every epoch
(``benchmarks.speed.cached_trials.compare_trials``).

Feature extraction (:func:`tladvisor.features.embed.extract_features`) reads and decodes each file, applies the
backbone's eval transform, and records the embedding, the source-head probabilities and per-BatchNorm
statistics. The bare loop runs ``model(x)`` on tensors already in memory, same batch size, no hooks:
the ratio says what the bookkeeping and image decoding cost on top of the network itself.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.advice.suite import BACKBONE, Settings, _set_threads, cpu_seconds
from benchmarks.tasks.registry import task_by_name
from benchmarks.tasks.suite import write_task


def _timed(fn):
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = fn()
    return result, time.perf_counter() - wall, cpu_seconds() - cpu


def run_throughput(settings: Settings, per_class: int, epochs: int = 5) -> dict[str, Any]:
    _set_threads(settings.threads)
    import torch

    from benchmarks.speed.cached_trials import compare_trials
    from tladvisor.data.imagefolder import load_image_folder
    from tladvisor.features.bn_statistics import BatchNormStatistics, statistics_share
    from tladvisor.features.embed import extract_features
    from tladvisor.plugins import PluginHost
    from tladvisor.transforms import ImageFiles, eval_transform

    work = Path(settings.work_dir) / "throughput"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    folder = write_task(task_by_name("photos-small", "suite"), work / "photos", 0, train_per_class=per_class,
                        val_per_class=max(2, per_class // 4))
    dataset = load_image_folder(folder)
    spec = PluginHost().backbone(BACKBONE)
    device = torch.device(settings.device)
    n = len(dataset.samples)
    indices = np.arange(n)

    def extract():
        return extract_features(spec, dataset, indices, image_size=settings.image_size, device=device,
                                batch_size=64, cache_dir=work / "cache", with_random=False)

    _, extract_wall, extract_cpu = _timed(extract)
    cached, cached_wall, _ = _timed(extract)
    assert cached.from_cache, "the second extraction should come from the cache"

    pre = spec.preprocessing_at(settings.image_size)
    files = ImageFiles([s.path for s in dataset.samples], [s.label for s in dataset.samples], eval_transform(pre))
    tensors, decode_wall, _ = _timed(lambda: torch.stack([files[i][0] for i in range(n)]))
    model = spec.build(True).eval().to(device)

    def bare():
        with torch.inference_mode():
            for start in range(0, n, 64):
                model(tensors[start:start + 64].to(device))
            if device.type == "cuda":
                torch.cuda.synchronize()

    bare()  # warm-up (first-call allocations, cuDNN autotuning)
    _, bare_wall, bare_cpu = _timed(bare)
    # The same loop with tladvisor's BatchNorm-statistics hooks attached, on the share of the images
    # extraction keeps: what the shift measure costs.
    statistics = BatchNormStatistics(model, statistics_share(n))
    try:
        _, hooked_wall, _ = _timed(bare)
    finally:
        statistics.close()
    _, build_wall, _ = _timed(lambda: spec.build(True))

    trials = compare_trials(spec, dataset, work / "trials", image_size=settings.image_size, epochs=epochs,
                            batch_size=settings.batch_size, device=device)
    shutil.rmtree(work, ignore_errors=True)
    return {
        "n_images": n, "image_size": settings.image_size, "device": str(device), "threads": torch.get_num_threads(),
        "extraction_images_per_s": n / extract_wall, "extraction_cpu_s": extract_cpu,
        "bare_forward_images_per_s": n / bare_wall, "bare_forward_cpu_s": bare_cpu,
        "decode_transform_s": decode_wall, "model_build_s": build_wall,
        "forward_with_bn_statistics_images_per_s": n / hooked_wall,
        "bare_plus_decode_images_per_s": n / (bare_wall + decode_wall),
        "extraction_over_bare": (n / extract_wall) / (n / bare_wall),
        "extraction_over_bare_plus_decode": (n / extract_wall) / (n / (bare_wall + decode_wall)),
        "cache_first_s": extract_wall, "cache_second_s": cached_wall, "cache_speedup": extract_wall / cached_wall,
        "cached_trials": trials,
    }
