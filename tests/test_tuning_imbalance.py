"""Imbalanced classes: --class-weights balanced changes the loss; balanced accuracy and macro-F1 are recorded."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tladvisor.runtime.run_folder import run_name_for
from tladvisor.plugins import PluginHost
from tladvisor.records import AnalysisOptions, Dataset, Recommendation
from tladvisor.report import tuning_view as view
from tladvisor.testing import tiny_backbone_spec
from tladvisor.tuning import trainer
from tladvisor.tuning.data import TuningData
from tladvisor.tuning.imbalance import balanced_class_weights, classification_metrics, unbalanced
from tladvisor.tuning.strategies import TrialConfig
from tladvisor.tuning.study import Tuner

CPU = torch.device("cpu")


@pytest.fixture
def skewed(shapes) -> Dataset:
    """12 images of the first class, 4 of each other one."""
    kept, seen = [], {}
    for sample in shapes.samples:
        seen[sample.label] = seen.get(sample.label, 0) + 1
        if sample.label == 0 or seen[sample.label] <= 4:
            kept.append(sample)
    return replace(shapes, samples=tuple(kept))


def options_for(dataset: Dataset, tmp_path: Path, **changes) -> AnalysisOptions:
    return AnalysisOptions(source=dataset.root, val_fraction=0.25, batch_size=8, cache_dir=tmp_path / "cache",
                           run_dir=tmp_path / "run", study_name="skewed", device="cpu", **changes)


def test_balanced_weights_give_each_class_the_same_total_weight_and_change_the_loss():
    labels = torch.tensor([0] * 6 + [1] * 2 + [2] * 2)
    weights = balanced_class_weights(labels, 4)  # class 3 is absent
    assert weights.tolist() == pytest.approx([10 / 18, 10 / 6, 10 / 6, 0.0])
    assert float(weights[labels].sum()) == pytest.approx(len(labels))
    logits = torch.zeros(10, 4)
    logits[:, 0] = 2.0  # a model that always says "class 0"
    plain = trainer.loss_function(logits, labels, 0.0)
    weighted = trainer.loss_function(logits, labels, 0.0, weights)
    assert float(weighted) > float(plain) + 0.3  # the minority classes it misses now cost more


def test_metrics_see_what_accuracy_hides():
    labels = torch.tensor([0] * 8 + [1, 2])
    always_zero = torch.zeros(10, dtype=torch.long)
    metrics = classification_metrics(always_zero, labels, 3)
    assert metrics == {"balanced_accuracy": pytest.approx(1 / 3), "macro_f1": pytest.approx((16 / 18) / 3)}
    assert unbalanced({"a": 12, "b": 4}) and not unbalanced({"a": 11, "b": 4}) and not unbalanced([10, 9, 11])


@pytest.mark.parametrize("strategy", ["feature_extraction", "full_finetune"])
def test_class_weights_reach_the_training_loss_of_every_strategy(skewed, tmp_path, monkeypatch, strategy):
    seen = []
    real = trainer.loss_function

    def spy(logits, labels, smoothing, weight=None):
        seen.append(weight)
        return real(logits, labels, smoothing, weight)

    monkeypatch.setattr(trainer, "loss_function", spy)
    config = TrialConfig(backbone="tiny_cnn", strategy=strategy, epochs=1, batch_size=8)
    data = TuningData(skewed, options_for(skewed, tmp_path, class_weights="balanced"), CPU)
    trained = trainer.train_trial(tiny_backbone_spec(), config, data, CPU)
    expected = balanced_class_weights(torch.as_tensor(skewed.labels[data.train_idx]), 3)
    assert seen and all(w is not None and torch.equal(w, expected) for w in seen)
    assert expected[0] < expected[1]  # the large class weighs less
    assert set(trained.extras) >= {"balanced_accuracy", "macro_f1"}

    seen.clear()
    plain = TuningData(skewed, options_for(skewed, tmp_path), CPU)
    trainer.train_trial(tiny_backbone_spec(), config, plain, CPU)
    assert seen and all(w is None for w in seen)  # the default stays unweighted


def test_trials_record_balanced_accuracy_shown_beside_accuracy_where_classes_are_unbalanced(skewed, tmp_path):
    recommendation = Recommendation(backbone="tiny_cnn", strategy="feature_extraction", freeze_depth=3, n_stages=3,
                                    learning_rates={"head": 1e-2}, confidence=0.5, rationale=("test",), epochs=3)
    options = options_for(skewed, tmp_path, trials=1, class_weights="balanced")
    result = Tuner(options, host=PluginHost(load_entry_points=False)).run(skewed, recommendation,
                                                                           [tiny_backbone_spec()])
    (trial,) = result.trials
    assert set(trial.metrics) == {"balanced_accuracy", "macro_f1"}
    assert all(0.0 <= v <= 1.0 for v in trial.metrics.values())

    analysis = {"dataset": {"class_counts": skewed.class_counts()},
                "tuning": {"trials": [{"number": 0, "state": "COMPLETE", "value": trial.value, "params": trial.params,
                                       "metrics": trial.metrics, "learning_curve": list(trial.learning_curve)}]}}
    shown = view.tuning_view(analysis)
    assert shown["metric_columns"] == [("balanced_accuracy", "balanced accuracy"), ("macro_f1", "macro-F1")]
    assert shown["trials"][0]["metrics"] == [view.fmt(trial.metrics["balanced_accuracy"]),
                                             view.fmt(trial.metrics["macro_f1"])]
    analysis["dataset"]["class_counts"] = {"a": 10, "b": 10, "c": 10}
    assert view.tuning_view(analysis)["metric_columns"] == []  # balanced data: accuracy says it all
    assert shown["class_weights"] is None  # no options recorded: not said
    analysis["options"] = {"class_weights": "balanced"}
    assert view.tuning_view(analysis)["class_weights"].startswith("loss weighted by inverse class frequency")


def test_the_summary_and_the_report_say_when_the_loss_was_class_weighted(skewed, tmp_path, write_plugin, capsys):
    """#26 item 5: --class-weights balanced is said in the summary and in the report's tuning section."""
    from helpers import TINY_PLUGIN, analyze_tiny, write_image_folder

    plugins = write_plugin("tiny_plugin", TINY_PLUGIN)
    data = write_image_folder(tmp_path / "data", n_classes=3, per_class=10)
    said = "trials are still ranked, pruned and kept on plain accuracy"
    assert analyze_tiny(plugins, data, tmp_path, "--trials", "1", "--class-weights", "balanced") == 0
    assert said in " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert "class weights</dt><dd>loss weighted" in (tmp_path / "reports" / "run" / "index.html").read_text()
    assert analyze_tiny(plugins, data, tmp_path, "--trials", "1", run_name="plain") == 0
    assert "class frequency" not in capsys.readouterr().out
    assert "class weights</dt>" not in (tmp_path / "reports" / "plain" / "index.html").read_text()


def test_class_weights_get_their_own_run_folder_and_the_default_keeps_the_old_name(shapes, tmp_path):
    plain = AnalysisOptions(source=shapes.root)
    assert run_name_for(plain) != run_name_for(replace(plain, class_weights="balanced"))
    assert run_name_for(plain) == run_name_for(replace(plain, class_weights="none"))
