"""Similarity under controlled shift: does the summary similarity fall as natural photos are corrupted?

Writes the bundled `photos` example, then corrupted copies of it (Gaussian blur and Gaussian noise at 5
severities each, and colour removal), plus the `digits` and `textures` examples and crops of a scanned
text page; measures each with one backbone and prints a Markdown table of the summary similarity, the
geometric-mean BatchNorm shift and a few other measures, with the Spearman correlation against severity.

It also measures the embedding distances that ``tladvisor analyze --source-sample DIR`` reports
(Frechet, MMD; ``--no-source-sample`` skips them) against a stand-in for the source domain: crops of
the only colour natural photo that ships with scikit-image and is in no target, the motorcycle stereo
pair (greyscale pictures would make greyscale targets look close). One scene is a thin stand-in for
ImageNet: the distances' trends are the point, not their values.

    .venv/bin/python -m benchmarks.similarity.shift [--backbone efficientnet_lite0] [--image-size 128]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from scipy.stats import spearmanr

from tladvisor.advisor import Advisor
from tladvisor.measures.scores import source_distance_scores
from tladvisor.data.examples import random_crops, write_example
from tladvisor.data.imagefolder import load_image_folder
from tladvisor.features.embed import extract_features
from tladvisor.plugins import PluginHost
from tladvisor.records import AnalysisOptions
from benchmarks.common.paths import SCRATCH
from benchmarks.common.record import add_record_option, recorded

ROWS_FORMAT = 2  # bumped when a row's meaning changes (2: distances to the colour-only source sample)
BLUR_RADII = (0.5, 1.0, 2.0, 3.0, 5.0)
NOISE_SIGMAS = (0.04, 0.08, 0.15, 0.25, 0.4)


def corrupted_copy(source: Path, dest: Path, corrupt) -> Path:
    for path in sorted(source.rglob("*.jpg")):
        target = dest / path.relative_to(source).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as image:
            # crc32, not hash(): str hashes are salted per process, so the noise would differ every run
            corrupt(image.convert("RGB"), zlib.crc32(path.name.encode())).save(target)
    return dest


def blur(radius):
    return lambda image, _seed: image.filter(ImageFilter.GaussianBlur(radius))


def noise(sigma):
    def add(image, seed):
        pixels = np.asarray(image, dtype=np.float32) / 255
        pixels = pixels + np.random.default_rng(seed).normal(0, sigma, pixels.shape)
        return Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8))
    return add


def text_pages(dest: Path, per_class: int = 40, seed: int = 0) -> Path:
    """Crops of scikit-image's scanned page (191 x 384), 4 classes by column band: text, not photos."""
    from skimage import data

    page = data.page()
    rng = np.random.default_rng(seed)
    side, band = 40, page.shape[1] // 4
    for k in range(4):
        folder = dest / f"band{k}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            y = int(rng.integers(0, page.shape[0] - side + 1))
            x = int(rng.integers(k * band, (k + 1) * band - side + 1))
            Image.fromarray(page[y:y + side, x:x + side]).resize((96, 96)).save(folder / f"{i}.png")
    return dest


def source_photos(dest: Path, per_picture: int = 60, seed: int = 0) -> Path:
    """Crops of natural colour photos held out from every target (one folder per picture), as a source sample."""
    from skimage import data

    left, right, _disparity = data.stereo_motorcycle()
    rng = np.random.default_rng(seed)
    for name, picture in {"motorcycle_left": left, "motorcycle_right": right}.items():
        (dest / name).mkdir(parents=True, exist_ok=True)
        for i, crop in enumerate(random_crops(picture, per_picture, 96, (0.3, 0.7), rng)):
            crop.save(dest / name / f"{i:03d}.png")
    return dest


# Measures tracked against severity: (row key, score name in the measurement or None when computed here)
MEASURES = (("similarity", None), ("bn_shift", None), ("linear_probe", "linear_probe_accuracy"),
            ("knn", "knn_accuracy"), ("pretraining_gain", "pretraining_gain"), ("logme", "logme"),
            ("hscore", "hscore"), ("leep", "leep"), ("nce", "nce"))
# Tracked too when a source sample is given: the distances to it, raw and normalised (1 = same as the sample).
SOURCE_MEASURES = ("frechet", "frechet_normalised", "mmd", "mmd_normalised")


def shift_conditions(work: Path, quick: bool = False) -> list[tuple[str, str, float, Path]]:
    """(family, condition, severity, folder) for the clean photos, each corruption and the other domains.

    ``quick`` keeps the clean photos, the middle and strongest blur and noise, and the digits."""
    photos = write_example("photos", work / "photos")
    conditions: list[tuple[str, str, float, Path]] = [("photos", "clean", 0, photos)]
    keep = (2, 4) if quick else range(len(BLUR_RADII))
    for level, radius in enumerate(BLUR_RADII, 1):
        if level - 1 in keep:
            conditions.append(("blur", f"radius {radius}", level,
                               corrupted_copy(photos, work / f"blur{level}", blur(radius))))
    for level, sigma in enumerate(NOISE_SIGMAS, 1):
        if level - 1 in keep:
            conditions.append(("noise", f"sigma {sigma}", level,
                               corrupted_copy(photos, work / f"noise{level}", noise(sigma))))
    if not quick:
        conditions.append(("colour", "greyscale", 1, corrupted_copy(photos, work / "grey",
                                                                    lambda im, _s: im.convert("L").convert("RGB"))))
    conditions.append(("other", "digits", 0, write_example("digits", work / "digits")))
    if not quick:
        conditions.append(("other", "textures", 0, write_example("textures", work / "textures")))
        conditions.append(("other", "text page", 0, text_pages(work / "text")))
    return conditions


def measure_conditions(conditions, backbone: str, image_size: int, cache_dir: Path, host=None,
                       source_sample: Path | None = None) -> list[dict]:
    """Measure every condition with ``backbone`` as ``tladvisor analyze`` does; one row per condition.

    With ``source_sample``, each row also gets the Frechet and MMD distances (raw and normalised) that
    ``--source-sample`` reports, computed from the cached target features and one extraction of the
    sample, so each target is embedded once, not twice.
    """
    host = host or PluginHost()
    spec = host.backbone(backbone)
    source_features = None
    if source_sample is not None:
        source_features = extract_features(spec, load_image_folder(source_sample), image_size=image_size,
                                           cache_dir=cache_dir, with_random=False).features
    rows = []
    for family, level_name, level, folder in conditions:
        options = AnalysisOptions(source=folder, backbones=(backbone,), image_size=image_size, cache_dir=cache_dir)
        advisor = Advisor(options, host=host)
        dataset = advisor.load(options)
        started, cpu = time.perf_counter(), time.process_time()
        m = advisor.measure(spec, dataset, options)
        row = {"format": ROWS_FORMAT, "family": family, "condition": level_name, "severity": level,
               "image_size": image_size,
               "similarity": m.similarity.value, "spread": m.similarity.spread or 0.0,
               "bn_shift": float(np.exp(np.mean(np.log([max(s.value, 1e-6) for s in m.stage_shift])))),
               "stage_shift": {s.stage: s.value for s in m.stage_shift}}
        for key, name in MEASURES:
            if name is not None:
                row[key] = m.scores[name].value if name in m.scores else float("nan")
        if source_features is not None:
            target = extract_features(spec, dataset, advisor.measured_indices(dataset, options),  # a cache hit
                                      image_size=image_size, cache_dir=cache_dir, with_random=True, seed=options.seed)
            distances = source_distance_scores(target.features, source_features, seed=options.seed)
            for key, name in (("frechet", "frechet_to_source"), ("mmd", "mmd_to_source")):
                score = distances.get(name)  # absent when it could not be computed
                row[key] = score.value if score is not None else float("nan")
                row[f"{key}_normalised"] = score.normalised if score is not None else float("nan")
        row["seconds"] = time.perf_counter() - started
        row["cpu_s"] = time.process_time() - cpu
        rows.append(row)
    return rows


def severity_correlations(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Spearman correlation of each measure with severity, per corruption family (clean photos = 0)."""
    clean = next(r for r in rows if r["family"] == "photos")
    found: dict[str, dict[str, float]] = {}
    for family in ("blur", "noise"):
        series = [clean] + [r for r in rows if r["family"] == family]
        if len(series) < 3:
            continue
        severities = [r["severity"] for r in series]
        keys = [key for key, _ in MEASURES] + [key for key in SOURCE_MEASURES if all(key in r for r in series)]
        found[family] = {key: float(spearmanr(severities, [r[key] for r in series]).statistic) for key in keys}
        sims = [r["similarity"] for r in series]
        found[family]["similarity_falls_every_step"] = all(a > b for a, b in zip(sims, sims[1:]))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--json", type=Path, default=SCRATCH / "similarity" / "shift.json",
                        help="also write the rows here (the README's tables quote benchmarks/results/similarity/shift.json)")
    parser.add_argument("--no-source-sample", action="store_true",
                        help="skip the distances to the held-out natural photos")
    add_record_option(parser, "similarity/shift.md")
    args = parser.parse_args()
    with recorded(args.record, "benchmarks.similarity.shift"):
        work = Path(tempfile.mkdtemp(prefix="tladvisor-shift-"))
        sample = None if args.no_source_sample else source_photos(work / "source")
        rows = measure_conditions(shift_conditions(work), args.backbone, args.image_size, work / "cache",
                                  source_sample=sample)

        print(f"\nbackbone {args.backbone} at {args.image_size} px\n")
        distances = sample is not None
        print("| data | condition | similarity | BN shift (geo. mean) | LEEP | linear probe | pretraining gain |"
              + (" Frechet (normalised) | MMD² (normalised) |" if distances else ""))
        print("|---" * (9 if distances else 7) + "|")
        for r in rows:
            print(f"| {r['family']} | {r['condition']} | {r['similarity']:.3f} ± {r['spread']:.3f} | "
                  f"{r['bn_shift']:.3f} | {r['leep']:.3f} | {r['linear_probe']:.3f} | {r['pretraining_gain']:+.3f} |"
                  + (f" {r['frechet']:.1f} ({r['frechet_normalised']:.3f}) | {r['mmd']:.3f} ({r['mmd_normalised']:.3f}) |"
                     if distances else ""))
        for family, rhos in severity_correlations(rows).items():
            for key in rhos:
                if key == "similarity_falls_every_step":
                    continue
                print(f"Spearman({family} severity, {key}) = {rhos[key]:+.2f}")
            print(f"{family}: similarity falls at every step: {rhos['similarity_falls_every_step']}")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
