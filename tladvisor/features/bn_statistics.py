"""BatchNorm-input statistics of the target images, compared with each layer's running statistics.

A pretrained network's BatchNorm layers remember the mean and variance of their inputs on the source
data; the same moments on the target images, layer by layer, give a source-free measure of where the
domain shift is (:func:`stage_shifts`). :class:`BatchNormStatistics` gathers them with forward
pre-hooks during the pass that embeds the images (:mod:`tladvisor.features.embed`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tladvisor.backbones import BackboneSpec
from tladvisor.records import StageShift

# Images whose BatchNorm-input statistics give the domain shift (at least). Against every image of 580
# photo crops (Lite0, 64 px; benchmarks/speed/data_path.py prints it), every 2nd image moved the stage
# shifts by 2.5-4.5 %, every 4th by 2.9-7.9 %.
STATISTICS_IMAGES = 256


def _cancelling(mean: torch.Tensor, var: torch.Tensor, ratio: float) -> torch.Tensor:
    """Channels whose squared mean passes ``ratio`` times their variance over the batches (within plus
    between them): there E[x^2] - E[x]^2 in float32 loses the variance. ``mean``, ``var``: (batches, channels)."""
    channel_mean = mean.mean(0)
    channel_var = var.mean(0) + mean.square().mean(0) - channel_mean.square()
    return channel_mean.square() > ratio * channel_var


class _Layer:
    """One layer's statistics: batches not yet merged, and the float64 totals of those merged."""

    def __init__(self, module: nn.BatchNorm2d):
        self.module = module
        # per batch: (sum, sum of squares, count, exact (channels, mean, variance) | None), per
        # channel; on a GPU the sums are None and the exact moments cover every channel
        self.pending: list[tuple] = []
        self.exact_channels: torch.Tensor | None = None  # None until the first batch has been checked
        self.count = 0
        self.mean: torch.Tensor | None = None  # float64, per channel
        self.m2: torch.Tensor | None = None    # sum of squared deviations, float64, per channel


class BatchNormStatistics:
    """Accumulates per-channel mean and variance of every BatchNorm2d input during forward passes.

    On the CPU a hook does seven tensor operations per layer and batch: every ``stride``-th image (a
    view), per image and channel a float32 ``sum`` and ``vector_norm`` over the positions (which allocate
    nothing of the activation's size and run 3.6-4x faster than BatchNorm's own training-mode moments on
    16-32 px maps), and the same over the images. Means, variances and their merge wait for a merge,
    every :data:`MERGE_EVERY` batches and when read, in float64 for all those batches at once: per-batch
    small operations had cost as much as the reductions (``benchmarks/speed/data_path.py``).

    Where the squared mean dwarfs the variance, E[x^2] - E[x]^2 in float32 loses the variance: those
    channels take the exact path (``var_mean``) from the first batch on, found on that batch; a merge
    that finds another such channel sends it down the exact path for the batches after it (the batches
    already seen keep an error of about 1e-7 times the channel's squared mean over its variance).
    On a GPU every channel takes the exact path, which needs no host synchronisation (counts stay
    Python integers; ``all_exact`` chooses either path on any device, the fast one reading its
    cancellation checks on the host).

    ``share`` < 1 keeps every ``stride``-th image of each batch, ``stride = floor(1 / share)`` (a view, no
    copy), so at least that share: a systematic sample spread over the whole pass, and over every part of
    a folder's class order. ``_forward_all`` passes :func:`statistics_share`, at least
    :data:`STATISTICS_IMAGES` images in all. (The leading images of each batch, as before, are a cluster
    sample: at the default batch of 64 their stage shifts moved 7.6-14.4 % from those of every image,
    every second image's 2.5-4.5 %; docs/benchmarks.md.)
    """

    # Where the squared mean passes this many times the variance, E[x^2] - E[x]^2 in float32 has lost
    # about 3 of its 7 significant digits (a relative error near 1e-4): the exact path takes over.
    CANCELLATION_RATIO = 1e3
    MERGE_EVERY = 32

    def __init__(self, model: nn.Module, share: float = 1.0, all_exact: bool | None = None):
        self.stride = statistics_stride(share)
        self.all_exact = all_exact  # None: every channel exact on a GPU, the fast reductions on the CPU
        self.layers: dict[str, _Layer] = {}
        self.handles = []
        for name, module in model.named_modules():
            if isinstance(module, nn.BatchNorm2d) and module.track_running_stats and module.running_mean is not None:
                self.layers[name] = _Layer(module)
                self.handles.append(module.register_forward_pre_hook(self._hook(self.layers[name])))

    def _hook(self, layer: _Layer):
        stride, ratio, all_exact = self.stride, self.CANCELLATION_RATIO, self.all_exact

        def keep(_module, inputs):
            x = inputs[0]
            if stride > 1:  # every stride-th image: a view, spread over the batch and the whole pass
                x = x[::stride]
            rows = x.detach().reshape(x.shape[0], x.shape[1], -1)  # (images, channels, positions)
            if rows.dtype != torch.float32:
                rows = rows.float()
            count = rows.shape[0] * rows.shape[2]
            if all_exact or (all_exact is None and rows.is_cuda):
                var, mean = torch.var_mean(rows, dim=(0, 2), correction=0)
                layer.pending.append((None, None, count, (None, mean, var)))
            else:
                total = rows.sum(2).sum(0)
                # the sum of squares through a norm over the positions (no activation-sized square);
                # a norm over the images, dim 0, would cost 20x a sum (145 us at 1152 channels)
                squares = torch.linalg.vector_norm(rows, dim=2).square_().sum(0)
                if layer.exact_channels is None:  # the first batch decides which channels cancel
                    mean = total / count
                    variance = squares / count - mean.square()
                    layer.exact_channels = _cancelling(mean[None], variance[None], ratio).nonzero().flatten()
                exact = None
                if len(layer.exact_channels):
                    var, mean = torch.var_mean(rows[:, layer.exact_channels], dim=(0, 2), correction=0)
                    exact = (layer.exact_channels, mean, var)
                layer.pending.append((total, squares, count, exact))
            if len(layer.pending) >= self.MERGE_EVERY:
                self._merge(layer)
        return keep

    def _merge(self, layer: _Layer) -> None:
        """Fold the pending batches into the layer's totals (Chan et al.'s pairwise formula, float64)."""
        if not layer.pending:
            return
        counted = [count for _, _, count, _ in layer.pending]  # Python ints: no device round trip
        first = layer.pending[0][0] if layer.pending[0][0] is not None else layer.pending[0][3][1]
        counts = torch.tensor(counted, dtype=torch.float64, device=first.device)
        if layer.pending[0][0] is None:  # exact moments of every channel (a GPU's batches)
            means = torch.stack([exact[1] for *_, exact in layer.pending]).double()
            variances = torch.stack([exact[2] for *_, exact in layer.pending]).double()
        else:
            means = torch.stack([total for total, *_ in layer.pending]).double() / counts[:, None]
            variances = torch.stack([squares for _, squares, *_ in layer.pending]).double() / counts[:, None]
            variances -= means.square()
            for row, (*_, exact) in enumerate(layer.pending):
                if exact is not None:
                    channels, mean, var = exact
                    means[row, channels] = mean.double()
                    variances[row, channels] = var.double()
            # a channel that began to cancel after the first batch: exact for the batches to come
            cancel = _cancelling(means, variances, self.CANCELLATION_RATIO)
            cancel[layer.exact_channels] = False
            if cancel.any():
                layer.exact_channels = torch.cat([layer.exact_channels, cancel.nonzero().flatten()]).sort().values
        layer.pending.clear()
        weights = counts[:, None]
        if layer.mean is not None:  # the totals so far are one more row
            means = torch.cat([layer.mean[None], means])
            variances = torch.cat([(layer.m2 / layer.count)[None], variances])
            weights = torch.cat([weights.new_tensor([[float(layer.count)]]), weights])
        total = layer.count + sum(counted)
        layer.mean = (means * weights).sum(0) / total
        layer.m2 = (variances.clamp(min=0) * weights).sum(0) + (weights * (means - layer.mean).square()).sum(0)
        layer.count = total

    @property
    def sums(self) -> dict[str, tuple[torch.Tensor, torch.Tensor, int]]:
        """Per layer seen: mean, sum of squared deviations and count over every position of every image."""
        result = {}
        for name, layer in self.layers.items():
            self._merge(layer)
            if layer.mean is not None:
                result[name] = (layer.mean, layer.m2, layer.count)
        return result

    def reset(self) -> None:
        """Forget what was gathered (the channels found to need the exact path stay found)."""
        for layer in self.layers.values():
            layer.pending.clear()
            layer.count, layer.mean, layer.m2 = 0, None, None

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def layer_shift(self) -> dict[str, float]:
        """Mean over channels of the symmetric KL divergence between Gaussians N(target) and N(source)."""
        shifts = {}
        for name, (mean, m2, count) in self.sums.items():
            module = self.layers[name].module
            mu_t = mean.cpu().numpy()
            var_t = (m2 / count).cpu().numpy() + module.eps
            mu_s = module.running_mean.detach().double().cpu().numpy()
            var_s = module.running_var.detach().double().cpu().numpy() + module.eps
            shifts[name] = gaussian_shift(mu_t, var_t, mu_s, var_s)
        return shifts


def gaussian_shift(mu_t: np.ndarray, var_t: np.ndarray, mu_s: np.ndarray, var_s: np.ndarray) -> float:
    """Mean over channels of the symmetric KL divergence between per-channel Gaussians N(mu_t, var_t) and
    N(mu_s, var_s): 0 for equal statistics. The one definition of a stage's shift, for every modality."""
    diff2 = (mu_t - mu_s) ** 2
    kl_ts = 0.5 * (np.log(var_s / var_t) + (var_t + diff2) / var_s - 1)
    kl_st = 0.5 * (np.log(var_t / var_s) + (var_s + diff2) / var_t - 1)
    return float(np.mean(0.5 * (kl_ts + kl_st)))


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
    """The share of the images whose BatchNorm statistics are kept: at least STATISTICS_IMAGES in all."""
    return min(1.0, STATISTICS_IMAGES / max(1, n_images))


def statistics_stride(share: float) -> int:
    """Every how many images of a batch :class:`BatchNormStatistics` keeps for ``share``: at least that share."""
    return max(1, int(1.0 / share)) if share > 0 else 1
