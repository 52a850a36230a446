"""Validation after the frozen stages: the same predictions as the whole network, the frozen stages run once."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from tladvisor.modeling import member_parameters
from tladvisor.backbones import Stage
from tladvisor.records import AnalysisOptions
from tladvisor.testing import TinyConvNet, tiny_backbone_spec
from tladvisor.tuning import frozen_prefix
from tladvisor.tuning.data import TuningData
from tladvisor.tuning.frozen_prefix import FrozenPrefix
from tladvisor.tuning.inference import predict_probabilities
from tladvisor.tuning.strategies import TrialConfig
from tladvisor.tuning.trainer import train_trial

CPU = torch.device("cpu")


class StemSkip(TinyConvNet):
    """Reads the stem's output again after block2: the last frozen stage's output is not all it needs."""

    def forward(self, x):
        stem = self.stem(x)
        features = self.pool(self.block2(self.block1(stem))).flatten(1)
        return self.fc(features + self.pool(stem).flatten(1).repeat(1, 4))


class StemMeanSkip(TinyConvNet):
    """The same, through a value of any shape: the stand-ins run, and give another output."""

    def forward(self, x):
        stem = self.stem(x)
        return self.fc(self.pool(self.block2(self.block1(stem))).flatten(1) + stem.mean())


class InPlaceAfterBlock1(TinyConvNet):
    """Works on block1's output in place (as an in-place ReLU or ``x += residual`` would)."""

    def forward(self, x):
        x = self.block1(self.stem(x))
        x.mul_(1.5).add_(0.25)
        return self.fc(self.pool(self.block2(x)).flatten(1))


class GatedStemSkip(TinyConvNet):
    """Reads the stem again through a gate that is 0 when the outputs are kept and opens as it trains."""

    def __init__(self, width: int = 8):
        super().__init__(width)
        self.gate = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        stem = self.stem(x)
        return self.fc(self.pool(self.block2(self.block1(stem))).flatten(1) + self.gate * stem.mean())


class Listed(list):
    """A list of batches that says it shuffles, as a training loader would."""

    shuffle = True


def frozen(model_class=TinyConvNet, depth: int = 2):
    spec = tiny_backbone_spec()
    torch.manual_seed(0)
    model = model_class(8).eval()
    for stage in spec.stages[:depth]:
        for param in member_parameters(model, stage.members):
            param.requires_grad_(False)
    return model, spec


def batches(n_batches: int = 3):
    generator = torch.Generator().manual_seed(1)
    sizes = [8] * (n_batches - 1) + [5]  # a short last batch
    return [(torch.randn(n, 3, 32, 32, generator=generator), torch.zeros(n, dtype=torch.int64)) for n in sizes]


def stem_images(model) -> list[int]:
    """Images that went through the stem's convolution, counted as they go."""
    seen = [0]
    model.stem[0].register_forward_pre_hook(lambda _m, inputs: seen.__setitem__(0, seen[0] + len(inputs[0])))
    return seen


@pytest.mark.parametrize("model_class", [TinyConvNet, InPlaceAfterBlock1])
def test_later_validations_skip_the_frozen_stages_and_predict_exactly_what_the_whole_network_does(model_class):
    model, spec = frozen(model_class)
    loader = batches()
    expected = predict_probabilities(model, loader, CPU)
    prefix = FrozenPrefix(model, spec)
    seen = stem_images(model)
    for _validation in range(3):
        got = predict_probabilities(model, prefix.batches(loader, 2), CPU)
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert prefix.complete and prefix.unusable is None and prefix.replays == 2
    # the first validation in full, then at each one the check: CHECK_IMAGES through the whole network
    assert seen[0] == 21 + 3 * frozen_prefix.CHECK_IMAGES
    assert len(prefix.outputs) == len(loader) and prefix.outputs[0].shape == (8, 16, 8, 8)


@pytest.mark.parametrize("model_class, why", [(StemSkip, "failed"), (StemMeanSkip, "reads more")])
def test_a_network_that_reads_an_earlier_stage_again_is_caught_and_validates_in_full(model_class, why):
    model, spec = frozen(model_class, depth=2)
    loader = batches()
    expected = predict_probabilities(model, loader, CPU)
    prefix = FrozenPrefix(model, spec)
    seen = stem_images(model)
    for _validation in range(2):
        torch.testing.assert_close(predict_probabilities(model, prefix.batches(loader, 2), CPU), expected,
                                   rtol=0, atol=0)
    assert why in prefix.unusable and not prefix.complete and prefix.replays == 0
    assert seen[0] == 2 * 21 + frozen_prefix.CHECK_IMAGES  # both in full, and the one check
    assert "forward" not in model.stem.__dict__ and "forward" not in model.block1.__dict__  # put back


def test_outputs_past_the_memory_limit_or_a_stage_that_trains_mean_a_full_validation():
    model, spec = frozen()
    loader = batches()
    expected = predict_probabilities(model, loader, CPU)
    small = FrozenPrefix(model, spec, max_bytes=8 * 16 * 8 * 8 * 4 + 1)  # room for one batch of three
    torch.testing.assert_close(predict_probabilities(model, small.batches(loader, 2), CPU), expected)
    assert "MiB" in small.unusable and small.outputs == []

    training = FrozenPrefix(model, spec)
    next(model.block1.parameters()).requires_grad_(True)  # block1 still trains: its output will change
    seen = stem_images(model)
    for _validation in range(2):
        torch.testing.assert_close(predict_probabilities(model, training.batches(loader, 2), CPU), expected)
    assert seen[0] == 2 * 21 and training.outputs == []


def test_a_new_depth_captures_again_and_depth_zero_leaves_the_loader_alone():
    model, spec = frozen(depth=2)
    loader = batches()
    prefix = FrozenPrefix(model, spec)
    expected = predict_probabilities(model, loader, CPU)
    predict_probabilities(model, prefix.batches(loader, 2), CPU)
    assert prefix.depth == 2 and prefix.outputs[0].shape[1] == 16  # block1's channels
    torch.testing.assert_close(predict_probabilities(model, prefix.batches(loader, 1), CPU), expected)
    assert prefix.depth == 1 and prefix.outputs[0].shape[1] == 8  # the stem's
    assert list(prefix.batches(loader, 0)) == loader


def test_a_frozen_stage_that_changed_anyway_is_run_again():
    model, spec = frozen(depth=2)
    loader = batches()
    prefix = FrozenPrefix(model, spec)
    predict_probabilities(model, prefix.batches(loader, 2), CPU)
    with torch.no_grad():
        model.stem[1].running_mean.add_(0.5)  # as a BatchNorm left in training mode would do
    seen = stem_images(model)
    expected = predict_probabilities(model, loader, CPU)
    torch.testing.assert_close(predict_probabilities(model, prefix.batches(loader, 2), CPU), expected,
                               rtol=0, atol=0)
    assert seen[0] == 2 * 21 + frozen_prefix.CHECK_IMAGES  # the reference, this validation kept again, its check
    predict_probabilities(model, prefix.batches(loader, 2), CPU)
    assert seen[0] == 2 * 21 + 2 * frozen_prefix.CHECK_IMAGES and prefix.replays == 1  # then replayed


def test_a_path_that_opens_as_the_network_trains_is_caught_at_the_next_validation():
    model, spec = frozen(GatedStemSkip)
    loader = batches()
    prefix = FrozenPrefix(model, spec)
    predict_probabilities(model, prefix.batches(loader, 2), CPU)
    assert prefix.complete  # the gate is shut: the stand-ins give the whole network's output
    with torch.no_grad():
        model.gate.fill_(5.0)  # as training would open it
    expected = predict_probabilities(model, loader, CPU)
    torch.testing.assert_close(predict_probabilities(model, prefix.batches(loader, 2), CPU), expected,
                               rtol=0, atol=0)
    assert "reads more" in prefix.unusable and prefix.replays == 0


def test_batches_other_than_those_kept_run_in_full_and_are_kept_again():
    model, spec = frozen()
    loader = batches()
    prefix = FrozenPrefix(model, spec)
    predict_probabilities(model, prefix.batches(loader, 2), CPU)
    generator = torch.Generator().manual_seed(9)
    extra = loader + [(torch.randn(3, 3, 32, 32, generator=generator), torch.zeros(3, dtype=torch.int64))]
    resized = [loader[0], (loader[1][0][:6], loader[1][1][:6]), loader[2]]
    for other in (extra, resized, loader[:2]):
        prefix.complete = True
        got = predict_probabilities(model, prefix.batches(other, 2), CPU)
        torch.testing.assert_close(got, predict_probabilities(model, other, CPU), rtol=0, atol=0)
        assert not prefix.complete  # the next validation keeps its outputs again
        assert "forward" not in model.stem.__dict__ and "forward" not in model.block1.__dict__


def test_the_members_get_their_forward_back_when_validation_stops_early_or_fails():
    model, spec = frozen()
    loader = batches()
    prefix = FrozenPrefix(model, spec)
    predict_probabilities(model, prefix.batches(loader, 2), CPU)
    stream = prefix.batches(loader, 2)
    next(stream)
    assert "forward" in model.block1.__dict__  # stood in for while the validation runs
    stream.close()  # the caller stopped after one batch
    assert "forward" not in model.stem.__dict__ and "forward" not in model.block1.__dict__

    def fail_on_the_second_batch(_module, inputs):
        if len(inputs[0]) == 8 and failing[0]:
            failing[0] -= 1
            if failing[0] == 0:
                raise RuntimeError("out of memory")

    failing = [2]
    handle = model.block2.register_forward_pre_hook(fail_on_the_second_batch)
    with pytest.raises(RuntimeError, match="out of memory"):
        predict_probabilities(model, prefix.batches(loader, 2), CPU)
    handle.remove()
    assert "forward" not in model.stem.__dict__ and "forward" not in model.block1.__dict__


def test_shuffled_loaders_and_parameter_members_validate_in_full():
    model, spec = frozen()
    shuffled = Listed(batches())
    prefix = FrozenPrefix(model, spec)
    seen = stem_images(model)
    predict_probabilities(model, prefix.batches(shuffled, 2), CPU)
    assert seen[0] == 21 and prefix.outputs == [] and prefix.unusable is None

    with_parameter = replace(spec, stages=(Stage("stem", ("stem", "fc.bias")),) + spec.stages[1:])
    prefix = FrozenPrefix(model, with_parameter)
    predict_probabilities(model, prefix.batches(batches(), 2), CPU)
    assert "fc.bias is a parameter" in prefix.unusable


def test_a_torchvision_resnet_validates_after_its_frozen_stages():
    from tladvisor.builtin.torchvision_zoo import spec_for

    spec = spec_for("resnet18")
    torch.manual_seed(0)
    model = spec.build(False).eval()  # random weights: no download
    for stage in spec.stages[:2]:
        for param in member_parameters(model, stage.members):
            param.requires_grad_(False)
    loader = batches()
    expected = predict_probabilities(model, loader, CPU)
    prefix = FrozenPrefix(model, spec)
    for _validation in range(2):
        torch.testing.assert_close(predict_probabilities(model, prefix.batches(loader, 2), CPU), expected)
    assert prefix.replays == 1 and prefix.unusable is None


def test_a_partial_freeze_trial_learns_the_same_curve_with_validation_after_the_frozen_stages(shapes, tmp_path,
                                                                                               monkeypatch):
    options = AnalysisOptions(source=shapes.root, val_fraction=0.25, batch_size=16, cache_dir=tmp_path / "cache")
    data = TuningData(shapes, options, CPU)
    config = TrialConfig(backbone="tiny_cnn", strategy="partial_freeze", freeze_depth=2, lr_head=1e-2,
                         lr_backbone=1e-3, epochs=4, patience=4, batch_size=16)
    curves, stem_runs = [], []
    for max_bytes in (frozen_prefix.MAX_BYTES, 0):  # 0: nothing fits, every validation runs in full
        monkeypatch.setattr(frozen_prefix, "MAX_BYTES", max_bytes)
        spec = tiny_backbone_spec()
        seen = [0]

        def build(pretrained, build=spec.build, seen=seen):
            model = build(pretrained)
            model.stem[0].register_forward_pre_hook(lambda _m, inputs: seen.__setitem__(0, seen[0] + len(inputs[0])))
            return model

        trained = train_trial(replace(spec, build=build), config, data, CPU, seed=3)
        curves.append(trained.learning_curve)
        stem_runs.append(seen[0])
    assert curves[0] == curves[1] and len(curves[0]) == 4
    # epochs 2-4 validated after the frozen stages; each of the 4 validations checks CHECK_IMAGES
    assert stem_runs[1] - stem_runs[0] == 3 * len(data.val_idx) - 4 * frozen_prefix.CHECK_IMAGES > 0
