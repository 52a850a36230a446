"""Benchmark: what the data path costs once images are decoded once into the store.

    python -m benchmarks.speed.data_path                      # efficientnet_lite0, 64 px, 80 train / 500 val
    python -m benchmarks.speed.data_path --epochs 3 --val 200 --threads 1   # quicker
    python -m benchmarks.speed.data_path --device cuda

Data: JPEG photos (crops of four scikit-image pictures, 320 x 240, one class each, written as
``train/`` and ``val/`` folders), else generated shapes. Printed, each measured in this process:

1. the decoded-image store, cold (decode + resize every image) vs warm (open the memory map);
2. ``embed.extract_features`` (warm store, no feature cache) vs the bare loop: the model built and
   run over batches already in memory (target >= 0.9), and that loop with the BatchNorm-statistics
   hooks extraction also runs, on the same images (so the rest is the data path), and how
   far the stage shifts from those images are from those of every image (relative, the largest stage);
3. a partial-freeze fine-tuning trial: the seconds its batches took to produce (store reads,
   augmentation, normalisation) as a share of the rest of the trial (target <= 10 %), next to what the
   old per-epoch decode would have cost for the same passes;
4. that trial validating after its frozen stages (their output on the validation images kept from the
   first epoch, :mod:`tladvisor.tuning.frozen_prefix`) against validating in full every epoch.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tladvisor.runtime import device as devices
from tladvisor.data.decoded_store import Geometry, open_sample_stores
from tladvisor.features.bn_statistics import BatchNormStatistics, stage_shifts, statistics_share, statistics_stride
from tladvisor.features.embed import extract_features
from tladvisor.modeling import RECALIBRATION_IMAGES, EmbeddingReader
from tladvisor.plugins import PluginHost
from tladvisor.records import AnalysisOptions, Dataset
from tladvisor.transforms import ImageFiles, StoredBatches, eval_batch, eval_transform, train_transform
from tladvisor.tuning.data import TuningData
from tladvisor.tuning.strategies import TrialConfig
from tladvisor.tuning.trainer import train_trial
from benchmarks.common.record import add_record_option, recorded


def write_photos(root: Path, n_train: int, n_val: int, seed: int = 0) -> Dataset:
    """``root/{train,val}/<picture>/<i>.jpg``: random 320 x 240 crops (flipped, scaled) of four pictures."""
    from tladvisor.data.imagefolder import load_image_folder

    try:
        from skimage import data

        pictures = {"astronaut": data.astronaut(), "chelsea": data.chelsea(), "coffee": data.coffee(),
                    "rocket": data.rocket()}
    except Exception as error:  # scikit-image missing: generated shapes
        print(f"scikit-image unavailable ({error}); using generated shapes")
        from tladvisor.tuning.synthetic import write_shapes_dataset

        return write_shapes_dataset(root / "shapes", n_classes=4, per_class=(n_train + n_val) // 4, size=256)
    rng = np.random.default_rng(seed)
    for split, count in (("train", n_train), ("val", n_val)):
        for i in range(count):
            name, pixels = list(pictures.items())[i % len(pictures)]
            image = Image.fromarray(pixels)
            scale = rng.uniform(1.0, 1.6)
            image = image.resize((int(image.width * scale), int(image.height * scale)))
            left, top = rng.integers(0, image.width - 320), rng.integers(0, image.height - 240)
            crop = image.crop((left, top, left + 320, top + 240))
            if rng.random() < 0.5:
                crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            folder = root / "photos" / split / name
            folder.mkdir(parents=True, exist_ok=True)
            crop.save(folder / f"{i}.jpg", quality=90)
    return load_image_folder(root / "photos")


def sample_words(n: int) -> str:
    """Which images the statistics hooks keep, in words."""
    stride = statistics_stride(statistics_share(n))
    return "every image" if stride == 1 else f"every {stride}{'nd' if stride == 2 else 'rd' if stride == 3 else 'th'} image"


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def store_cold_vs_warm(dataset: Dataset, geometry: Geometry, work: Path, num_workers: int) -> tuple[float, float]:
    folder = work / "store-timing"
    started = time.perf_counter()
    open_sample_stores(dataset.samples, [geometry], folder, num_workers)
    cold = time.perf_counter() - started
    warm = best_of(3, lambda: open_sample_stores(dataset.samples, [geometry], folder, num_workers)[geometry].array)
    return cold, warm


def extraction_vs_bare_loop(spec, dataset: Dataset, image_size: int, batch_size: int, device: torch.device,
                            cache: Path, repeats: int) -> tuple[float, float, float, float]:
    def extract() -> None:
        for entry in cache.glob(f"{spec.name}-*.npz"):
            entry.unlink()  # features computed again; the store stays warm
        extract_features(spec, dataset, image_size=image_size, device=device, batch_size=batch_size,
                         cache_dir=cache, with_random=False)

    extract()  # builds the store
    pre = spec.preprocessing_at(image_size)
    store = open_sample_stores(dataset.samples, [Geometry.of(pre)], cache)[Geometry.of(pre)]
    batches = [eval_batch(store.rows(np.arange(start, min(start + batch_size, len(store)))), pre, device)
               for start in range(0, len(store), batch_size)]

    def bare(hooks: bool, share: float = statistics_share(len(store))) -> dict[str, float]:
        """extract_features without the data path: build, forward, read out (hooks on extraction's share)."""
        model = devices.prepare_model(spec.build(True), device).eval()
        reader = EmbeddingReader(model, spec)
        stats = BatchNormStatistics(model, share) if hooks else None
        with torch.inference_mode(), devices.autocast(device):
            outputs = [reader(devices.prepare_batch(images, device)) for images in batches]
            _ = [embedding.float().cpu() for embedding, _logits in outputs]
        reader.close()
        if stats is None:
            return {}
        stats.close()
        return {s.stage: s.value for s in stage_shifts(spec, stats.layer_shift())}

    # What the share changes in the measure: stage shifts from it against those from every image.
    sampled, every = bare(True), bare(True, share=1.0)
    deviation = max(abs(sampled[k] - every[k]) / max(abs(every[k]), 1e-12) for k in every)
    print("   stage shifts, the hooks' images / every image: " +
          ", ".join(f"{k} {sampled[k]:.3f} / {every[k]:.3f}" for k in every))
    extracted, plain, hooked = [], [], []
    for _ in range(repeats):  # interleaved, so a change of the machine's speed hits all three alike
        extracted.append(best_of(1, extract))
        plain.append(best_of(1, lambda: bare(False)))
        hooked.append(best_of(1, lambda: bare(True)))
    # Ratios within each repeat, then their median: this machine's speed drifts by 20-30 % over seconds,
    # so a ratio of two minima taken at different moments is mostly that drift.
    return (float(np.median(extracted)), float(np.median(plain)), float(np.median(hooked)),
            float(np.median(np.array(plain) / extracted)), float(np.median(np.array(hooked) / extracted)),
            float(np.median(np.array(hooked) / plain)), deviation)


class TimedBatches:
    """Adds the seconds spent producing batches (store read, augmentation, normalisation) to ``total``."""

    total = 0.0

    @classmethod
    def install(cls) -> None:
        original = StoredBatches.__iter__

        def timed(self):
            iterator = original(self)
            while True:
                started = time.perf_counter()
                try:
                    batch = next(iterator)
                except StopIteration:
                    cls.total += time.perf_counter() - started
                    return
                cls.total += time.perf_counter() - started
                yield batch

        StoredBatches.__iter__ = timed


def trial_data_share(spec, dataset: Dataset, image_size: int, epochs: int, batch_size: int,
                     device: torch.device, cache: Path) -> dict:
    options = AnalysisOptions(source=dataset.root, image_size=image_size, batch_size=batch_size, cache_dir=cache)
    data = TuningData(dataset, options, device)
    data.store(spec)  # decoded before the trial (once per run, not per trial)
    config = TrialConfig(backbone=spec.name, strategy="partial_freeze", freeze_depth=max(1, spec.n_stages // 2),
                         epochs=epochs, patience=epochs, batch_size=batch_size, image_size=image_size,
                         lr_backbone=1e-3)
    TimedBatches.install()
    started = time.perf_counter()
    result = train_trial(spec, config, data, device, seed=0)
    trial_s = time.perf_counter() - started
    data_s = TimedBatches.total

    # What the old path spent on the same passes: decode, resize and transform every image per epoch.
    pre = spec.preprocessing_at(image_size)
    train_paths = [dataset.samples[i].path for i in data.train_idx]
    val_paths = [dataset.samples[i].path for i in data.val_idx]
    statistics = min(len(train_paths), RECALIBRATION_IMAGES)

    def old_pass(paths, transform) -> None:
        files = ImageFiles(paths, [0] * len(paths), transform)
        for i in range(len(files)):
            files[i]

    started = time.perf_counter()
    old_pass(train_paths, train_transform(pre))
    old_pass(train_paths[:statistics], eval_transform(pre))
    old_pass(val_paths, eval_transform(pre))
    old_epoch = time.perf_counter() - started
    return {"trial_s": trial_s, "data_s": data_s, "compute_s": trial_s - data_s,
            "epochs_run": len(result.learning_curve), "old_data_s": old_epoch * len(result.learning_curve),
            "n_train": len(data.train_idx), "n_val": len(data.val_idx)}


def frozen_prefix_saving(spec, dataset: Dataset, image_size: int, epochs: int, batch_size: int,
                         device: torch.device, cache: Path, repeats: int) -> dict:
    """The same partial-freeze trial (same seed) validating after the frozen stages and in full."""
    from tladvisor.tuning import frozen_prefix

    options = AnalysisOptions(source=dataset.root, image_size=image_size, batch_size=batch_size, cache_dir=cache)
    data = TuningData(dataset, options, device)
    data.store(spec)
    config = TrialConfig(backbone=spec.name, strategy="partial_freeze", freeze_depth=max(1, spec.n_stages // 2),
                         epochs=epochs, patience=epochs, batch_size=batch_size, image_size=image_size,
                         lr_backbone=1e-3)
    seconds: dict[str, list[float]] = {"after": [], "full": []}
    curves: dict[str, list] = {}
    kept = frozen_prefix.MAX_BYTES
    try:
        for repeat in range(repeats):  # interleaved, the order alternating, so drift hits both alike
            arms = [("after", kept), ("full", 0)]
            for name, limit in arms if repeat % 2 == 0 else arms[::-1]:
                frozen_prefix.MAX_BYTES = limit  # 0: no output fits, every validation runs in full
                started = time.perf_counter()
                result = train_trial(spec, config, data, device, seed=0)
                seconds[name].append(time.perf_counter() - started)
                curves.setdefault(name, result.learning_curve)
    finally:
        frozen_prefix.MAX_BYTES = kept
    ratios = np.array(seconds["after"]) / np.array(seconds["full"])
    return {"depth": config.freeze_depth, "n_stages": spec.n_stages, "after": float(np.median(seconds["after"])),
            "full": float(np.median(seconds["full"])), "ratio": float(np.median(ratios)),
            "ratios": ratios.tolist(), "same_curve": curves["after"] == curves["full"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--train", type=int, default=80)
    parser.add_argument("--val", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--trial-repeats", type=int, default=3,
                        help="interleaved pairs of trials comparing validation after the frozen stages with in full")
    parser.add_argument("--workers", type=int, default=0, help="loader processes decoding the store")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--statistics-images", type=int,
                        help="override bn_statistics.STATISTICS_IMAGES (the images the shift statistics keep)")
    add_record_option(parser, "speed/data_path.md")
    args = parser.parse_args()
    with recorded(args.record, "benchmarks.speed.data_path"):
        if args.threads:
            torch.set_num_threads(args.threads)
        if args.statistics_images:
            import tladvisor.features.bn_statistics as bn_statistics

            bn_statistics.STATISTICS_IMAGES = args.statistics_images
        device = devices.pick_device(args.device)
        spec = PluginHost().backbone(args.backbone)
        pre = spec.preprocessing_at(args.image_size)
        with tempfile.TemporaryDirectory() as folder:
            work = Path(folder)
            dataset = write_photos(work, args.train, args.val)
            n = len(dataset.samples)
            print(f"{spec.name} at {pre.input_size} px (stored {Geometry.of(pre).side} px) on {n} images, "
                  f"{devices.describe(device)}, load {os.getloadavg()[0]:.2f}")

            cold, warm = store_cold_vs_warm(dataset, Geometry.of(pre), work, args.workers)
            print(f"1. store cold (decode + resize {n} images): {cold:7.3f} s   warm (open): {warm:7.4f} s   "
                  f"cold / warm: {cold / max(warm, 1e-9):.0f}x")

            extracted, plain, hooked, speed, speed_hooked, hook_cost, deviation = extraction_vs_bare_loop(
                spec, dataset, args.image_size, args.batch_size, device, work / "cache", args.repeats)
            print(f"2. extract_features (warm store): {extracted:7.3f} s   bare loop: {plain:7.3f} s "
                  f"({hooked:.3f} s with the BatchNorm-statistics hooks; medians of {args.repeats})   extraction at "
                  f"{speed:.2f}x the bare loop (target >= 0.9), {speed_hooked:.2f}x the loop with hooks (they cost "
                  f"{hook_cost - 1:+.0%} of the bare loop, on {sample_words(n)}: stage "
                  f"shifts within {deviation:.1%} of those from every image; ratios are medians over the repeats)")

            r = trial_data_share(spec, dataset, args.image_size, args.epochs, args.batch_size, device, work / "cache")
            print(f"3. partial-freeze trial, {r['n_train']} train / {r['n_val']} val, {r['epochs_run']} epochs: "
                  f"{r['trial_s']:.2f} s, of which batches {r['data_s']:.3f} s = "
                  f"{100 * r['data_s'] / r['compute_s']:.1f} % of its compute (target <= 10 %); decoding every "
                  f"epoch instead: {r['old_data_s']:.2f} s = {100 * r['old_data_s'] / r['compute_s']:.0f} %")
            if args.epochs > 1:
                f = frozen_prefix_saving(spec, dataset, args.image_size, args.epochs, args.batch_size, device,
                                         work / "cache", args.trial_repeats)
                print(f"4. the same trial (freeze depth {f['depth']} of {f['n_stages']}) validating after the frozen "
                      f"stages from epoch 2: {f['after']:.2f} s, in full every epoch: {f['full']:.2f} s (medians of "
                      f"{args.trial_repeats}); time ratio {f['ratio']:.2f} ({1 - f['ratio']:.0%} less; per repeat "
                      f"{', '.join(f'{r:.2f}' for r in f['ratios'])}); the same learning curve: {f['same_curve']}")
            print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
