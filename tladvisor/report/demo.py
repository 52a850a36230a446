"""A realistic, made-up run: for previewing the report (and testing it) without training anything.

``python -m tladvisor.report.demo OUT_DIR`` writes sample images, then ``OUT_DIR/reports/demo/`` with
analysis.json and index.html. Plugin authors can use :func:`demo_run` to preview their report sections.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tladvisor import __version__
from tladvisor.advice.recommend import SMALL_PER_CLASS
from tladvisor.records import (
    AnalysisOptions, AnalysisRun, BackboneMeasurement, Dataset, DatasetProfile, PluginFailure, Recommendation,
    Sample, Score, SkippedFile, StageShift, TrialRecord, TuningResult,
)

DEMO_CLASSES = ("circle", "square", "stripes", "triangle")
DEMO_COUNTS = (14, 10, 7, 4)
RESNET_STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")


def write_demo_images(folder: Path, classes=DEMO_CLASSES, counts=DEMO_COUNTS, seed: int = 0,
                      folder_names=None) -> list[Sample]:
    """Small PNGs, one shape per class on a random background, in ``folder/<folder name>/``.

    Folder names default to ``class_<index>`` (class names may hold characters a file name cannot).
    """
    rng = np.random.default_rng(seed)
    samples = []
    for label, (_name, count) in enumerate(zip(classes, counts)):
        class_dir = folder / (folder_names[label] if folder_names else f"class_{label}")
        class_dir.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            width, height = int(rng.integers(56, 88)), int(rng.integers(48, 72))
            background = tuple(int(v) for v in rng.integers(150, 250, 3))
            ink = tuple(int(v) for v in rng.integers(10, 120, 3))
            image = Image.new("RGB", (width, height), background)
            _draw_shape(ImageDraw.Draw(image), label, width, height, ink, rng)
            path = class_dir / f"{index:03d}.png"
            image.save(path)
            split = "val" if index % 5 == 2 else "train"
            samples.append(Sample(path, label, split, width, height, "RGB", f"{label}-{index}"))
    return samples


def _draw_shape(draw: ImageDraw.ImageDraw, kind: int, width: int, height: int, ink, rng) -> None:
    cx, cy, r = width / 2 + rng.integers(-6, 7), height / 2 + rng.integers(-5, 6), min(width, height) / 3
    if kind % 4 == 0:
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=ink)
    elif kind % 4 == 1:
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=ink)
    elif kind % 4 == 2:
        for x in range(0, width, 10):
            draw.rectangle((x, 0, x + 4, height), fill=ink)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=ink)


def demo_run(folder: str | Path, *, run_id: str = "demo", classes=DEMO_CLASSES, counts=DEMO_COUNTS,
             skipped_paths: tuple[str, ...] = ("broken/IMG_0042.jpg",), seed: int = 0,
             created: str = "2025-01-15T10:24:00+00:00", folder_names=None) -> AnalysisRun:
    """A complete AnalysisRun over real sample images written under ``folder/data``.

    Two backbones (one showing negative-transfer signs), a partial-freeze recommendation, and a study
    with completed, pruned and failed trials with learning curves; one score is NaN on purpose.
    """
    folder = Path(folder)
    data_root = folder / "data"
    samples = write_demo_images(data_root, classes, counts, seed, folder_names)
    skipped = tuple(SkippedFile(str(data_root / p), "cannot identify image file (truncated or not an image)")
                    for p in skipped_paths)
    dataset = Dataset(data_root, tuple(classes), tuple(samples), skipped, notes=("2 images were CMYK and converted to RGB",))
    profile = _profile(dataset)
    rng = np.random.default_rng(seed)
    measurements = (
        _measurement("resnet18", rng, dataset, similarity=0.64, spread=0.05, separation=3.2,
                     shifts=(0.08, 0.12, 0.21, 0.47, 0.92), probe=(0.86, 0.44)),
        _measurement("efficientnet_b0", rng, dataset, similarity=0.38, spread=0.09, separation=0.9,
                     shifts=(0.11, 0.19, 0.33, 0.71, 1.35), probe=(0.47, 0.45),
                     warnings=("Negative transfer: k-NN accuracy with pretrained features 0.47 is within one "
                               "spread of random features 0.45",)),
    )
    per_class = float(np.median(counts))
    recommendation = Recommendation(
        backbone="resnet18", strategy="partial_freeze", freeze_depth=2, n_stages=5,
        learning_rates={"head": 1e-3, "backbone": 1e-4, "layer_decay": 0.7}, confidence=0.72,
        rationale=(
            f"Small dataset: median {per_class:g} images per class, below the {SMALL_PER_CLASS} per class where fine-tuning "
            "every layer starts to pay off.",
            "resnet18 is the most similar backbone (0.64 ± 0.05 against 0.38 ± 0.09 for efficientnet_b0).",
            "The shift grows with depth (stem 0.08 → layer4 0.92): keep the first 2 stages frozen, retrain the rest.",
            "Pretrained k-NN accuracy 0.86 is well above random features 0.44: transfer helps.",
        ),
        ranking=({"backbone": "resnet18", "score": 0.71, "similarity": 0.64, "knn_accuracy": 0.86},
                 {"backbone": "efficientnet_b0", "score": 0.41, "similarity": 0.38, "knn_accuracy": 0.47}),
        size={"samples_per_class": per_class, "small_per_class": SMALL_PER_CLASS, "similarity_threshold": 0.5,
              "assessment": "small"},
        warnings=("Only 4 images in class 'triangle': its accuracy will be noisy.",),
        epochs=12,
    )
    options = AnalysisOptions(source=data_root, out_dir=folder / "reports", trials=9, seed=seed)
    return AnalysisRun(
        run_id=run_id, out_dir=folder / "reports" / run_id, options=options, dataset=dataset, profile=profile,
        measurements=measurements, recommendation=recommendation, tuning=_tuning(folder, run_id),
        plugin_failures=(PluginFailure("fancy_measures", "measure_backbone",
                                       "ValueError: could not converge after 200 iterations"),),
        environment={"tladvisor": __version__, "python": "3.11.9", "torch": "2.4.1", "torchvision": "0.19.1",
                     "optuna": "4.1.0", "platform": "Linux-6.1-x86_64", "device": "cpu",
                     "command": f"tladvisor analyze {data_root} --trials 9", "created": created},
        timings={"load": 0.41, "profile": 0.73, "embed": 12.9, "measure": 3.2, "recommend": 0.01, "tune": 412.5},
    )


def _profile(dataset: Dataset) -> DatasetProfile:
    counts = dataset.class_counts()
    widths = np.array([s.width for s in dataset.samples], dtype=float)
    heights = np.array([s.height for s in dataset.samples], dtype=float)

    def quantiles(values: np.ndarray) -> dict[str, float]:  # the keys tladvisor.data.profile writes
        keys = ("min", "q05", "q25", "median", "q75", "q95", "max")
        return {k: float(np.quantile(values, q)) for k, q in zip(keys, (0, .05, .25, .5, .75, .95, 1))}

    first_train = next(s for s in dataset.samples if s.split == "train")
    first_val = next(s for s in dataset.samples if s.split == "val")
    return DatasetProfile(
        n_samples=len(dataset.samples), n_classes=len(dataset.classes), class_counts=counts,
        samples_per_class_min=min(counts.values()), samples_per_class_median=float(np.median(list(counts.values()))),
        imbalance_ratio=max(counts.values()) / max(min(counts.values()), 1),
        split_counts={split: sum(s.split == split for s in dataset.samples) for split in ("train", "val")},
        image_size={"width": quantiles(widths), "height": quantiles(heights), "aspect": quantiles(widths / heights)},
        modes={"RGB": len(dataset.samples)}, channel_mean=(0.61, 0.58, 0.55), channel_std=(0.21, 0.22, 0.24),
        skipped=dataset.skipped,
        duplicates=((str(first_train.path), str(first_val.path)),),
        leakage=((str(first_train.path), str(first_val.path)),),
        warnings=(f"classes are imbalanced: '{max(counts, key=counts.get)}' has "
                  f"{max(counts.values()) / min(counts.values()):.1f}x the images of '{min(counts, key=counts.get)}'",
                  "leakage: 1 image (2 identical files) in both train and val, so validation scores are optimistic"),
    )


def _measurement(name: str, rng, dataset: Dataset, *, similarity: float, spread: float, separation: float,
                 shifts, probe, warnings=()) -> BackboneMeasurement:
    centres = [(separation * math.cos(2 * math.pi * k / len(dataset.classes)),
                separation * math.sin(2 * math.pi * k / len(dataset.classes))) for k in range(len(dataset.classes))]
    embedding = tuple((float(centres[s.label][0] + rng.normal()), float(centres[s.label][1] + rng.normal()), s.label)
                      for s in dataset.samples)
    knn, knn_random = probe
    scores = {
        "knn_accuracy": Score(knn, 0.04, knn, True, "5-NN accuracy, 5-fold cross-validated"),
        "knn_accuracy_random": Score(knn_random, 0.05, knn_random, True, "same probe, randomly initialised backbone"),
        "linear_probe_accuracy": Score(knn + 0.03, 0.03, knn + 0.03, True, "logistic regression, 5-fold CV"),
        "linear_probe_accuracy_random": Score(knn_random + 0.02, 0.04, knn_random + 0.02, True, ""),
        "logme": Score(similarity * 1.9 - 0.4, 0.02, similarity, True, "LogME evidence per sample"),
        "leep": Score(-1.2 + similarity, None, similarity * 0.9, True, "LEEP through the source head"),
        "nce": Score(float("nan"), None, None, True, "needs hard source labels: not available"),
        "bn_shift": Score(float(np.mean(shifts)), 0.02, 1 - float(np.mean(shifts)) / 2, False,
                          "mean symmetric KL to BatchNorm running statistics"),
    }
    stage_shift = tuple(StageShift(stage, value, n) for stage, value, n in zip(RESNET_STAGES, shifts, (1, 4, 5, 5, 5)))
    return BackboneMeasurement(name, Score(similarity, spread, similarity), scores, stage_shift,
                               n_measured=len(dataset.samples), image_size=224, from_cache=name == "resnet18",
                               seconds=6.4, warnings=tuple(warnings), embedding_2d=embedding)


def _curve(start: float, asymptote: float, rate: float, epochs: int) -> tuple[float, ...]:
    return tuple(round(asymptote - (asymptote - start) * math.exp(-rate * e), 4) for e in range(epochs))


def _tuning(folder: Path, run_id: str) -> TuningResult:
    def params(strategy, depth, lr_head, lr_backbone, decay, wd, epochs, backbone="resnet18"):
        return {"backbone": backbone, "strategy": strategy, "freeze_depth": depth, "lr_head": lr_head,
                "lr_backbone": lr_backbone, "layer_decay": decay, "weight_decay": wd, "epochs": epochs,
                "gradual_unfreeze": strategy in ("partial_freeze", "full_finetune") and depth % 2 == 0}

    def metrics(value):  # imbalanced classes: balanced accuracy and macro-F1 beside accuracy
        return {"balanced_accuracy": round(value - 0.06, 3), "macro_f1": round(value - 0.08, 3)}

    trials = (
        TrialRecord(0, "COMPLETE", 0.861, params("partial_freeze", 2, 1e-3, 1e-4, 0.7, 1e-4, 12), 61.2,
                    learning_curve=_curve(0.52, 0.862, 0.45, 12), metrics=metrics(0.861)),
        TrialRecord(1, "COMPLETE", 0.803, params("feature_extraction", 5, 3e-3, 0.0, 1.0, 0.0, 8), 9.8,
                    learning_curve=_curve(0.61, 0.805, 0.8, 8), metrics=metrics(0.803)),
        TrialRecord(2, "FAIL", None, params("full_finetune", 0, 2e-2, 5e-3, 0.9, 1e-3, 12), 14.1,
                    reason="loss diverged (NaN) at epoch 3 with lr_backbone 5.0e-03"),
        TrialRecord(3, "PRUNED", None, params("from_scratch", 0, 1e-3, 1e-3, 1.0, 5e-4, 20), 22.4,
                    reason="pruned at epoch 4: accuracy 0.312 below the median 0.55 of earlier trials",
                    learning_curve=(0.18, 0.24, 0.29, 0.312)),
        TrialRecord(4, "COMPLETE", 0.884, params("partial_freeze", 1, 8e-4, 2e-4, 0.75, 2e-4, 14), 74.0,
                    learning_curve=_curve(0.55, 0.886, 0.42, 14), metrics=metrics(0.884)),
        TrialRecord(5, "COMPLETE", 0.842, params("full_finetune", 0, 5e-4, 5e-5, 0.8, 1e-4, 12), 92.7,
                    learning_curve=_curve(0.47, 0.845, 0.35, 12), metrics=metrics(0.842)),
        TrialRecord(6, "COMPLETE", 0.548, params("from_scratch", 0, 2e-3, 2e-3, 1.0, 5e-4, 20), 118.3,
                    learning_curve=_curve(0.16, 0.60, 0.12, 20), metrics=metrics(0.548)),
        TrialRecord(7, "COMPLETE", 0.716, params("partial_freeze", 3, 2e-3, 1e-4, 0.6, 1e-4, 12, "efficientnet_b0"),
                    68.9, learning_curve=_curve(0.42, 0.718, 0.4, 12), metrics=metrics(0.716)),
        TrialRecord(8, "PRUNED", None, params("full_finetune", 0, 1e-3, 1e-4, 0.7, 1e-4, 12, "efficientnet_b0"),
                    31.0, reason="stopped by the --timeout deadline during epoch 4 (its 3 finished epochs kept)",
                    learning_curve=(0.51, 0.66, 0.74)),
    )
    return TuningResult(
        study_name=f"tladvisor-{run_id}", storage=f"sqlite:///{folder / 'reports' / run_id / 'study.db'}",
        requested_trials=9, trials=trials, best=trials[4], best_model_dir=str(folder / "reports" / run_id / "best_model"),
        device="cpu", param_importances={"strategy": 0.46, "lr_backbone": 0.21, "freeze_depth": 0.14,
                                         "lr_head": 0.09, "layer_decay": 0.06, "weight_decay": 0.04},
        best_by_strategy={"partial_freeze": 4, "feature_extraction": 1, "full_finetune": 5, "from_scratch": 6},
    )


def main(argv: list[str] | None = None) -> int:
    from tladvisor.report.writer import write_run

    argv = sys.argv[1:] if argv is None else argv
    folder = Path(argv[0] if argv else "demo-report")
    run = demo_run(folder)
    for path in write_run(run, run.out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
