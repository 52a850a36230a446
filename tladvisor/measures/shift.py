"""A statistics shift as a similarity in [0, 1]: the one mapping the per-stage scores and the summary share.

``1 / (1 + g / g0)``, a logistic in log-shift, with ``g`` the geometric mean of the per-stage shifts (they
span orders of magnitude) and ``g0`` the shift where similarity is 0.5, calibrated on controlled shifts of
natural photos (see :mod:`tladvisor.advice.similarity`).
"""

from __future__ import annotations

import numpy as np

SHIFT_AT_HALF_SIMILARITY = 0.74  # g0: geometric-mean stage shift where similarity = 0.5


def shift_similarity(shift: float, g0: float = SHIFT_AT_HALF_SIMILARITY) -> float:
    """Map a (non-negative) statistics shift to [0, 1]: 1 at no shift, 0.5 at ``g0``."""
    return 1.0 / (1.0 + max(shift, 0.0) / g0)


def geometric_mean(values) -> float:
    values = np.maximum(np.asarray(values, dtype=float), 1e-6)
    return float(np.exp(np.mean(np.log(values))))
