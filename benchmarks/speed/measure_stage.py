"""What ``analyze --trials 0`` spends measuring a backbone, against one bare forward pass over the same images.

    nice python -m benchmarks.speed.measure_stage [--images 1050] [--image-size 64]
        [--backbone efficientnet_lite0] [--threads N] [--repeats 3]   # medians of interleaved repeats

Writes N natural-photo crops (6 classes, as benchmarks/speed/analyze.py), then, ``--repeats`` times in turn:

- **what the user waits for**: ``tladvisor analyze DATA --trials 0`` in its own process with a fresh cache,
  the shipped pretrained weights and ``--threads N`` (default: every core this process may use, which is
  what an automatic analyze gets alone on the machine); its analysis.json ``timings`` give embed + measure;
- **the floor**: one bare forward pass of the same backbone (``model(x)``, inference mode, batch 64, no
  hooks) over the measured images, already decoded and transformed into tensors in memory, at the same
  thread count, in this process (not registered as a tladvisor process, so it does not split the cores);
- **the breakdown**, in this process: feature extraction (decoding, the hooked pretrained pass, the
  random-init copy), then on those features the probes, the transferability scores with their spreads,
  the stage-shift and source-distance scores.

and prints the ratio (embed + measure) / bare, the target of issue #24 (<= 3x, then 2x), with the breakdown.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common.record import add_record_option, recorded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1050)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--repeats", type=int, default=3, help="runs of each part, interleaved (medians)")
    add_record_option(parser, "speed/measure_stage.md")
    args = parser.parse_args()
    with recorded(args.record, "benchmarks.speed.measure_stage"):
        measure(args)


def measure(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    from benchmarks.speed.analyze import write_photo_crops
    from tladvisor.advisor import Advisor
    from tladvisor.data.imagefolder import load_image_folder
    from tladvisor.features.embed import extract_features
    from tladvisor.measures import scores as measure_scores
    from tladvisor.plugins import PluginHost
    from tladvisor.records import AnalysisOptions
    from tladvisor.runtime.threads import blas_threads_for
    from tladvisor.transforms import ImageFiles, eval_transform

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="tladvisor-bench-measure-"))
    data = write_photo_crops(work / "photos", args.images)
    dataset = load_image_folder(data)
    spec = PluginHost().backbone(args.backbone)
    options = AnalysisOptions(source=data, image_size=args.image_size, max_samples=args.images, device="cpu",
                              backbones=(args.backbone,))
    indices = Advisor.measured_indices(dataset, options)
    n = len(indices)
    files = ImageFiles([dataset.samples[i].path for i in indices], [dataset.samples[i].label for i in indices],
                       eval_transform(spec.preprocessing_at(args.image_size)))
    tensors = torch.stack([files[i][0] for i in range(n)])
    model = spec.build(True).eval()

    def bare() -> None:
        with torch.inference_mode():
            for start in range(0, n, 64):
                model(tensors[start:start + 64])

    def analyze() -> dict[str, float]:
        out, cache = work / "reports", work / "cache"
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "tladvisor.cli", "analyze", str(data), "--trials", "0", "--quiet",
                        "--backbone", args.backbone, "--image-size", str(args.image_size), "--max-samples",
                        str(args.images), "--threads", str(args.threads), "--device", "cpu", "--out", str(out),
                        "--cache-dir", str(cache)], check=True, stdout=subprocess.DEVNULL)
        [analysis] = out.rglob("analysis.json")
        return json.loads(analysis.read_text())["timings"]

    features = None

    def extract() -> None:
        nonlocal features
        features = extract_features(spec, dataset, indices, image_size=args.image_size, device="cpu",
                                    cache_dir=None, with_random=True)

    def part(name: str):
        target = measure_scores._TargetData.from_feature_set(features)
        calls = {"probes": lambda: measure_scores.probe_scores(target, seed=0, folds=measure_scores.CV_FOLDS),
                 "transferability": lambda: measure_scores.transferability_scores(target, seed=0),
                 "shift and distances": lambda: (measure_scores.stage_shift_scores(features.stage_shift),
                                                 measure_scores.source_distance_scores(target.features, None, seed=0))}

        def as_the_stage_runs_it() -> None:  # at the BLAS thread count measure_feature_set gives it
            with blas_threads_for(target.features.size):
                calls[name]()
        return as_the_stage_runs_it

    bare()  # warm-up
    runs: dict[str, list[float]] = {"bare": [], "analyze embed + measure": [], "analyze embed": [],
                                    "analyze measure": [], "extract (with the random copy)": [], "probes": [],
                                    "transferability": [], "shift and distances": []}
    for _ in range(args.repeats):  # interleaved, so a change of load hits every part alike
        runs["bare"].append(timed(bare))
        timings = analyze()
        runs["analyze embed"].append(timings["embed"])
        runs["analyze measure"].append(timings["measure"])
        runs["analyze embed + measure"].append(timings["embed"] + timings["measure"])
        runs["extract (with the random copy)"].append(timed(extract))
        for name in ("probes", "transferability", "shift and distances"):
            runs[name].append(timed(part(name)))
    # Each part against the bare pass of its own repeat, then the median over repeats: this machine's speed
    # drifts over seconds, which minima taken at different moments would read as a ratio.
    print(f"{n} images, {args.image_size} px, {args.backbone} pretrained ({features.features.shape[1]}-d), "
          f"{args.threads} thread(s), load {os.getloadavg()[0]:.2f}; medians of {args.repeats} interleaved repeats")
    for name, values in runs.items():
        ratio = float(np.median(np.array(values) / runs["bare"]))
        target = "  (target <= 3x, then 2x)" if name == "analyze embed + measure" else ""
        print(f"{name:32s} {float(np.median(values)):7.2f} s  {ratio:5.2f}x bare{target}")


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
