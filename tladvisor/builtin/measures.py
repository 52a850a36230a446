"""Built-in plugin: the measures of transfer for one backbone (the scores are :mod:`tladvisor.measures.scores`)."""

from __future__ import annotations

from tladvisor import hookimpl
from tladvisor.measures.scores import measure_feature_set


@hookimpl
def measure_backbone(features, options):
    """Probes, transferability, stage shift and source distances of one backbone's features."""
    return measure_feature_set(features, seed=int(getattr(options, "seed", 0) or 0))
