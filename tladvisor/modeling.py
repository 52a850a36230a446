"""Operations on a built backbone: find its stages, freeze, swap the head, read the embedding."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import torch
from torch import nn

from tladvisor.runtime import device as devices
from tladvisor.backbones import BackboneSpec

RECALIBRATION_IMAGES = 256  # images that re-estimate BatchNorm statistics (recalibrate_batchnorm)


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
        self.source_head = spec.source_classes is not None  # a placeholder head gives no source logits
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
        return embedding.flatten(1), output if self.source_head else None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.remove()


def recalibrate_batchnorm(model: nn.Module, loader: Iterable, device: torch.device,
                          max_images: int = RECALIBRATION_IMAGES, norms: Sequence[nn.Module] | None = None) -> int:
    """Re-estimate BatchNorm running statistics from the first ``max_images`` images of ``loader``.

    Whole batches are used, so the count can pass ``max_images`` by less than a batch; every image
    weighs the same. ``norms`` are the layers to re-estimate (every BatchNorm when None); the others
    keep theirs and normalise with them meanwhile. An empty loader, or an interruption, leaves the
    statistics as they were. Returns the number of images used. Two uses:

    - a freshly initialised network keeps statistics of 0 and 1, which in eval mode leave activations
      unnormalised; with some standard initialisations (He over fan_out with depthwise convolutions:
      torchvision's efficientnet_b0 and mobilenet_v3_large) they shrink to ~1e-14 and every image gets
      the same embedding, so the random-features baseline needs statistics of the data it embeds;
    - after a short fine-tune, layers with TF-style momentum 0.01 still hold mostly their old
      statistics (1 - 0.99^24 = 21% moved after 24 steps): evaluating with them scored a network
      trained from scratch at chance (17% on 6 classes) that scored 46% with re-estimated ones.
      Re-estimating before each evaluation is "precise BN" (Wu & Johnson, 2021).
    """
    if norms is None:
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    norms = [m for m in norms if m.track_running_stats]
    if not norms:
        return 0
    model.eval()
    momenta = [m.momentum for m in norms]
    kept = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in norms]
    for norm in norms:
        norm.train()
    seen = 0
    try:
        with torch.no_grad(), devices.autocast(device):
            for images, _labels in loader:
                if len(images) < 2 and seen:  # one image: variance over its pixels only (undefined at 1x1)
                    break
                for norm in norms:  # each image weighs the same, a short last batch included
                    norm.momentum = len(images) / (seen + len(images))
                model(devices.prepare_batch(images, device))
                seen += len(images)
                if seen >= max_images:
                    break
    except BaseException:
        seen = 0  # interrupted: put the old statistics back rather than leave half-estimated ones
        raise
    finally:
        for norm, momentum, (mean, var, count) in zip(norms, momenta, kept):
            norm.momentum = momentum
            if not seen:  # nothing to estimate from (an empty loader), or interrupted
                norm.running_mean.copy_(mean)
                norm.running_var.copy_(var)
                norm.num_batches_tracked.copy_(count)
        model.eval()
    return seen
