"""``tladvisor predict`` for a model trained on texts: texts from .txt files, folders of them, manifests or stdin.

A ``.txt`` file gives one text per non-empty line, or one text (the whole file) when the model was trained
on class folders of .txt files, one text each; then a folder gives each .txt file in it. A manifest (CSV,
TSV, JSON Lines, Parquet) gives its text column (the first usual name, or ``--text-column``); ``-`` reads
standard input, one text per line. A text that cannot be used (empty, bytes that are not UTF-8) is skipped
with its reason; the others are tokenised by the backbone's own tokenizer, cut at the length the model was
trained with, and classified.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from tladvisor.runtime import device as devices
from tladvisor.data.manifest import cell_text, is_manifest, read_table
from tladvisor.data.text_intake import check_text, decode_marking
from tladvisor.data.text_sources import TEXT_COLUMNS, text_column_of
from tladvisor.data.token_store import TokenBatches, tokenize
from tladvisor.errors import DatasetError
from tladvisor.tuning.inference import predict_probabilities

STDIN = "-"


def _lines(where: str, content: str) -> list[tuple[str, str]]:
    return [(f"{where} line {number}", line) for number, line in enumerate(content.splitlines(), start=1)
            if line.strip()]


def collect_texts(inputs: Sequence[str | Path], text_column: str | None = None, stdin=None,
                  one_text_per_file: bool = False) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    """``([(where, text)], skipped)`` from the inputs, in the order given."""
    texts: list[tuple[str, str]] = []
    skipped: list[dict[str, str]] = []
    for given in inputs:
        if str(given) == STDIN:
            stream = stdin if stdin is not None else sys.stdin.buffer
            texts += _lines("stdin", decode_marking(stream.read()))
            continue
        path = Path(given)
        if is_manifest(path):
            table = read_table(path, decode_marking)
            column = text_column_of(table, text_column, path)
            if column is None:
                raise DatasetError(f"{path} has no text column (columns: {', '.join(map(str, table.columns))}); "
                                   f"name one of: {', '.join(TEXT_COLUMNS)}, or pass --text-column NAME")
            texts += [(f"{path} row {i + 1}", cell_text(v)) for i, v in enumerate(table[column].tolist())]
        elif path.is_file():
            content = decode_marking(path.read_bytes())
            texts += [(str(path), content)] if one_text_per_file else _lines(str(path), content)
        elif path.is_dir() and one_text_per_file:
            files = sorted(p for p in path.rglob("*.txt") if p.is_file())
            if not files:
                skipped.append({"path": str(path), "reason": "folder holds no .txt file"})
            texts += [(str(p), decode_marking(p.read_bytes())) for p in files]
        else:
            skipped.append({"path": str(path), "reason": "no such file" if not path.is_dir() else
                            "a folder; give .txt files (one text per line), a manifest or - for stdin"})
    usable = []
    for where, text in texts:
        reason = check_text(text)
        if reason is None:
            usable.append((where, text.strip()))
        else:
            skipped.append({"path": where, "reason": reason})
    return usable, skipped


def predict_texts(loaded, inputs: Sequence[str | Path], *, device: str = "auto", batch_size: int = 32,
                  text_column: str | None = None, stdin=None):
    """Classify every usable text of ``inputs`` with ``loaded`` (a text model from ``load_model``)."""
    from tladvisor.tuning.predict import Predictions

    one_per_file = bool((loaded.config.get("text") or {}).get("one_text_per_file"))
    found, skipped = collect_texts(inputs, text_column, stdin, one_text_per_file=one_per_file)
    if not found:
        return Predictions([], skipped)
    text = loaded.spec.text
    max_length = (loaded.config.get("text") or {}).get("max_length")
    if isinstance(max_length, int) and max_length > 0:
        text = replace(text, max_length=max_length)  # as trained
    tokens = tokenize(text, [t for _, t in found])
    target = devices.pick_device(device)
    model = devices.prepare_model(loaded.model, target)
    batches = TokenBatches(tokens, np.arange(len(found)), np.zeros(len(found), dtype=np.int64), text.pad_id,
                           batch_size, target)
    probabilities = predict_probabilities(model, batches, target)
    best = probabilities.argmax(1).tolist()
    rows = [{"path": where, "label": loaded.classes[index], "probability": float(probabilities[row, index]),
             "text": content} for row, ((where, content), index) in enumerate(zip(found, best))]
    return Predictions(rows, skipped)
