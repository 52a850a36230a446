"""The built-in measures' names: the keys of ``BackboneMeasurement.scores`` and of analysis.json ``scores``.

The recommendation, the similarity summary, the report and the CLI read scores by these names; a plugin's
own measure picks a name of its own (``tladvisor.testing.check_measure_plugin`` checks for clashes).
No imports: the report and the recommendation use these without loading the measures' numerics.
"""

KNN_ACCURACY = "knn_accuracy"
LINEAR_PROBE_ACCURACY = "linear_probe_accuracy"
KNN_ACCURACY_RANDOM = "knn_accuracy_random"  # the same probe on a randomly initialised copy
LINEAR_PROBE_ACCURACY_RANDOM = "linear_probe_accuracy_random"
PRETRAINING_GAIN = "pretraining_gain"  # linear probe, pretrained minus random
LOGME = "logme"
HSCORE = "hscore"
LEEP = "leep"  # only with a source classifier
NCE = "nce"
BN_SHIFT = "bn_shift"  # only with BatchNorm
BN_SHIFT_EARLY = "bn_shift_early"
BN_SHIFT_LATE = "bn_shift_late"
FRECHET_TO_SOURCE = "frechet_to_source"  # only with --source-sample
MMD_TO_SOURCE = "mmd_to_source"

BUILT_IN_MEASURES = (KNN_ACCURACY, LINEAR_PROBE_ACCURACY, KNN_ACCURACY_RANDOM, LINEAR_PROBE_ACCURACY_RANDOM,
                     PRETRAINING_GAIN, LOGME, HSCORE, LEEP, NCE, BN_SHIFT, BN_SHIFT_EARLY, BN_SHIFT_LATE,
                     FRECHET_TO_SOURCE, MMD_TO_SOURCE)
