"""Strategies and the trainer on the tiny backbone: what is frozen, at which learning rate, and how a trial ends."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from tladvisor.modeling import member_parameters, resolve_member
from tladvisor.records import AnalysisOptions
from tladvisor.testing import tiny_backbone_spec
from tladvisor.tuning import trainer
from tladvisor.tuning.data import TuningData
from tladvisor.tuning.optim import warmup_cosine
from tladvisor.tuning.strategies import TrialConfig, build_model, parameter_groups, stage_learning_rates
from tladvisor.tuning.trainer import TrainingDiverged, TrialFailed, fit, train_trial

CPU = torch.device("cpu")


@pytest.fixture
def data(shapes, tmp_path):
    options = AnalysisOptions(source=shapes.root, val_fraction=0.25, batch_size=16, cache_dir=tmp_path / "cache")
    return TuningData(shapes, options, CPU)


def config(strategy: str, **changes) -> TrialConfig:
    base = TrialConfig(backbone="tiny_cnn", strategy=strategy, freeze_depth=0, lr_head=1e-2, lr_backbone=1e-3,
                       layer_decay=0.5, weight_decay=1e-4, epochs=3, batch_size=16)
    return replace(base, **changes)


def snapshot(model: nn.Module, member: str) -> dict[str, torch.Tensor]:
    module = resolve_member(model, member)
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# --- what is frozen ------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2])
def test_partial_freeze_trains_exactly_the_stages_from_k_and_keeps_frozen_batchnorm_statistics(data, k):
    spec = tiny_backbone_spec()
    built = {}
    original_build = spec.build

    def build(pretrained):
        built["model"] = original_build(pretrained)
        built["before"] = {s.name: snapshot(built["model"], s.members[0]) for s in spec.stages}
        return built["model"]

    spec = replace(spec, build=build)
    model = build_model(spec, config("partial_freeze", freeze_depth=k), data.n_classes)
    trainable = [all(p.requires_grad for p in member_parameters(model, s.members)) for s in spec.stages]
    frozen = [not any(p.requires_grad for p in member_parameters(model, s.members)) for s in spec.stages]
    assert trainable == [i >= k for i in range(spec.n_stages)]
    assert frozen == [i < k for i in range(spec.n_stages)]

    trained = train_trial(spec, config("partial_freeze", freeze_depth=k), data, CPU)
    for index, stage in enumerate(spec.stages):
        after = snapshot(trained.model, stage.members[0])
        before = built["before"][stage.name]
        changed = {name for name in after if not torch.equal(after[name], before[name])}
        if index < k:  # weights and BatchNorm running statistics untouched
            assert changed == set(), f"frozen stage {stage.name} changed: {changed}"
        else:
            assert {"0.weight", "1.running_mean", "1.running_var"} <= changed


def test_layer_decay_gives_each_stage_lr_backbone_times_decay_to_the_power_of_its_depth_from_the_top():
    spec = tiny_backbone_spec()
    cfg = config("full_finetune", lr_head=0.05, lr_backbone=1e-3, layer_decay=0.5)
    model = build_model(spec, cfg, 3)
    groups = parameter_groups(model, spec, cfg)
    lr_of = {}
    for group in groups:
        for param in group["params"]:
            lr_of[id(param)] = group["lr"]
    expected = {"fc": 0.05, "block2": 1e-3, "block1": 5e-4, "stem": 2.5e-4}
    for member, lr in expected.items():
        for param in resolve_member(model, member).parameters():
            assert lr_of[id(param)] == pytest.approx(lr)
    assert len(lr_of) == sum(1 for _ in model.parameters())  # every parameter is optimised
    # biases and BatchNorm parameters carry no weight decay; conv and linear weights do
    decays = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert decays[id(model.fc.weight)] == 1e-4 and decays[id(model.fc.bias)] == 0.0
    assert decays[id(model.stem[1].weight)] == 0.0


def test_partial_freeze_leaves_frozen_stages_out_of_the_optimiser_and_from_scratch_has_one_rate():
    spec = tiny_backbone_spec()
    cfg = config("partial_freeze", freeze_depth=2, lr_backbone=1e-3, layer_decay=0.5)
    groups = parameter_groups(build_model(spec, cfg, 3), spec, cfg)
    assert {g["name"].split("/")[0] for g in groups} == {"head", "block2"}
    scratch = config("from_scratch", lr_backbone=2e-3, layer_decay=0.3)
    assert stage_learning_rates(spec, scratch) == [2e-3, 2e-3, 2e-3]


def test_from_scratch_starts_from_the_random_init_and_lp_ft_heads_start_at_the_backbone_rate():
    spec = tiny_backbone_spec()
    scratch = build_model(spec, config("from_scratch"), 3)
    assert torch.equal(scratch.stem[0].weight, spec.build(False).stem[0].weight)
    assert not torch.equal(scratch.stem[0].weight, spec.build(True).stem[0].weight)
    cfg = config("lp_ft", lr_head=0.05, lr_backbone=1e-3)
    groups = parameter_groups(build_model(spec, cfg, 3), spec, cfg, head_lr=cfg.lr_backbone)
    assert [g["lr"] for g in groups if g["name"] == "head"] == [1e-3]


# --- feature extraction uses the cache -------------------------------------------------------------------


def test_feature_extraction_never_runs_the_backbone_during_training_epochs(data):
    spec = tiny_backbone_spec()
    calls = {"n": 0}
    original_build = spec.build

    def counting_build(pretrained):
        model = original_build(pretrained)
        model.stem.register_forward_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))
        return model

    spec = replace(spec, build=counting_build)
    data.features(spec)  # the one-off pass that fills the cache
    assert calls["n"] > 0
    calls["n"] = 0
    trained = train_trial(spec, config("feature_extraction", lr_head=0.05, epochs=8, patience=8), data, CPU)
    assert calls["n"] == 0
    assert len(trained.learning_curve) == 8
    assert trained.accuracy > 1 / 3 + 0.2  # the head learned something
    # the same head on images (every stage frozen) does run the backbone each epoch: the hook counts
    train_trial(spec, config("partial_freeze", freeze_depth=3, epochs=2), data, CPU)
    assert calls["n"] >= 2


def test_lp_ft_probes_on_cached_features_then_fine_tunes(data):
    trained = train_trial(tiny_backbone_spec(), config("lp_ft", lr_head=0.05, epochs=3), data, CPU)
    assert 0.0 <= trained.extras["probe_accuracy"] <= 1.0
    assert len(trained.learning_curve) == 3


def test_gradual_unfreezing_opens_one_more_stage_from_the_top_each_epoch(data):
    spec = tiny_backbone_spec()
    seen = []
    models = []
    original_build = spec.build
    spec = replace(spec, build=lambda pretrained: models.append(original_build(pretrained)) or models[-1])

    def on_epoch(epoch, _value):
        model = models[-1]
        seen.append([any(p.requires_grad for p in member_parameters(model, s.members)) for s in spec.stages])

    train_trial(spec, config("full_finetune", gradual_unfreeze=True, epochs=4, patience=4), data, CPU,
                on_epoch=on_epoch)
    assert seen == [[False, False, False], [False, False, True], [False, True, True], [True, True, True]]


# --- the epoch loop ------------------------------------------------------------------------------------------


def test_fit_stops_after_patience_epochs_without_improvement_and_keeps_the_best_weights():
    module = nn.Linear(1, 1)
    scores = iter([0.4, 0.7, 0.6, 0.7, 0.5, 0.9])

    def run_epoch(epoch):
        with torch.no_grad():
            module.weight.fill_(float(epoch))

    result = fit(module, run_epoch, lambda: next(scores), epochs=6, patience=2, on_epoch=None)
    assert result.learning_curve == [0.4, 0.7, 0.6, 0.7]  # epoch 4 (0.5) never ran: 2 epochs without beating 0.7
    assert (result.best_epoch, result.accuracy, result.stopped_early) == (1, 0.7, True)
    assert module.weight.item() == 1.0  # the weights of epoch 1


def test_warmup_then_cosine_learning_rate():
    optimizer = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = warmup_cosine(optimizer, total_steps=20, warmup_fraction=0.1)
    rates = []
    for _ in range(20):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[:4] == pytest.approx([0.5, 1.0, 1.0, 0.5 * (1 + math.cos(math.pi / 18))])
    assert rates[2:] == sorted(rates[2:], reverse=True) and rates[-1] < 0.01


# --- how a trial ends badly ------------------------------------------------------------------------------------


def test_nan_loss_stops_the_trial_as_diverged_with_the_epoch(data, monkeypatch):
    real_loss = trainer.loss_function
    calls = {"n": 0}

    def loss_going_nan(logits, labels, label_smoothing):
        calls["n"] += 1
        loss = real_loss(logits, labels, label_smoothing)
        return loss * float("nan") if calls["n"] > 2 else loss  # two steps per epoch: nan in epoch 2

    monkeypatch.setattr(trainer, "loss_function", loss_going_nan)
    with pytest.raises(TrainingDiverged, match=r"^diverged \(loss is nan at epoch 2\)$"):
        train_trial(tiny_backbone_spec(), config("full_finetune"), data, CPU)


def test_out_of_memory_retries_once_with_half_the_batch_then_fails(data, monkeypatch):
    real_step = trainer.optimisation_step
    batch_sizes = []

    def step_that_fits_8(model, images, *args, **kwargs):
        batch_sizes.append(images.shape[0])
        if images.shape[0] > 8:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_step(model, images, *args, **kwargs)

    monkeypatch.setattr(trainer, "optimisation_step", step_that_fits_8)
    trained = train_trial(tiny_backbone_spec(), config("full_finetune", batch_size=16, epochs=2), data, CPU)
    assert trained.batch_size == 8 and batch_sizes[0] == 16 and max(batch_sizes[1:]) <= 8
    assert len(trained.learning_curve) == 2

    def never_fits(*_args, **_kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(trainer, "optimisation_step", never_fits)
    with pytest.raises(TrialFailed, match=r"^out of memory at batch size 16, and again at 8$"):
        train_trial(tiny_backbone_spec(), config("full_finetune", batch_size=16), data, CPU)


def test_trial_config_rejects_an_unknown_strategy():
    with pytest.raises(ValueError, match="unknown strategy 'finetune_everything'"):
        TrialConfig(backbone="tiny_cnn", strategy="finetune_everything")


def _slow_batchnorm_spec():
    """The tiny backbone with TF-style BatchNorm momentum 0.01, like EfficientNet-Lite0."""
    spec = tiny_backbone_spec()
    original_build = spec.build

    def build(pretrained):
        model = original_build(pretrained)
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = 0.01
        return model

    return replace(spec, build=build)


def _running_mean_error(model: nn.Module, data: TuningData, spec) -> float:
    """How far block1's BatchNorm running mean is from its inputs' mean over the training images."""
    norm = resolve_member(model, "block1.1")
    seen = []
    handle = norm.register_forward_pre_hook(lambda _m, inputs: seen.append(inputs[0].detach()))
    model.eval()
    with torch.no_grad():
        for images, _ in data.train_loader(spec, 16, seed=0, augment=False):
            model(images)
    handle.remove()
    activations = torch.cat(seen)
    mean, std = activations.mean((0, 2, 3)), activations.std((0, 2, 3))
    return float(((norm.running_mean - mean).abs() / std).max())


def test_trained_batchnorm_statistics_are_re_estimated_before_each_validation(data, monkeypatch):
    spec = _slow_batchnorm_spec()
    precise = train_trial(spec, config("full_finetune", epochs=2), data, CPU).model
    monkeypatch.setattr(trainer, "recalibrate_batchnorm", lambda *args, **kwargs: 0)
    lagging = train_trial(spec, config("full_finetune", epochs=2), data, CPU).model
    # Momentum 0.01 over a few steps leaves the running mean near its old value; re-estimated, it is
    # the training images' mean up to the weighting of a short last batch.
    assert _running_mean_error(precise, data, spec) < 0.1
    assert _running_mean_error(lagging, data, spec) > 3 * _running_mean_error(precise, data, spec)
