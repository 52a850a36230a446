"""What a backbone is: :class:`BackboneSpec`, its :class:`Stage` list and :class:`Preprocessing`.

Modelled on torchvision's ``Weights`` enums and timm's ``pretrained_cfg``: everything needed to build
the network, feed it images the way it was trained, and count freeze depth over its layer groups.

Contract of ``build(pretrained)``: return an ``nn.Module`` classifier over the source classes. The
module at ``head`` is its final ``nn.Linear``; the input of that layer is the embedding tladvisor
measures, and it is replaced by a new ``nn.Linear`` for the target classes when training. A backbone
without a source classifier either sets ``head=None`` and returns the embedding from ``forward`` (it can
be measured, not tuned), or keeps a placeholder ``nn.Linear`` at ``head`` with ``source_classes=None``:
then no source probabilities are read (no LEEP, no NCE) and it trains like any other.
A text backbone (``modality="text"``) sets ``text`` (:class:`TextPreprocessing`); its ``forward`` takes a
``LongTensor`` of token ids (batch, length), padded with ``text.pad_id``.
``stages`` list the body's layer groups, stem first; together with ``head`` they own every parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Stage:
    """One layer group. ``members`` are dotted paths to sub-modules or parameters of the model."""

    name: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class Preprocessing:
    """How images are fed to the backbone at evaluation: resize, centre crop, normalise."""

    input_size: int = 224
    resize_size: int = 256
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"

    def at_size(self, input_size: int | None) -> Preprocessing:
        """The same pipeline at another input size, keeping the resize/crop ratio."""
        if input_size is None or input_size == self.input_size:
            return self
        ratio = self.resize_size / self.input_size
        return replace(self, input_size=int(input_size), resize_size=int(round(input_size * ratio)))

    def key(self) -> str:
        """A stable string identifying this pipeline (part of feature-cache keys)."""
        return (
            f"{self.input_size}/{self.resize_size}/{self.interpolation}/"
            f"{','.join(f'{v:.4f}' for v in self.mean)}/{','.join(f'{v:.4f}' for v in self.std)}"
        )


@dataclass(frozen=True)
class TextPreprocessing:
    """How texts are fed to a text backbone: its tokenizer and the longest input it takes.

    ``load_tokenizer()`` returns a callable from a list of texts to their token ids, special tokens included
    and untruncated (tladvisor truncates to ``max_length``, keeping the last token, the end marker, and
    counts how many texts it cut). ``pad_id`` pads a batch; the model finds its attention mask as
    ``ids != pad_id``. ``tokenizer_id`` names the tokenizer exactly (part of cache keys).
    """

    load_tokenizer: Callable[[], Callable[[list[str]], list[list[int]]]]
    max_length: int = 256
    pad_id: int = 0
    tokenizer_id: str = ""

    def key(self) -> str:
        """A stable string identifying this input pipeline (part of feature-cache keys)."""
        return f"text/{self.tokenizer_id}/{self.max_length}/{self.pad_id}"


def _never_available() -> bool:
    return False


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone. Plugins create these and pass them to ``register``."""

    name: str
    build: Callable[[bool], nn.Module]
    stages: tuple[Stage, ...]
    feature_dim: int
    head: str | None = None
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    fixed_input_size: bool = False  # True when the weights only work at input_size (ViT position embeddings)
    modality: str = "image"
    source_domain: str = "ImageNet-1k natural photos"
    source_classes: int | None = 1000
    license: str = "unknown"
    weights_id: str = ""  # names the pretrained weights exactly (file name, hash, enum): cache key
    weights_location: str = ""  # where the weights live locally (cache path or file)
    weights_available: Callable[[], bool] = _never_available
    description: str = ""
    plugin: str = ""  # filled in by the registry: which plugin registered it
    weights_url: str = ""  # where the weights can be downloaded from, when they come from a URL
    text: TextPreprocessing | None = None  # text backbones (modality "text"): the tokenizer; images use preprocessing

    @property
    def n_stages(self) -> int:
        return len(self.stages)

    def preprocessing_at(self, image_size: int | None) -> Preprocessing | TextPreprocessing:
        """Preprocessing at the requested input size (the native one when the weights need it); a text
        backbone's :class:`TextPreprocessing` (image sizes do not apply to it)."""
        if self.text is not None:
            return self.text
        return self.preprocessing if self.fixed_input_size else self.preprocessing.at_size(image_size)

    def summary(self) -> dict:
        """JSON-ready description (``tladvisor backbones --json``)."""
        return {
            "name": self.name,
            "plugin": self.plugin,
            "modality": self.modality,
            "source_domain": self.source_domain,
            "source_classes": self.source_classes,
            "license": self.license,
            "input_size": self.preprocessing.input_size,
            "fixed_input_size": self.fixed_input_size,
            "mean": list(self.preprocessing.mean),
            "std": list(self.preprocessing.std),
            "feature_dim": self.feature_dim,
            "stages": [s.name for s in self.stages],
            "head": self.head,
            "weights_id": self.weights_id,
            "weights_location": self.weights_location,
            "weights_url": self.weights_url,
            "weights_available": bool(self.weights_available()),
            "description": self.description,
            **({"max_length": self.text.max_length, "tokenizer": self.text.tokenizer_id} if self.text else {}),
        }


def file_exists(path: str | Path) -> Callable[[], bool]:
    """A ``weights_available`` check for weights stored in one file."""

    def check() -> bool:
        return Path(path).is_file()

    return check
