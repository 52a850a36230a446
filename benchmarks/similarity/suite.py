"""Similarity under controlled shift, as a work unit of run_all.py (the work is benchmarks/similarity/shift.py's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_similarity(work: Path, image_size: int, threads: int, quick: bool) -> list[dict[str, Any]]:
    """shift.py's conditions (clean, blurred, noisy, greyscale photos; digits, textures,
    text), measured with efficientnet_lite0 at ``image_size``, with the distances to its source sample of
    held-out natural photos; one row per condition."""
    import torch

    torch.set_num_threads(threads)
    from benchmarks.similarity.shift import measure_conditions, shift_conditions, source_photos

    work.mkdir(parents=True, exist_ok=True)
    rows = measure_conditions(shift_conditions(work, quick=quick), "efficientnet_lite0", image_size, work / "cache",
                              source_sample=source_photos(work / "source"))
    for row in rows:
        row["stage_shift"] = {k: round(float(v), 4) for k, v in row["stage_shift"].items()}
    return rows
