"""Images decoded and resized once, kept as a compact uint8 array on disk that every pass reads.

Decoding a JPEG and resizing it costs far more than the forward pass of a small network at 64 px, and
every epoch of every trial, and every backbone measured, used to pay it again. A store holds the
selected images, in order, as one ``(n, side, side, 3)`` uint8 ``.npy`` file read through a memory map
(memory stays bounded however large the dataset): each image resized as the evaluation pipeline does
(shorter side to ``resize_size``) and cropped to a ``side``-pixel square around the evaluation crop.
The margin between ``side`` and ``input_size`` is what training augmentation crops from; the
evaluation crop taken from the store is exactly the old pipeline's (same pixels, see ``_offset``).

Stores are keyed like the feature cache (the images' digests, in order, and the geometry) and written
as that cache is: into a temporary file renamed into place, so a reader sees no store or a whole one,
and processes and loader workers may share them. One that cannot be read is built again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from tladvisor.runtime.atomic import follow_umask
from tladvisor.data.images import open_rgb

log = logging.getLogger(__name__)

STORE_FORMAT = 1


@dataclass(frozen=True)
class Geometry:
    """How images are stored: shorter side resized to ``resize_size``, a ``side`` square kept."""

    input_size: int
    resize_size: int
    interpolation: str = "bilinear"

    @property
    def side(self) -> int:
        return max(self.resize_size, self.input_size)

    @classmethod
    def of(cls, preprocessing) -> Geometry:
        """The geometry of a :class:`tladvisor.backbones.Preprocessing` (normalisation is applied later)."""
        return cls(int(preprocessing.input_size), int(preprocessing.resize_size), str(preprocessing.interpolation))

    def key(self) -> str:
        return f"{self.input_size}/{self.resize_size}/{self.interpolation}"


class StoreNotWritten(OSError):
    """The store's file could not be made or kept (a full disk, an unwritable folder): the images can still
    be decoded file by file, without a store. The decoding of an image is never reported as this."""


def _storing(step, *args):
    """``step(*args)``, its OSError reported as :class:`StoreNotWritten`."""
    try:
        return step(*args)
    except StoreNotWritten:
        raise
    except OSError as error:
        raise StoreNotWritten(error.errno, error.strerror or str(error), error.filename) from error


def decode(path: str | Path) -> Image.Image:
    """The one place a store decodes an image file (tests count calls to it)."""
    return open_rgb(path)


def _offset(length: int, side: int, crop: int) -> int:
    """Where a ``side`` window starts so that its centre ``crop`` is the centre crop of the whole ``length``."""
    whole = int(round((length - crop) / 2.0))  # torchvision's centre-crop rounding
    inner = int(round((side - crop) / 2.0))
    return min(max(whole - inner, 0), length - side)


def resized_square(image: Image.Image, geometry: Geometry) -> np.ndarray:
    """``(side, side, 3)`` uint8: the evaluation resize (PIL, antialiased), cropped around the evaluation crop."""
    resized = F.resize(image, geometry.resize_size, interpolation=InterpolationMode(geometry.interpolation),
                       antialias=True)
    side = geometry.side
    if min(resized.size) < side:  # resize_size below input_size: pad as the centre crop does
        resized = F.center_crop(resized, [max(side, resized.size[1]), max(side, resized.size[0])])
    width, height = resized.size
    left, top = _offset(width, side, geometry.input_size), _offset(height, side, geometry.input_size)
    return np.array(resized.crop((left, top, left + side, top + side)), dtype=np.uint8)


def store_key(geometry: Geometry, digests: Sequence[str]) -> str:
    h = hashlib.sha256(f"decoded={STORE_FORMAT}|{geometry.key()}|".encode())
    for digest in digests:
        h.update(f"{digest};".encode())
    return h.hexdigest()[:32]


class DecodedImages:
    """A finished store: rows read through a memory map, opened lazily (pickles by path for loader workers)."""

    def __init__(self, path: Path, n: int, geometry: Geometry):
        self.path, self.n, self.geometry = Path(path), n, geometry
        self._array: np.ndarray | None = None

    def __len__(self) -> int:
        return self.n

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_array": None}

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = _open(self.path, self.n, self.geometry.side)
        return self._array

    def rows(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        """``(len(indices), side, side, 3)`` uint8, in the order given (read in file order)."""
        indices = np.asarray(indices, dtype=np.int64)
        order = np.argsort(indices, kind="stable")
        block = np.empty((len(indices), *self.array.shape[1:]), dtype=np.uint8)
        block[order] = self.array[indices[order]]
        return torch.from_numpy(block)


def _open(path: Path, n: int, side: int) -> np.ndarray:
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    if array.dtype != np.uint8 or array.shape != (n, side, side, 3):
        raise ValueError(f"holds {array.shape} {array.dtype}, not ({n}, {side}, {side}, 3) uint8")
    return array


class _Decoding(TorchDataset):
    """One decode per image, resized for every geometry asked (run in loader workers)."""

    def __init__(self, paths: Sequence[Path], geometries: Sequence[Geometry]):
        self.paths, self.geometries = list(paths), list(geometries)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        image = decode(self.paths[index])
        return tuple(torch.from_numpy(resized_square(image, g)) for g in self.geometries)


def is_built(store: DecodedImages) -> bool:
    """True when the store's file is there and readable; an unreadable one is reported (and rebuilt later)."""
    if not store.path.is_file():
        return False
    try:
        store.array  # noqa: B018 - opening checks the header, the shape and the file's length
        return True
    except Exception as error:  # whatever is wrong, the answer is to build it again
        log.warning("decoded-image store %s is unreadable (%s); decoding again", store.path, error)
        store._array = None
        return False


def stores_for(paths: Sequence[Path], digests: Sequence[str], geometries: Iterable[Geometry],
               directory: Path) -> dict[Geometry, DecodedImages]:
    """Handles on the stores of these images, one per geometry (built or not: see :func:`is_built`).

    ``digests`` identify the images' content (the feature cache's identifiers).
    """
    if len(paths) != len(digests):
        raise ValueError("paths and digests differ in length")
    return {geometry: DecodedImages(Path(directory) / f"decoded-{geometry.side}px-{store_key(geometry, digests)}.npy",
                                    len(paths), geometry)
            for geometry in dict.fromkeys(geometries)}


def open_stores(paths: Sequence[Path], digests: Sequence[str], geometries: Iterable[Geometry], directory: Path,
                num_workers: int = 0, batch_size: int = 32) -> dict[Geometry, DecodedImages]:
    """The store of these images for each geometry, building the missing ones in one decoding pass
    (``num_workers`` loader processes decode in parallel)."""
    stores = stores_for(paths, digests, geometries, directory)
    missing = [store for store in stores.values() if not is_built(store)]
    if missing:
        for _rows in building(missing, paths, num_workers, batch_size):
            pass
    return stores


def building(stores: Sequence[DecodedImages], paths: Sequence[Path], num_workers: int = 0,
             batch_size: int = 32) -> Iterator[tuple[torch.Tensor, ...]]:
    """Decode ``paths`` once into ``stores``, yielding each batch's rows (one tensor per store) as written.

    A consumer can compute on the batches while loader workers decode the next ones; the stores are
    renamed into place when the iteration ends, and nothing is left if it stops early or fails.
    """
    directory = stores[0].path.parent
    _storing(lambda: directory.mkdir(parents=True, exist_ok=True))
    names: list[str] = []
    try:
        arrays = [_storing(_new_array, store, len(paths), names) for store in stores]
        loader = DataLoader(_Decoding(paths, [s.geometry for s in stores]), batch_size=batch_size,
                            num_workers=num_workers, shuffle=False)
        start = 0
        for batch in loader:
            for array, block in zip(arrays, batch):
                array[start:start + len(block)] = block.numpy()
            start += len(batch[0])
            yield tuple(batch)
        _storing(_keep, arrays, names, stores)
    finally:
        for name in names:
            Path(name).unlink(missing_ok=True)


def _new_array(store: DecodedImages, n: int, names: list[str]) -> np.ndarray:
    """A temporary file beside ``store`` (its name appended to ``names``), mapped and its blocks reserved."""
    fd, name = tempfile.mkstemp(dir=store.path.parent, prefix=".tmp-decoded-", suffix=".npy")
    os.close(fd)
    names.append(name)
    follow_umask(name)  # mkstemp makes it private; other users' runs may share the cache
    side = store.geometry.side
    array = np.lib.format.open_memmap(name, mode="w+", dtype=np.uint8, shape=(n, side, side, 3))
    _allocate(name)
    return array


def _keep(arrays: list[np.ndarray], names: list[str], stores: Sequence[DecodedImages]) -> None:
    """Flush the written arrays and rename their files into place (``names`` emptied once all are kept)."""
    for array in arrays:
        array.flush()
    arrays.clear()  # unmapped before the files are moved
    for name, store in zip(names, stores):
        with open(name, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(name, store.path)  # atomic: readers see no store or the whole one
        store._array = None
    names.clear()


def _allocate(name: str) -> None:
    """Reserve the file's blocks now: a full disk is then an OSError here, not a SIGBUS while writing the map."""
    if hasattr(os, "posix_fallocate"):
        with open(name, "rb+") as handle:
            os.posix_fallocate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)


def open_sample_stores(samples: Sequence, geometries: Iterable[Geometry], directory: Path,
                       num_workers: int = 0) -> dict[Geometry, DecodedImages]:
    """:func:`open_stores` for dataset samples, identified as the feature cache identifies them."""
    return open_stores([s.path for s in samples], sample_digests(samples), geometries, directory,
                       num_workers=num_workers)


def sample_digests(samples: Sequence) -> list[str]:
    return [s.digest or str(s.path) for s in samples]
