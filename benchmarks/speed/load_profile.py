"""Benchmark: load + profile a folder of many small images, with time and memory peaks.

    python -m benchmarks.speed.load_profile            # 20,000 PNGs, 10 classes
    python -m benchmarks.speed.load_profile --n 2000   # quicker

Prints wall time of the scan (validate every image) and of the profile, peak RSS of the process
(``resource.getrusage``), and the tracemalloc peak of Python allocations during a second, traced
load + profile (tracing slows Python down, so it is timed separately).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from PIL import Image

from tladvisor.data.imagefolder import load_image_folder
from tladvisor.data.profile import profile_dataset


def generate(root: Path, n: int, n_classes: int, seed: int = 0) -> None:
    """``n`` small PNGs (24..48 px, noisy gradients so files differ), spread over ``n_classes`` folders."""
    rng = np.random.default_rng(seed)
    for c in range(n_classes):
        (root / f"class_{c:02d}").mkdir(parents=True)
    for i in range(n):
        width, height = (int(v) for v in rng.integers(24, 49, size=2))
        base = np.linspace(0, 255, width, dtype=np.float32)[None, :, None] * rng.random(3, dtype=np.float32)
        noise = rng.normal(0, 12, (height, width, 3)).astype(np.float32)
        pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / f"class_{i % n_classes:02d}" / f"{i:06d}.png", compress_level=1)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def load_and_profile(root: Path):
    start = time.perf_counter()
    dataset = load_image_folder(root)
    loaded = time.perf_counter()
    profile = profile_dataset(dataset)
    return dataset, profile, loaded - start, time.perf_counter() - loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--no-tracemalloc", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "images"
        start = time.perf_counter()
        generate(root, args.n, args.classes)
        size_mb = sum(p.stat().st_size for p in root.rglob("*.png")) / 1e6
        print(f"generated {args.n} PNGs ({size_mb:.1f} MB) in {time.perf_counter() - start:.1f} s")

        rss_before = peak_rss_mb()
        dataset, profile, load_s, profile_s = load_and_profile(root)
        print(f"load (validate all): {load_s:.2f} s = {1000 * load_s / args.n:.2f} ms/image; "
              f"profile: {profile_s:.2f} s")
        print(f"samples {profile.n_samples}, classes {profile.n_classes}, skipped {len(dataset.skipped)}, "
              f"split {profile.split_counts}, mean {tuple(round(m, 3) for m in profile.channel_mean)}")
        print(f"peak RSS: {peak_rss_mb():.0f} MB (was {rss_before:.0f} MB before loading)")
        del dataset, profile

        if not args.no_tracemalloc:
            tracemalloc.start()
            _, _, traced_load_s, traced_profile_s = load_and_profile(root)
            current, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(f"tracemalloc peak: {peak / 1e6:.1f} MB (still held after: {current / 1e6:.1f} MB; "
                  f"traced run {traced_load_s + traced_profile_s:.1f} s)")


if __name__ == "__main__":
    main()
