"""A :class:`tladvisor.backbones.BackboneSpec` for a Hugging Face encoder stored as a model folder.

The spec is made from the folder's JSON files alone (``config.json``, the tokenizer and sentence-transformers
configs), so registering a text backbone never imports ``transformers`` (an image analysis does not pay for
it); the model and the tokenizer load when first used. Stages are the embeddings, then each transformer
layer: freeze depth ``k`` keeps the embeddings and the first ``k - 1`` layers as they are.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tladvisor.backbones import BackboneSpec, Stage, TextPreprocessing
from tladvisor.errors import BackboneError

from tladvisor_transformers.encoder import EncoderClassifier

# model_type -> (embeddings module, the ModuleList of layers), inside the HF base model (AutoModel)
LAYOUTS = {
    "bert": ("embeddings", "encoder.layer"),
    "roberta": ("embeddings", "encoder.layer"),
    "xlm-roberta": ("embeddings", "encoder.layer"),
    "camembert": ("embeddings", "encoder.layer"),
    "distilbert": ("embeddings", "transformer.layer"),
}
POOLER = ("bert", "roberta", "xlm-roberta", "camembert")  # carry a pooler layer, left out with add_pooling_layer
POSITION_OFFSET = {"roberta": 2, "xlm-roberta": 2, "camembert": 2}  # position ids start after the padding index
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "merges.txt", "vocab.json", "sentencepiece.bpe.model",
                   "tokenizer_config.json", "special_tokens_map.json")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
DEFAULT_MAX_LENGTH = 256  # when the folder does not say; long enough for most classification texts


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError) as error:
        raise BackboneError(f"{path}: unreadable ({error})") from None


def folder_facts(folder: Path) -> dict:
    """What the spec needs from a model folder: layout, sizes, pooling, longest input, padding id."""
    config = read_json(folder / "config.json")
    if not config:
        raise BackboneError(f"{folder}: no config.json; a Hugging Face model folder holds config.json, the "
                            f"weights ({' or '.join(WEIGHT_FILES)}) and the tokenizer files")
    model_type = config.get("model_type", "")
    if model_type not in LAYOUTS:
        raise BackboneError(f"{folder}: model type '{model_type}' is not supported (its layer groups are unknown); "
                            f"supported: {', '.join(LAYOUTS)}")
    pooling_config = read_json(folder / "1_Pooling" / "config.json")
    pooling = "mean" if pooling_config.get("pooling_mode_mean_tokens") else "cls"
    sentence_config = read_json(folder / "sentence_bert_config.json")
    tokenizer_config = read_json(folder / "tokenizer_config.json")
    positions = config.get("max_position_embeddings")
    limits = [sentence_config.get("max_seq_length"), tokenizer_config.get("model_max_length"),
              positions - POSITION_OFFSET.get(model_type, 0) if isinstance(positions, int) else None]
    sane = [int(v) for v in limits if isinstance(v, (int, float)) and 0 < v <= 100_000]
    # the smallest limit: the position embeddings bound what the model takes, a sentence config may ask less
    max_length = min(*sane, 512) if sane else DEFAULT_MAX_LENGTH
    hidden = config.get("hidden_size") or config.get("dim")
    layers = config.get("num_hidden_layers") or config.get("n_layers")
    return {"model_type": model_type, "hidden_size": int(hidden), "n_layers": int(layers), "pooling": pooling,
            "max_length": max_length, "pad_id": int(config.get("pad_token_id") or 0)}


def encoder_stages(model_type: str, n_layers: int) -> tuple[Stage, ...]:
    embeddings, layers = LAYOUTS[model_type]
    return (Stage("embeddings", (f"encoder.{embeddings}",)),
            *(Stage(f"layer{index + 1}", (f"encoder.{layers}.{index}",)) for index in range(n_layers)))


def tokenizer_id(folder: Path, pooling: str) -> str:
    """Names the tokenizer files as they are now (name, size, modification time) and the pooling: part of the
    token and feature cache keys, so editing either never serves stale tokens or features."""
    stats = [f"{name}:{(folder / name).stat().st_size}:{(folder / name).stat().st_mtime_ns}"
             for name in TOKENIZER_FILES if (folder / name).is_file()]
    return f"{folder}|pooling={pooling}|{'|'.join(stats)}"


def _weights_file(folder: Path) -> Path | None:
    return next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)


def load_tokenizer(folder: Path) -> Callable[[list[str]], list[list[int]]]:
    """The folder's tokenizer as tladvisor wants it: texts to untruncated token ids, special tokens included."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # "sequence longer than the maximum" is expected: tladvisor truncates
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)

    def tokenize(texts: list[str]) -> list[list[int]]:
        return tokenizer(list(texts), add_special_tokens=True, truncation=False)["input_ids"]

    return tokenize


def build_encoder(folder: Path, facts: dict, pretrained: bool) -> EncoderClassifier:
    """The encoder with its pooling and a placeholder head; random weights (HF's own initialisation) unless
    ``pretrained``. The pooler layer that BERT checkpoints carry is left out: the embedding is pooled here."""
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # "some weights of the checkpoint were not used" names the pooler we drop
    hf_logging.disable_progress_bar()  # "Loading weights" bars would break tladvisor's own progress line
    extra = {"add_pooling_layer": False} if facts["model_type"] in POOLER else {}
    if pretrained:
        if _weights_file(folder) is None:
            raise BackboneError(f"{folder}: no weights file ({' or '.join(WEIGHT_FILES)})")
        encoder = AutoModel.from_pretrained(str(folder), local_files_only=True, **extra)
    else:
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
        encoder = AutoModel.from_config(config, **extra)
    return EncoderClassifier(encoder, facts["hidden_size"], facts["pad_id"], facts["pooling"])


def folder_backbone(name: str, folder: str | Path, *, description: str = "", source_domain: str = "",
                    license: str = "unknown", weights_id: str = "", weights_url: str = "",
                    max_length: int | None = None) -> BackboneSpec:
    """A text backbone from a Hugging Face model folder (``AutoModel``/``AutoTokenizer`` layout).

    ``weights_id`` names the weights exactly (it keys the feature cache); by default the weights file's
    size and modification time. ``max_length`` overrides the longest input the folder's configs give.
    """
    folder = Path(folder).expanduser().resolve()
    facts = folder_facts(folder)
    if max_length is not None:
        if not 0 < int(max_length) <= facts["max_length"]:
            raise BackboneError(f"{name}: max_length {max_length} must be between 1 and {facts['max_length']}, the "
                                "longest input its configs allow")
        facts["max_length"] = int(max_length)
    weights = _weights_file(folder)
    if not weights_id and weights is not None:
        stat = weights.stat()
        weights_id = f"{folder}:{weights.name}:{stat.st_size}:{stat.st_mtime_ns}"
    text = TextPreprocessing(load_tokenizer=lambda: load_tokenizer(folder), max_length=facts["max_length"],
                             pad_id=facts["pad_id"], tokenizer_id=tokenizer_id(folder, facts["pooling"]))
    return BackboneSpec(
        name=name,
        build=lambda pretrained: build_encoder(folder, facts, pretrained),
        stages=encoder_stages(facts["model_type"], facts["n_layers"]),
        feature_dim=facts["hidden_size"],
        head="head",
        modality="text",
        source_domain=source_domain or "text the encoder was pretrained on (see its model card)",
        source_classes=None,
        license=license,
        weights_id=weights_id,
        weights_location=str(weights or folder),
        weights_available=lambda: _weights_file(folder) is not None,
        description=description or f"{facts['model_type']} encoder, {facts['n_layers']} layers, "
                                   f"{facts['hidden_size']} wide, {facts['pooling']} pooling",
        weights_url=weights_url,
        text=text,
    )
