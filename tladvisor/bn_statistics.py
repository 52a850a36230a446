"""BatchNorm-input statistics of the target images, compared with each layer's running statistics.

A pretrained network's BatchNorm layers remember the mean and variance of their inputs on the source
data; the same moments on the target images, layer by layer, give a source-free measure of where the
domain shift is (:func:`stage_shifts`). :class:`BatchNormStatistics` gathers them with forward
pre-hooks during the pass that embeds the images (:mod:`tladvisor.embed`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from tladvisor.backbones import BackboneSpec
from tladvisor.records import StageShift

# Images whose BatchNorm-input statistics give the domain shift. Against every image of 580 photo crops
# (Lite0, 64 px; benchmarks/bench_data_path.py prints it), 256 moved the stage shifts by up to 5 %.
STATISTICS_IMAGES = 256


def _fast_moments(rows: torch.Tensor, ratio: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per (image, channel) row: mean and variance over the positions from a sum and a norm; the channels
    where that cancels (squared mean above ``ratio`` times the channel's variance over the batch, within
    plus between rows) computed exactly instead."""
    positions = rows.shape[2]
    mean = rows.sum(2) / positions
    var = torch.linalg.vector_norm(rows, dim=2).square() / positions - mean.square()
    # A row variance's float32 error is about 1e-7 of its mean square; what that costs is relative to
    # the channel's whole variance over the batch.
    channel_mean = mean.mean(0)
    channel_var = var.mean(0) + mean.square().mean(0) - channel_mean.square()  # a check, not a result
    cancelled = channel_mean.square() > ratio * channel_var
    if cancelled.any():
        exact_var, exact_mean = torch.var_mean(rows[:, cancelled], dim=2, correction=0)
        mean[:, cancelled], var[:, cancelled] = exact_mean, exact_var
    return mean, var


def _merge(parts: list) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Mean, sum of squared deviations and count of rows ``(means, variances, count per row)``, in float64."""
    means = torch.cat([m.double() for m, _, _ in parts])  # (rows, channels)
    variances = torch.cat([v.double() for _, v, _ in parts])
    counts = torch.cat([torch.full((len(m),), float(n), dtype=torch.float64) for m, _, n in parts])
    counts = counts.to(means.device)[:, None]
    total = counts.sum()
    mean = (means * counts).sum(0) / total
    m2 = (variances * counts).sum(0) + (counts * (means - mean) ** 2).sum(0)
    return mean, m2, int(total.item())


class BatchNormStatistics:
    """Accumulates per-channel mean and variance of every BatchNorm2d input during forward passes.

    On the CPU, per image and channel, the mean and mean square come from two float32 reductions over
    the spatial positions that allocate nothing of the activation's size (BatchNorm's own training-mode
    moments, used before, normalise the whole activation to leave them: 3.6-4x slower on 16-32 px maps
    in a one-thread micro-benchmark, and the hooks cost 40-58 % of a bare forward pass); a channel whose
    mean dwarfs its spread, where E[x^2] - E[x]^2 in float32 loses the variance, is computed exactly.
    On a GPU every channel takes the exact path (``var_mean``), which needs no host synchronisation.
    Rows merge in float64 with Chan et al.'s formula, every :data:`MERGE_EVERY` batches and when read,
    so memory stays bounded however many batches pass.

    ``share`` < 1 keeps the leading ``ceil(share * batch)`` images of each batch (a view, no copy):
    spread over every batch, so over every part of a folder's class order. ``_forward_all`` passes
    :func:`statistics_share`, about :data:`STATISTICS_IMAGES` images in all.
    """

    # Where the squared mean passes this many times the variance, E[x^2] - E[x]^2 in float32 has lost
    # about 3 of its 7 significant digits (a relative error near 1e-4): the exact path takes over.
    CANCELLATION_RATIO = 1e3
    MERGE_EVERY = 32

    def __init__(self, model: nn.Module, share: float = 1.0):
        self.share = share
        # name -> per batch (row means, row variances, positions per row); a merged entry is one row
        self.parts: dict[str, list] = {}
        self.modules: dict[str, nn.BatchNorm2d] = {}
        self.handles = []
        for name, module in model.named_modules():
            if isinstance(module, nn.BatchNorm2d) and module.track_running_stats and module.running_mean is not None:
                self.modules[name] = module
                self.handles.append(module.register_forward_pre_hook(self._hook(name)))

    def _hook(self, name: str):
        def keep(_module, inputs):
            x = inputs[0].detach()
            if self.share < 1.0:  # the leading images of every batch: a view, and every part of the pass
                x = x[:max(1, math.ceil(x.shape[0] * self.share))]
            rows = x.float().reshape(x.shape[0], x.shape[1], -1)  # (images, channels, positions)
            positions = rows.shape[2]
            if rows.is_cuda:
                var, mean = torch.var_mean(rows, dim=2, correction=0)
            else:
                mean, var = _fast_moments(rows, self.CANCELLATION_RATIO)
            parts = self.parts.setdefault(name, [])
            parts.append((mean, var.clamp(min=0), positions))
            if len(parts) >= self.MERGE_EVERY:
                merged_mean, m2, total = _merge(parts)
                parts[:] = [(merged_mean[None], (m2 / total)[None], total)]
        return keep

    @property
    def sums(self) -> dict[str, tuple[torch.Tensor, torch.Tensor, int]]:
        """Per layer: mean, sum of squared deviations and count over every position of every image seen."""
        return {name: _merge(parts) for name, parts in self.parts.items()}

    def reset(self) -> None:
        self.parts.clear()

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()

    def layer_shift(self) -> dict[str, float]:
        """Mean over channels of the symmetric KL divergence between Gaussians N(target) and N(source)."""
        shifts = {}
        for name, (mean, m2, count) in self.sums.items():
            module = self.modules[name]
            mu_t = mean.cpu().numpy()
            var_t = (m2 / count).cpu().numpy() + module.eps
            mu_s = module.running_mean.detach().double().cpu().numpy()
            var_s = module.running_var.detach().double().cpu().numpy() + module.eps
            diff2 = (mu_t - mu_s) ** 2
            kl_ts = 0.5 * (np.log(var_s / var_t) + (var_t + diff2) / var_s - 1)
            kl_st = 0.5 * (np.log(var_t / var_s) + (var_s + diff2) / var_t - 1)
            shifts[name] = float(np.mean(0.5 * (kl_ts + kl_st)))
        return shifts


def stage_shifts(spec: BackboneSpec, layer_shift: dict[str, float]) -> tuple[StageShift, ...]:
    """Average the per-layer shifts over the BatchNorm layers inside each stage."""
    result = []
    for stage in spec.stages:
        values = [v for name, v in layer_shift.items()
                  if any(name == m or name.startswith(m + ".") for m in stage.members)]
        if values:
            result.append(StageShift(stage.name, float(np.mean(values)), len(values)))
    return tuple(result)


def statistics_share(n_images: int) -> float:
    """The share of each batch whose BatchNorm statistics are kept: about STATISTICS_IMAGES images in all."""
    return min(1.0, STATISTICS_IMAGES / max(1, n_images))
