"""LoRA as a strategy: adapters start as the identity, only they and the head train, merging folds them into
plain linear layers (the kept model loads into the backbone's own architecture), it is searched for text
backbones only, and a trial with it trains and keeps such a model."""

from __future__ import annotations

import numpy as np
import optuna
import torch
from helpers import require_module
from torch import nn

require_module("transformers", "pip install -e plugins/tladvisor-transformers")

from tladvisor.backbones import BackboneSpec  # noqa: E402
from tladvisor.modeling import replace_head  # noqa: E402
from tladvisor.records import AnalysisOptions, Recommendation  # noqa: E402
from tladvisor.strategies import BUILT_IN_STRATEGIES  # noqa: E402
from tladvisor.testing import tiny_backbone_spec  # noqa: E402
from tladvisor.tuning.search import suggest_params  # noqa: E402
from tladvisor.tuning.strategies import TrialConfig, build_model  # noqa: E402
from tladvisor_transformers import folder_backbone  # noqa: E402
from tladvisor_transformers.lora import LORA, LoRALinear, adapt, merge  # noqa: E402

from tladvisor_transformers.testing import random_texts, text_dataset, tiny_bert_folder  # noqa: E402


def spec_for(tmp_path) -> BackboneSpec:
    return folder_backbone("tiny-bert", tiny_bert_folder(tmp_path / "tiny"))


def sample_ids() -> torch.Tensor:
    return torch.tensor([[2, 5, 9, 11, 3, 0], [2, 7, 8, 3, 0, 0]])


def test_adapters_start_as_the_identity_and_merge_into_plain_linear_layers(tmp_path):
    spec = spec_for(tmp_path)
    model = spec.build(True).eval()
    replace_head(model, spec, 2)
    with torch.no_grad():
        before = model(sample_ids())
    adapt(model, spec, {"lora_rank": 4, "lora_targets": "all"})
    adapters = [m for m in model.modules() if isinstance(m, LoRALinear)]
    assert len(adapters) == 2 * 6  # two layers, six linear layers each
    with torch.no_grad():
        assert torch.allclose(model(sample_ids()), before, atol=1e-6)
        for adapter in adapters:
            adapter.lora_b.normal_(0, 0.1)  # as if trained
        adapted = model(sample_ids())
    merge(model)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    with torch.no_grad():
        assert torch.allclose(model(sample_ids()), adapted, atol=1e-5)
    fresh = spec.build(False)
    replace_head(fresh, spec, 2)
    fresh.load_state_dict(model.state_dict(), strict=True)  # the backbone's own architecture again


def test_only_the_adapters_and_the_head_train(tmp_path):
    spec = spec_for(tmp_path)
    config = TrialConfig(backbone=spec.name, strategy="lora", plan=LORA, extra={"lora_rank": 8, "lora_targets": "qv"})
    model = build_model(spec, config, 3)
    trained = sorted(name for name, p in model.named_parameters() if p.requires_grad)
    assert trained == sorted([f"encoder.encoder.layer.{i}.attention.self.{m}.lora_{x}" for i in range(2)
                              for m in ("query", "value") for x in "ab"] + ["head.bias", "head.weight"])
    assert model.encoder.encoder.layer[0].attention.self.query.lora_a.shape == (8, 16)


def test_lora_is_searched_for_text_backbones_only(tmp_path):
    registry = {**BUILT_IN_STRATEGIES, "lora": LORA}
    recommendation = Recommendation("x", "feature_extraction", 2, 3, {"head": 1e-3}, 0.5, ())
    options = AnalysisOptions(source=tmp_path, device="cpu")
    choices = {}
    for backbone in (tiny_backbone_spec(), spec_for(tmp_path)):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        drawn = []
        for _ in range(40):
            trial = study.ask()
            params = suggest_params(trial, recommendation, [backbone], options, registry)
            drawn.append(params)
            study.tell(trial, 0.5)
        choices[backbone.modality] = {p["strategy"] for p in drawn}
        if backbone.modality == "text":
            lora = [p for p in drawn if p["strategy"] == "lora"]
            assert lora and all(p["lora_rank"] in (4, 8, 16) and p["lora_targets"] in ("qv", "all") for p in lora)
    assert "lora" in choices["text"] and "lora" not in choices["image"]


def test_a_lora_trial_trains_and_keeps_a_plain_model(tmp_path):
    from tladvisor.tuning.data import TuningData
    from tladvisor.tuning.trainer import train_trial

    spec = spec_for(tmp_path)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=40)
    dataset = text_dataset(random_texts(40, seed=3), labels)
    data = TuningData(dataset, AnalysisOptions(source=tmp_path, cache_dir=tmp_path / "cache", cv_folds="1"),
                      torch.device("cpu"))
    config = TrialConfig(backbone=spec.name, strategy="lora", plan=LORA, epochs=2, batch_size=8,
                         extra={"lora_rank": 4, "lora_targets": "qv"})
    base = spec.build(True).encoder.encoder.layer[0].attention.self.query.weight.detach().clone()
    trained = train_trial(spec, config, data, torch.device("cpu"))
    assert len(trained.learning_curve) == 2
    model = trained.model
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    query = model.encoder.encoder.layer[0].attention.self.query
    assert isinstance(query, nn.Linear) and not torch.equal(query.weight, base)  # the update was folded in
    key = model.encoder.encoder.layer[0].attention.self.key.weight
    assert torch.equal(key, spec.build(True).encoder.encoder.layer[0].attention.self.key.weight)  # not a target


def test_a_distilbert_layout_gets_its_own_adapters(tmp_path):
    from tladvisor.testing import check_backbone

    spec = folder_backbone("tiny-distilbert", tiny_bert_folder(tmp_path / "d", kind="distilbert"))
    assert check_backbone(spec, pretrained=True) == []
    model = spec.build(True)
    replace_head(model, spec, 2)
    adapt(model, spec, {"lora_rank": 4, "lora_targets": "qv"})
    adapted = sorted(n for n, m in model.named_modules() if isinstance(m, LoRALinear))
    assert adapted == [f"encoder.transformer.layer.{i}.attention.{m}" for i in range(2) for m in ("q_lin", "v_lin")]


def test_lora_refuses_a_model_it_finds_no_target_in(tmp_path):
    import pytest

    spec = spec_for(tmp_path)
    model = nn.Sequential()  # nothing named like an attention layer
    with pytest.raises(ValueError, match="no linear layer named as LoRA's targets"):
        adapt(model, spec, {"lora_rank": 4, "lora_targets": "qv"})


def test_every_registered_strategy_trains_a_text_model(tmp_path):
    from tladvisor.plugins import PluginHost, strategy_registry
    from tladvisor.tuning.data import TuningData
    from tladvisor.tuning.search import run_modality
    from tladvisor.strategies import strategies_for
    from tladvisor.tuning.trainer import train_trial

    spec = spec_for(tmp_path)
    registry = strategies_for(strategy_registry(PluginHost()), run_modality([spec]))
    assert set(registry) == {"feature_extraction", "partial_freeze", "full_finetune", "from_scratch", "lp_ft", "lora"}
    dataset = text_dataset(random_texts(30, seed=6), np.arange(30) % 2)
    data = TuningData(dataset, AnalysisOptions(source=tmp_path, cache_dir=tmp_path / "cache", cv_folds="1"),
                      torch.device("cpu"))
    for name, plan in registry.items():
        config = TrialConfig(backbone=spec.name, strategy=name, plan=plan, freeze_depth=1, epochs=1, batch_size=8,
                             extra={"lora_rank": 4, "lora_targets": "all"} if name == "lora" else {})
        trained = train_trial(spec, config, data, torch.device("cpu"))
        fresh = spec.build(False)
        replace_head(fresh, spec, 2)
        fresh.load_state_dict(trained.model.state_dict(), strict=True)  # every kept model is the plain encoder
        assert len(trained.learning_curve) == 1, name


def test_validation_replays_after_a_text_models_frozen_layers(tmp_path, monkeypatch):
    import tladvisor.tuning.trainer as trainer
    from tladvisor.tuning.data import TuningData

    made = []

    class Watched(trainer.FrozenPrefix):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(trainer, "FrozenPrefix", Watched)
    spec = spec_for(tmp_path)
    data = TuningData(text_dataset(random_texts(40, seed=7), np.arange(40) % 2),
                      AnalysisOptions(source=tmp_path, cache_dir=tmp_path / "cache", cv_folds="1"), torch.device("cpu"))
    config = TrialConfig(backbone=spec.name, strategy="partial_freeze", freeze_depth=2, epochs=3, batch_size=8,
                         patience=3)
    trainer.train_trial(spec, config, data, torch.device("cpu"))
    # the embeddings take keywords only (input_ids=...): the stand-ins pass them on, and the check that the
    # stood-in network gives the full network's output passed at every later validation
    assert made and made[0].unusable is None and made[0].replays == 2
