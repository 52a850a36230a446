"""LoRA (Hu et al., 2022) as a tladvisor strategy: low-rank adapters on an encoder's linear layers.

Each chosen ``nn.Linear`` (weight ``W``, frozen) becomes ``W x + (alpha / r) B A x`` with ``A`` (r x in) drawn
small and random and ``B`` (out x r) zero, so training starts from the pretrained function exactly. Only
``A``, ``B`` and the new classification head train. After training the adapters are folded into ``W``
(``W += (alpha / r) B A``) and the layers become plain ``nn.Linear`` again: the kept model has the backbone's
own architecture, so ``predict`` loads it like any other. Rank and target layers are tuned parameters.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tladvisor.modeling import resolve_member
from tladvisor.strategies import FREEZE_NONE, Strategy

RANKS = (4, 8, 16)
ALPHA_PER_RANK = 2.0  # alpha = 2 r: the update's scale alpha / r is 2 at every rank
# Which linear layers get adapters, by the end of their name inside a transformer layer: BERT's naming
# (RoBERTa and CamemBERT share it), and DistilBERT's.
BERT_TARGETS = {
    "qv": ("attention.self.query", "attention.self.value"),  # the LoRA paper's choice
    "all": ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
            "intermediate.dense", "output.dense"),
}
DISTILBERT_TARGETS = {
    "qv": ("attention.q_lin", "attention.v_lin"),
    "all": ("attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin", "ffn.lin1", "ffn.lin2"),
}
TARGETS = BERT_TARGETS  # the choices the search draws from (the same names for every layout)
PREFIX = "lora_"  # the strategy's own parameters, and the adapters' parameter names


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.base = base
        self.scale = alpha / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, device=base.weight.device))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, device=base.weight.device))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))  # as nn.Linear initialises its weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_a.t() @ self.lora_b.t()) * self.scale

    def merged(self) -> nn.Linear:
        with torch.no_grad():
            self.base.weight += (self.lora_b @ self.lora_a) * self.scale
        return self.base


def _targets(model: nn.Module, spec, which: str) -> list[str]:
    layout = DISTILBERT_TARGETS if any(".transformer.layer." in n for n, _ in model.named_modules()) else BERT_TARGETS
    endings = layout[which]
    inside = tuple(member for stage in spec.stages[1:] for member in stage.members)  # the layers, not embeddings
    return [name for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and name.startswith(inside) and name.endswith(endings)]


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(resolve_member(model, parent) if parent else model, child, module)


def adapt(model: nn.Module, spec, params: dict) -> None:
    rank = int(params.get(f"{PREFIX}rank", 8))
    targets = _targets(model, spec, params.get(f"{PREFIX}targets", "qv"))
    if not targets:  # else every backbone weight stays frozen and "lora" would be feature extraction in disguise
        raise ValueError(f"{spec.name}: no linear layer named as LoRA's targets; its layers are not BERT- or "
                         "DistilBERT-style")
    for name in targets:
        _set(model, name, LoRALinear(resolve_member(model, name), rank, ALPHA_PER_RANK * rank))


def merge(model: nn.Module) -> None:
    for name, module in list(model.named_modules()):
        if isinstance(module, LoRALinear):
            _set(model, name, module.merged())


def draw(trial) -> dict:
    return {f"{PREFIX}rank": trial.suggest_categorical(f"{PREFIX}rank", list(RANKS)),
            f"{PREFIX}targets": trial.suggest_categorical(f"{PREFIX}targets", list(TARGETS))}


LORA = Strategy(
    "lora", "low-rank adapters (LoRA, Hu et al. 2022) on the attention (and feed-forward) layers: the encoder's "
            "weights stay as they are, rank-r updates and the head train, then the updates are folded in",
    freeze=FREEZE_NONE, trains=lambda name: PREFIX in name.rpartition(".")[2],
    learning_rates={"head": 3e-3, "backbone": 1e-3, "layer_decay": 1.0}, epochs=8, colour="#b8860b",
    modalities=("text",), draw=draw, adapt=adapt, merge=merge)
