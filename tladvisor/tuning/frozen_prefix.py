"""Validation that starts after the frozen stages: their output on the validation images, computed once.

A trial that freezes its leading stages leaves them unchanged while it trains (no gradients, BatchNorm
in eval mode), and validation images are not augmented, so every epoch's validation would compute the
same prefix again. :class:`FrozenPrefix` keeps, per validation batch, the output of the last frozen stage
member to run (captured on the first validation at a depth), and later validations run the model with
the frozen members stood in for: the last one returns that output, the others return their input.

That assumes the network after the frozen stages reads nothing but the last frozen member's output,
which holds for networks that chain their stages (ResNets, EfficientNets, MobileNets, ConvNeXt) and need
not hold elsewhere. So it is checked, not assumed, at every validation that would replay: the leading
images of the first batch go through the whole network and through the stood-in one, and the outputs
must agree, or that validation runs in full (so a path that only starts to matter as the trainable
part learns is caught when it does). A stage member that is a parameter, a stage that still trains, a
frozen stage that changed anyway, a shuffled or augmented loader, batches that differ from those kept,
or outputs past :data:`MAX_BYTES` mean a full validation too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import torch
from torch import nn

from tladvisor.runtime import device as devices
from tladvisor.backbones import BackboneSpec
from tladvisor.modeling import resolve_member

log = logging.getLogger(__name__)

# The kept outputs' memory (validation images x one stage's map), in host memory: on a GPU it would
# take room the training had before.
MAX_BYTES = 512 * 2**20
CHECK_IMAGES = 2  # leading images of the first batch that check the stand-ins at every replay


class FrozenPrefix:
    """Per-batch outputs of a model's frozen leading stages on one fixed-order validation loader."""

    def __init__(self, model: nn.Module, spec: BackboneSpec, max_bytes: int | None = None):
        self.model, self.spec = model, spec
        self.max_bytes = MAX_BYTES if max_bytes is None else max_bytes
        self.depth = 0
        self.members: list[nn.Module] = []  # the frozen members in the order they ran
        self.outputs: list[torch.Tensor] = []  # per batch, on the CPU
        self.complete = False  # outputs of every batch kept
        self.unusable: str | None = None  # why this trial validates in full
        self.fingerprint = torch.zeros(0)
        self.replays = 0  # validations that ran after the frozen stages
        self._saved: list[tuple[nn.Module, object]] = []  # members stood in for, and their own forward

    def batches(self, loader: Iterable, depth: int) -> Iterator:
        """``loader``'s batches, every one of them, in order; the model consuming them (in this
        iteration, in eval mode) skips the first ``depth`` stages where their kept output allows."""
        if depth <= 0 or self.unusable or not self._eligible(loader, depth):
            yield from loader
            return
        if depth != self.depth or not self.complete or not torch.equal(self._fingerprint(depth), self.fingerprint):
            yield from self._capture(loader, depth)
        else:
            yield from self._replay(loader)

    # --- when it applies ---------------------------------------------------------------------------------

    def _eligible(self, loader: Iterable, depth: int) -> bool:
        if getattr(loader, "shuffle", False) or getattr(loader, "augment", False) or \
                isinstance(getattr(loader, "sampler", None), torch.utils.data.RandomSampler):
            return False  # another order or other pixels each pass: nothing kept could match
        for stage in self.spec.stages[:depth]:
            for path in stage.members:
                if not isinstance(resolve_member(self.model, path), nn.Module):
                    return self._give_up(f"stage member {path} is a parameter")
        if any(p.requires_grad for m in self._frozen_modules(depth) for p in m.parameters()):
            return False  # a stage that trains (gradual unfreezing passes through here): this pass in full
        return True

    def _give_up(self, why: str) -> bool:
        self.unusable, self.outputs, self.complete = why, [], False
        log.debug("validating every epoch in full: %s", why)
        return False

    def _frozen_modules(self, depth: int) -> list[nn.Module]:
        return [resolve_member(self.model, path) for stage in self.spec.stages[:depth] for path in stage.members]

    def _fingerprint(self, depth: int) -> torch.Tensor:
        """A sum per parameter and buffer of the frozen stages: a stage that changed anyway (a running
        statistic updated, a weight decayed) sends the next validation through them again."""
        tensors = [t for m in self._frozen_modules(depth) for t in (*m.parameters(), *m.buffers())]
        return torch.stack([t.detach().double().sum() for t in tensors]).cpu() if tensors else torch.zeros(0)

    # --- the first validation at a depth: run in full, keep --------------------------------------------------

    def _capture(self, loader: Iterable, depth: int) -> Iterator:
        """Every batch in full, keeping the last frozen member's output per batch; then check the stand-ins."""
        self.depth, self.outputs, self.complete, order = depth, [], False, []
        self.fingerprint = self._fingerprint(depth)
        latest: dict[str, object] = {}

        def seen(module, _inputs, output):
            if module not in order:
                order.append(module)
            if not self.outputs or module is order[-1]:  # a host copy: the network may work on it in place
                latest["output"] = output.detach().to("cpu", copy=True) if isinstance(output, torch.Tensor) else output
                latest["by"] = module

        handles = [m.register_forward_hook(seen) for m in self._frozen_modules(depth)]
        kept_bytes, first = 0, None
        try:
            for batch in loader:
                yield batch  # every batch reaches the caller, whatever happens to the capture
                if not handles:
                    continue
                output = latest.get("output")
                if not order or latest.get("by") is not order[-1] or not isinstance(output, torch.Tensor):
                    self._give_up("the frozen stages' last output is not one tensor each batch")
                elif kept_bytes + output.numel() * output.element_size() > self.max_bytes:
                    self._give_up(f"their outputs would pass {self.max_bytes // 2**20} MiB")
                else:
                    kept_bytes += output.numel() * output.element_size()
                    self.outputs.append(output)
                    first = first if first is not None else batch
                latest.clear()
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
        self.complete = self._stand_ins_match(first)

    # --- later validations: run after the frozen stages --------------------------------------------------------

    def _replay(self, loader: Iterable) -> Iterator:
        iterator = iter(loader)
        first = next(iterator, None)
        if first is None:
            return
        if not self._stand_ins_match(first):
            yield first
            yield from iterator
            return
        self.replays += 1
        position = [0]
        self._install(position)
        try:
            for index, batch in enumerate(_chain(first, iterator)):
                if index >= len(self.outputs) or len(_images(batch)) != len(self.outputs[index]):
                    self._remove()  # not the batches kept: this one and the rest in full, and keep again next time
                    self.complete = False
                    yield batch
                    yield from iterator
                    return
                position[0] = index
                yield batch
            if index + 1 != len(self.outputs):
                self.complete = False  # fewer batches than kept: keep again next time
        finally:
            self._remove()

    def _stand_ins_match(self, batch) -> bool:
        """The leading images of ``batch`` (the first kept) through the whole network and the stood-in one."""
        images = _images(batch)[:CHECK_IMAGES]
        device = next(self.model.parameters()).device
        with torch.inference_mode(), devices.autocast(device):
            expected = self.model(devices.prepare_batch(images, device))
            self._install([0])
            try:
                replayed = self.model(devices.prepare_batch(images, device))
            except Exception as error:  # the network between stages did not take the stand-ins
                return self._give_up(f"replaying after the frozen stages failed ({error})")
            finally:
                self._remove()
        # Half precision (autocast on a GPU) keeps about 3 significant digits.
        rtol, atol = (1e-2, 1e-2) if expected.dtype in (torch.float16, torch.bfloat16) else (1e-4, 1e-5)
        if replayed.shape != expected.shape or not torch.allclose(replayed.float(), expected.float(),
                                                                  rtol=rtol, atol=atol):
            return self._give_up("the network reads more than the frozen stages' last output")
        return True

    def _install(self, position: list[int]) -> None:
        """The frozen members return their input, the last one the kept output of batch ``position[0]``."""
        *earlier, last = self.members
        self._saved = [(m, m.__dict__.get("forward")) for m in self.members]

        def passthrough(*args, **kwargs):
            # a copy: the caller's images must not meet the network's in-place operations (ReLU(inplace));
            # a module called with keywords only (a transformer's embeddings: input_ids=...) passes the first
            first = _first_tensor(args, kwargs)
            return first.clone() if first is not None else (args[0] if args else None)

        def kept(*args, **kwargs):
            output = self.outputs[position[0]]
            first = _first_tensor(args, kwargs)
            rows = first.shape[0] if first is not None and first.dim() else len(output)
            device = first.device if first is not None else output.device
            return output[:rows].to(device, copy=True)  # a copy: the network may work on it in place

        for member in earlier:
            member.forward = passthrough
        last.forward = kept

    def _remove(self) -> None:
        for member, original in self._saved:
            if original is None:
                member.__dict__.pop("forward", None)
            else:
                member.forward = original
        self._saved = []


def _first_tensor(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The first tensor a module was called with, positional or keyword."""
    return next((v for v in (*args, *kwargs.values()) if isinstance(v, torch.Tensor)), None)


def _images(batch) -> torch.Tensor:
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def _chain(first, rest: Iterator) -> Iterator:
    yield first
    yield from rest
