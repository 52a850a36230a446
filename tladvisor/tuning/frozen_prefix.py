"""Validation that starts after the frozen stages: their output on the validation images, computed once.

A trial that freezes its leading stages leaves them unchanged while it trains (no gradients, BatchNorm
in eval mode), and validation images are not augmented, so every epoch's validation would compute the
same prefix again. :class:`FrozenPrefix` keeps, per validation batch, the output of the last frozen stage
member to run (captured on the first validation at a depth), and later validations run the model with
the frozen members replaced: the last one returns that output, the others return their input.

That replacement assumes the network after the frozen stages reads nothing but the last frozen member's
output, which holds for networks that chain their stages (ResNets, EfficientNets, MobileNets) and need not
hold elsewhere. So it is checked, not assumed: on the first batch the replaced model must reproduce the
full model's output, or the trial validates in full (as it does when a stage member is a parameter, a
stage still trains, or the outputs would pass :data:`MAX_BYTES`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from tladvisor import device as devices
from tladvisor.backbones import BackboneSpec
from tladvisor.modeling import resolve_member

log = logging.getLogger(__name__)

# The kept outputs' memory, on the device they were computed on (validation images x one stage's map).
MAX_BYTES = 512 * 2**20


class FrozenPrefix:
    """Per-batch outputs of a model's frozen leading stages on one fixed-order validation loader."""

    def __init__(self, model: nn.Module, spec: BackboneSpec, max_bytes: int | None = None):
        self.model, self.spec = model, spec
        self.max_bytes = MAX_BYTES if max_bytes is None else max_bytes
        self.depth = 0
        self.members: list[nn.Module] = []  # the frozen members in the order they ran
        self.outputs: list[torch.Tensor] = []
        self.complete = False  # outputs of every batch kept, and the replaced model checked
        self.unusable: str | None = None  # why this trial validates in full
        self.fingerprint = torch.zeros(0)

    def batches(self, loader: Iterable, depth: int) -> Iterator:
        """``loader``'s batches; the model consuming them (in this iteration) skips the first ``depth``
        stages once their outputs are kept. Call it once per validation pass."""
        if depth <= 0 or self.unusable or not self._eligible(depth):
            yield from loader
            return
        if depth != self.depth or not self.complete or not torch.equal(self._fingerprint(depth), self.fingerprint):
            yield from self._capture(loader, depth)
        else:
            yield from self._replay(loader)

    def _fingerprint(self, depth: int) -> torch.Tensor:
        """A sum per parameter and buffer of the frozen stages: a stage that changed anyway (a running
        statistic updated, a weight decayed) sends the next validation through them again."""
        tensors = [t for m in self._frozen_modules(depth) for t in (*m.parameters(), *m.buffers())]
        return torch.stack([t.detach().double().sum() for t in tensors]).cpu() if tensors else torch.zeros(0)

    def _eligible(self, depth: int) -> bool:
        modules = []
        for stage in self.spec.stages[:depth]:
            for path in stage.members:
                member = resolve_member(self.model, path)
                if not isinstance(member, nn.Module):
                    return self._give_up(f"stage member {path} is a parameter")
                modules.append(member)
        if any(p.requires_grad for m in modules for p in m.parameters()):
            return False  # a stage that trains (gradual unfreezing passes through here): this pass in full
        return True

    def _give_up(self, why: str) -> bool:
        self.unusable, self.outputs, self.complete = why, [], False
        log.debug("validating every epoch in full: %s", why)
        return False

    def _frozen_modules(self, depth: int) -> list[nn.Module]:
        return [resolve_member(self.model, path) for stage in self.spec.stages[:depth] for path in stage.members]

    def _capture(self, loader: Iterable, depth: int) -> Iterator:
        """Run in full, keeping the last frozen member's output per batch; check the replay on batch 0."""
        self.depth, self.outputs, self.complete, order = depth, [], False, []
        self.fingerprint = self._fingerprint(depth)
        latest: dict[str, object] = {}

        def seen(module, _inputs, output):
            if module not in order:
                order.append(module)
            if len(self.outputs) == 0 or module is order[-1]:  # a copy: the network may work on it in place
                latest["output"] = output.detach().clone() if isinstance(output, torch.Tensor) else output
                latest["by"] = module

        def model_output(_module, _inputs, output):
            latest["model"] = output.detach().clone()

        handles = [m.register_forward_hook(seen) for m in self._frozen_modules(depth)]
        handles.append(self.model.register_forward_hook(model_output))
        kept_bytes, first = 0, None
        try:
            for index, batch in enumerate(loader):
                yield batch  # every batch reaches the caller, whatever happens to the capture
                if self.unusable or not handles:
                    continue
                output = latest.get("output")
                if latest.get("by") is not order[-1] or not isinstance(output, torch.Tensor):
                    self._give_up("the frozen stages' last output is not one tensor")
                elif kept_bytes + output.numel() * output.element_size() > self.max_bytes:
                    self._give_up(f"their outputs would pass {self.max_bytes // 2**20} MiB")
                else:
                    kept_bytes += output.numel() * output.element_size()
                    self.outputs.append(output)
                    if index == 0:
                        first = (batch, latest["model"])
                if self.unusable:
                    for handle in handles:
                        handle.remove()
                    handles = []
        finally:
            for handle in handles:
                handle.remove()
        if self.unusable or first is None:
            return
        self.members = order
        self.complete = self._replay_matches(*first)

    def _replay_matches(self, batch, expected: torch.Tensor) -> bool:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        device = expected.device
        try:
            with self._replaced([0]):
                replayed = self.model(devices.prepare_batch(images, device))
        except Exception as error:  # the network between stages did not take the stand-ins
            return self._give_up(f"replaying after the frozen stages failed ({error})")
        if replayed.shape != expected.shape or not torch.allclose(replayed.float(), expected.float(),
                                                                  rtol=1e-4, atol=1e-5):
            return self._give_up("the network reads more than the frozen stages' last output")
        return True

    def _replay(self, loader: Iterable) -> Iterator:
        position = [0]
        with self._replaced(position):
            for index, batch in enumerate(loader):
                position[0] = index
                yield batch

    @contextmanager
    def _replaced(self, position: list[int]):
        """The frozen members return their input, the last one the kept output of batch ``position[0]``."""
        *earlier, last = self.members

        def passthrough(*args, **_kwargs):
            return args[0]

        def kept(*_args, **_kwargs):
            return self.outputs[position[0]].clone()  # the network may work on it in place

        saved = [(m, m.__dict__.get("forward")) for m in self.members]
        for member in earlier:
            member.forward = passthrough
        last.forward = kept
        try:
            yield
        finally:
            for member, original in saved:
                if original is None:
                    del member.forward
                else:
                    member.forward = original

