"""Every registered backbone honours the BackboneSpec contract, and the conformance check catches breakage."""

from __future__ import annotations

from dataclasses import replace

import pytest
from torch import nn

from tladvisor.backbones import BackboneSpec, Preprocessing, Stage
from tladvisor.plugins import PluginHost
from tladvisor.testing import assert_backbone_conforms, check_backbone, tiny_backbone_spec

SMALL_IMAGE_SIZE = 64
REGISTERED = PluginHost().backbones()  # built-ins plus every installed backbone plugin


@pytest.mark.parametrize("name", sorted(REGISTERED))
def test_registered_backbone_conforms(name: str) -> None:
    spec = REGISTERED[name]
    # ViT-sized models run at their fixed 224 px: one image keeps that fast on CPU.
    batch_size = 1 if spec.fixed_input_size else 2
    assert_backbone_conforms(spec, image_size=SMALL_IMAGE_SIZE, pretrained=False, batch_size=batch_size)


def test_registered_backbones_name_their_plugin() -> None:
    assert REGISTERED, "no backbone registered at all"
    assert all(spec.plugin for spec in REGISTERED.values())


def test_tiny_backbone_conforms() -> None:
    assert check_backbone(tiny_backbone_spec()) == []


def _problems(spec: BackboneSpec) -> str:
    problems = check_backbone(spec)
    assert problems, "the broken spec was accepted"
    return "\n".join(problems)


def test_check_reports_a_stage_path_that_does_not_exist() -> None:
    spec = tiny_backbone_spec()
    broken = replace(spec, stages=spec.stages[:2] + (Stage("block2", ("block3",)),))
    assert "stage 'block2' member 'block3' does not exist" in _problems(broken)


def test_check_reports_a_head_path_that_does_not_exist() -> None:
    assert "head member 'classifier' does not exist" in _problems(replace(tiny_backbone_spec(), head="classifier"))


def test_check_reports_a_parameter_owned_by_no_stage() -> None:
    spec = tiny_backbone_spec()
    text = _problems(replace(spec, stages=spec.stages[:2]))  # block2 left out
    assert "owned by no stage or head" in text
    assert "'block2.0.weight'" in text


def test_check_reports_a_parameter_owned_twice() -> None:
    spec = tiny_backbone_spec()
    text = _problems(replace(spec, stages=spec.stages + (Stage("again", ("block2.0",)),)))
    assert "owned more than once" in text
    assert "block2.0.weight (block2 and again)" in text


def test_check_reports_stages_out_of_order() -> None:
    stem, block1, block2 = tiny_backbone_spec().stages
    text = _problems(replace(tiny_backbone_spec(), stages=(block1, stem, block2)))
    assert "stages out of order" in text
    assert "'block1.0.weight' of 'block1' comes after parameters of 'stem'" in text


def test_check_reports_a_wrong_feature_dim() -> None:
    text = _problems(replace(tiny_backbone_spec(width=8), feature_dim=64))  # the real embedding has 32
    assert "embedding has shape (2, 32), expected (2, 64)" in text
    assert "after replace_head" in text  # the new head is built for 64 inputs and cannot take 32


def test_check_reports_wrong_source_classes() -> None:
    text = _problems(replace(tiny_backbone_spec(), source_classes=1000))
    assert "source logits have shape (2, 10), expected (2, 1000)" in text


def test_check_reports_a_head_that_is_not_linear() -> None:
    text = _problems(replace(tiny_backbone_spec(), head="pool", stages=tiny_backbone_spec().stages
                             + (Stage("fc", ("fc",)),)))
    assert "head 'pool' is AdaptiveAvgPool2d, not nn.Linear" in text


@pytest.mark.parametrize(("changes", "message"), [
    ({"name": "my backbone"}, "name must start with a letter"),
    ({"feature_dim": 0}, "feature_dim must be a positive int"),
    ({"stages": ()}, "stages is empty"),
    ({"preprocessing": Preprocessing(input_size=0)}, "preprocessing sizes must be positive"),
    ({"preprocessing": Preprocessing(mean=(0.5,), std=(0.5,))}, "need 3 values"),
    ({"weights_available": lambda: 1 / 0}, "weights_available() raised ZeroDivisionError"),
])
def test_check_reports_malformed_fields(changes: dict, message: str) -> None:
    assert message in _problems(replace(tiny_backbone_spec(), **changes))


def test_check_reports_a_build_that_fails_or_returns_no_module() -> None:
    def failing_build(pretrained: bool) -> nn.Module:
        raise RuntimeError("checkpoint missing")

    assert "build(False) raised RuntimeError: checkpoint missing" in _problems(
        replace(tiny_backbone_spec(), build=failing_build))
    assert "returned dict, not an nn.Module" in _problems(replace(tiny_backbone_spec(), build=lambda p: {}))


def test_assert_backbone_conforms_lists_every_problem() -> None:
    spec = tiny_backbone_spec()
    broken = replace(spec, feature_dim=64, stages=spec.stages[:2])
    with pytest.raises(AssertionError) as caught:
        assert_backbone_conforms(broken)
    message = str(caught.value)
    assert message.startswith("backbone 'tiny_cnn' does not conform:")
    assert "owned by no stage" in message and "embedding has shape" in message
