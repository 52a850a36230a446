import math
import numpy as np
import pytest
import torch
from torch import nn

from tladvisor.features.bn_statistics import BatchNormStatistics, stage_shifts
from tladvisor.features.embed import extract_features, stratified_cap
from tladvisor.modeling import recalibrate_batchnorm
from tladvisor.testing import tiny_backbone_spec

from helpers import dataset_from_folder, write_image_folder


@pytest.fixture
def dataset(tmp_path):
    return dataset_from_folder(write_image_folder(tmp_path / "data", n_classes=3, per_class=8))


def test_stratified_cap_keeps_class_shares_and_every_class():
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    chosen = stratified_cap(labels, 20, seed=0)
    counts = np.bincount(labels[chosen], minlength=3)
    assert counts.tolist() == [18, 1, 1]
    assert len(set(chosen.tolist())) == len(chosen)
    assert stratified_cap(labels, 500).tolist() == list(range(100))


def test_features_have_embedding_source_probs_random_copy_and_stage_shift(dataset, tmp_path):
    spec = tiny_backbone_spec()
    fs = extract_features(spec, dataset, image_size=32, batch_size=5, cache_dir=None)
    assert fs.features.shape == (24, spec.feature_dim)
    assert fs.source_probs.shape == (24, 10)
    np.testing.assert_allclose(fs.source_probs.sum(1), 1.0, atol=1e-5)
    assert fs.random_features.shape == fs.features.shape
    assert not np.allclose(fs.random_features, fs.features)
    assert [s.stage for s in fs.stage_shift] == ["stem", "block1", "block2"]
    assert all(s.value >= 0 and s.n_layers == 1 for s in fs.stage_shift)
    assert fs.labels.tolist() == [s.label for s in dataset.samples]


def test_bn_shift_is_zero_when_target_matches_running_statistics():
    bn = nn.BatchNorm2d(4)
    bn.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0]))
    bn.running_var.copy_(torch.tensor([1.0, 4.0, 0.25, 9.0]))
    bn.eval()
    model = nn.Sequential(bn)
    stats = BatchNormStatistics(model)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, 16, 16, generator=generator) * bn.running_var.sqrt()[None, :, None, None] \
        + bn.running_mean[None, :, None, None]
    model(x)
    matched = stats.layer_shift()["0"]
    stats.reset()
    model(x * 3 + 1)
    shifted = stats.layer_shift()["0"]
    stats.close()
    assert matched < 0.01
    assert shifted > 1.0


def test_bn_statistics_merged_over_batches_equal_those_of_all_the_data():
    bn = nn.BatchNorm2d(3).eval()
    stats = BatchNormStatistics(nn.Sequential(bn))
    generator = torch.Generator().manual_seed(1)
    # Batches of different sizes, offsets and scales: a wrong merge formula shows in mean or variance.
    batches = [torch.randn(n, 3, 5, 7, generator=generator) * scale + shift
               for n, scale, shift in ((7, 1.0, 100.0), (2, 5.0, 90.0), (11, 0.1, 103.0))]
    for batch in batches:
        bn(batch)
    mean, m2, count = stats.sums["0"]
    stats.close()
    everything = torch.cat(batches).double().transpose(0, 1).flatten(1)
    assert count == everything.shape[1]
    np.testing.assert_allclose(mean.numpy(), everything.mean(1).numpy(), rtol=1e-6)
    np.testing.assert_allclose((m2 / count).numpy(), everything.var(1, correction=0).numpy(), rtol=1e-4)


def test_bn_statistics_of_a_channel_far_from_the_source_mean_do_not_cancel():
    bn = nn.BatchNorm2d(2).eval()  # source statistics 0 / 1
    stats = BatchNormStatistics(nn.Sequential(bn))
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(16, 2, 8, 8, generator=generator) * 0.01 + 30.0  # E[x^2] - E[x]^2 in float32 loses it
    bn(x)
    mean, m2, count = stats.sums["0"]
    stats.close()
    np.testing.assert_allclose((m2 / count).numpy(), x.double().var((0, 2, 3), correction=0).numpy(), rtol=1e-3)


def test_recalibration_weighs_every_image_the_same_and_keeps_statistics_without_images():
    norm = nn.BatchNorm2d(1)
    model = nn.Sequential(norm)
    batches = [torch.zeros(32, 1, 2, 2)] * 3 + [torch.full((4, 1, 2, 2), 3.0)]
    recalibrate_batchnorm(model, [(b, None) for b in batches], torch.device("cpu"), max_images=1000)
    assert norm.running_mean.item() == pytest.approx(3.0 * 4 / 100)  # not 3/4: the short batch is 4 images
    before = norm.running_mean.clone()
    assert recalibrate_batchnorm(model, [], torch.device("cpu")) == 0
    assert torch.equal(norm.running_mean, before)


def _images(n: int, size: int = 16, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    # Each image its own colour: i.i.d. pixel noise would average out to the same embedding.
    images = torch.rand(n, 3, 1, 1, generator=generator) + 0.1 * torch.rand(n, 3, size, size, generator=generator)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, torch.zeros(n)), batch_size=8)


def test_recalibration_gives_a_shrunken_random_network_distinct_embeddings():
    # Like torchvision's efficientnet_b0 at random init: every conv shrinks its input, so in eval mode,
    # with running statistics 0/1, all images get (nearly) the same embedding.
    torch.manual_seed(0)
    layers = []
    for c_in, c_out in ((3, 8),) + ((8, 8),) * 7:
        conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        with torch.no_grad():
            conv.weight.mul_(0.05)
            conv.bias.zero_()
        layers += [conv, nn.BatchNorm2d(c_out), nn.ReLU()]
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    loader = _images(20)
    inputs = next(iter(loader))[0]
    with torch.no_grad():
        before = model(inputs).std(0).mean().item()
    used = recalibrate_batchnorm(model, loader, torch.device("cpu"), max_images=16)
    with torch.no_grad():
        after = model(inputs).std(0).mean().item()
    assert before < 1e-6
    assert after > 0.05
    assert used == 16
    assert not model.training and all(m.momentum == 0.1 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    first = model[1]
    with torch.no_grad():
        seen = model[0](torch.cat([b for b, _ in list(loader)[:2]]))
    np.testing.assert_allclose(first.running_mean.numpy(), seen.mean((0, 2, 3)).numpy(), rtol=1e-4, atol=1e-9)


def test_stage_shift_averages_layers_inside_each_stage():
    spec = tiny_backbone_spec()
    shifts = stage_shifts(spec, {"stem.1": 1.0, "block1.1": 2.0, "block2.1": 4.0, "elsewhere": 100.0})
    assert [(s.stage, s.value) for s in shifts] == [("stem", 1.0), ("block1", 2.0), ("block2", 4.0)]


def test_cache_hit_returns_same_numbers_and_skips_forward_passes(dataset, tmp_path, monkeypatch):
    spec = tiny_backbone_spec()
    cold = extract_features(spec, dataset, image_size=32, cache_dir=tmp_path / "cache")
    assert not cold.from_cache

    def no_forward(*_args, **_kwargs):
        raise AssertionError("a cache hit must not run the backbone")

    monkeypatch.setattr("tladvisor.features.embed._forward_all", no_forward)
    warm = extract_features(spec, dataset, image_size=32, cache_dir=tmp_path / "cache")
    assert warm.from_cache
    np.testing.assert_array_equal(warm.features, cold.features)
    np.testing.assert_array_equal(warm.source_probs, cold.source_probs)
    assert warm.stage_shift == cold.stage_shift


def test_cache_key_changes_with_image_size_and_weights(dataset, tmp_path):
    cache = tmp_path / "cache"
    extract_features(tiny_backbone_spec(), dataset, image_size=32, cache_dir=cache)
    extract_features(tiny_backbone_spec(), dataset, image_size=24, cache_dir=cache)
    extract_features(tiny_backbone_spec(seed=5), dataset, image_size=32, cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 3


def test_corrupt_cache_entry_is_rebuilt(dataset, tmp_path):
    cache = tmp_path / "cache"
    spec = tiny_backbone_spec()
    first = extract_features(spec, dataset, image_size=32, cache_dir=cache)
    (entry,) = cache.glob("*.npz")
    entry.write_bytes(entry.read_bytes()[:100])  # truncated, as after a crash or a full disk
    again = extract_features(spec, dataset, image_size=32, cache_dir=cache)
    assert not again.from_cache
    np.testing.assert_allclose(again.features, first.features, rtol=1e-5, atol=1e-6)
    assert extract_features(spec, dataset, image_size=32, cache_dir=cache).from_cache


def test_random_copy_is_seeded_whatever_the_global_random_state(dataset):
    from dataclasses import replace

    from tladvisor.testing import TinyConvNet

    tiny = tiny_backbone_spec()
    # like a real backbone: build(False) draws its initial weights from torch's global generator
    spec = replace(tiny, build=lambda pretrained: tiny.build(True) if pretrained else TinyConvNet())
    torch.manual_seed(123)
    first = extract_features(spec, dataset, image_size=32, cache_dir=None, seed=7, with_random=True)
    torch.manual_seed(999)  # a different global state must not change the random baseline
    second = extract_features(spec, dataset, image_size=32, cache_dir=None, seed=7)
    np.testing.assert_array_equal(first.random_features, second.random_features)
    other = extract_features(spec, dataset, image_size=32, cache_dir=None, seed=8)
    assert not np.allclose(other.random_features, first.random_features)


def test_cache_key_changes_when_the_backbone_structure_changes(dataset, tmp_path):
    from dataclasses import replace

    from tladvisor.backbones import Stage

    cache = tmp_path / "cache"
    spec = tiny_backbone_spec()
    merged = replace(spec, stages=(Stage("stem", ("stem", "block1")), Stage("block2", ("block2",))))
    extract_features(spec, dataset, image_size=32, cache_dir=cache)
    regrouped = extract_features(merged, dataset, image_size=32, cache_dir=cache)
    assert not regrouped.from_cache
    assert [s.stage for s in regrouped.stage_shift] == ["stem", "block2"]


@pytest.fixture
def exact_calls(monkeypatch) -> list[int]:
    """Channels each call of the exact path (``torch.var_mean``) computed, in call order."""
    calls: list[int] = []
    var_mean = torch.var_mean

    def spied(rows, *args, **kwargs):
        calls.append(rows.shape[1])  # (images, channels, positions)
        return var_mean(rows, *args, **kwargs)

    monkeypatch.setattr(torch, "var_mean", spied)
    return calls


def test_bn_statistics_take_the_fast_reductions_where_they_are_exact_and_the_exact_path_where_they_cancel(
        exact_calls):
    bn = nn.BatchNorm2d(3).eval()
    model = nn.Sequential(bn)
    stats = BatchNormStatistics(model)
    generator = torch.Generator().manual_seed(4)
    # Channel 0 near the origin (fast path), channel 1 at 500 +- 0.05 (E[x^2] - E[x]^2 in float32 would
    # return noise or a negative variance), channel 2 constant (variance exactly 0).
    x = torch.randn(24, 3, 6, 5, generator=generator)
    x[:, 1] = x[:, 1] * 0.05 + 500.0
    x[:, 2] = 7.0
    for batch in x.split(10):
        model(batch)
    mean, m2, count = stats.sums["0"]
    stats.close()
    reference = x.double().transpose(0, 1).flatten(1)
    assert count == 24 * 6 * 5
    np.testing.assert_allclose(mean.numpy(), reference.mean(1).numpy(), rtol=1e-6)
    np.testing.assert_allclose((m2 / count)[:2].numpy(), reference.var(1, correction=0)[:2].numpy(), rtol=1e-4)
    assert (m2 / count)[2].item() == pytest.approx(0.0, abs=1e-9)
    assert exact_calls == [2, 2, 2]  # each batch: only the two cancelling channels took the exact path


def test_bn_statistics_send_a_channel_that_begins_to_cancel_later_down_the_exact_path_from_the_next_merge(
        exact_calls):
    bn = nn.BatchNorm2d(2).eval()
    stats = BatchNormStatistics(nn.Sequential(bn))
    generator = torch.Generator().manual_seed(6)
    every = BatchNormStatistics.MERGE_EVERY
    # Channel 1 is ordinary on the first batch (which decides the exact channels), then sits at 300 +- 0.01
    # (folder order: a class that saturates it), where float32 reductions lose a batch's variance. The
    # first merge still sees the first batch's spread (the error stays ~1e-4 of the variance); the
    # second, batches `every`..2 x `every` - 1, sees it cancel and sends it down the exact path.
    batches = [torch.randn(4, 2, 3, 3, generator=generator) for _ in range(3 * every)]
    for batch in batches[1:]:
        batch[:, 1] = batch[:, 1] * 0.01 + 300.0
    for batch in batches:
        bn(batch)
    assert exact_calls == [1] * every  # the last `every` batches, channel 1 only
    mean, m2, count = stats.sums["0"]
    stats.close()
    reference = torch.cat(batches).double().transpose(0, 1).flatten(1)
    assert count == 3 * every * 4 * 9
    np.testing.assert_allclose(mean.numpy(), reference.mean(1).numpy(), rtol=1e-6)
    np.testing.assert_allclose((m2 / count).numpy(), reference.var(1, correction=0).numpy(), rtol=1e-4)


@pytest.mark.parametrize("share", [1.0, 0.5])
def test_bn_statistics_are_the_same_on_the_exact_path_a_gpu_takes_and_the_fast_one_the_cpu_takes(share):
    bn = nn.BatchNorm2d(3).eval()
    generator = torch.Generator().manual_seed(7)
    batches = [torch.randn(n, 3, 4, 5, generator=generator) * torch.tensor([1.0, 0.02, 4.0]).view(1, 3, 1, 1)
               + torch.tensor([0.0, 200.0, -3.0]).view(1, 3, 1, 1) for n in (6, 6, 3) * 15]  # merges on the way
    exact, fast = (BatchNormStatistics(nn.Sequential(bn), share, all_exact=flag) for flag in (True, False))
    for batch in batches:
        bn(batch)
    (mean_e, m2_e, count_e), (mean_f, m2_f, count_f) = exact.sums["0"], fast.sums["0"]
    assert count_e == count_f == sum(math.ceil(len(b) * share) for b in batches) * 20
    np.testing.assert_allclose(mean_f.numpy(), mean_e.numpy(), rtol=1e-6)
    np.testing.assert_allclose(m2_f.numpy(), m2_e.numpy(), rtol=1e-4)
    assert exact.layer_shift()["0"] == pytest.approx(fast.layer_shift()["0"], rel=1e-4)


def test_bn_statistics_of_one_pixel_maps_keep_the_spread_between_images_and_memory_stays_bounded():
    bn = nn.BatchNorm2d(2).eval()
    stats = BatchNormStatistics(nn.Sequential(bn))
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(5 * BatchNormStatistics.MERGE_EVERY, 2, 1, 1, generator=generator) * 3.0 + 1.0
    for batch in x.split(2):  # 2.5 x MERGE_EVERY batches of 2 images of 1 x 1 positions
        bn(batch)
    assert len(stats.layers["0"].pending) < BatchNormStatistics.MERGE_EVERY  # merged as it goes
    mean, m2, count = stats.sums["0"]
    stats.close()
    reference = x.double().transpose(0, 1).flatten(1)
    assert count == len(x)
    np.testing.assert_allclose(mean.numpy(), reference.mean(1).numpy(), rtol=1e-6)
    np.testing.assert_allclose((m2 / count).numpy(), reference.var(1, correction=0).numpy(), rtol=1e-5)


def test_bn_statistics_from_a_share_of_the_images_cover_every_class_however_the_images_are_ordered():
    from tladvisor.features.bn_statistics import STATISTICS_IMAGES, statistics_share

    bn = nn.BatchNorm2d(2).eval()
    generator = torch.Generator().manual_seed(3)
    # Class-ordered images, as a folder gives them: four batches of class 0 (mean 0), then four of class 1
    # (mean 10), and inside every batch the first half darker than the second (mean -2 / +2). The first
    # images alone would say mean 0; the first images of each batch miss the brighter halves; every
    # fourth image says about 5 and sees both halves.
    batches = [torch.randn(16, 2, 4, 4, generator=generator) + (10.0 if i >= 4 else 0.0) for i in range(8)]
    for batch in batches:
        batch[:8] -= 2.0
        batch[8:] += 2.0
    share = statistics_share(4 * STATISTICS_IMAGES)
    assert share == 0.25 and statistics_share(50) == 1.0  # small data: every image
    full, part = BatchNormStatistics(nn.Sequential(bn)), BatchNormStatistics(nn.Sequential(bn), share)
    assert part.stride == 4
    for batch in batches:
        bn(batch)
    full.close()
    part.close()
    mean_full, _, count_full = full.sums["0"]
    mean_part, m2_part, count_part = part.sums["0"]
    assert count_part == count_full // 4  # 4 of each batch's 16
    np.testing.assert_allclose(mean_part.numpy(), mean_full.numpy(), atol=0.3)
    assert (m2_part / count_part).min() > 20  # both classes are in the sample: variance ~ 25 + 4 + 1, not 1
