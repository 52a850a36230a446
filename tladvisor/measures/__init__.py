"""Measures of transfer: pure numpy functions over frozen features, with no pipeline knowledge.

- :mod:`~tladvisor.measures.transferability`: LogME, LEEP, NCE, shrinkage H-score.
- :mod:`~tladvisor.measures.probes`: cross-validated k-NN and linear-probe accuracy, chance level.
- :mod:`~tladvisor.measures.distances`: Frechet distance and RBF-kernel MMD between embedding samples.
- :mod:`~tladvisor.measures.bootstrap`: resampling uncertainty for any of the above.
- :mod:`~tladvisor.measures.spread`: the standard deviation and standard error, computed one way.

The built-in plugin :mod:`tladvisor.builtin.measures` turns them into ``Score`` records.
"""

from tladvisor.measures.bootstrap import bootstrap, bootstrap_two_sample
from tladvisor.measures.distances import frechet_distance, mmd_rbf
from tladvisor.measures.probes import chance_accuracy, knn_probe, linear_probe
from tladvisor.measures.transferability import hscore_shrinkage, leep, logme, nce

__all__ = [
    "bootstrap",
    "bootstrap_two_sample",
    "chance_accuracy",
    "frechet_distance",
    "hscore_shrinkage",
    "knn_probe",
    "leep",
    "linear_probe",
    "logme",
    "mmd_rbf",
    "nce",
]
