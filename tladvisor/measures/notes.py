"""What a backbone's measurement shows besides its scores: a 2-D picture of the embeddings, and warnings
about the input it measured (images below the native size, texts cut at the longest input)."""

from __future__ import annotations

import numpy as np

from tladvisor.backbones import BackboneSpec
from tladvisor.features.embed import stratified_cap
from tladvisor.records import FeatureSet
from tladvisor.runtime.threads import blas_threads_for

TRUNCATION_WARNING_SHARE = 0.05  # a backbone cutting more texts than this says so


def embedding_2d(features: np.ndarray, labels: np.ndarray, limit: int = 400, seed: int = 0):
    """PCA to two dimensions of at most ``limit`` points, for the report's scatter plot."""
    if len(features) < 3:
        return ()
    keep = stratified_cap(labels, limit, seed)
    x = features[keep].astype(np.float64)
    x = x - x.mean(axis=0)
    with blas_threads_for(x.size):  # 400 x 1,280: two BLAS threads took seconds here, one takes a fraction
        _, _, vt = np.linalg.svd(x, full_matrices=False)
    xy = x @ vt[:2].T
    scale = np.abs(xy).max() or 1.0
    return tuple((round(float(a / scale), 4), round(float(b / scale), 4), int(y))
                 for (a, b), y in zip(xy, labels[keep]))


def input_warnings(spec: BackboneSpec, features: FeatureSet) -> tuple[str, ...]:
    if spec.text is not None:
        share = features.input_facts.get("truncated_share", 0.0)
        if share > TRUNCATION_WARNING_SHARE:
            return (f"{share:.0%} of the texts are longer than the {spec.text.max_length} tokens {spec.name} takes "
                    "and were cut at the end (scores describe their beginnings)",)
        return ()
    if features.image_size < spec.preprocessing.input_size:
        return (f"measured at {features.image_size} px, below {spec.name}'s native "
                f"{spec.preprocessing.input_size} px: scores describe the smaller input",)
    return ()
