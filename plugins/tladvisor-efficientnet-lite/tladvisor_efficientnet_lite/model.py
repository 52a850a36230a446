"""EfficientNet-Lite0/1/2, written so module names match the lukemelas-style state_dict keys.

One architecture, scaled by width and depth as in TF's ``efficientnet_lite_builder``: channels are
multiplied by the width coefficient and rounded to a multiple of 8 (never more than 10% down), repeats
are multiplied by the depth coefficient and rounded up, except that Lite keeps the stem (32), the head
(1280) and the repeats of the first and last block groups unscaled.

Lite differs from EfficientNet-B0 in ways that matter for loading TF-trained weights:
no squeeze-excitation, ReLU6 instead of swish, stem (32) and head (1280) not scaled, and TensorFlow
"same" padding, which pads more on the bottom/right when the total is odd. The padding is computed
from the actual input in ``forward``, so the network runs at any input size (64, 96, 128, 224...).
BatchNorm uses TF's eps 1e-3 and momentum 0.99 (PyTorch momentum 0.01).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TF decay 0.99 == PyTorch momentum 0.01
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
N_CLASSES = 1000


@dataclass(frozen=True)
class BlockGroup:
    """One row of the EfficientNet-B0 block table (Lite0 uses it unscaled; Lite1/2 scale it)."""

    repeats: int
    kernel: int
    stride: int
    expand_ratio: int
    out_channels: int


B0_BLOCK_GROUPS: tuple[BlockGroup, ...] = (
    BlockGroup(1, 3, 1, 1, 16),
    BlockGroup(2, 3, 2, 6, 24),
    BlockGroup(2, 5, 2, 6, 40),
    BlockGroup(3, 3, 2, 6, 80),
    BlockGroup(3, 5, 1, 6, 112),
    BlockGroup(4, 5, 2, 6, 192),
    BlockGroup(1, 3, 1, 6, 320),
)


CHANNEL_DIVISOR = 8


def round_channels(channels: int, width: float, divisor: int = CHANNEL_DIVISOR) -> int:
    """TF's round_filters: scale, round to the nearest multiple of ``divisor``, never below 90%."""
    if width == 1.0:
        return channels
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def round_repeats(repeats: int, depth: float) -> int:
    """TF's round_repeats: scale and round up."""
    return int(math.ceil(depth * repeats))


def scaled_block_groups(width: float, depth: float,
                        groups: tuple[BlockGroup, ...] = B0_BLOCK_GROUPS) -> tuple[BlockGroup, ...]:
    """The B0 table scaled for one Lite variant; the first and last groups keep their repeats (Lite)."""
    last = len(groups) - 1
    return tuple(
        replace(group,
                repeats=group.repeats if index in (0, last) else round_repeats(group.repeats, depth),
                out_channels=round_channels(group.out_channels, width))
        for index, group in enumerate(groups))


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow 'SAME' padding along one axis: (before, after), the extra pixel after."""
    effective_kernel = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + effective_kernel - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TF 'SAME' padding computed from each input's height and width."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, bias: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0,
                         groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        top, bottom = same_padding(height, self.kernel_size[0], self.stride[0], self.dilation[0])
        left, right = same_padding(width, self.kernel_size[1], self.stride[1], self.dilation[1])
        if top == bottom and left == right:  # symmetric (odd kernels at stride 1, some stride-2 sizes): no copy
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), self.dilation, self.groups)
        x = F.pad(x, (left, right, top, bottom))  # TF's extra pixel bottom/right: a padded copy
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


def drop_connect(x: torch.Tensor, drop_rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth on the residual branch: drop whole samples, rescale the survivors."""
    if not training or drop_rate <= 0.0:
        return x
    keep = 1.0 - drop_rate
    mask = torch.empty((x.shape[0], 1, 1, 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * mask / keep


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand (when ratio > 1), depthwise kxk, 1x1 project; no SE in Lite."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expand_ratio: int,
                 drop_connect_rate: float = 0.0):
        super().__init__()
        hidden = in_channels * expand_ratio
        if expand_ratio != 1:
            self._expand_conv = Conv2dSame(in_channels, hidden, 1)
            self._bn0 = batch_norm(hidden)
        self._depthwise_conv = Conv2dSame(hidden, hidden, kernel, stride=stride, groups=hidden)
        self._bn1 = batch_norm(hidden)
        self._project_conv = Conv2dSame(hidden, out_channels, 1)
        self._bn2 = batch_norm(out_channels)
        self.has_residual = stride == 1 and in_channels == out_channels
        self.drop_connect_rate = drop_connect_rate

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if hasattr(self, "_expand_conv"):
            x = F.relu6(self._bn0(self._expand_conv(x)))
        x = F.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        if self.has_residual:
            x = drop_connect(x, self.drop_connect_rate, self.training) + inputs
        return x


def block_indices_by_group(groups: tuple[BlockGroup, ...] = B0_BLOCK_GROUPS) -> list[range]:
    """Which ``_blocks.N`` belong to each row of the block table."""
    ranges, start = [], 0
    for group in groups:
        ranges.append(range(start, start + group.repeats))
        start += group.repeats
    return ranges


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite classifier. ``_fc`` is the head; its input is the 1280-d embedding.

    Drop-connect (0.2, growing linearly with depth) and dropout (0.2) are the TF training defaults;
    both act in train mode only.
    """

    def __init__(self, groups: tuple[BlockGroup, ...] = B0_BLOCK_GROUPS, n_classes: int = N_CLASSES,
                 dropout: float = 0.2, drop_connect_rate: float = 0.2):
        super().__init__()
        # Definition order == parameter order: stem, blocks, head conv, classifier.
        self._conv_stem = Conv2dSame(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = batch_norm(STEM_CHANNELS)

        n_blocks = sum(group.repeats for group in groups)
        blocks, in_channels = [], STEM_CHANNELS
        for group in groups:
            for repeat in range(group.repeats):
                stride = group.stride if repeat == 0 else 1
                rate = drop_connect_rate * len(blocks) / n_blocks
                blocks.append(MBConvBlock(in_channels, group.out_channels, group.kernel, stride,
                                          group.expand_ratio, rate))
                in_channels = group.out_channels
        self._blocks = nn.ModuleList(blocks)

        self._conv_head = Conv2dSame(in_channels, HEAD_CHANNELS, 1)
        self._bn1 = batch_norm(HEAD_CHANNELS)
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(HEAD_CHANNELS, n_classes)
        self._initialise()

    def _initialise(self) -> None:
        """He-normal convolutions over fan_in, so a random network keeps its signal.

        PyTorch's default conv init, and He init over fan_out (which counts C x k x k for a depthwise
        conv), shrink activations about tenfold per block: a fresh network in eval mode (BatchNorm
        running statistics still 0/1) gives every image the same embedding (spread across images ~1e-9
        at 64 px), so training from scratch could not leave chance. fan_in keeps it at ~0.4.
        """
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                bound = 1.0 / math.sqrt(module.out_features)  # TF EfficientNet's dense init
                nn.init.uniform_(module.weight, -bound, bound)
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled 1280-d embedding (what ``_fc`` receives, before dropout)."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._avg_pooling(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self._dropout(self.forward_features(x)))


def efficientnet_lite(width: float = 1.0, depth: float = 1.0, dropout: float = 0.2,
                      n_classes: int = N_CLASSES) -> EfficientNetLite:
    """One Lite variant from its scaling coefficients (Lite0: 1.0/1.0, Lite1: 1.0/1.1, Lite2: 1.1/1.2)."""
    return EfficientNetLite(scaled_block_groups(width, depth), n_classes=n_classes, dropout=dropout)


def efficientnet_lite0(n_classes: int = N_CLASSES) -> EfficientNetLite:
    return efficientnet_lite(n_classes=n_classes)
