"""Class probabilities of a model over a loader: one code path for validation and for ``predict``.

Sharing it is what makes ``predict`` on the validation images reproduce the stored accuracy.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader

from tladvisor.runtime import device as devices


def predict_probabilities(model: nn.Module, loader: Iterable, device: torch.device) -> torch.Tensor:
    """``(n, n_classes)`` softmax probabilities on the CPU, in loader order; the model is put in eval mode."""
    model.eval()
    chunks = []
    batches = iter(loader)
    try:
        with torch.inference_mode(), devices.autocast(device):
            for images, _labels in batches:
                logits = model(devices.prepare_batch(images, device))
                chunks.append(torch.softmax(logits.float(), dim=1).cpu())
    finally:  # a generator (tuning.frozen_prefix) puts the model back as it was now, not when collected
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    return torch.cat(chunks) if chunks else torch.empty(0)


def accuracy(model: nn.Module, loader: DataLoader, device: torch.device) -> float:
    probabilities = predict_probabilities(model, loader, device)
    labels = torch.as_tensor(loader.dataset.labels)  # type: ignore[attr-defined]
    return float((probabilities.argmax(1) == labels).sum().item()) / max(1, len(labels))
