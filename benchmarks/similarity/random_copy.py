"""How many images the random-init copy's BatchNorm re-estimation needs: its probes' accuracy at several counts.

    OMP_NUM_THREADS=1 nice .venv/bin/python -m benchmarks.similarity.random_copy [--counts 256 64 32] \\
        [--seeds 0 1] [--image-size 96] [--backbone efficientnet_lite0]

``extract_features`` embeds the target through a randomly initialised copy of each backbone, its BatchNorm
statistics re-estimated on a seeded random subset of the images (``embed.RANDOM_COPY_STATISTICS_IMAGES``),
to show what pretraining is worth (the pretraining gain). For each bundled example (photos, digits,
textures) this prints the copy's linear- and k-NN-probe accuracy (5-fold) for each subset size and copy
seed: a smaller subset is as good as a larger one when its effect is inside the spread between seeds.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from tladvisor.features import embed
from tladvisor.data.examples import write_example
from tladvisor.data.imagefolder import load_image_folder
from tladvisor.measures.probes import knn_probe_cv, linear_probe_cv
from tladvisor.modeling import recalibrate_batchnorm
from tladvisor.plugins import PluginHost
from tladvisor.transforms import ImageFiles, eval_transform


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[256, 64, 32])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--examples", nargs="+", default=["photos", "digits", "textures"])
    args = parser.parse_args()
    spec = PluginHost().backbone(args.backbone)
    pre = spec.preprocessing_at(args.image_size)
    cpu = torch.device("cpu")
    print(f"{spec.name} at {args.image_size} px; linear / k-NN probe accuracy of the random copy's features")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.examples:
            dataset = load_image_folder(write_example(name, Path(folder) / name))
            paths = [s.path for s in dataset.samples]
            labels = np.array([s.label for s in dataset.samples])
            cells = []
            for count in args.counts:
                for seed in args.seeds:
                    model = embed._random_copy(spec, cpu, seed)
                    subset = np.random.default_rng(seed).permutation(len(paths))[:count]
                    recalibrate_batchnorm(model, DataLoader(ImageFiles([paths[i] for i in subset], labels[subset],
                                                                       eval_transform(pre)), batch_size=32), cpu)
                    features, _, _ = embed._forward_all(model, spec, DataLoader(ImageFiles(paths, labels, eval_transform(pre)),
                                                                                batch_size=32), cpu, False)
                    linear = linear_probe_cv(features, labels, folds=5, seed=0).mean
                    knn = knn_probe_cv(features, labels, folds=5, seed=0).mean
                    cells.append(f"{min(count, len(paths))} imgs seed {seed}: {linear:.3f} / {knn:.3f}")
            print(f"{name} ({len(paths)} images): " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
