"""The decoded-image store: the old PIL pipeline's pixels, one decode per image, atomic and rebuilt when broken."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode, v2

from tladvisor.backbones import Preprocessing
from tladvisor.data import decoded_store
from tladvisor.data.decoded_store import Geometry, open_stores
from tladvisor.data.images import open_rgb
from tladvisor.transforms import (StoredBatches, centre_crop_rows, eval_batch, eval_transform, random_crop_boxes,
                                  train_batch)

CPU = torch.device("cpu")
SIZES = [(37, 23), (23, 37), (50, 50), (13, 90), (120, 41), (8, 8)]


@pytest.fixture
def images(tmp_path) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i, (width, height) in enumerate(SIZES):
        path = tmp_path / "images" / f"{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths



def digests(paths: list[Path]) -> list[str]:
    return [path.name for path in paths]


@pytest.mark.parametrize("pre", [Preprocessing(32, 36), Preprocessing(24, 24),
                                 Preprocessing(224, 256, interpolation="bicubic").at_size(64),
                                 Preprocessing(30, 41, interpolation="bilinear")])
def test_the_centre_crop_of_a_stored_image_is_the_pil_pipelines_pixels(images, tmp_path, pre):
    store = open_stores(images, digests(images), [Geometry.of(pre)], tmp_path / "cache")[Geometry.of(pre)]
    pil_crop = v2.Compose([v2.Resize(pre.resize_size, interpolation=InterpolationMode(pre.interpolation),
                                     antialias=True), v2.CenterCrop(pre.input_size)])
    rows = store.rows(np.arange(len(images)))
    for row, path in zip(centre_crop_rows(rows, pre.input_size), images):
        expected = np.asarray(pil_crop(open_rgb(path)), dtype=np.int16)
        assert np.abs(row.numpy().astype(np.int16) - expected).max() == 0  # the max pixel difference
    normalised = eval_batch(rows, pre, CPU)
    old = torch.stack([eval_transform(pre)(open_rgb(path)) for path in images])
    assert normalised.shape == old.shape == (len(images), 3, pre.input_size, pre.input_size)
    assert torch.allclose(normalised, old, atol=1e-5)


def test_each_image_is_decoded_once_for_every_geometry_and_never_again(images, tmp_path, decodes):
    small, large = Geometry(24, 28), Geometry(32, 36)
    stores = open_stores(images, digests(images), [small, large], tmp_path / "cache")
    assert sorted(decodes) == sorted(images)  # one decode served both geometries
    again = open_stores(images, digests(images), [large, small], tmp_path / "cache")
    assert len(decodes) == len(images)  # read back, not decoded
    assert torch.equal(again[small].rows([3, 0]), stores[small].rows([3, 0]))
    assert again[large].array.shape == (len(images), 36, 36, 3)
    open_stores(images[:3], digests(images[:3]), [small], tmp_path / "cache")  # other images: another store
    assert len(decodes) == len(images) + 3


def test_rows_come_back_in_the_order_asked(images, tmp_path):
    store = open_stores(images, digests(images), [Geometry(16, 16)], tmp_path / "c")[Geometry(16, 16)]
    whole = store.rows(np.arange(len(images)))
    assert torch.equal(store.rows([4, 1, 4, 0]), whole[[4, 1, 4, 0]])


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong shape"])
def test_a_broken_store_is_built_again(images, tmp_path, decodes, damage):
    geometry = Geometry(16, 20)
    store = open_stores(images, digests(images), [geometry], tmp_path / "cache")[geometry]
    good = store.rows(np.arange(len(images))).clone()
    path = store.path
    store._array = None
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a store")
    else:
        np.save(path, np.zeros((2, 20, 20, 3), dtype=np.uint8))
    rebuilt = open_stores(images, digests(images), [geometry], tmp_path / "cache")[geometry]
    assert len(decodes) == 2 * len(images)
    assert torch.equal(rebuilt.rows(np.arange(len(images))), good)


def test_a_failed_build_leaves_no_store_and_no_temporary_file(images, tmp_path, monkeypatch):
    original = decoded_store.decode

    def fail_on_the_fourth(path):
        if Path(path) == images[3]:
            raise OSError("truncated image")
        return original(path)

    monkeypatch.setattr(decoded_store, "decode", fail_on_the_fourth)
    with pytest.raises(OSError, match="truncated"):
        open_stores(images, digests(images), [Geometry(16, 16)], tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_store_travels_to_loader_workers_by_path_not_by_pixels(images, tmp_path):
    store = open_stores(images, digests(images), [Geometry(64, 72)], tmp_path / "c")[Geometry(64, 72)]
    rows = store.rows([0, 5])
    shipped = pickle.dumps(store)
    assert len(shipped) < 2000  # the store holds 6 * 72 * 72 * 3 = 93 kB of pixels
    assert torch.equal(pickle.loads(shipped).rows([0, 5]), rows)


def test_augmented_batches_are_seeded_sized_and_inside_the_image():
    side, size = 40, 32
    boxes = random_crop_boxes(500, side, torch.Generator().manual_seed(0))
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert bool((boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= side).all())
    area = widths * heights / side ** 2
    assert area.min() >= 0.55 and area.max() <= 1.0  # scale (0.6, 1.0), up to rounding and the fallback
    rows = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (4, side, side, 3), dtype=np.uint8))
    pre = Preprocessing(size, side)
    first = train_batch(rows, pre, CPU, torch.Generator().manual_seed(7))
    assert first.shape == (4, 3, size, size)
    assert torch.equal(first, train_batch(rows, pre, CPU, torch.Generator().manual_seed(7)))
    assert not torch.equal(first, train_batch(rows, pre, CPU, torch.Generator().manual_seed(8)))
    flat = torch.full((2, side, side, 3), 200, dtype=torch.uint8)  # any crop of a flat image is that colour
    expected = (200 / 255 - torch.tensor(pre.mean)) / torch.tensor(pre.std)
    out = train_batch(flat, pre, CPU, torch.Generator().manual_seed(0))
    assert torch.allclose(out, expected.view(1, 3, 1, 1).expand_as(out), atol=1e-4)


def test_stored_batches_shuffle_per_pass_drop_the_last_and_keep_labels(images, tmp_path):
    store = open_stores(images, digests(images), [Geometry(16, 16)], tmp_path / "c")[Geometry(16, 16)]
    labels = [10, 11, 12, 13, 14, 15]
    batches = StoredBatches(store, np.arange(6), labels, Preprocessing(16, 16), 4, CPU, shuffle=True,
                            generator=torch.Generator().manual_seed(0), drop_last=True)
    assert len(batches) == 1 and batches.dataset.labels == labels
    first = [y.tolist() for _, y in batches]
    second = [y.tolist() for _, y in batches]
    assert len(first) == 1 and len(first[0]) == 4 and first != second  # a fresh order each pass
    plain = StoredBatches(store, [5, 0], [15, 10], Preprocessing(16, 16), 4, CPU)
    (images_out, labels_out), = list(plain)
    assert labels_out.tolist() == [15, 10]
    assert torch.equal(images_out, eval_batch(store.rows([5, 0]), Preprocessing(16, 16), CPU))


def test_extraction_embeds_images_as_they_are_decoded_and_matches_the_stored_pass(tmp_path, decodes):
    from helpers import dataset_from_folder, write_image_folder

    from tladvisor.features.embed import extract_features
    from tladvisor.testing import tiny_backbone_spec

    dataset = dataset_from_folder(write_image_folder(tmp_path / "data", n_classes=2, per_class=5))
    spec, cache = tiny_backbone_spec(), tmp_path / "cache"
    streamed = extract_features(spec, dataset, image_size=32, batch_size=4, cache_dir=cache, with_random=False)
    assert len(decodes) == 10 and len(list(cache.glob("decoded-*.npy"))) == 1
    assert not list(cache.glob(".tmp-*"))
    for entry in cache.glob("*.npz"):
        entry.unlink()  # features again, from the finished store
    again = extract_features(spec, dataset, image_size=32, batch_size=4, cache_dir=cache, with_random=False)
    assert len(decodes) == 10 and not again.from_cache
    np.testing.assert_allclose(again.features, streamed.features, rtol=1e-6, atol=1e-6)
    # another order of the same images: read from the same store, features follow the order asked
    order = np.array([9, 0, 4, 4, 1, 2, 3, 5, 6, 7, 8])
    shuffled = extract_features(spec, dataset, order, image_size=32, batch_size=4, cache_dir=cache, with_random=False)
    assert len(decodes) == 10
    np.testing.assert_allclose(shuffled.features, streamed.features[order], rtol=1e-5, atol=1e-6)


def test_an_extraction_that_fails_while_decoding_leaves_no_store(tmp_path, monkeypatch):
    from helpers import dataset_from_folder, write_image_folder

    from tladvisor.features.embed import extract_features
    from tladvisor.testing import tiny_backbone_spec

    dataset = dataset_from_folder(write_image_folder(tmp_path / "data", n_classes=2, per_class=5))
    original = decoded_store.decode

    def fail_late(path):
        if Path(path) == dataset.samples[7].path:
            raise OSError("broken image")
        return original(path)

    monkeypatch.setattr(decoded_store, "decode", fail_late)
    with pytest.raises(OSError, match="broken image"):
        extract_features(tiny_backbone_spec(), dataset, image_size=32, batch_size=4, cache_dir=tmp_path / "cache")
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []


def test_loader_workers_build_the_same_store(images, tmp_path):
    geometry = Geometry(24, 28)
    alone = open_stores(images, digests(images), [geometry], tmp_path / "alone")[geometry]
    shared = open_stores(images, digests(images), [geometry], tmp_path / "workers", num_workers=2,
                         batch_size=2)[geometry]
    assert torch.equal(shared.rows(np.arange(len(images))), alone.rows(np.arange(len(images))))


def test_two_builders_of_one_store_at_once_both_end_with_the_whole_store(images, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    geometry = Geometry(24, 28)
    with ThreadPoolExecutor(2) as pool:
        built = list(pool.map(lambda _: open_stores(images, digests(images), [geometry], tmp_path / "c")[geometry],
                              range(2)))
    assert torch.equal(built[0].rows(np.arange(6)), built[1].rows(np.arange(6)))
    assert [p.name for p in (tmp_path / "c").iterdir()] == [built[0].path.name]  # no temporary file left


def test_a_full_disk_costs_the_store_not_the_features(tmp_path, monkeypatch):
    import errno

    from helpers import dataset_from_folder, write_image_folder

    from tladvisor.features.embed import extract_features
    from tladvisor.records import AnalysisOptions
    from tladvisor.testing import tiny_backbone_spec
    from tladvisor.tuning.data import TuningData

    dataset = dataset_from_folder(write_image_folder(tmp_path / "data", n_classes=2, per_class=5))
    spec = tiny_backbone_spec()
    stored = extract_features(spec, dataset, image_size=32, batch_size=4, cache_dir=tmp_path / "room")

    def full(name):
        raise OSError(errno.ENOSPC, "No space left on device", name)

    monkeypatch.setattr(decoded_store, "_allocate", full)
    full_cache = tmp_path / "full"
    per_file = extract_features(spec, dataset, image_size=32, batch_size=4, cache_dir=full_cache)
    assert not per_file.from_cache and not list(full_cache.glob("decoded-*")) and not list(full_cache.glob(".tmp-*"))
    np.testing.assert_allclose(per_file.features, stored.features, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(per_file.random_features, stored.random_features, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(per_file.source_probs, stored.source_probs, rtol=1e-5, atol=1e-6)
    assert [s.stage for s in per_file.stage_shift] == [s.stage for s in stored.stage_shift]
    np.testing.assert_allclose([s.value for s in per_file.stage_shift], [s.value for s in stored.stage_shift],
                               rtol=1e-4)

    # Tuning's frozen features too (they read every image once, in dataset order).
    options = AnalysisOptions(source=dataset.root, cache_dir=tmp_path / "full-tuning", image_size=32,
                              val_fraction=0.4, batch_size=4)
    split = TuningData(dataset, options, CPU).features(spec)
    assert split.train_x.shape[0] + split.val_x.shape[0] == len(dataset.samples)
