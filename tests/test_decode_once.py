"""A run decodes each image once: measuring, every trial and every backbone read one store per resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from tladvisor.advisor import Advisor
from tladvisor.plugins import PluginHost
from tladvisor.records import AnalysisOptions

from helpers import write_image_folder

THREE_BACKBONES = '''
from dataclasses import replace

from tladvisor import hookimpl
from tladvisor.testing import tiny_backbone_spec

@hookimpl
def register_backbones(register):
    register(tiny_backbone_spec())
    register(tiny_backbone_spec("tiny_twin", seed=5))  # the same resolution as tiny_cnn
    register(replace(tiny_backbone_spec("tiny_fixed", input_size=24, seed=3), fixed_input_size=True))
'''



@pytest.fixture
def analyze(write_plugin, tmp_path):
    """An analysis as ``tladvisor analyze`` runs it, with only these test backbones (no installed plugin)."""
    plugins = write_plugin("three_backbones", THREE_BACKBONES)

    def run(data: Path, run_name: str, *backbones: str, trials: int = 0):
        options = AnalysisOptions(source=data, out_dir=tmp_path / "reports", run_name=run_name, backbones=backbones,
                                  image_size=32, trials=trials, cache_dir=tmp_path / "cache", device="cpu",
                                  batch_size=16)
        return Advisor(options, host=PluginHost(plugins, load_entry_points=False)).run()

    return run


def test_a_second_analysis_at_another_trial_count_or_backbone_decodes_nothing(analyze, tmp_path, decodes):
    data = write_image_folder(tmp_path / "data", n_classes=3, per_class=8)
    first = analyze(data, "first", "tiny_cnn", trials=2)
    assert len(first.tuning.trials) == 2
    assert sorted(decodes) == sorted(data.rglob("*.png"))  # measuring and both trials: one decode per image
    decodes.clear()
    # another trial count, and a backbone of the same resolution that was never measured
    second = analyze(data, "second", "tiny_cnn", "tiny_twin", trials=3)
    assert [m.backbone for m in second.measurements] == ["tiny_cnn", "tiny_twin"]
    assert len(second.tuning.trials) == 3
    assert decodes == []


def test_backbones_of_two_resolutions_share_one_decode(analyze, tmp_path, decodes):
    data = write_image_folder(tmp_path / "data", n_classes=2, per_class=6)
    run = analyze(data, "two", "tiny_cnn", "tiny_fixed")
    assert [m.image_size for m in run.measurements] == [32, 24]
    assert sorted(decodes) == sorted(data.rglob("*.png"))  # not once per backbone
    stores = sorted(p.name.split("-")[1] for p in (tmp_path / "cache").glob("decoded-*.npy"))
    assert len(stores) == 2 and len(set(stores)) == 2  # tiny_cnn at 32 px, tiny_fixed at its own 24 px


def test_training_batches_come_even_when_the_cache_cannot_hold_the_store(tmp_path):
    import torch

    from tladvisor.testing import tiny_backbone_spec
    from tladvisor.tuning.data import TuningData

    from helpers import dataset_from_folder

    dataset = dataset_from_folder(write_image_folder(tmp_path / "data", n_classes=2, per_class=5))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    options = AnalysisOptions(source=dataset.root, cache_dir=blocker / "cache", image_size=32, val_fraction=0.4)
    data = TuningData(dataset, options, torch.device("cpu"))
    images, labels = next(iter(data.train_loader(tiny_backbone_spec(), 4, seed=0)))
    assert images.shape == (4, 3, 32, 32) and len(labels) == 4
    assert sum(len(y) for _, y in data.val_loader(tiny_backbone_spec(), 3)) == len(data.val_idx)


def test_the_feature_cache_key_is_worked_out_once_per_backbone(analyze, tmp_path, monkeypatch):
    """#25 item 2: the key (a hash over every measured image's digest) was computed three times per backbone
    (what is left to decode, the measurement cache, the feature cache); the advisor now hands it on."""
    import tladvisor.advisor as advisor_module
    import tladvisor.features.embed as embed_module

    calls = []
    real = embed_module.feature_key

    def counted(spec, *args, **kwargs):
        calls.append(spec.name)
        return real(spec, *args, **kwargs)
    monkeypatch.setattr(advisor_module, "feature_key", counted)
    monkeypatch.setattr(embed_module, "feature_key", counted)
    data = write_image_folder(tmp_path / "data", n_classes=2, per_class=6)
    run = analyze(data, "keys", "tiny_cnn", "tiny_twin")
    assert [m.backbone for m in run.measurements] == ["tiny_cnn", "tiny_twin"]
    assert sorted(calls) == ["tiny_cnn", "tiny_twin"]
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "cache").glob("*.npz")) == ["tiny_cnn", "tiny_twin"]
