"""The built-in search space, and the recommendation expressed as the first trial's parameters.

Optuna requires one distribution per parameter name across a study's trials, so ranges here do not
depend on the trial: ``freeze_depth`` is drawn from one range over all backbones and then clipped to
the chosen backbone's stages; conditional parameters are only drawn where they mean something
(``layer_decay`` is meaningless when no pretrained stage trains) and take their neutral value elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from tladvisor.backbones import BackboneSpec
from tladvisor.records import AnalysisOptions, Recommendation
from tladvisor.strategies import (FREEZE_ALL, FREEZE_CHOSEN, Strategy, registry_or_built_ins, strategies_for,
                                  strategy_named)

LR_HEAD = (1e-4, 1e-1)
LR_BACKBONE = (1e-5, 1e-2)
LAYER_DECAY = (0.5, 1.0)
WEIGHT_DECAY = (1e-6, 1e-2)
DEFAULT_WEIGHT_DECAY = 1e-4  # the recommended trial's: the recommendation does not choose one
EPOCHS_CPU = (3, 12)  # a CPU budget: few epochs per trial, more trials
EPOCHS_CUDA = (5, 30)


def backbone_choices(backbones: Sequence[BackboneSpec]) -> list[str]:
    """Sorted, so the categorical distribution is the same however the list was ordered."""
    return sorted(spec.name for spec in backbones)


def freeze_depth_range(backbones: Sequence[BackboneSpec]) -> tuple[int, int]:
    """Partial freeze keeps at least the first stage frozen and trains at least the last one."""
    deepest = max((spec.n_stages for spec in backbones), default=2)
    return 1, max(1, deepest - 1)


def epoch_range(options: AnalysisOptions, recommendation: Recommendation | None = None) -> tuple[int, int]:
    """Few epochs on a CPU, more on CUDA (chosen by ``options.device``); always covering the recommendation's."""
    on_cuda = options.device.startswith("cuda") or (options.device == "auto" and torch.cuda.is_available())
    low, high = EPOCHS_CUDA if on_cuda else EPOCHS_CPU
    if recommendation is not None:
        low, high = min(low, int(recommendation.epochs)), max(high, int(recommendation.epochs))
    return max(1, low), high


def _plan(strategy: str | Strategy, strategies: Mapping[str, Strategy] | None = None) -> Strategy:
    return strategy if isinstance(strategy, Strategy) else strategy_named(strategy, strategies)


def neutral_params(strategy: str | Strategy, strategies: Mapping[str, Strategy] | None = None) -> dict[str, Any]:
    """Values a strategy's unused parameters take: what the training actually does with them."""
    plan = _plan(strategy, strategies)
    values: dict[str, Any] = {}
    if not plan.trains_backbone:
        values["lr_backbone"] = 0.0  # the backbone never moves
    if not plan.layer_decay:
        values["layer_decay"] = 1.0
    if not plan.gradual_unfreeze:
        values["gradual_unfreeze"] = False
    return values


def resolved_freeze_depth(strategy: str | Strategy, drawn: int | None, spec: BackboneSpec,
                          strategies: Mapping[str, Strategy] | None = None) -> int:
    plan = _plan(strategy, strategies)
    if plan.freeze == FREEZE_ALL:
        return spec.n_stages
    if plan.freeze == FREEZE_CHOSEN:
        return min(max(1, int(drawn if drawn is not None else 1)), max(1, spec.n_stages - 1))
    return 0


def suggest_params(trial, recommendation: Recommendation, backbones: Sequence[BackboneSpec],
                   options: AnalysisOptions, strategies: Mapping[str, Strategy] | None = None) -> dict[str, Any]:
    """One trial's parameters, drawn from ``trial`` (the built-in ``search_space`` hook).

    ``strategies``: the registry to draw from (default: the built-ins), in registration order.
    """
    strategies = strategies_for(registry_or_built_ins(strategies), run_modality(backbones))
    by_name = {spec.name: spec for spec in backbones}
    backbone = trial.suggest_categorical("backbone", backbone_choices(backbones))
    strategy = trial.suggest_categorical("strategy", list(strategies))
    plan = strategies[strategy]
    spec = by_name[backbone]
    params: dict[str, Any] = {"backbone": backbone, "strategy": strategy}

    drawn_depth = None
    if plan.freeze == FREEZE_CHOSEN:
        drawn_depth = trial.suggest_int("freeze_depth", *freeze_depth_range(backbones))
    params["freeze_depth"] = resolved_freeze_depth(plan, drawn_depth, spec)
    params["lr_head"] = trial.suggest_float("lr_head", *LR_HEAD, log=True)
    if plan.trains_backbone:
        params["lr_backbone"] = trial.suggest_float("lr_backbone", *LR_BACKBONE, log=True)
    if plan.layer_decay:
        params["layer_decay"] = trial.suggest_float("layer_decay", *LAYER_DECAY)
    params["weight_decay"] = trial.suggest_float("weight_decay", *WEIGHT_DECAY, log=True)
    params["epochs"] = trial.suggest_int("epochs", *epoch_range(options, recommendation))
    if plan.gradual_unfreeze:
        params["gradual_unfreeze"] = trial.suggest_categorical("gradual_unfreeze", [False, True])
    params.update(neutral_params(plan))
    if plan.draw is not None:
        params.update(plan.draw(trial))
    return params


def run_modality(backbones: Sequence[BackboneSpec]) -> str:
    """The modality of a run's backbones (one run measures one modality): which strategies apply."""
    return backbones[0].modality if backbones else "image"


def _clip(value: float, bounds: tuple[float, float]) -> float:
    # A value outside its distribution would be stored as is and then break the sampler's model of
    # it (a zero learning rate has no logarithm), so the recommendation is held to the same ranges.
    low, high = bounds
    return type(low)(min(max(value, low), high))


def recommendation_params(recommendation: Recommendation, backbones: Sequence[BackboneSpec],
                          strategies: Mapping[str, Strategy] | None = None) -> dict[str, Any]:
    """The recommendation as fixed trial parameters (enqueued as the study's first trial).

    Only parameters the search space will draw for that strategy are fixed, within its ranges; a
    backbone or strategy outside the search space is left to the sampler rather than failing the trial.
    """
    params: dict[str, Any] = {}
    if recommendation.backbone in backbone_choices(backbones):
        params["backbone"] = recommendation.backbone
    strategies = registry_or_built_ins(strategies)
    strategy = recommendation.strategy
    plan = strategies.get(strategy)
    if plan is not None:
        params["strategy"] = strategy
    rates = recommendation.learning_rates
    if plan is not None and plan.freeze == FREEZE_CHOSEN:
        params["freeze_depth"] = int(_clip(recommendation.freeze_depth, freeze_depth_range(backbones)))
    if "head" in rates:
        params["lr_head"] = _clip(rates["head"], LR_HEAD)
    # A strategy outside the registry is left to the sampler, its rates fixed as a backbone-training one's.
    if (plan is None or plan.trains_backbone) and "backbone" in rates:
        params["lr_backbone"] = _clip(rates["backbone"], LR_BACKBONE)
    if plan is not None and plan.layer_decay and "layer_decay" in rates:
        params["layer_decay"] = _clip(rates["layer_decay"], LAYER_DECAY)
    params["weight_decay"] = DEFAULT_WEIGHT_DECAY
    params["epochs"] = int(recommendation.epochs)
    if plan is not None and plan.gradual_unfreeze:
        params["gradual_unfreeze"] = False
    return params
