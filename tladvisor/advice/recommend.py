"""From measurements to advice: backbone ranking, strategy, freeze depth, learning rates, and why.

The prior is the classic four-scenario rule over (samples per class) x (similarity to the source):

    small & similar    -> feature_extraction   (frozen backbone, new head)
    small & different  -> partial_freeze       (freeze the first k stages, fine-tune the rest)
    large & similar    -> full_finetune        (all layers, lower rates for earlier ones)
    large & different  -> from_scratch         (random init)

Measured evidence may override it, and each override is a sentence citing its numbers:
- pretrained features no better than random ones (pretraining gain within noise) warn of negative
  transfer; with large data that favours from_scratch;
- a clear pretraining gain keeps the pretrained start even when the data is large and different
  (fine-tuning from pretrained weights rarely does worse than scratch when its features help);
- a frozen linear probe that is already well above chance makes feature extraction enough for small,
  different data (calibrated: partial freeze never beat it beyond noise on the benchmark tasks).
Freeze depth follows where the shift is: the leading stages whose BatchNorm statistics still match the
source keep their generic features frozen.
"""

from __future__ import annotations

import math
from statistics import median

from tladvisor.records import BackboneMeasurement, DatasetProfile, Recommendation, StageShift
from tladvisor.advice.similarity import SIMILARITY_THRESHOLD
from tladvisor.measures.shift import SHIFT_AT_HALF_SIMILARITY
from tladvisor.strategies import (ADVISED_STRATEGIES, BUILT_IN_STRATEGIES, FEATURE_EXTRACTION, FROM_SCRATCH,
                                  FULL_FINETUNE, PARTIAL_FREEZE)
from tladvisor.measures import names

SMALL_PER_CLASS = 400  # below this many training images per class the data counts as "small" (docs/benchmarks.md)
GAIN_MARGIN = 0.02  # pretraining gain (linear-probe accuracy, pretrained - random) counted as real
# Chance-corrected frozen linear-probe accuracy at which a frozen backbone is enough for small, different data.
# Calibrated (docs/benchmarks.md): at 15 images per class partial freeze never beat feature extraction beyond
# the seed spread; on noisy digits (probe 0.37-0.40) the advised partial_freeze@1 lost by 13-19 points and
# freezing 4 stages by 3-9. On held-out seeds (probe 0.33-0.35) freezing 4 stages tied feature extraction
# on average. Below a probe of 0.33 untested.
PROBE_ENOUGH = 0.3

# Starting points (AdamW) and epochs: each strategy's own (tladvisor.strategies, where they are calibrated).
LEARNING_RATES = {name: dict(BUILT_IN_STRATEGIES[name].learning_rates) for name in ADVISED_STRATEGIES}
EPOCHS = {name: BUILT_IN_STRATEGIES[name].epochs for name in ADVISED_STRATEGIES}

# The four-scenario rule, the one definition (the report's map draws it too): (small?, similar?) -> strategy.
SCENARIOS = {(True, True): FEATURE_EXTRACTION, (True, False): PARTIAL_FREEZE,
             (False, True): FULL_FINETUNE, (False, False): FROM_SCRATCH}


def scenario_strategy(small: bool, similar: bool) -> str:
    """The four-scenario prior: small & similar -> feature extraction, and so on (module docstring)."""
    return SCENARIOS[(bool(small), bool(similar))]


# The thresholds are read when called, not bound as default arguments when the module loads: a
# counterfactual that patches the module constant (benchmarks/advice/suite.py) must change the pick.
def is_small(samples_per_class: float, small_per_class: float | None = None) -> bool:
    return samples_per_class < (SMALL_PER_CLASS if small_per_class is None else small_per_class)


def is_similar(similarity: float, threshold: float | None = None) -> bool:
    return math.isfinite(similarity) and similarity >= (SIMILARITY_THRESHOLD if threshold is None else threshold)

# How many validation images it takes to tell two strategies apart. A validation accuracy measured on n
# images has the binomial standard error SE = sqrt(p (1 - p) / n), largest at p = 0.5. Two accuracies
# that differ by DELTA are told apart at about 95 % when DELTA >= 1.96 * sqrt(2) * SE (the difference of
# two such estimates), i.e. when n >= 2 * 1.96**2 * p (1 - p) / DELTA**2 = 1.92 / DELTA**2 at p = 0.5.
# For DELTA = 0.10 (ten accuracy points, the size of the strategy gaps in docs/benchmarks.md) that is
# 193 images; fewer, and the tuner's "best" trial may be noise.
DISTINGUISH_ACCURACY_GAP = 0.10
Z_95 = 1.96


def validation_images_needed(gap: float = DISTINGUISH_ACCURACY_GAP, accuracy: float = 0.5) -> int:
    """Validation images needed to tell apart two accuracies ``gap`` apart (see the formula above)."""
    return math.ceil(2 * Z_95 ** 2 * accuracy * (1 - accuracy) / gap ** 2)


def smallest_gap_told_apart(n_val: int, accuracy: float = 0.5) -> float:
    """The accuracy difference a validation set of ``n_val`` images can tell apart (same formula)."""
    return Z_95 * math.sqrt(2 * accuracy * (1 - accuracy) / max(n_val, 1))


def rank_score(m: BackboneMeasurement) -> float:
    """How well a backbone's frozen features fit the task: probes first, LogME to break ties."""
    weights = {names.LINEAR_PROBE_ACCURACY: 0.5, names.KNN_ACCURACY: 0.25, names.LOGME: 0.25}
    found = {k: m.scores[k].normalised for k in weights if k in m.scores and m.scores[k].normalised is not None}
    if not found:
        return m.similarity.value if math.isfinite(m.similarity.value) else 0.0
    return sum(weights[k] * v for k, v in found.items()) / sum(weights[k] for k in found)


def training_samples_per_class(profile: DatasetProfile, val_fraction: float) -> float:
    """Median images per class left for training after the validation split."""
    if profile.train_class_counts:  # counted in the split tuning will use
        return float(median(profile.train_class_counts.values()))
    counts = list(profile.class_counts.values())  # a profile from another plugin: estimate the share
    train, val = profile.split_counts.get("train", 0), profile.split_counts.get("val", 0)
    train_share = train / (train + val) if train + val else 1.0 - val_fraction
    return float(median(counts)) * train_share if counts else 0.0


def _count(x: float) -> str:
    """A count as printed in a reason: whole when it is whole, else one decimal (never rounded across a threshold)."""
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.1f}"


def freeze_depth_from_shift(stage_shift: tuple[StageShift, ...], n_stages: int,
                            stage_names: tuple[str, ...] = ()) -> tuple[int, str]:
    """Freeze the leading stages whose statistics still match the source; at least 1, at most n-1.

    Counted over the backbone's own stages (``stage_names``): a stage without BatchNorm has no measured
    shift, and the run of matching stages stops there, since nothing says it still fits.
    """
    if not stage_shift:
        return max(n_stages // 2, 1), "no BatchNorm statistics to locate the shift, so half the stages"
    shift_of = {s.stage: s.value for s in stage_shift}
    names = stage_names or tuple(s.stage for s in stage_shift)
    matching, first_shifted = 0, None
    for name in names:
        if name not in shift_of or shift_of[name] > SHIFT_AT_HALF_SIMILARITY:
            first_shifted = name
            break
        matching += 1
    depth = min(max(matching, 1), max(n_stages - 1, 1))
    if first_shifted is None:
        where = "no stage shows a large shift"
    elif first_shifted not in shift_of:
        where = f"stage '{first_shifted}' has no BatchNorm statistics to show whether it still fits"
    else:
        where = (f"the shift starts at stage '{first_shifted}' "
                 f"(shift {shift_of[first_shifted]:.2f} > {SHIFT_AT_HALF_SIMILARITY})")
    if matching == 0:
        where += ("; the first stage stays frozen anyway (the minimum): its filters are generic even when "
                  "its input statistics differ, and the stages after it re-normalise")
    return depth, where


def _score(m: BackboneMeasurement, name: str):
    """The named score, or None when absent or without a value (a measure that could not be computed)."""
    score = m.scores.get(name)
    return score if score is not None and math.isfinite(score.value) else None


def recommend(profile: DatasetProfile, measurements: list[BackboneMeasurement],
              val_fraction: float = 0.2) -> Recommendation:
    """Apply the four-scenario prior, then let the measured evidence override it, saying why."""
    ranked = sorted(measurements, key=rank_score, reverse=True)
    best = ranked[0]
    n_stages = best.n_stages or max(len(best.stage_shift), 1)
    per_class = training_samples_per_class(profile, val_fraction)
    small = is_small(per_class)
    similarity = best.similarity.value
    similar = is_similar(similarity)
    reasons: list[str] = []
    warnings: list[str] = []
    overrides = 0

    size_word = "small" if small else "large"
    noun = "text" if getattr(profile, "modality", "image") == "text" else "image"
    reasons.append(f"{best.backbone} ranks first of {len(ranked)} by frozen-feature fit "
                   f"(score {rank_score(best):.2f}" + (f", next {ranked[1].backbone} {rank_score(ranked[1]):.2f}"
                                                        if len(ranked) > 1 else "") + ").")
    reasons.append(f"The data is {size_word}: a median of {_count(per_class)} training {noun}s per class "
                   f"({'<' if small else '>='} {SMALL_PER_CLASS}).")
    if math.isnan(similarity):
        why = best.similarity.detail or "no evidence"
        reasons.append(f"Its similarity to {best.backbone}'s source domain is unknown ({why}); taken as different, "
                       "the cautious side. A --source-sample of data like the backbone's pretraining data measures it.")
    else:
        reasons.append(f"It is {'similar' if similar else 'different'} to {best.backbone}'s source domain: "
                       f"similarity {similarity:.2f} ± {best.similarity.spread or 0:.2f} "
                       f"({'>=' if similar else '<'} {SIMILARITY_THRESHOLD}).")
    strategy = scenario_strategy(small, similar)
    reasons.append(f"The four-scenario rule for {size_word} and {'similar' if similar else 'different'} "
                   f"data gives {strategy}.")

    gain = _score(best, names.PRETRAINING_GAIN)
    probe = _score(best, names.LINEAR_PROBE_ACCURACY)
    gain_real = gain is not None and gain.value > max(GAIN_MARGIN, gain.spread or 0)
    if gain is not None and not gain_real:
        warnings.append(f"Possible negative transfer: pretrained features are no better than random ones "
                        f"(linear-probe gain {gain.value:+.3f} ± {gain.spread or 0:.3f}).")
        if strategy in (FULL_FINETUNE, PARTIAL_FREEZE) and not small:
            strategy, overrides = FROM_SCRATCH, overrides + 1
            reasons.append(f"Override: pretraining shows no measured benefit (gain {gain.value:+.3f}) and "
                           f"the data is large, so training from scratch.")
    if strategy == FROM_SCRATCH and gain_real:
        strategy, overrides = FULL_FINETUNE, overrides + 1
        reasons.append(f"Override: pretrained features beat random ones by {gain.value:+.3f} linear-probe "
                       f"accuracy, so start from the pretrained weights and fine-tune everything instead of "
                       f"training from scratch.")
    if strategy == PARTIAL_FREEZE and probe is not None and (probe.normalised or 0) >= PROBE_ENOUGH:
        strategy, overrides = FEATURE_EXTRACTION, overrides + 1
        reasons.append(f"Override: a linear probe on frozen features already reaches {probe.value:.3f} accuracy "
                       f"({probe.normalised:.3f} chance-corrected, >= {PROBE_ENOUGH}), so feature extraction is enough.")

    if strategy == FEATURE_EXTRACTION:
        freeze_depth = n_stages
        reasons.append(f"Freeze all {n_stages} stages and train a new head.")
    elif strategy == PARTIAL_FREEZE:
        freeze_depth, where = freeze_depth_from_shift(best.stage_shift, n_stages, best.stage_names)
        reasons.append(f"Freeze the first {freeze_depth} of {n_stages} stages: {where}.")
    else:
        freeze_depth = 0

    if probe is not None:
        corrected = (f" ({probe.normalised:.3f} chance-corrected, the scale of the {PROBE_ENOUGH} bar)"
                     if probe.normalised is not None and math.isfinite(probe.normalised) else "")
        reasons.append(f"Frozen features: linear probe {probe.value:.3f} ± {probe.spread or 0:.3f}{corrected}"
                       + (f", pretraining gain {gain.value:+.3f}" if gain is not None else "") + ".")
    distances = [(label, score) for label, score in (("Frechet", _score(best, names.FRECHET_TO_SOURCE)),
                                                     ("MMD²", _score(best, names.MMD_TO_SOURCE))) if score is not None]
    if distances:
        measured = ", ".join(f"{label} {score.value:.4g}"
                             + (f" (normalised {score.normalised:.2f})"
                                if score.normalised is not None and math.isfinite(score.normalised) else "")
                             for label, score in distances)
        role = ("shown as evidence, not averaged into the similarity, whose threshold is calibrated on the "
                "BatchNorm shift" if best.stage_shift else
                f"{best.backbone} has no BatchNorm statistics, so the similarity is {best.similarity.detail}")
        reasons.append(f"Distances to your source sample: {measured}; {role}.")
    rates = dict(LEARNING_RATES[strategy])
    confidence = _confidence(per_class, similarity, best.similarity.spread, overrides)
    n_val = profile.split_counts.get("val")
    needed = validation_images_needed()
    if n_val is not None and n_val < needed:
        confidence = validation_scaled(confidence, n_val)
        warnings.append(f"Validation set too small to tell strategies apart: {n_val} {noun}s resolve only "
                        f"accuracy differences of {smallest_gap_told_apart(n_val):.2f} or more; telling apart "
                        f"{DISTINGUISH_ACCURACY_GAP:.2f} takes about {needed} validation {noun}s "
                        f"(binomial standard error at accuracy 0.5); the confidence is scaled by "
                        f"{math.sqrt(n_val / needed):.2f}.")
    size = {"samples_per_class": per_class, "small_per_class": SMALL_PER_CLASS,
            "similarity": similarity, "similarity_threshold": SIMILARITY_THRESHOLD, "small": small,
            "similar": similar}
    ranking = tuple({"backbone": m.backbone, "score": round(rank_score(m), 4),
                     "similarity": m.similarity.value} for m in ranked)
    return Recommendation(
        backbone=best.backbone, strategy=strategy, freeze_depth=freeze_depth, n_stages=n_stages,
        learning_rates=rates, confidence=confidence, rationale=tuple(reasons), ranking=ranking, size=size,
        warnings=tuple(warnings) + tuple(profile.warnings), epochs=EPOCHS[strategy])


def validation_scaled(confidence: float, n_val: int | None) -> float:
    """A confidence lowered for a validation set too small to tell strategies apart: the standard error grows
    as 1/sqrt(n), so the confidence shrinks by the factor the resolution falls short by."""
    needed = validation_images_needed()
    if n_val is None or n_val >= needed:
        return confidence
    return round(max(confidence * math.sqrt(n_val / needed), 0.05), 3)


def _confidence(per_class: float, similarity: float, spread: float | None, overrides: int) -> float:
    """High when the point lies far from both boundaries of the four-scenario map and evidence agrees."""
    if not math.isfinite(similarity):
        return 0.2
    size_margin = min(abs(math.log(max(per_class, 1) / SMALL_PER_CLASS)) / math.log(4), 1.0)
    similarity_margin = min(abs(similarity - SIMILARITY_THRESHOLD) / 0.25, 1.0)
    confidence = 0.4 + 0.5 * min(size_margin, similarity_margin)
    if spread:
        confidence -= min(spread, 0.2)
    confidence -= 0.1 * overrides
    return round(float(min(max(confidence, 0.05), 0.95)), 3)
