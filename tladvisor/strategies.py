"""Transfer strategies as records: what each one starts from, what it trains, its rates, its colour.

One :class:`Strategy` per name, collected in one mapping. The built-in ones are :data:`BUILT_IN_STRATEGIES`;
a plugin adds its own through the ``register_strategies(register)`` hook (``PluginHost.strategies()``
returns the whole registry), and the tuner searches, trains and reports every registered strategy.

No torch here: the report and the recommendation read these records too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

FEATURE_EXTRACTION = "feature_extraction"
PARTIAL_FREEZE = "partial_freeze"
FULL_FINETUNE = "full_finetune"
FROM_SCRATCH = "from_scratch"
LP_FT = "lp_ft"

# How many leading stages a strategy keeps frozen (stages counted stem first).
FREEZE_ALL = "all"  # every stage frozen: only the head trains
FREEZE_CHOSEN = "chosen"  # the first ``freeze_depth`` stages, drawn by the search (at least 1, at most n-1)
FREEZE_NONE = "none"  # every stage trains
FREEZE_MODES = (FREEZE_ALL, FREEZE_CHOSEN, FREEZE_NONE)

ParameterFilter = Callable[[str], bool]  # a parameter's qualified name -> does it train?


@dataclass(frozen=True)
class Strategy:
    """One way of transferring a backbone to the target task.

    - ``pretrained``: start from the backbone's pretrained weights (False: random initialisation).
    - ``freeze``: which leading stages stay frozen, one of :data:`FREEZE_MODES`.
    - ``trains``: optional filter on parameter names inside the stages that train (the head always
      trains): BitFit trains only ``name.endswith("bias")``. ``None``: every parameter of those stages.
    - ``learning_rates``: starting AdamW rates ``{head, backbone, layer_decay}`` (the recommendation's,
      and the first trial's when it advises this strategy); ``epochs``: its starting epoch count.
    - ``layer_decay`` / ``gradual_unfreeze``: whether the search draws these for it (they only mean
      something for a strategy that fine-tunes pretrained stages).
    - ``probe_first``: fit the head on frozen features first, then fine-tune from it (LP-FT).
    - ``colour``: its colour in the report's charts (``None``: a neutral grey).
    - ``modalities``: the backbone modalities it applies to (``("text",)``); empty: every one. The search only
      offers a strategy for a run whose backbones it applies to.
    - ``draw``: ``draw(trial) -> dict`` of the strategy's own parameters (LoRA's rank), drawn by the search for
      its trials; their names should start with the strategy's name. They reach ``adapt`` as ``params``.
    - ``adapt``: ``adapt(model, spec, params)`` changes the built model in place before training (inserts
      adapters; the new parameters belong to the stage of the module they sit in). ``merge(model)`` undoes
      the change after training, folding what was learnt into the backbone's own modules, so the kept model
      is the backbone's architecture and ``predict`` loads it like any other.
    """

    name: str
    description: str = ""
    pretrained: bool = True
    freeze: str = FREEZE_NONE
    trains: ParameterFilter | None = field(default=None, compare=False)
    learning_rates: Mapping[str, float] = field(
        default_factory=lambda: {"head": 3e-3, "backbone": 1e-3, "layer_decay": 1.0})
    epochs: int = 8
    layer_decay: bool = False
    gradual_unfreeze: bool = False
    probe_first: bool = False
    colour: str | None = None
    plugin: str = ""
    modalities: tuple[str, ...] = ()
    draw: Callable[[Any], dict[str, Any]] | None = field(default=None, compare=False)
    adapt: Callable[[Any, Any, dict[str, Any]], None] | None = field(default=None, compare=False)
    merge: Callable[[Any], None] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"strategy name {self.name!r}: use letters, digits and '_'")
        if self.freeze not in FREEZE_MODES:
            raise ValueError(f"strategy '{self.name}': freeze must be one of {', '.join(FREEZE_MODES)}, "
                             f"got {self.freeze!r}")
        if self.epochs < 1:
            raise ValueError(f"strategy '{self.name}': epochs must be at least 1, got {self.epochs}")
        if (self.adapt is None) != (self.merge is None):
            raise ValueError(f"strategy '{self.name}': adapt and merge come together (the kept model must be "
                             "the backbone's own architecture)")

    def applies_to(self, modality: str) -> bool:
        return not self.modalities or modality in self.modalities
    @property
    def trains_backbone(self) -> bool:
        """Does any backbone parameter move (else only the head trains)?"""
        return self.freeze != FREEZE_ALL

    @property
    def head_only(self) -> bool:
        """Only a head on frozen features trains: the trial can run on cached features."""
        return self.freeze == FREEZE_ALL and self.pretrained


# Starting points (AdamW); the tuner searches around them. Calibrated on the benchmark suite's budgets
# (3-12 epochs): of head/backbone 1e-3/1e-4 and 3e-3/1e-3, the second trained better in 15 of 16
# calibration runs for partial freeze, full fine-tune and from scratch (1e-3/1e-3 and 3e-3/3e-3);
# feature extraction's 3e-3 beat 9e-3 in 13 of 16 (docs/benchmarks.md).
_BUILT_IN = (
    Strategy(FEATURE_EXTRACTION, "every backbone stage frozen; only a new classification head is trained "
                                 "(on cached features)",
             freeze=FREEZE_ALL, learning_rates={"head": 3e-3, "backbone": 0.0, "layer_decay": 1.0}, epochs=12,
             colour="#3b6fb6"),
    Strategy(PARTIAL_FREEZE, "the first k stages frozen (generic features: weights and BatchNorm statistics), "
                             "the later ones fine-tuned with the head",
             freeze=FREEZE_CHOSEN, learning_rates={"head": 3e-3, "backbone": 1e-3, "layer_decay": 0.8}, epochs=8,
             layer_decay=True, gradual_unfreeze=True, colour="#3a9e6f"),
    Strategy(FULL_FINETUNE, "every stage trained from the pretrained weights, earlier stages at lower learning "
                            "rates (layer-wise decay)",
             learning_rates={"head": 3e-3, "backbone": 1e-3, "layer_decay": 0.7}, epochs=8,
             layer_decay=True, gradual_unfreeze=True, colour="#e8833a"),
    Strategy(FROM_SCRATCH, "the same network from random weights: no transfer at all; everything trains at one "
                           "rate", pretrained=False,
             learning_rates={"head": 3e-3, "backbone": 3e-3, "layer_decay": 1.0}, epochs=12, colour="#c8475b"),
    Strategy(LP_FT, "linear probe, then fine-tune (LP-FT, Kumar et al. 2022): the head is first trained on the "
                    "frozen backbone, then everything is fine-tuned from that head, so a random head does not "
                    "distort the pretrained features early on; tried by the tuner, never the advice itself",
             layer_decay=True, gradual_unfreeze=True, probe_first=True, colour="#8a63b8"),
)
BUILT_IN_STRATEGIES: Mapping[str, Strategy] = MappingProxyType(
    {strategy.name: strategy for strategy in _BUILT_IN})
"""The built-in strategies by name (registered by the built-in tuning plugin)."""

ADVISED_STRATEGIES = (FEATURE_EXTRACTION, PARTIAL_FREEZE, FULL_FINETUNE, FROM_SCRATCH)
"""The four the four-scenario rule chooses from (the recommendation's ``strategy``)."""

NEUTRAL_COLOUR = "#6b7280"


def registry_or_built_ins(registry: Mapping[str, Strategy] | None) -> Mapping[str, Strategy]:
    """The strategies to use: ``registry`` when given (a host's, plugins' included), else the built-ins. The
    one place that decides it for every function taking an optional registry."""
    return BUILT_IN_STRATEGIES if registry is None else registry


def strategy_named(name: str, registry: Mapping[str, Strategy] | None = None) -> Strategy:
    """The strategy called ``name`` in ``registry`` (default: the built-ins); ``ValueError`` naming the known ones."""
    registry = registry_or_built_ins(registry)
    try:
        return registry[name]
    except KeyError:
        raise ValueError(f"unknown strategy '{name}'; expected one of {', '.join(registry)}") from None


def strategy_colours(registry: Mapping[str, Strategy] | None = None) -> dict[str, str]:
    """Name -> report colour of every strategy that has one."""
    registry = registry_or_built_ins(registry)
    return {name: s.colour for name, s in registry.items() if s.colour}


def strategies_for(registry: Mapping[str, Strategy], modality: str) -> dict[str, Strategy]:
    """The strategies of ``registry`` that apply to backbones of ``modality``, in registration order."""
    return {name: s for name, s in registry.items() if s.applies_to(modality)}


def describe_strategies(registry: Mapping[str, Strategy]) -> dict[str, dict]:
    """The registry as analysis.json stores it (``strategies``): what a re-rendered report needs."""
    return {name: {"description": s.description, "pretrained": s.pretrained, "freeze": s.freeze,
                   "colour": s.colour, "plugin": s.plugin} for name, s in registry.items()}
