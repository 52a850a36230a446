"""A Hugging Face encoder as a tladvisor classifier: token ids in, pooled embedding through a linear head out.

The model takes one ``LongTensor`` of token ids (batch, length) padded with ``pad_id``; the attention mask
is ``ids != pad_id``, so the trainer, the embedder and ``predict`` pass text batches exactly as they pass
images. Pooling follows the model: mean over the real tokens for sentence-transformers encoders (their
``1_Pooling`` config says so), the first token ([CLS]) otherwise. The head is a placeholder (one output)
until tladvisor replaces it for the target classes: these encoders have no source classifier.
"""

from __future__ import annotations

import torch
from torch import nn

POOLINGS = ("mean", "cls")


class EncoderClassifier(nn.Module):
    def __init__(self, encoder: nn.Module, hidden_size: int, pad_id: int, pooling: str = "mean"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.encoder = encoder
        self.pad_id = pad_id
        self.pooling = pooling
        self.head = nn.Linear(hidden_size, 1)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        mask = ids != self.pad_id
        hidden = self.encoder(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(ids))
