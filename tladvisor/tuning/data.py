"""The data every trial of one tuning run shares: the train/validation split, cached features, loaders.

The split is made once per run (deterministic from the seed), so every trial, and every re-run that
continues the study, is scored on the same validation images. For small data the trials are scored on
cross-validation folds instead (:mod:`tladvisor.tuning.folds`); :meth:`TuningData.fold_views` gives them.
Images are decoded once into a store
(:mod:`tladvisor.data.decoded_store`) beside the feature cache; every epoch of every trial, and every
backbone of the same resolution, reads batches from it and augments them as tensors on the device.
"""

from __future__ import annotations

import copy
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch

from tladvisor.backbones import BackboneSpec
from tladvisor.data.decoded_store import DecodedImages, Geometry, open_sample_stores
from tladvisor.data.token_store import TokenBatches, Tokens, tokenize
from tladvisor.features.embed import default_cache_dir, extract_features, feature_key
from tladvisor.features.embed_text import extract_text_features
from tladvisor.errors import DatasetError
from tladvisor.records import AnalysisOptions, Dataset
from tladvisor.transforms import StoredBatches
from tladvisor.tuning.folds import FoldPlan, make_folds, wanted_folds

log = logging.getLogger(__name__)


def split_train_val(dataset: Dataset, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from tladvisor.data.split import split_indices  # owned by data intake; imported late on purpose

    train_idx, val_idx = split_indices(dataset, val_fraction, seed)
    train_idx, val_idx = np.asarray(train_idx, dtype=np.int64), np.asarray(val_idx, dtype=np.int64)
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise DatasetError(f"{dataset.root}: too few images to tune ({len(train_idx)} to train on, "
                           f"{len(val_idx)} to validate on); add images or change --val-fraction")
    return train_idx, val_idx


class FeatureSplit:
    """Cached embeddings of the train and validation images through one frozen pretrained backbone."""

    def __init__(self, train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor):
        self.train_x, self.train_y, self.val_x, self.val_y = train_x, train_y, val_x, val_y


class TuningData:
    """Split, features and loaders for one tuning run; features are computed once per backbone."""

    def __init__(self, dataset: Dataset, options: AnalysisOptions, device: torch.device):
        self.dataset = dataset
        self.options = options
        self.device = device
        self.train_idx, self.val_idx = split_train_val(dataset, options.val_fraction, options.seed)
        self.cache_dir: Path = Path(options.cache_dir) if options.cache_dir else default_cache_dir()
        self._stores: dict[Geometry, DecodedImages] = {}
        self._token_stores: dict[str, Tokens] = {}  # text backbones: tokenizer key -> the run's token ids
        # Stores when the cache cannot hold them: a holder shared with the fold views (like _stores), so the
        # folder lives as long as any view whose _stores point into it, whichever view made it.
        self._scratch: list[tempfile.TemporaryDirectory] = []
        self._stored = np.unique(np.concatenate([self.train_idx, self.val_idx]))  # sorted dataset indices
        self._pool_features: dict[tuple[str, int | None], tuple[torch.Tensor, torch.Tensor]] = {}
        self._set_split(self.train_idx, self.val_idx)
        k, self.cv_reason = wanted_folds(dataset, len(self._stored), len(self.val_idx),
                                         getattr(options, "cv_folds", "auto"))
        self.fold_plan: FoldPlan | None = (make_folds(dataset, self._stored, k, options.seed, self.cv_reason)
                                           if k > 1 else None)

    def _set_split(self, train_idx: np.ndarray, val_idx: np.ndarray) -> None:
        self.train_idx, self.val_idx = train_idx, val_idx
        self.train_rows = np.searchsorted(self._stored, self.train_idx)
        self.val_rows = np.searchsorted(self._stored, self.val_idx)
        self._features: dict[tuple[str, int | None], FeatureSplit] = {}

    def fold_views(self) -> list[TuningData]:
        """One view per cross-validation fold (empty without CV): the same images, stores and cached
        features, with the fold's train/validation split in place of the run's."""
        if self.fold_plan is None:
            return []
        views = []
        for train_idx, val_idx in zip(self.fold_plan.train, self.fold_plan.val):
            view = copy.copy(self)
            view._set_split(train_idx, val_idx)
            views.append(view)
        return views

    @property
    def unit(self) -> str:
        """What the samples are called in messages and records: "images" or "texts"."""
        return "texts" if getattr(self.dataset, "modality", "image") == "text" else "images"

    @property
    def classes(self) -> tuple[str, ...]:
        return self.dataset.classes

    @property
    def n_classes(self) -> int:
        return len(self.dataset.classes)

    def features(self, spec: BackboneSpec) -> FeatureSplit:
        """Train/val embeddings from :func:`tladvisor.features.embed.extract_features` (disk cache, then memory)."""
        key = (spec.name, self.options.image_size)
        if key not in self._pool_features:  # every image once, in dataset order; shared by the fold views
            if spec.text is not None:
                fs = extract_text_features(spec, self.dataset, self._stored, device=self.device,
                                           batch_size=self.options.batch_size, cache_dir=self.cache_dir,
                                           with_random=False,
                                           key=feature_key(spec, self.dataset, self._stored, image_size=None,
                                                           with_random=False))
            else:
                fs = extract_features(spec, self.dataset, self._stored, image_size=self.options.image_size,
                                      device=self.device, batch_size=self.options.batch_size,
                                      cache_dir=self.cache_dir, with_random=False,
                                      num_workers=self.options.num_workers)
            self._pool_features[key] = (torch.from_numpy(np.ascontiguousarray(fs.features, dtype=np.float32)),
                                        torch.from_numpy(fs.labels.astype(np.int64)))
        if key not in self._features:
            features, labels = self._pool_features[key]
            train, val = torch.from_numpy(self.train_rows), torch.from_numpy(self.val_rows)
            self._features[key] = FeatureSplit(features[train], labels[train], features[val], labels[val])
        return self._features[key]

    def tokens(self, spec: BackboneSpec) -> Tokens:
        """The run's texts (dataset order, as :meth:`store` holds images) tokenised by ``spec``, once."""
        if spec.text.key() not in self._token_stores:
            texts = [self.dataset.samples[i].text for i in self._stored]
            self._token_stores[spec.text.key()] = tokenize(spec.text, texts, self.cache_dir)
        return self._token_stores[spec.text.key()]

    def store(self, spec: BackboneSpec) -> DecodedImages:
        """The run's images decoded at ``spec``'s geometry (built on first use, shared).

        Keyed on the images in dataset order, so it is the store measuring used when every image was
        measured; :attr:`train_rows` and :attr:`val_rows` say where the split's images sit in it.
        """
        geometry = Geometry.of(spec.preprocessing_at(self.options.image_size))
        if geometry not in self._stores:
            samples = [self.dataset.samples[i] for i in self._stored]
            try:
                stores = open_sample_stores(samples, [geometry], self.cache_dir, self.options.num_workers)
            except OSError as error:  # a full or unwritable cache costs time, not the run: a private folder
                log.warning("decoded images not stored in %s: %s", self.cache_dir, error.strerror or error)
                if not self._scratch:
                    self._scratch.append(tempfile.TemporaryDirectory(prefix="tladvisor-decoded-"))
                stores = open_sample_stores(samples, [geometry], Path(self._scratch[0].name),
                                            self.options.num_workers)
            self._stores.update(stores)
        return self._stores[geometry]

    def _labels(self, indices: np.ndarray) -> list[int]:
        return [self.dataset.samples[i].label for i in indices]

    def train_loader(self, spec: BackboneSpec, batch_size: int, seed: int, augment: bool = True) -> StoredBatches:
        """Shuffled training batches (a fresh order each pass, fixed by ``seed``), augmented unless told not."""
        n_train = len(self.train_idx)
        # A last batch of one image breaks BatchNorm in training mode; drop it.
        drop_last = n_train % batch_size == 1 and n_train > 1
        if spec.text is not None:
            return TokenBatches(self.tokens(spec), self.train_rows, self._labels(self.train_idx), spec.text.pad_id,
                                batch_size, self.device, shuffle=True, generator=torch.Generator().manual_seed(seed),
                                drop_last=drop_last)
        return StoredBatches(self.store(spec), self.train_rows, self._labels(self.train_idx),
                             spec.preprocessing_at(self.options.image_size), batch_size, self.device,
                             augment=augment, shuffle=True, generator=torch.Generator().manual_seed(seed),
                             drop_last=drop_last)

    def val_loader(self, spec: BackboneSpec, batch_size: int) -> StoredBatches | TokenBatches:
        if spec.text is not None:
            return TokenBatches(self.tokens(spec), self.val_rows, self._labels(self.val_idx), spec.text.pad_id,
                                batch_size, self.device)
        return StoredBatches(self.store(spec), self.val_rows, self._labels(self.val_idx),
                             spec.preprocessing_at(self.options.image_size), batch_size, self.device)
