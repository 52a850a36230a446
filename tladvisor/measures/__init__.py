"""The measure stage: how well a backbone's frozen features transfer, and how far they sit from its source.

- :mod:`~tladvisor.measures.names`: the built-in measures' names (no imports; the report and CLI read them).
- :mod:`~tladvisor.measures.scores`: every built-in measure of one :class:`~tladvisor.records.FeatureSet` as
  :class:`~tladvisor.records.Score` records (raw value, spread, normalised); the built-in plugin
  :mod:`tladvisor.builtin.measures` is the hook that calls it.
- :mod:`~tladvisor.measures.shift`: a statistics shift mapped to a similarity in [0, 1].
- :mod:`~tladvisor.measures.cache`: measurements kept per data, backbone, seed and measuring plugin.
- :mod:`~tladvisor.measures.notes`: what a measurement shows besides scores (2-D embedding, input warnings).

The numerics, pure numpy functions with no pipeline knowledge:

- :mod:`~tladvisor.measures.transferability`: LogME, LEEP, NCE, shrinkage H-score.
- :mod:`~tladvisor.measures.probes`: cross-validated k-NN and linear-probe accuracy, chance level.
- :mod:`~tladvisor.measures.distances`: Frechet distance and RBF-kernel MMD between embedding samples.
- :mod:`~tladvisor.measures.bootstrap`: resampling uncertainty for any of the above.
- :mod:`~tladvisor.measures.spread`: the standard deviation and standard error, computed one way.

The numerics are exported here lazily: ``tladvisor.measures.names`` must not pull in scipy (0.6 s) for the
report and the CLI, which only read measure names.
"""

from importlib import import_module

_EXPORTS = {
    "bootstrap": "bootstrap",
    "bootstrap_two_sample": "bootstrap",
    "chance_accuracy": "probes",
    "frechet_distance": "distances",
    "hscore_shrinkage": "transferability",
    "knn_probe": "probes",
    "leep": "transferability",
    "linear_probe": "probes",
    "logme": "transferability",
    "mmd_rbf": "distances",
    "nce": "transferability",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
