"""Train one trial's model with its strategy; return the model at its best validation epoch.

Every strategy shares one epoch loop (:func:`fit`): validation accuracy per epoch is the learning
curve, the best epoch's weights are kept, training stops after ``patience`` epochs without
improvement, and a non-finite loss stops the trial as diverged. Feature extraction trains its head
on cached embeddings, so an epoch costs a few matrix products instead of a pass through the backbone.

A ``deadline`` (``time.monotonic()`` value, the tuning's ``--timeout``) is checked after every batch:
past it the trial stops with :class:`DeadlineReached`, keeping the epochs it finished. With
``options.class_weights == "balanced"`` the loss weights each class by its inverse frequency in the
training split; every epoch's balanced accuracy and macro-F1 are measured with its accuracy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tladvisor.runtime import device as devices
from tladvisor.backbones import BackboneSpec
from tladvisor.modeling import head_module, recalibrate_batchnorm
from tladvisor.tuning.data import FeatureSplit, TuningData
from tladvisor.tuning.imbalance import classification_metrics, loss_weights
from tladvisor.tuning.frozen_prefix import FrozenPrefix
from tladvisor.tuning.inference import predict_probabilities
from tladvisor.tuning.optim import make_optimizer, warmup_cosine
from tladvisor.tuning.paired_test import CORRECTNESS_ATTR, correctness_bits
from tladvisor.tuning.strategies import (
    TrialConfig,
    build_model,
    frozen_depth,
    trainable,
    gradual_unfreeze_depth,
    parameter_groups,
    set_stage_trainable,
    train_mode,
)

EpochCallback = Callable[[int, float], None]
"""Called after each epoch with (epoch, validation accuracy); may raise to stop (pruning)."""


class TrialFailed(Exception):
    """A trial that cannot finish; ``str(error)`` is the one-line reason stored with the trial."""


class TrainingDiverged(TrialFailed):
    pass


class DeadlineReached(Exception):
    """The tuning's wall-clock budget ran out during ``epoch`` (0-based); finished epochs were reported.
    Under cross-validation ``fold`` (0-based) of ``folds`` says which training it stopped (None otherwise)."""

    def __init__(self, epoch: int, fold: int | None = None, folds: int | None = None):
        super().__init__(f"deadline reached during epoch {epoch + 1}")
        self.epoch, self.fold, self.folds = epoch, fold, folds


def check_deadline(deadline: float | None, epoch: int) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise DeadlineReached(epoch)


Evaluation = tuple[float, dict[str, float]]
"""(validation accuracy, other metrics such as balanced accuracy) of one epoch."""


@dataclass
class FitResult:
    accuracy: float  # best validation accuracy over the epochs run
    best_epoch: int  # 0-based
    learning_curve: list[float]
    stopped_early: bool
    metrics: dict[str, float] = field(default_factory=dict)  # the best epoch's balanced accuracy, macro-F1


@dataclass
class TrainedModel:
    accuracy: float
    learning_curve: list[float]
    best_epoch: int
    batch_size: int  # the batch size that fitted in memory
    stopped_early: bool
    assemble: Callable[[], nn.Module]  # the whole model (CPU, eval mode) at its best validation epoch
    extras: dict[str, Any] = field(default_factory=dict)  # e.g. lp_ft's probe accuracy

    @property
    def model(self) -> nn.Module:
        """Built on first use: a feature-extraction trial only needs its backbone if its model is kept."""
        if not hasattr(self, "_model"):
            self._model = self.assemble().to("cpu").eval()
        return self._model


def attach_head(spec: BackboneSpec, config: TrialConfig, n_classes: int, head: nn.Linear) -> nn.Module:
    """The pretrained backbone (frozen as the strategy says) carrying a head trained elsewhere."""
    model = build_model(spec, config, n_classes)
    head_module(model, spec).load_state_dict(head.state_dict())
    return model


def loss_function(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float,
                  weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy with label smoothing; ``weight`` per class (``--class-weights``) when given."""
    return F.cross_entropy(logits.float(), labels, weight=weight, label_smoothing=label_smoothing)


def weighted_loss(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float,
                  weight: torch.Tensor | None) -> torch.Tensor:
    # ``loss_function`` is looked up at call time (tests wrap it); the weight goes only where there is one.
    if weight is None:
        return loss_function(logits, labels, label_smoothing)
    return loss_function(logits, labels, label_smoothing, weight)


def class_weight_tensor(data: TuningData, device: torch.device) -> torch.Tensor | None:
    """The loss weights ``options.class_weights`` asks for, from the training split's labels."""
    mode = getattr(data.options, "class_weights", "none")
    if mode in (None, "none"):
        return None
    weights = loss_weights(mode, torch.as_tensor(data.dataset.labels[data.train_idx]), data.n_classes)
    return weights.to(device)


def evaluation(predicted: torch.Tensor, labels: torch.Tensor, n_classes: int) -> Evaluation:
    """Accuracy, and as metrics balanced accuracy, macro-F1 and each image's correctness (the paired test)."""
    labels = labels.to(predicted.device)
    right = predicted == labels
    value = float(right.sum().item()) / max(1, len(labels))
    return value, {**classification_metrics(predicted, labels, n_classes),
                   CORRECTNESS_ATTR: correctness_bits(right.cpu())}


def check_finite(loss: torch.Tensor, epoch: int) -> None:
    value = loss.detach()
    if not bool(torch.isfinite(value)):
        kind = "nan" if bool(torch.isnan(value)) else "inf"
        raise TrainingDiverged(f"diverged (loss is {kind} at epoch {epoch + 1})")


def fit(module: nn.Module, run_epoch: Callable[[int], None], evaluate: Callable[[], Evaluation], epochs: int,
        patience: int, on_epoch: EpochCallback | None, deadline: float | None = None) -> FitResult:
    """The shared epoch loop; ``module`` ends holding the weights of its best validation epoch."""
    best_accuracy, best_epoch, best_state = -1.0, -1, None
    best_metrics: dict[str, float] = {}
    curve: list[float] = []
    stopped_early = False
    for epoch in range(epochs):
        run_epoch(epoch)
        check_deadline(deadline, epoch)
        scored = evaluate()  # (accuracy, metrics), or a bare accuracy from a caller that has no metrics
        value, metrics = scored if isinstance(scored, tuple) else (scored, {})
        curve.append(value)
        if value > best_accuracy:
            best_accuracy, best_epoch, best_metrics = value, epoch, metrics
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
        if on_epoch is not None:
            on_epoch(epoch, value)
        if epoch - best_epoch >= patience and epoch < epochs - 1:
            stopped_early = True
            break
    assert best_state is not None
    module.load_state_dict(best_state)
    return FitResult(best_accuracy, best_epoch, curve, stopped_early, best_metrics)


# --- a linear head on cached features -----------------------------------------------------------------


def train_head_on_features(head: nn.Linear, features: FeatureSplit, config: TrialConfig, device: torch.device,
                           seed: int, on_epoch: EpochCallback | None, weight: torch.Tensor | None = None,
                           deadline: float | None = None) -> FitResult:
    """Train ``head`` on frozen embeddings: no backbone forward at all."""
    head.to(device)
    train_x, train_y = features.train_x.to(device), features.train_y.to(device)
    val_x, val_y = features.val_x.to(device), features.val_y.to(device)
    n, batch_size = len(train_y), max(1, config.batch_size)
    optimizer = make_optimizer([
        {"params": [head.weight], "lr": config.lr_head, "weight_decay": config.weight_decay},
        {"params": [head.bias], "lr": config.lr_head, "weight_decay": 0.0},
    ])
    scheduler = warmup_cosine(optimizer, config.epochs * math.ceil(n / batch_size), config.warmup_fraction)
    generator = torch.Generator().manual_seed(seed)

    def run_epoch(epoch: int) -> None:
        head.train()
        order = torch.randperm(n, generator=generator).to(device)
        for start in range(0, n, batch_size):
            batch = order[start:start + batch_size]
            loss = weighted_loss(head(train_x[batch]), train_y[batch], config.label_smoothing, weight)
            check_finite(loss, epoch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            check_deadline(deadline, epoch)

    def evaluate() -> Evaluation:
        head.eval()
        with torch.inference_mode():
            predicted = head(val_x).argmax(1)
        return evaluation(predicted, val_y, head.out_features)

    return fit(head, run_epoch, evaluate, config.epochs, config.patience, on_epoch, deadline)


# --- the network on images ------------------------------------------------------------------------------


def optimisation_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, optimizer, scaler,
                      device: torch.device, config: TrialConfig, epoch: int,
                      weight: torch.Tensor | None = None) -> None:
    with devices.autocast(device):
        logits = model(images)
    loss = weighted_loss(logits, labels, config.label_smoothing, weight)
    check_finite(loss, epoch)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def _grad_scaler(device: torch.device) -> torch.amp.GradScaler:
    # fp16 autocast needs loss scaling against gradient underflow; bf16 and fp32 do not.
    needed = device.type == "cuda" and not torch.cuda.is_bf16_supported()
    return torch.amp.GradScaler("cuda", enabled=needed)


def train_network(model: nn.Module, spec: BackboneSpec, config: TrialConfig, data: TuningData,
                  device: torch.device, seed: int, on_epoch: EpochCallback | None,
                  head_lr: float | None = None, augment: bool = True, deadline: float | None = None) -> FitResult:
    """Fine-tune ``model`` on images: frozen stages stay fixed (BatchNorm included), the rest trains."""
    n_stages = spec.n_stages
    frozen = frozen_depth(config.plan, config.freeze_depth, n_stages)
    kept = trainable(model, spec, config.plan) if config.plan.trains is not None else None
    model = devices.prepare_model(model, device)
    optimizer = make_optimizer(parameter_groups(model, spec, config, head_lr=head_lr))
    train_loader = data.train_loader(spec, config.batch_size, seed, augment=augment)
    val_loader = data.val_loader(spec, config.batch_size)
    scheduler = warmup_cosine(optimizer, config.epochs * max(1, len(train_loader)), config.warmup_fraction)
    scaler = _grad_scaler(device)
    statistics_loader = data.train_loader(spec, config.batch_size, seed, augment=False)
    weight = class_weight_tensor(data, device)
    # Validation images are not augmented: the frozen stages' output on them is computed on the first
    # validation at a depth, and later ones start after those stages (checked to give the same output).
    prefix, depth_now = FrozenPrefix(model, spec), [frozen]

    def run_epoch(epoch: int) -> None:
        waiting = gradual_unfreeze_depth(epoch, frozen, n_stages) if config.gradual_unfreeze else frozen
        depth_now[0] = waiting
        for index in range(n_stages):
            set_stage_trainable(model, spec, index, index >= waiting, kept)
        train_mode(model, spec, waiting)
        trained_norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
        for images, labels in train_loader:
            optimisation_step(model, devices.prepare_batch(images, device), labels.to(device), optimizer, scaler,
                              device, config, epoch, weight)
            scheduler.step()
            check_deadline(deadline, epoch)
        # Precise BN: the statistics of the layers that trained, re-estimated on training images as the
        # validation transform shows them, instead of a momentum-0.01 average that lags a short run.
        recalibrate_batchnorm(model, statistics_loader, device, norms=trained_norms)

    def evaluate() -> Evaluation:
        predicted = predict_probabilities(model, prefix.batches(val_loader, depth_now[0]), device).argmax(1)
        labels = torch.as_tensor(val_loader.dataset.labels)  # type: ignore[attr-defined]
        return evaluation(predicted, labels, data.n_classes)

    return fit(model, run_epoch, evaluate, config.epochs, config.patience, on_epoch, deadline)


# --- one trial --------------------------------------------------------------------------------------------


def _train_once(spec: BackboneSpec, config: TrialConfig, data: TuningData, device: torch.device,
                seed: int, on_epoch: EpochCallback | None, deadline: float | None = None) -> TrainedModel:
    torch.manual_seed(seed)
    extras: dict[str, Any] = {}
    weight = class_weight_tensor(data, device)
    if config.plan.head_only:
        # Only the head is trained, so only the head is built; the backbone joins it when the model is kept.
        head = nn.Linear(spec.feature_dim, data.n_classes)
        result = train_head_on_features(head, data.features(spec), config, device, seed, on_epoch, weight, deadline)
        head = head.to("cpu")
        return TrainedModel(result.accuracy, result.learning_curve, result.best_epoch, config.batch_size,
                            result.stopped_early, lambda: attach_head(spec, config, data.n_classes, head),
                            dict(result.metrics))
    model = build_model(spec, config, data.n_classes)
    if config.plan.probe_first:
        head = head_module(model, spec)
        probe = train_head_on_features(head, data.features(spec), config, device, seed, None, weight, deadline)
        extras["probe_accuracy"] = probe.accuracy
        # Fine-tune everything from the probed head, the head at the backbone's (small) rate so the
        # features it was fitted to move slowly.
        result = train_network(model, spec, config, data, device, seed, on_epoch, head_lr=config.lr_backbone,
                               deadline=deadline)
    else:
        result = train_network(model, spec, config, data, device, seed, on_epoch, deadline=deadline)
    model = model.to("cpu").eval()
    if config.plan.merge is not None:  # adapters folded back: the kept model is the backbone's own architecture
        config.plan.merge(model)
    return TrainedModel(result.accuracy, result.learning_curve, result.best_epoch, config.batch_size,
                        result.stopped_early, lambda: model, {**extras, **result.metrics})


def _release_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def train_trial(spec: BackboneSpec, config: TrialConfig, data: TuningData, device: torch.device, *,
                seed: int = 0, on_epoch: EpochCallback | None = None, deadline: float | None = None) -> TrainedModel:
    """Train with ``config``; on CUDA out-of-memory retry once with half the batch size, then fail.
    Past ``deadline`` (monotonic seconds) it raises :class:`DeadlineReached`."""
    batch_size = max(1, config.batch_size)
    limit = {} if deadline is None else {"deadline": deadline}
    try:
        return _train_once(spec, replace(config, batch_size=batch_size), data, device, seed, on_epoch, **limit)
    except torch.cuda.OutOfMemoryError:
        _release_memory(device)
    half = max(1, batch_size // 2)
    try:
        return _train_once(spec, replace(config, batch_size=half), data, device, seed, on_epoch, **limit)
    except torch.cuda.OutOfMemoryError:
        _release_memory(device)
        raise TrialFailed(f"out of memory at batch size {batch_size}, and again at {half}") from None
