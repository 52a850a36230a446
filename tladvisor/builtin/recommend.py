"""Built-in plugin: the summary similarity and the four-scenario recommendation.

Both run last (``trylast``), so a plugin that returns its own summary or recommendation replaces them.
"""

from __future__ import annotations

from tladvisor import hookimpl
from tladvisor.advice import recommend as rules
from tladvisor.advice import similarity


@hookimpl(trylast=True)
def summarise_similarity(backbone, scores, features):
    # The similarity's scale is calibrated on BatchNorm shifts of image backbones; a text encoder's hidden-state
    # shift is another quantity, shown as evidence but not mapped through that calibration.
    calibrated = features is not None and getattr(backbone, "modality", "image") == "image"
    return similarity.summarise(features.stage_shift if calibrated else (), scores)


@hookimpl(trylast=True)
def recommend(profile, measurements, options):
    if not measurements:
        return None
    return rules.recommend(profile, measurements, val_fraction=options.val_fraction)
