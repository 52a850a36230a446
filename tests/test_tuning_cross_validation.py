"""Cross-validated trials for small data (issue #17 point 5): folds, their scores, and what a user reads."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from tladvisor.plugins import PluginHost
from tladvisor.records import AnalysisOptions, Dataset, Recommendation
from tladvisor.report.tuning_view import tuning_view
from tladvisor.testing import tiny_backbone_spec
from tladvisor.tuning.data import TuningData
from tladvisor.tuning.folds import CV_MAX_IMAGES, cv_accuracy_text, wanted_folds
from tladvisor.tuning.study import Tuner
from tladvisor.tuning.synthetic import write_shapes_dataset

from helpers import TINY_PLUGIN, analyze_tiny

CPU = torch.device("cpu")
RECOMMENDATION = Recommendation(backbone="tiny_cnn", strategy="feature_extraction", freeze_depth=3, n_stages=3,
                                learning_rates={"head": 0.05, "backbone": 1e-3, "layer_decay": 0.8},
                                confidence=0.5, rationale=(), epochs=4)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Dataset:
    """2 classes x 6 images: a validation split of 2 images, the case of the issue."""
    return write_shapes_dataset(tmp_path_factory.mktemp("tiny"), n_classes=2, per_class=6, size=32)


def options_for(dataset: Dataset, tmp_path, **changes) -> AnalysisOptions:
    values = dict(run_dir=tmp_path / "run", cache_dir=tmp_path / "cache", val_fraction=0.2, batch_size=8, seed=0,
                  study_name="tiny", device="cpu")
    return AnalysisOptions(source=dataset.root, **{**values, **changes})


def with_own_split(dataset: Dataset) -> Dataset:
    """The same images with a dataset-defined split: the last two of each class are validation images."""
    samples = []
    for sample in dataset.samples:
        index = int(sample.path.stem)
        samples.append(replace(sample, split="val" if index >= 4 else "train"))
    return replace(dataset, samples=tuple(samples))


def test_the_folds_partition_the_pool_stratified_and_seeded(tiny, tmp_path):
    data = TuningData(tiny, options_for(tiny, tmp_path), CPU)
    plan = data.fold_plan
    assert plan is not None and plan.k == 3 and plan.pool_size == 12
    validated = np.concatenate(plan.val)
    assert sorted(validated.tolist()) == list(range(12))  # every image validated exactly once
    labels = tiny.labels
    for train, val in zip(plan.train, plan.val):
        assert not set(train) & set(val) and len(train) + len(val) == 12
        assert sorted(np.bincount(labels[val], minlength=2)) == [2, 2]  # stratified: 2 of each class
    again = TuningData(tiny, options_for(tiny, tmp_path), CPU).fold_plan  # a re-run: the same folds
    assert all(np.array_equal(a, b) for a, b in zip(again.val, plan.val))
    other = TuningData(tiny, options_for(tiny, tmp_path, seed=1), CPU).fold_plan
    assert not all(np.array_equal(a, b) for a, b in zip(other.val, plan.val))
    views = data.fold_views()  # each view trains and validates on its fold, features sliced from one pass
    spec = tiny_backbone_spec()
    for view, val in zip(views, plan.val):
        assert np.array_equal(view.val_idx, val)
        features = view.features(spec)
        assert features.val_y.tolist() == labels[val].tolist() and len(features.train_y) == 8


def test_auto_uses_cv_only_for_small_splits_of_affordable_data(tiny):
    assert wanted_folds(tiny, 12, 2, "auto")[0] == 3
    assert wanted_folds(tiny, 12, 2, "1")[0] == 1
    assert wanted_folds(tiny, 12, 2, "5")[0] == 5
    assert wanted_folds(tiny, 1000, 193, "auto")[0] == 1  # 193 validation images tell strategies apart
    folds, reason = wanted_folds(tiny, CV_MAX_IMAGES + 1, 150, "auto")
    assert folds == 1 and "--cv-folds" in reason  # too costly by default, and the user is told how to force it
    folds, reason = wanted_folds(with_own_split(tiny), 12, 4, "3")
    assert folds == 1 and "own validation split" in reason


def test_a_trial_is_scored_by_the_mean_over_the_same_folds_as_every_other_trial(tiny, tmp_path, monkeypatch):
    from tladvisor.tuning.study import trial_run

    validated: dict[int, list[list[int]]] = {}
    real = trial_run.train_trial

    def spy(spec, config, data, device, *, seed, **kwargs):
        validated.setdefault(seed, []).append(data.val_idx.tolist())
        return real(spec, config, data, device, seed=seed, **kwargs)

    monkeypatch.setattr(trial_run, "train_trial", spy)
    options = options_for(tiny, tmp_path, trials=3)
    result = Tuner(options, host=PluginHost(load_entry_points=False)).run(tiny, RECOMMENDATION,
                                                                           [tiny_backbone_spec()])
    complete = [t for t in result.trials if t.state == "COMPLETE"]
    assert len(complete) >= 2
    plan = TuningData(tiny, options, CPU).fold_plan
    expected = [v.tolist() for v in plan.val]
    assert len(validated) == len(result.trials) and all(v == expected for v in validated.values())
    for trial in complete:
        folds = trial.folds
        assert folds["k"] == 3 and folds["images"] == 12 and len(folds["accuracies"]) == 3
        assert trial.value == pytest.approx(np.mean(folds["accuracies"]))
        assert folds["spread"] == pytest.approx(np.std(folds["accuracies"], ddof=1))
        # each fold's accuracy is a count over its 4 validation images
        assert all(round(a * 4) == pytest.approx(a * 4) for a in folds["accuracies"])
        assert list(trial.learning_curve) == folds["curves"][0]  # fold 0's curve is reported and pruned on
    assert result.cross_validation["folds"] == 3 and result.cross_validation["images"] == 12


def test_an_own_validation_folder_and_cv_folds_1_keep_the_single_split(tiny, tmp_path):
    own = with_own_split(tiny)
    data = TuningData(own, options_for(own, tmp_path, cv_folds="3"), CPU)
    assert data.fold_plan is None and "own validation split" in data.cv_reason
    assert data.val_idx.tolist() == [i for i, s in enumerate(own.samples) if s.split == "val"]

    options = options_for(tiny, tmp_path, cv_folds="1", trials=1)
    data = TuningData(tiny, options, CPU)
    assert data.fold_plan is None and data.fold_views() == []
    result = Tuner(options, host=PluginHost(load_entry_points=False)).run(tiny, RECOMMENDATION,
                                                                           [tiny_backbone_spec()])
    (trial,) = result.trials
    assert trial.folds is None and trial.value == max(trial.learning_curve)
    assert result.cross_validation["folds"] == 1


def test_the_fold_spread_is_what_the_report_and_the_terminal_say():
    folds = {"k": 3, "accuracies": [0.75, 1.0, 0.75], "mean": 0.8333, "spread": 0.1443, "images": 12}
    assert cv_accuracy_text(0.8333, folds) == "0.833 ± 0.083 (standard error over 3 folds, 12 images in all)"
    assert cv_accuracy_text(0.8333, None) == "0.833"
    trial = {"number": 0, "state": "COMPLETE", "value": 0.8333, "params": {"strategy": "feature_extraction"},
             "learning_curve": [0.5, 0.75], "folds": folds}
    view = tuning_view({"tuning": {"trials": [trial], "best": trial, "best_by_strategy": {"feature_extraction": 0},
                                   "cross_validation": {"folds": 3, "images": 12, "reason": "small"}}})
    assert view["best"]["value"] == "0.833 ± 0.083 (standard error over 3 folds, 12 images in all)"
    assert view["trials"][0]["value"] == "0.833 ± 0.083"
    assert "3 cross-validation folds (12 images in all" in view["scoring"]


def test_analyze_with_cv_folds_prints_and_reports_the_spread(write_plugin, tiny, tmp_path, capsys):
    plugins = write_plugin("tiny_plugin", TINY_PLUGIN)
    assert analyze_tiny(plugins, tiny.root, tmp_path, "--trials", "1", "--cv-folds", "3") == 0
    out = " ".join(capsys.readouterr().out.split())  # the terminal wraps long lines
    assert "val accuracy" in out and "(standard error over 3 folds, 12 images in all)" in out and "±" in out
    assert "(mean over 3 folds, 12 images validated in all, standard error " in out  # the verdict says it too
    run_dir = tmp_path / "reports" / "run"
    analysis = json.loads((run_dir / "analysis.json").read_text())
    assert analysis["options"]["cv_folds"] == "3"
    (trial,) = analysis["tuning"]["trials"]
    assert trial["folds"]["k"] == 3 and analysis["tuning"]["cross_validation"]["folds"] == 3
    assert "(standard error over 3 folds, 12 images in all)" in (run_dir / "index.html").read_text()
    for bad in ("0", "two"):
        assert analyze_tiny(plugins, tiny.root, tmp_path, "--cv-folds", bad) == 2
        assert "--cv-folds" in capsys.readouterr().err


def test_a_chosen_fold_count_is_another_run_and_auto_keeps_the_earlier_names(tiny, tmp_path):
    from tladvisor.runtime.run_folder import run_name_for

    auto = options_for(tiny, tmp_path)
    assert run_name_for(auto) == run_name_for(replace(auto, cv_folds="auto"))
    assert len({run_name_for(replace(auto, cv_folds=k)) for k in ("auto", "1", "3")}) == 3


def test_a_joining_worker_leaves_the_studys_scoring_as_stored(tiny, tmp_path):
    from tladvisor.tuning.folds import CROSS_VALIDATION

    options = options_for(tiny, tmp_path, trials=2)
    study = Tuner(options, host=PluginHost(load_entry_points=False)).start(tiny, RECOMMENDATION,
                                                                           [tiny_backbone_spec()])
    study.set_user_attr(CROSS_VALIDATION, {"folds": 5, "images": 12, "reason": "stored by the describer"})
    worker = Tuner.joining(options, host=PluginHost(load_entry_points=False), max_trials=0)
    worker.run(tiny, RECOMMENDATION, [tiny_backbone_spec()], join=True)
    assert study.user_attrs[CROSS_VALIDATION]["reason"] == "stored by the describer"


def test_a_deadline_during_a_later_fold_names_the_fold(tiny, tmp_path, monkeypatch):
    from tladvisor.tuning.study import trial_run
    from tladvisor.tuning.trainer import DeadlineReached

    real, calls = trial_run.train_trial, []

    def deadline_in_fold_two(spec, config, data, device, *, seed, **kwargs):
        calls.append(seed)
        if len(calls) == 2:  # the second training of the trial: fold 2, in its second epoch
            raise DeadlineReached(1)
        return real(spec, config, data, device, seed=seed, **kwargs)

    monkeypatch.setattr(trial_run, "train_trial", deadline_in_fold_two)
    result = Tuner(options_for(tiny, tmp_path, trials=1), host=PluginHost(load_entry_points=False)).run(
        tiny, RECOMMENDATION, [tiny_backbone_spec()])
    trial = result.trials[0]  # (no real deadline: the search goes on, as the cut trial fills no place)
    assert trial.state == "PRUNED"
    assert trial.reason == (f"stopped by the --timeout deadline during epoch 2 of fold 2 of 3 "
                            f"(fold 1's {len(trial.learning_curve)} finished epochs kept)")
    assert trial.learning_curve


def test_a_private_store_folder_made_by_a_fold_view_outlives_the_view(tiny, tmp_path):
    import gc

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # the cache cannot hold the store: a private folder holds it
    data = TuningData(tiny, options_for(tiny, tmp_path, cache_dir=blocker / "cache", image_size=32), CPU)
    views = data.fold_views()
    store = views[1].store(tiny_backbone_spec())
    del views
    gc.collect()
    assert data.store(tiny_backbone_spec()) is store and store.path.is_file()
    assert len(store.rows([0, 11])) == 2


def test_a_trials_fold_record_holds_the_sample_spread_and_the_error_of_the_mean():
    """#24 statistics item 3: "± over 3 folds" was the folds' standard deviation, read as the error of
    their mean; the record keeps both, computed one way (ddof = 1), and the ± shown is the standard error."""
    from tladvisor.tuning.folds import fold_standard_error, fold_summary

    record = fold_summary([0.75, 1.0, 0.75], 12)
    assert record["spread"] == pytest.approx(0.144338, abs=1e-6)  # sample standard deviation
    assert record["standard_error"] == pytest.approx(0.144338 / 3 ** 0.5, abs=1e-6)
    assert fold_standard_error({"k": 3, "spread": 0.144338}) == pytest.approx(0.083334, abs=1e-6)  # older records


def test_a_cross_validated_trial_records_every_folds_correctness_or_none(tiny, tmp_path):
    """The paired test compares per-image records: the folds' in fold order, each image once; a fold
    without one leaves the trial without one (fold 0's alone must not pass for the whole pool)."""
    from tladvisor.tuning.cross_validation import train_cross_validated
    from tladvisor.tuning.paired_test import CORRECTNESS_ATTR
    from tladvisor.tuning.strategies import TrialConfig
    from tladvisor.tuning.trainer import TrainedModel

    options = options_for(tiny, tmp_path, trials=1)
    data = TuningData(tiny, options, CPU)
    config = TrialConfig(backbone="tiny_cnn", strategy="feature_extraction", epochs=1)

    def fake(bits_of):
        def train(spec, config, view, device, seed, **kwargs):
            fold = next(i for i, v in enumerate(data.fold_plan.val) if v.tolist() == view.val_idx.tolist())
            extras = {} if bits_of(fold) is None else {CORRECTNESS_ATTR: bits_of(fold)}
            return TrainedModel(0.5, [0.5], 0, 8, False, lambda: None, extras)
        return train
    sizes = [len(v) for v in data.fold_plan.val]
    whole = train_cross_validated(tiny_backbone_spec(), config, data, CPU, seed=0,
                                  train=fake(lambda f: str(f) * sizes[f]))
    assert whole.extras[CORRECTNESS_ATTR] == "".join(str(f) * n for f, n in enumerate(sizes))
    assert len(whole.extras[CORRECTNESS_ATTR]) == data.fold_plan.pool_size
    partial = train_cross_validated(tiny_backbone_spec(), config, data, CPU, seed=0,
                                    train=fake(lambda f: "1" * sizes[f] if f == 0 else None))
    assert CORRECTNESS_ATTR not in partial.extras


def test_every_trial_stores_one_correctness_record_over_the_whole_fold_pool(tiny, tmp_path):
    """The paired verdict compares trials image by image: each cross-validated trial stores its folds' records
    (every pooled image once, in the plan's fold order), and the verdict names the test it used."""
    import optuna

    from tladvisor.tuning.paired_test import CORRECTNESS_ATTR

    options = options_for(tiny, tmp_path, trials=2)
    result = Tuner(options, host=PluginHost(load_entry_points=False)).run(tiny, RECOMMENDATION, [tiny_backbone_spec()])
    study = optuna.load_study(study_name="tiny", storage=result.storage)
    plan = TuningData(tiny, options, CPU).fold_plan
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert complete and all(len(t.user_attrs[CORRECTNESS_ATTR]) == plan.pool_size for t in complete)
    for t in complete:  # the record is the trial's: fold by fold, its right images are its fold accuracies
        bits, start = t.user_attrs[CORRECTNESS_ATTR], 0
        for accuracy, fold in zip(t.user_attrs["folds"]["accuracies"], plan.val):
            assert bits[start:start + len(fold)].count("1") == round(accuracy * len(fold))
            start += len(fold)
    verdict = result.versus_advice
    assert verdict is not None and (verdict["test"] is None or verdict["test"].startswith("exact McNemar"))
