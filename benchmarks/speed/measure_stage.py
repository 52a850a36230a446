"""The measure stage of ``analyze --trials 0`` against one bare forward pass over the measured images.

    nice python -m benchmarks.speed.measure_stage [--images 300] [--image-size 96] [--backbone efficientnet_b0]
        [--repeats 3]   # medians of interleaved repeats

Writes N natural-photo crops (6 classes, as benchmarks/speed/analyze.py), then times, in one process:

- the bare forward: ``model(x)`` over the measured images, already decoded and transformed into
  tensors in memory, inference mode, batch 64, no hooks (the cost floor of any measurement);
- the measure stage as ``analyze`` runs it (:meth:`tladvisor.advisor.Advisor.measure`, fresh caches):
  decoding, the pretrained pass with the BatchNorm-statistics hooks, the random-init copy (its
  BatchNorm re-estimation and its pass), and the built-in measures (probes, LogME, H-score, ... with
  their bootstraps) and the 2-D embedding;
- its parts, each on its own: feature extraction, and the measures on the extracted features.

and prints the ratios to the bare forward (the target for the whole stage: at most 3x). Timing
does not depend on the weights, so the backbone is built with random weights (no download).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path
from benchmarks.common.paths import RESULTS
from benchmarks.common.record import add_record_option, recorded



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--backbone", default="efficientnet_b0")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each part, interleaved (medians)")
    add_record_option(parser, RESULTS / "speed/measure_stage.md")
    args = parser.parse_args()
    with recorded(args.record, "benchmarks.speed.measure_stage"):
        os.environ["TLADVISOR_THREADS"] = str(args.threads)
        from tladvisor.runtime.threads import configure_threads

        configure_threads()
        import numpy as np
        import torch

        from benchmarks.speed.analyze import write_photo_crops
        from tladvisor.advisor import Advisor
        from tladvisor.measures.scores import measure_feature_set
        from tladvisor.data.imagefolder import load_image_folder
        from tladvisor.features.embed import extract_features
        from tladvisor.plugins import PluginHost
        from tladvisor.records import AnalysisOptions
        from tladvisor.transforms import ImageFiles, eval_transform

        work = Path(tempfile.mkdtemp(prefix="tladvisor-bench-measure-"))
        data = write_photo_crops(work / "photos", args.images)
        dataset = load_image_folder(data)
        host = PluginHost(load_entry_points=False)
        original = host.backbone(args.backbone)
        spec = dataclasses.replace(original, build=lambda pretrained: original.build(False),
                                   weights_available=lambda: True)
        options = AnalysisOptions(source=data, image_size=args.image_size, max_samples=args.images, device="cpu",
                                  cache_dir=work / "cache-stage", backbones=(args.backbone,))
        indices = Advisor.measured_indices(dataset, options)
        n = len(indices)

        pre = spec.preprocessing_at(args.image_size)
        files = ImageFiles([dataset.samples[i].path for i in indices], [dataset.samples[i].label for i in indices],
                           eval_transform(pre))
        tensors = torch.stack([files[i][0] for i in range(n)])
        model = spec.build(True).eval()

        def bare() -> None:
            with torch.inference_mode():
                for start in range(0, n, 64):
                    model(tensors[start:start + 64])

        bare()  # warm-up
        features = None

        def extract() -> None:
            nonlocal features
            features = extract_features(spec, dataset, indices, image_size=args.image_size, device="cpu",
                                        cache_dir=None, with_random=True)

        def stage() -> None:  # fresh caches each time: every run measures and decodes again
            import shutil

            shutil.rmtree(options.cache_dir, ignore_errors=True)
            Advisor(options, host=host).measure(spec, dataset, options)

        runs: dict[str, list[float]] = {"bare": [], "stage": [], "extract": [], "measures": []}
        for _ in range(args.repeats):  # interleaved, so a change of load hits every part alike
            runs["bare"].append(timed(bare))
            runs["stage"].append(timed(stage))
            runs["extract"].append(timed(extract))
            runs["measures"].append(timed(lambda: measure_feature_set(features, seed=0)))
        # Each part against the bare pass of its own repeat, then the median over repeats: this machine's
        # speed drifts by 20-30 % over seconds, which minima taken at different moments would read as a ratio.
        seconds = {k: float(np.median(v)) for k, v in runs.items()}
        ratio = {k: float(np.median(np.array(runs[k]) / runs["bare"])) for k in runs}
        print(f"{n} images, {args.image_size} px, {args.backbone} ({features.features.shape[1]}-d), "
              f"{torch.get_num_threads()} thread(s), load {os.getloadavg()[0]:.2f}; medians of {args.repeats} repeats")
        print(f"bare forward            {seconds['bare']:7.2f} s")
        print(f"measure stage           {seconds['stage']:7.2f} s  ratio {ratio['stage']:5.2f}x  (target <= 3x; "
              f"per repeat {', '.join(f'{s / b:.2f}' for s, b in zip(runs['stage'], runs['bare']))})")
        print(f"  feature extraction    {seconds['extract']:7.2f} s  ratio {ratio['extract']:5.2f}x")
        print(f"  measures on features  {seconds['measures']:7.2f} s  ratio {ratio['measures']:5.2f}x")
        np.testing.assert_equal(features.labels.shape[0], n)


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
