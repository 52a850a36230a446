"""Benchmark: one feature-extraction trial on cached embeddings vs the same trial running the backbone each epoch.

    python -m benchmarks.speed.cached_trials                 # efficientnet_lite0, 96 px, 5 epochs
    python -m benchmarks.speed.cached_trials --epochs 10 --threads 1

Data: the ``photos`` example (240 natural-photo crops, 6 classes; needs scikit-image), else 200
generated shapes. Both trials train the same linear head with the same optimiser, schedule and
epochs on the same split; the uncached one reads, decodes and forwards every training image through
the frozen backbone every epoch (no augmentation, as for the cache), which is what caching saves.
Printed: the one-off extraction, each trial's wall time, and the ratio (target >= 20x).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from tladvisor.plugins import PluginHost
from tladvisor.records import AnalysisOptions, Dataset
from tladvisor.tuning.data import TuningData
from tladvisor.tuning.strategies import TrialConfig, build_model
from tladvisor.tuning.trainer import train_network, train_trial


def benchmark_dataset(root: Path) -> Dataset:
    from tladvisor.data.imagefolder import load_image_folder

    try:
        from tladvisor.data.examples import write_example

        return load_image_folder(write_example("photos", root / "photos"))
    except Exception as error:  # scikit-image missing: generated images instead
        print(f"photos example unavailable ({error}); using 200 generated shapes")
        from tladvisor.tuning.synthetic import write_shapes_dataset

        return write_shapes_dataset(root / "shapes", n_classes=4, per_class=50, size=96)


def compare_trials(spec, dataset: Dataset, work: Path, *, image_size: int, epochs: int, batch_size: int,
                   device: torch.device) -> dict:
    """Wall seconds of the one-off extraction, a cached feature-extraction trial and the same trial with a
    backbone pass every epoch, with their validation accuracies."""
    config = TrialConfig(backbone=spec.name, strategy="feature_extraction", lr_head=1e-2, weight_decay=1e-4,
                         epochs=epochs, patience=epochs, batch_size=batch_size, image_size=image_size)
    options = AnalysisOptions(source=dataset.root, image_size=image_size, batch_size=batch_size,
                              cache_dir=work / "cache", val_fraction=0.2)
    started = time.perf_counter()
    TuningData(dataset, options, device).features(spec)
    extraction = time.perf_counter() - started

    data = TuningData(dataset, options, device)  # fresh: features come from the disk cache
    started = time.perf_counter()
    cached = train_trial(spec, config, data, device, seed=0)
    cached_s = time.perf_counter() - started

    # The same head training, but the embeddings are recomputed from the images every epoch.
    torch.manual_seed(0)
    model = build_model(spec, config, data.n_classes)
    every_epoch = TrialConfig(**{**config.__dict__, "strategy": "partial_freeze", "freeze_depth": spec.n_stages})
    started = time.perf_counter()
    uncached = train_network(model, spec, every_epoch, data, device, seed=0, on_epoch=None, augment=False)
    uncached_s = time.perf_counter() - started
    return {"extraction_s": extraction, "cached_trial_s": cached_s, "cached_accuracy": cached.accuracy,
            "forward_trial_s": uncached_s, "forward_accuracy": uncached.accuracy,
            "speedup": uncached_s / cached_s, "speedup_with_extraction": uncached_s / (cached_s + extraction),
            "n_images": len(dataset.samples), "epochs": epochs, "image_size": image_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    spec = PluginHost().backbone(args.backbone)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as folder:
        dataset = benchmark_dataset(Path(folder))
        print(f"{spec.name} at {args.image_size} px on {len(dataset.samples)} images, {len(dataset.classes)} classes, "
              f"{args.epochs} epochs, {device} ({torch.get_num_threads()} threads)")
        r = compare_trials(spec, dataset, Path(folder), image_size=args.image_size, epochs=args.epochs,
                           batch_size=args.batch_size, device=device)

    print(f"one-off feature extraction (train + val): {r['extraction_s']:8.2f} s")
    print(f"trial on cached features:                 {r['cached_trial_s']:8.3f} s  (val accuracy {r['cached_accuracy']:.3f})")
    print(f"trial with a backbone pass every epoch:   {r['forward_trial_s']:8.3f} s  (val accuracy {r['forward_accuracy']:.3f})")
    print(f"speed-up per trial: {r['speedup']:.0f}x "
          f"(including the one-off extraction, for a single trial: {r['speedup_with_extraction']:.1f}x)")


if __name__ == "__main__":
    main()
