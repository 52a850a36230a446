"""Imbalanced classes: loss weights that balance them, and the metrics that do not let a majority class hide.

Plain accuracy rewards predicting the large classes; balanced accuracy (the mean of per-class recall)
and macro-F1 (the mean of per-class F1) weigh every class the same. Every trial records both at its best
epoch; the terminal and the report show them beside accuracy where the classes are unbalanced
(:func:`unbalanced`). ``--class-weights balanced`` weights the training loss by inverse class frequency.
torch is imported where it is used: the report (``tladvisor report``) asks :func:`unbalanced` without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tladvisor.data.profile import IMBALANCE_RATIO

if TYPE_CHECKING:
    import torch

CLASS_WEIGHTS = ("none", "balanced")
METRICS = ("balanced_accuracy", "macro_f1")


def balanced_class_weights(labels: torch.Tensor | Sequence[int], n_classes: int) -> torch.Tensor:
    """``n / (k * count_c)`` per class (k: classes present), so the weights average to 1 over the samples
    and each present class carries the same total weight; a class absent from ``labels`` gets 0."""
    import torch

    labels = torch.as_tensor(labels, dtype=torch.long)
    counts = torch.bincount(labels, minlength=n_classes).double()
    present = int((counts > 0).sum())
    weights = torch.zeros(n_classes, dtype=torch.float64)
    if present:
        weights[counts > 0] = len(labels) / (present * counts[counts > 0])
    return weights.float()


def loss_weights(mode: str, labels: torch.Tensor | Sequence[int], n_classes: int) -> torch.Tensor | None:
    """The cross-entropy ``weight`` for ``--class-weights mode`` (None: unweighted)."""
    if mode in (None, "none"):
        return None
    if mode == "balanced":
        return balanced_class_weights(labels, n_classes)
    raise ValueError(f"unknown class weights '{mode}'; expected one of {', '.join(CLASS_WEIGHTS)}")


def classification_metrics(predicted: torch.Tensor, labels: torch.Tensor, n_classes: int) -> dict[str, float]:
    """Balanced accuracy over the classes in ``labels``; macro-F1 over the classes in either."""
    import torch

    predicted, labels = torch.as_tensor(predicted).long().cpu(), torch.as_tensor(labels).long().cpu()
    if len(labels) == 0:
        return {}
    true = torch.bincount(labels, minlength=n_classes).double()
    guessed = torch.bincount(predicted, minlength=n_classes).double()
    hits = torch.bincount(labels[predicted == labels], minlength=n_classes).double()
    in_labels = true > 0
    recall = hits[in_labels] / true[in_labels]
    either = in_labels | (guessed > 0)
    f1 = 2 * hits[either] / (true[either] + guessed[either])
    return {"balanced_accuracy": round(float(recall.mean()), 6), "macro_f1": round(float(f1.mean()), 6)}


def unbalanced(counts: Sequence[int] | dict[str, int]) -> bool:
    """Whether the largest class outnumbers the smallest (present) one at least
    :data:`tladvisor.data.profile.IMBALANCE_RATIO` (the threshold the profile warns at)."""
    values = [int(c) for c in (counts.values() if isinstance(counts, dict) else counts) if int(c) > 0]
    return len(values) > 1 and max(values) >= IMBALANCE_RATIO * min(values)
