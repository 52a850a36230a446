"""The optimiser every strategy uses: AdamW with a linear warm-up, then a cosine decay to zero."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR


def make_optimizer(groups: list[dict[str, Any]]) -> torch.optim.AdamW:
    return torch.optim.AdamW(groups)


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float = 0.1) -> LambdaLR:
    """Per-step multiplier: linear from 1/warmup to 1 over the warm-up steps, then cosine down to 0.

    Warm-up keeps the first updates small while AdamW's moment estimates are still noisy, which is
    when a fresh head's large gradients would otherwise wreck pretrained features.
    """
    total_steps = max(1, int(total_steps))
    warmup = max(1, int(round(total_steps * warmup_fraction)))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return LambdaLR(optimizer, factor)
