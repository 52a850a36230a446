"""Texts tokenised once per tokenizer and kept on disk: the text analogue of the decoded-image store.

Measuring and every tuning trial read the same token ids; a second analysis of the same texts with the same
tokenizer skips tokenising. Ids are truncated to the backbone's ``max_length`` keeping the last token (the
end marker, ``[SEP]`` or ``</s>``); the untruncated lengths are kept, so the share of texts cut is known.
Batches are padded to their longest text only (dynamic padding); :class:`TokenBatches` serves them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tladvisor.runtime.atomic import write_atomic
from tladvisor.backbones import TextPreprocessing

log = logging.getLogger(__name__)

STORE_FORMAT = 1


@dataclass(frozen=True, eq=False)
class Tokens:
    """Token ids of some texts, in their order: ``flat[offsets[i]:offsets[i + 1]]`` is text ``i``."""

    flat: np.ndarray  # int32
    offsets: np.ndarray  # int64, len(texts) + 1
    full_lengths: np.ndarray  # int64: tokens before truncation

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def ids(self, index: int) -> np.ndarray:
        return self.flat[self.offsets[index]:self.offsets[index + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def truncated_share(self, max_length: int) -> float:
        return float(np.mean(self.full_lengths > max_length)) if len(self) else 0.0


def truncate(ids: Sequence[int], max_length: int) -> list[int]:
    """At most ``max_length`` ids: the first ``max_length - 1`` and the last (the end marker)."""
    ids = list(ids)
    return ids if len(ids) <= max_length else ids[:max_length - 1] + ids[-1:]


def tokens_key(text: TextPreprocessing, texts: Sequence[str]) -> str:
    digest = hashlib.sha256(f"format={STORE_FORMAT}|{text.key()}|".encode())
    for item in texts:
        digest.update(hashlib.sha256(item.encode("utf-8", "replace")).digest())
    return digest.hexdigest()[:32]


def tokenize(text: TextPreprocessing, texts: Sequence[str], cache_dir: Path | None = None,
             batch: int = 1024) -> Tokens:
    """Token ids of ``texts`` with the backbone's tokenizer, read from ``cache_dir`` when tokenised before."""
    path = Path(cache_dir) / f"tokens-{tokens_key(text, texts)}.npz" if cache_dir else None
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                tokens = Tokens(data["flat"], data["offsets"], data["full_lengths"])
            if len(tokens) == len(texts):
                return tokens
        except Exception as error:  # a damaged entry is tokenised again
            log.warning("token store %s unreadable (%s); tokenising again", path, error)
    tokenizer = text.load_tokenizer()
    rows: list[list[int]] = []
    full: list[int] = []
    for start in range(0, len(texts), batch):
        for ids in tokenizer(list(texts[start:start + batch])):
            full.append(len(ids))
            rows.append(truncate(ids, text.max_length))
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    tokens = Tokens(np.fromiter((i for r in rows for i in r), dtype=np.int32, count=int(lengths.sum())),
                    np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64), np.array(full, dtype=np.int64))
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, lambda handle: np.savez(handle, flat=tokens.flat, offsets=tokens.offsets,
                                                       full_lengths=tokens.full_lengths))
        except OSError as error:  # a full or unwritable cache costs the next run time, not this result
            log.warning("token ids not stored in %s: %s", path.parent, error.strerror or error)
    return tokens


def pad(tokens: Tokens, rows: Sequence[int], pad_id: int) -> torch.Tensor:
    """The ids of ``rows`` as one (len(rows), longest) tensor, padded with ``pad_id``."""
    longest = max(int(tokens.offsets[r + 1] - tokens.offsets[r]) for r in rows)
    batch = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    for position, row in enumerate(rows):
        ids = tokens.ids(int(row))
        batch[position, :len(ids)] = torch.from_numpy(ids.astype(np.int64))
    return batch


class TokenBatches:
    """Batches of (ids, labels) over ``rows`` of ``tokens``, as :class:`tladvisor.transforms.StoredBatches`
    serves images: in order for evaluation; shuffled for training, with texts of similar length batched
    together (sorted within pools of 50 batches, the batch order shuffled) so padding stays small."""

    POOL_BATCHES = 50

    def __init__(self, tokens: Tokens, rows: Sequence[int], labels: Sequence[int], pad_id: int, batch_size: int,
                 device: torch.device, *, shuffle: bool = False, generator: torch.Generator | None = None,
                 drop_last: bool = False, by_length: bool = False):
        self.tokens, self.rows = tokens, np.asarray(rows, dtype=np.int64)
        self.labels = [int(label) for label in labels]  # as StoredBatches: code reads loader.dataset.labels
        self.dataset = self
        self._labels = torch.as_tensor(self.labels, dtype=torch.int64)
        self.pad_id, self.batch_size, self.device = pad_id, batch_size, device
        self.shuffle, self.generator, self.drop_last = shuffle, generator, drop_last
        self.by_length = by_length  # evaluation in length order (the caller restores the order: `order`)
        self.augment = False  # text is not augmented; frozen-prefix caching checks the attribute
        self.order = self._order()

    def _order(self) -> np.ndarray:
        n = len(self.rows)
        if self.by_length:
            return np.argsort(self.tokens.lengths[self.rows], kind="stable")
        if not self.shuffle:
            return np.arange(n)
        perm = torch.randperm(n, generator=self.generator).numpy()
        pool = self.batch_size * self.POOL_BATCHES
        lengths = self.tokens.lengths[self.rows]
        chunks = [chunk[np.argsort(lengths[chunk], kind="stable")] for chunk in np.split(perm, range(pool, n, pool))]
        return np.concatenate(chunks) if chunks else perm

    def __len__(self) -> int:
        n = len(self.rows)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.order
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=self.generator).tolist()]
            self.order = self._order()  # a fresh order for the next pass
        for positions in batches:
            ids = pad(self.tokens, self.rows[positions], self.pad_id).to(self.device, non_blocking=True)
            yield ids, self._labels[positions]
