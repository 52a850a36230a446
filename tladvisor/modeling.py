"""Operations on a built backbone: find its stages, freeze, swap the head, read the embedding."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from tladvisor.backbones import BackboneSpec


def resolve_member(model: nn.Module, path: str) -> nn.Module | nn.Parameter:
    """The sub-module or parameter at a dotted ``path`` (``"layer1"``, ``"encoder.pos_embedding"``)."""
    obj: object = model
    for part in path.split("."):
        if isinstance(obj, nn.Module) and part in obj._parameters:
            obj = obj._parameters[part]
        elif isinstance(obj, nn.Module) and part in obj._modules:
            obj = obj._modules[part]
        else:
            raise KeyError(f"'{path}' does not name a module or parameter of the model")
    return obj  # type: ignore[return-value]


def member_parameters(model: nn.Module, paths: tuple[str, ...]) -> Iterator[nn.Parameter]:
    for path in paths:
        member = resolve_member(model, path)
        if isinstance(member, nn.Parameter):
            yield member
        else:
            yield from member.parameters()


def stage_parameters(model: nn.Module, spec: BackboneSpec) -> list[list[nn.Parameter]]:
    """Parameters of each stage, in stage order."""
    return [list(member_parameters(model, stage.members)) for stage in spec.stages]


def head_module(model: nn.Module, spec: BackboneSpec) -> nn.Linear | None:
    if spec.head is None:
        return None
    head = resolve_member(model, spec.head)
    if not isinstance(head, nn.Linear):
        raise TypeError(f"{spec.name}: head '{spec.head}' is {type(head).__name__}, not nn.Linear")
    return head


def replace_head(model: nn.Module, spec: BackboneSpec, n_classes: int) -> nn.Linear:
    """Put a new ``nn.Linear(feature_dim, n_classes)`` where the source head was (or append one)."""
    new_head = nn.Linear(spec.feature_dim, n_classes)
    if spec.head is None:
        raise ValueError(f"{spec.name} has no head to replace; wrap it with an nn.Sequential first")
    parent_path, _, name = spec.head.rpartition(".")
    parent = resolve_member(model, parent_path) if parent_path else model
    setattr(parent, name, new_head)
    return new_head


def freeze_stages(model: nn.Module, spec: BackboneSpec, freeze_depth: int) -> None:
    """Freeze the first ``freeze_depth`` stages (parameters and BatchNorm statistics)."""
    for index, stage in enumerate(spec.stages):
        frozen = index < freeze_depth
        for param in member_parameters(model, stage.members):
            param.requires_grad_(not frozen)
        if frozen:
            for path in stage.members:
                member = resolve_member(model, path)
                if isinstance(member, nn.Module):
                    member.eval()


class EmbeddingReader:
    """Reads the embedding (the input of the source head) and the source logits in one forward pass."""

    def __init__(self, model: nn.Module, spec: BackboneSpec):
        self.model = model
        self.head = head_module(model, spec)
        self._embedding: torch.Tensor | None = None
        self._handle = None
        if self.head is not None:
            self._handle = self.head.register_forward_pre_hook(self._keep_input)

    def _keep_input(self, _module, inputs):
        self._embedding = inputs[0]

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        output = self.model(images)
        if self.head is None:
            return output.flatten(1), None
        embedding, self._embedding = self._embedding, None
        return embedding.flatten(1), output

    def close(self) -> None:
        if self._handle is not None:
            self._handle.remove()
