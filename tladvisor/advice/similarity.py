"""The summary similarity of target data to a backbone's source domain, in [0, 1] (1 = like the source).

Primary evidence is source-free: the per-stage shift between the target's activation statistics and the
BatchNorm running statistics the network kept from its source data (see ``bn_statistics.BatchNormStatistics``).
Stage shifts span orders of magnitude, so they are combined by their geometric mean ``g`` and mapped
through ``1 / (1 + g / g0)``, a logistic in log-shift.

``g0`` (:data:`tladvisor.measures.shift.SHIFT_AT_HALF_SIMILARITY`) is where similarity crosses 0.5. It was
set from controlled shifts of natural photos measured with EfficientNet-Lite0 at 128 px (README,
"Similarity under controlled shift";
benchmarks/similarity/shift.py): clean photo crops give g = 0.116 (similarity 0.87), Gaussian
blur of radius 2 px g = 0.70 (0.51) and 3 px g = 1.10 (0.40), noise sigma 0.4 g = 0.74 (0.50),
greyscale photos g = 2.4 (0.24), and digits, document text and textures g = 4.6 to 5.2 (0.13).
When the network has no BatchNorm statistics (ViT), the normalised MMD to a user's source sample (when
given) and the normalised LEEP and NCE of its source head stand in. Source-sample distances never join a
BatchNorm-based summary: their normalised scales are not calibrated (the Frechet one is biased low even
for in-domain photos), and the recommendation's threshold is calibrated on this summary.
"""

from __future__ import annotations

import math

import numpy as np

from tladvisor.records import Score, StageShift
from tladvisor.measures import names
from tladvisor.measures.shift import SHIFT_AT_HALF_SIMILARITY, geometric_mean, shift_similarity

SIMILARITY_THRESHOLD = 0.5  # "similar" vs "different" in the four-scenario rule


def bn_similarity(stage_shift: tuple[StageShift, ...]) -> Score | None:
    """Similarity from per-stage BatchNorm shift; spread = std of per-stage similarities / sqrt(stages)."""
    if not stage_shift:
        return None
    shifts = [s.value for s in stage_shift]
    value = shift_similarity(geometric_mean(shifts))
    per_stage = [shift_similarity(s) for s in shifts]
    spread = float(np.std(per_stage) / math.sqrt(len(per_stage))) if len(per_stage) > 1 else None
    return Score(value, spread, value, detail=f"geometric-mean BatchNorm shift {geometric_mean(shifts):.3f} "
                                              f"over {len(shifts)} stages (0.5 at {SHIFT_AT_HALF_SIMILARITY})")


def summarise(stage_shift: tuple[StageShift, ...], scores: dict[str, Score]) -> Score:
    """One similarity in [0, 1] with an uncertainty: from the BatchNorm shift where the network has BatchNorm,
    else the mean of the normalised source-sample MMD and source-head scores that are available."""
    parts: list[tuple[str, float, float | None]] = []
    bn = bn_similarity(stage_shift)
    if bn is not None:
        parts.append(("BatchNorm statistics", bn.value, bn.spread))
    else:  # no source statistics in the network: the source-sample MMD, and how its source head sees the data
        # Not Frechet: its normalised value is biased low at these sample sizes (0.18 for clean photos
        # against a held-out photo sample in the benchmark's similarity section, where MMD gives 0.87).
        for name in (names.MMD_TO_SOURCE, names.LEEP, names.NCE):
            score = scores.get(name)
            if score is not None and score.normalised is not None and math.isfinite(score.normalised):
                parts.append((name, score.normalised, None))
    if not parts:
        return Score(float("nan"), detail="no domain-similarity evidence available for this backbone")
    values = np.array([v for _, v, _ in parts])
    value = float(np.clip(values.mean(), 0, 1))
    spreads = [s for _, _, s in parts if s]
    # disagreement between the sources of evidence counts as uncertainty too
    within = float(np.mean(np.square(spreads))) if spreads else 0.0
    spread = math.sqrt(within + (float(values.std()) ** 2 if len(values) > 1 else 0.0))
    detail = "; ".join(f"{name} {v:.2f}" for name, v, _ in parts)
    return Score(value, spread, value, detail=f"mean of: {detail}" if len(parts) > 1 else f"from {detail}")
