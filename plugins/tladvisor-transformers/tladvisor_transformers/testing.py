"""Tiny text models and data for tests: a BERT built from a config (no download), saved as a model folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from tladvisor.records import Dataset, TextSample

WORDS = ("the a film book song great bad boring lovely plot cast music story hour year best worst good fine "
         "awful clever dull long short red blue cat dog runs sleeps").split()


def tiny_bert_folder(folder: Path, max_length: int = 16, pooling_mean: bool = True, kind: str = "bert") -> Path:
    """A 2-layer, 16-wide BERT (or DistilBERT: ``kind="distilbert"``) with random weights and a word-level
    vocabulary, saved as a model folder."""
    from transformers import BertConfig, BertModel, BertTokenizerFast, DistilBertConfig, DistilBertModel

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(str(folder))
    torch.manual_seed(0)
    if kind == "distilbert":
        DistilBertModel(DistilBertConfig(vocab_size=len(vocab), dim=16, n_layers=2, n_heads=2, hidden_dim=32,
                                         max_position_embeddings=64)).save_pretrained(str(folder))
    else:
        BertModel(BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=32, max_position_embeddings=64)).save_pretrained(str(folder))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_length}))
    if pooling_mean:
        (folder / "1_Pooling").mkdir(exist_ok=True)
        (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    return folder


def text_dataset(texts, labels) -> Dataset:
    """A two-class text Dataset of ``texts`` with integer ``labels``."""
    samples = tuple(TextSample(path=Path("t.csv"), label=int(y), text=t) for t, y in zip(texts, labels))
    return Dataset(root=Path("."), classes=("a", "b"), samples=samples, modality="text")


def random_texts(n, seed=0) -> list[str]:
    """``n`` texts of 1-29 words drawn from :data:`WORDS` (the tiny vocabulary), of varied lengths."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(1, 30))) for _ in range(n)]


