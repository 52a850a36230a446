"""The learned advice: the shipped gain prior's prediction for a user's run, and the race it proposes (issue #22).

The gain prior (:mod:`tladvisor.advice.prior`) was fitted on the honest grid (benchmarks/grid), where every
config was trained on every task, and chosen out of task there (benchmarks/advice/loto.py). It predicts, for
each *role* (a config every backbone has, whatever its depth), the test-accuracy gain over feature extraction
from the measurements ``analyze`` already made. :func:`advise` turns that into

- the zero-shot pick: the role with the highest predicted gain, as a strategy and freeze depth for this
  backbone (what ``analyze`` recommends when no tuning budget is given);
- the contenders: the roles predicted within the prior's own error (its largest residual) of the best, which
  the prior cannot separate; with ``--trials`` they are the study's first trials, raced on the user's own
  validation set (:mod:`tladvisor.tuning.race`), so nothing is trained twice;
- where the run lies outside what the prior was fitted on (another backbone, resolution or modality), said.

The prior ships as ``gain_prior.json`` beside this module, with its provenance; it is read at run time.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from tladvisor.advice.prior import GainPredictor, fact_vector, load, measurement_facts
from tladvisor.advice.recommend import (EPOCHS, LEARNING_RATES, freeze_depth_from_shift, training_samples_per_class,
                                        validation_scaled)
from tladvisor.records import BackboneMeasurement, DatasetProfile, Recommendation
from tladvisor.strategies import FEATURE_EXTRACTION, FROM_SCRATCH, FULL_FINETUNE, PARTIAL_FREEZE

SHIPPED = Path(__file__).with_name("gain_prior.json")
METHOD = "gain prior + race"
BASELINE = "feature_extraction"
ROLES = (BASELINE, "partial_freeze@top1", "partial_freeze@half", "partial_freeze@shift", "full_finetune",
         "from_scratch")
"""The configs the prior predicts: every backbone has them, whatever its depth (top1: all stages but the last
frozen; half: the first half frozen; shift: the depth the BatchNorm shift picks)."""


def role_config(role: str, n_stages: int, shift_depth: int | None) -> tuple[str, int]:
    """The (strategy, freeze depth) a role trains on a backbone of ``n_stages`` stages; a partial freeze keeps
    at least one stage frozen and one trained. ``shift_depth`` None counts as half."""
    strategy, _, depth = role.partition("@")
    if strategy == FEATURE_EXTRACTION:
        return strategy, n_stages
    if strategy in (FULL_FINETUNE, FROM_SCRATCH):
        return strategy, 0
    if strategy != PARTIAL_FREEZE:
        raise ValueError(f"not a role the prior knows: {role!r}")
    if depth.startswith("top"):
        k = n_stages - int(depth[3:])
    elif depth == "shift" and shift_depth is not None:
        k = shift_depth
    elif depth in ("half", "shift"):
        k = n_stages // 2
    else:
        k = int(depth)
    return strategy, min(max(k, 1), max(n_stages - 1, 1))


def config_label(strategy: str, depth: int) -> str:
    """``partial_freeze@3`` for a partial freeze, the strategy's name otherwise."""
    return f"{strategy}@{depth}" if strategy == PARTIAL_FREEZE else strategy


@dataclass(frozen=True)
class LearnedAdvice:
    """What the gain prior says about one run; :meth:`to_dict` is what analysis.json keeps."""

    gains: dict[str, float]  # role -> predicted test-accuracy gain over feature extraction
    configs: dict[str, tuple[str, int]]  # role -> (strategy, freeze depth) on this backbone
    pick: str  # the role with the highest predicted gain
    contenders: tuple[str, ...]  # roles within the margin of the best, best predicted first, one per config
    margin: float  # the prior's largest training residual (accuracy): gains closer than this are not told apart
    residuals: dict[str, float] = field(default_factory=dict)  # role -> its training residual (accuracy)
    outside: tuple[str, ...] = ()  # how this run differs from the runs the prior was fitted on
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"method": METHOD, "pick": self.pick, "pick_config": config_label(*self.configs[self.pick]),
                "predicted_gain": {r: round(g, 4) for r, g in self.gains.items()},
                "configs": {r: {"strategy": s, "freeze_depth": d, "label": config_label(s, d)}
                            for r, (s, d) in self.configs.items()},
                "contenders": list(self.contenders), "margin": round(self.margin, 4),
                "residuals": {r: round(v, 4) for r, v in self.residuals.items()},
                "outside": list(self.outside), "provenance": self.provenance}


@lru_cache(maxsize=1)
def shipped_prior() -> GainPredictor:
    """The gain prior that ships with tladvisor (read once per process)."""
    return load(SHIPPED)


def outside_domain(predictor: GainPredictor, backbone: str, image_size: int | None, modality: str,
                   stage_names: tuple[str, ...]) -> tuple[str, ...]:
    """Sentences saying how this run differs from the runs the prior was fitted on (empty when it does not)."""
    fitted = predictor.provenance
    notes = []
    if modality != fitted.get("modality", "image"):
        notes.append(f"it was fitted on {fitted.get('modality', 'image')} tasks, and this run is {modality}")
    if fitted.get("backbone") and backbone != fitted["backbone"]:
        known = len(set(stage_names) & set(predictor.stages))
        notes.append(f"it was fitted with {fitted['backbone']}, and this backbone is {backbone}"
                     + ("" if known == len(predictor.stages) else
                        f" (its per-stage shifts count as average: {known} of {len(predictor.stages)} stages match)"))
    size = fitted.get("image_size")
    if size and image_size != size:
        notes.append(f"it was fitted at {size} px, and this run measures at "
                     + (f"{image_size} px" if image_size else "the backbone's native size"))
    return tuple(notes)


def advise(predictor: GainPredictor, measurement: BackboneMeasurement, train_per_class: float, n_classes: int,
           shift_depth: int | None, image_size: int | None = None, modality: str = "image") -> LearnedAdvice:
    """The prior's prediction for the run whose best-ranked backbone measured ``measurement``."""
    n_stages = measurement.n_stages or max(len(measurement.stage_shift), 1)
    row = fact_vector(measurement_facts(measurement), train_per_class, n_classes, predictor.stages)
    predicted = predictor.predict(row)
    gains = {BASELINE: 0.0, **{r: float(predicted[r]) for r in ROLES if r in predicted}}
    configs = {role: role_config(role, n_stages, shift_depth) for role in gains}
    margin = max(predictor.residual_.values(), default=0.0)
    racing = contenders(gains, configs, margin)
    outside = outside_domain(predictor, measurement.backbone, image_size, modality, measurement.stage_names)
    return LearnedAdvice(gains=gains, configs=configs, pick=racing[0], contenders=racing, margin=margin,
                         residuals={r: float(v) for r, v in predictor.residual_.items()}, outside=outside,
                         provenance=dict(predictor.provenance))


def contenders(gains: Mapping[str, float], configs: Mapping[str, Hashable], margin: float) -> tuple[str, ...]:
    """The roles predicted within ``margin`` of the best, best first (the first is the zero-shot pick; ties in
    :data:`ROLES` order); roles that train the same config (``configs``) on this backbone race once."""
    ordered = sorted(gains, key=lambda r: (-gains[r], ROLES.index(r) if r in ROLES else len(ROLES)))
    top, out, seen = gains[ordered[0]], [], set()
    for role in ordered:
        if gains[role] >= top - margin and configs[role] not in seen:
            out.append(role)
            seen.add(configs[role])
    return tuple(out)


def reasons(advice: LearnedAdvice) -> list[str]:
    """The prediction in sentences, with its numbers."""
    fitted = advice.provenance
    where = (f"{len(fitted.get('tasks', []))} tasks of the honest grid ({fitted.get('backbone', '?')}, "
             f"{fitted.get('image_size', '?')} px, seeds {', '.join(map(str, fitted.get('seeds', [])))})")
    listed, shown = [], set()
    for role in sorted(advice.gains, key=lambda r: -advice.gains[r]):  # a config two roles train: listed once
        if advice.configs[role] not in shown:
            shown.add(advice.configs[role])
            listed.append(f"{config_label(*advice.configs[role])} {100 * advice.gains[role]:+.1f}")
    listed = ", ".join(listed)
    lines = [f"The learned prior, fitted on {where}, predicts each config's test-accuracy gain over feature "
             f"extraction (points) from these measurements: {listed}.",
             f"It picks {config_label(*advice.configs[advice.pick])}."]
    if len(advice.contenders) > 1:
        worst = max(advice.residuals, key=advice.residuals.get, default=None)
        others = [v for r, v in advice.residuals.items() if r != worst]
        spread = (f" ({config_label(*advice.configs[worst])}'s; {100 * min(others):.1f}-{100 * max(others):.1f} for the "
                  "others)" if worst in advice.configs and others else "")
        lines.append(f"Its error on the tasks it was fitted on (root mean square) is up to {100 * advice.margin:.1f} "
                     f"points{spread}, so it cannot tell apart the configs within that of the best: "
                     + ", ".join(config_label(*advice.configs[r]) for r in advice.contenders)
                     + f". With --trials {len(advice.contenders)} or more they are the study's first trials, in this "
                     "order, raced on your validation set.")
    if advice.outside:
        lines.append("Take it as a rough guide: " + "; ".join(advice.outside) + ".")
    return lines


def with_learned_prior(textbook: Recommendation, profile: DatasetProfile, measurements: Sequence[BackboneMeasurement],
                       val_fraction: float, image_size: int | None,
                       predictor: GainPredictor | None = None, trials: int = 0) -> Recommendation:
    """The shipped method's advice: the gain prior's zero-shot pick for the backbone the rule ranked first,
    with its contenders for the race (``learned["race"]``), and the four-scenario rule's pick kept beside it as
    the textbook prior (``learned["textbook"]``). A text run keeps the rule: the prior was fitted on images."""
    textbook_pick = {"strategy": textbook.strategy, "freeze_depth": textbook.freeze_depth,
                     "label": config_label(textbook.strategy, textbook.freeze_depth), "confidence": textbook.confidence}
    modality = getattr(profile, "modality", "image")
    if modality != "image":
        note = "the learned prior was fitted on image tasks only; this text run follows the four-scenario rule"
        return replace(textbook, learned={"method": "four-scenario rule", "applied": False, "why": note,
                                          "textbook": textbook_pick})
    try:
        predictor = predictor or shipped_prior()
    except (OSError, ValueError, KeyError, TypeError) as error:  # a broken install: say so, advise by the rule
        note = f"the learned prior could not be read ({type(error).__name__}: {error}); this run follows the rule"
        return replace(textbook, learned={"method": "four-scenario rule", "applied": False, "why": note,
                                          "textbook": textbook_pick},
                       warnings=(*textbook.warnings, f"The learned prior could not be read: {error}."))
    best = next(m for m in measurements if m.backbone == textbook.backbone)
    n_stages = best.n_stages or max(len(best.stage_shift), 1)
    shift_depth = freeze_depth_from_shift(best.stage_shift, n_stages, best.stage_names)[0] if best.stage_shift else None
    advice = advise(predictor, best, training_samples_per_class(profile, val_fraction), profile.n_classes,
                    shift_depth, image_size, modality)
    strategy, depth = advice.configs[advice.pick]
    race = [{"role": r, "strategy": s, "freeze_depth": d, "learning_rates": dict(LEARNING_RATES[s]), "epochs": EPOCHS[s]}
            for r in advice.contenders[1:] for s, d in [advice.configs[r]]]
    rule_label = textbook_pick["label"]
    rationale = (textbook.rationale[0], *reasons(advice),
                 f"Beside it, the textbook four-scenario rule gives {rule_label}"
                 + (" too" if rule_label == config_label(strategy, depth) else "") + ", from these facts:",
                 *textbook.rationale[1:])
    warnings = textbook.warnings
    if 0 < trials < len(advice.contenders):
        warnings = (*warnings, f"--trials {trials} races only the first {trials} of the {len(advice.contenders)} "
                               f"configs the learned prior cannot tell apart; give --trials {len(advice.contenders)} "
                               "or more to race them all.")
    return replace(textbook, strategy=strategy, freeze_depth=depth, learning_rates=dict(LEARNING_RATES[strategy]),
                   epochs=EPOCHS[strategy], rationale=rationale, warnings=warnings,
                   confidence=validation_scaled(confidence(advice), profile.split_counts.get("val")),
                   learned={**advice.to_dict(), "applied": True, "race": race, "textbook": textbook_pick,
                            "trials": trials})


def confidence(advice: LearnedAdvice) -> float:
    """High when the pick's predicted lead over the next config is large against the prior's error; lower
    outside what the prior was fitted on."""
    leads = [advice.gains[advice.pick] - advice.gains[r] for r in advice.gains
             if advice.configs[r] != advice.configs[advice.pick]]
    lead = min(leads, default=advice.margin)
    value = 0.3 + 0.6 * min(max(lead, 0.0) / max(advice.margin, 1e-6), 1.0)
    if advice.outside:
        value *= 0.6
    return round(float(min(max(value, 0.05), 0.95)), 3)


def textbook_config(recommendation: Recommendation) -> tuple[str, int]:
    """The four-scenario rule's (strategy, freeze depth) in a recommendation, whichever method made it."""
    textbook = (recommendation.learned or {}).get("textbook")
    if textbook:
        return textbook["strategy"], int(textbook["freeze_depth"])
    return recommendation.strategy, recommendation.freeze_depth
