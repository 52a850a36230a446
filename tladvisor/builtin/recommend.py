"""Built-in plugin: the summary similarity and the recommendation: the learned gain prior's pick (images), with
the four-scenario rule beside it as the textbook prior (tladvisor.advice.learned).

Both run last (``trylast``), so a plugin that returns its own summary or recommendation replaces them.
"""

from __future__ import annotations

from tladvisor import hookimpl
from tladvisor.advice import recommend as rules
from tladvisor.advice import learned, similarity


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
    textbook = rules.recommend(profile, measurements, val_fraction=options.val_fraction)
    return learned.with_learned_prior(textbook, profile, measurements, options.val_fraction, options.image_size,
                                      trials=options.trials)
