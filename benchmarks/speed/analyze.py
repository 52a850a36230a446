"""Advice-only analysis time, cold and warm (feature cache), on N natural-photo crops.

    .venv/bin/python -m benchmarks.speed.analyze [--images 2000] [--image-size 128] [--backbone efficientnet_lite0]

Writes N crops (6 classes) of the photos that ship with scikit-image and scikit-learn, then runs
`tladvisor analyze DATA --trials 0` twice with a fresh cache folder and prints both wall times.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tladvisor.data.examples import _photo_sources, random_crops
from benchmarks.common.record import add_record_option, recorded


def write_photo_crops(dest: Path, n_images: int, seed: int = 0) -> Path:
    sources = _photo_sources()
    rng = np.random.default_rng(seed)
    per_class = n_images // len(sources)
    for name, picture in sources.items():
        (dest / name).mkdir(parents=True, exist_ok=True)
        for i, crop in enumerate(random_crops(picture, per_class, 160, (0.2, 0.8), rng)):
            crop.save(dest / name / f"{i:05d}.jpg", quality=90)
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    add_record_option(parser, "speed/analyze.md")
    args = parser.parse_args()
    with recorded(args.record, "benchmarks.speed.analyze"):
        work = Path(tempfile.mkdtemp(prefix="tladvisor-bench-analyze-"))
        data = write_photo_crops(work / "photos", args.images)
        command = [sys.executable, "-m", "tladvisor.cli", "analyze", str(data), "--trials", "0",
                   "--image-size", str(args.image_size), "--backbone", args.backbone,
                   "--max-samples", str(args.images), "--out", str(work / "reports"), "--cache-dir", str(work / "cache")]
        times = []
        for label in ("cold", "warm"):
            started = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - started)
            print(f"{label}: {times[-1]:.1f} s", flush=True)
        print(f"{args.images} images at {args.image_size} px with {args.backbone}: cold {times[0]:.1f} s, "
              f"warm {times[1]:.1f} s, speed-up {times[0] / times[1]:.1f}x")


if __name__ == "__main__":
    main()
