"""What a transfer strategy trains, applied to a network: frozen stages, trainable parameters, and each
parameter group's learning rate.

The strategies themselves are records (:class:`tladvisor.strategies.Strategy`, stages counted stem first,
as in :class:`tladvisor.backbones.BackboneSpec`): the built-ins are feature extraction, partial freeze,
full fine-tune, from scratch and LP-FT; plugins add theirs with ``register_strategies``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from torch import nn

from tladvisor.backbones import BackboneSpec
from tladvisor.modeling import freeze_stages, head_module, member_parameters, replace_head, resolve_member
from tladvisor.strategies import FREEZE_ALL, FREEZE_CHOSEN, Strategy, strategy_named



@dataclass(frozen=True)
class TrialConfig:
    """Everything one training run needs to know; built from a trial's parameters."""

    backbone: str
    strategy: str
    freeze_depth: int = 0  # leading stages kept frozen (partial_freeze); derived for the others
    lr_head: float = 1e-2
    lr_backbone: float = 1e-4
    layer_decay: float = 0.8
    weight_decay: float = 1e-4
    epochs: int = 5
    gradual_unfreeze: bool = False  # fine-tune strategies: unfreeze one more stage from the top per epoch
    batch_size: int = 32
    label_smoothing: float = 0.1
    patience: int = 3  # epochs without a better validation accuracy before stopping
    warmup_fraction: float = 0.1  # share of the optimiser steps spent on the linear warm-up
    image_size: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # the strategy's own drawn parameters
    # The strategy's record: looked up among the built-ins when not given (``from_params(strategies=...)``).
    plan: Strategy | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.plan is None or self.plan.name != self.strategy:  # e.g. replace(config, strategy=...)
            object.__setattr__(self, "plan", strategy_named(self.strategy))
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")

    @classmethod
    def from_params(cls, params: dict[str, Any], *, strategies: Mapping[str, Strategy] | None = None,
                    **settings: Any) -> TrialConfig:
        """Keep the known keys of a search-space dict (plugins may add their own); ``settings`` win.

        ``strategies``: the registry the strategy's name is looked up in (default: the built-ins).
        """
        known = {f.name for f in fields(cls)} - {"plan", "extra"}
        values = {k: v for k, v in params.items() if k in known}
        values.update(settings)
        if "strategy" in values:
            values["plan"] = strategy_named(values["strategy"], strategies)
            # the strategy's own parameters (LoRA's rank): named after it, as Strategy.draw says
            values.setdefault("extra", {k: v for k, v in params.items() if k.startswith(f"{values['strategy']}_")})
        return cls(**values)


def frozen_depth(strategy: str | Strategy, freeze_depth: int, n_stages: int) -> int:
    """How many leading stages a strategy keeps frozen while training the network."""
    plan = strategy if isinstance(strategy, Strategy) else strategy_named(strategy)
    if plan.freeze == FREEZE_ALL:
        return n_stages
    if plan.freeze == FREEZE_CHOSEN:
        return max(0, min(int(freeze_depth), n_stages))
    return 0


def build_model(spec: BackboneSpec, config: TrialConfig, n_classes: int) -> nn.Module:
    """The backbone (pretrained unless the strategy starts from scratch) with a new head, its leading stages
    frozen, and in the stages that train only the parameters the strategy trains."""
    model = spec.build(config.plan.pretrained)
    replace_head(model, spec, n_classes)
    if config.plan.adapt is not None:
        config.plan.adapt(model, spec, config.extra)
    freeze_stages(model, spec, frozen_depth(config.plan, config.freeze_depth, spec.n_stages))
    if config.plan.trains is not None:
        kept = trainable(model, spec, config.plan)
        head = head_module(model, spec)
        head_ids = {id(p) for p in head.parameters()} if head is not None else set()
        for param in model.parameters():
            if id(param) not in kept and id(param) not in head_ids:
                param.requires_grad_(False)
    return model


def trainable(model: nn.Module, spec: BackboneSpec, plan: Strategy) -> set[int]:
    """``id`` of every backbone parameter the strategy's ``trains`` filter keeps (all of them without one)."""
    head = head_module(model, spec)
    head_ids = {id(p) for p in head.parameters()} if head is not None else set()
    return {id(p) for name, p in model.named_parameters()
            if id(p) not in head_ids and (plan.trains is None or plan.trains(name))}


def stage_learning_rates(spec: BackboneSpec, config: TrialConfig) -> list[float]:
    """Learning rate of each stage, stem first: ``lr_backbone * layer_decay**i``, i counted from the top.

    Layers near the stem hold generic features worth keeping, so they move least. From scratch there
    is nothing to keep: one rate for all.
    """
    n = spec.n_stages
    decay = config.layer_decay if config.plan.pretrained else 1.0
    return [config.lr_backbone * decay ** (n - 1 - index) for index in range(n)]


def parameter_groups(model: nn.Module, spec: BackboneSpec, config: TrialConfig,
                     head_lr: float | None = None) -> list[dict[str, Any]]:
    """AdamW parameter groups: the head, then each non-frozen stage, split by whether weight decay applies.

    Frozen stages are left out. Biases and normalisation parameters (1-D) get no weight decay:
    shrinking them towards zero only shifts activations. Parameters owned by no stage and not the
    head (a spec that forgot one) train at ``lr_backbone`` rather than silently staying put.
    """
    frozen = frozen_depth(config.plan, config.freeze_depth, spec.n_stages)
    head = head_module(model, spec)
    kept = trainable(model, spec, config.plan) if config.plan.trains is not None else None
    named: list[tuple[str, float, list[nn.Parameter]]] = []
    if head is not None:
        named.append(("head", config.lr_head if head_lr is None else head_lr, list(head.parameters())))
    rates = stage_learning_rates(spec, config)
    for index, stage in enumerate(spec.stages):
        if index >= frozen:
            named.append((stage.name, rates[index], list(member_parameters(model, stage.members))))
    owned = {id(p) for stage in spec.stages for p in member_parameters(model, stage.members)}
    owned |= {id(p) for p in (head.parameters() if head is not None else ())}
    orphans = [p for p in model.parameters() if id(p) not in owned]
    if orphans:
        named.append(("unassigned", config.lr_backbone, orphans))

    groups = []
    for name, lr, params in named:
        if kept is not None and name != "head":  # a parameter filter (BitFit): the rest stays as it is
            params = [p for p in params if id(p) in kept]
        decayed = [p for p in params if p.ndim > 1]
        plain = [p for p in params if p.ndim <= 1]
        if decayed:
            groups.append({"name": name, "params": decayed, "lr": lr, "weight_decay": config.weight_decay})
        if plain:
            groups.append({"name": f"{name}/no_decay", "params": plain, "lr": lr, "weight_decay": 0.0})
    return groups


def set_stage_trainable(model: nn.Module, spec: BackboneSpec, index: int, trains: bool,
                        kept: set[int] | None = None) -> None:
    """Stage ``index`` trains or not; with ``kept`` (see :func:`trainable`) only those parameters train."""
    for param in member_parameters(model, spec.stages[index].members):
        param.requires_grad_(trains and (kept is None or id(param) in kept))


def train_mode(model: nn.Module, spec: BackboneSpec, n_frozen_or_waiting: int) -> None:
    """``model.train()``, but stages not trained now keep their BatchNorm statistics (eval mode).

    ``model.train()`` would otherwise switch a frozen stage's BatchNorm back to updating running
    statistics from the target batches, changing the "frozen" features under the head.
    """
    model.train()
    for stage in spec.stages[:n_frozen_or_waiting]:
        for path in stage.members:
            member = resolve_member(model, path)
            if isinstance(member, nn.Module):
                member.eval()


def gradual_unfreeze_depth(epoch: int, frozen: int, n_stages: int) -> int:
    """Leading stages still frozen at ``epoch`` (0-based) under gradual unfreezing (ULMFiT).

    Epoch 0 trains the head (and no stage); each later epoch unfreezes one more stage from the top,
    never going below the strategy's own frozen depth.
    """
    return max(frozen, n_stages - epoch)
