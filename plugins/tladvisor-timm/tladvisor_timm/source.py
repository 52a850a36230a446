"""The source domain of a timm checkpoint, read from its pretrained tag (``fb_in22k_ft_in1k``, ``lvd142m``...).

timm tags name the data a checkpoint was trained on: ``in1k``, ``in22k`` (``in21k``), ``in12k``,
``laion2b``, ``openai`` (CLIP), ``lvd142m`` (DINOv2), ``ig1b``... then the data it was fine-tuned on
(``_ft_in1k``), in training order. The description says both: pretraining data first, then what the head learnt.
"""

from __future__ import annotations

# word of a tag (by prefix) -> what the images are; the first match wins, so longer names come first
DATASETS: tuple[tuple[str, str], ...] = (
    ("in22k", "ImageNet-22k natural photos"),
    ("in21k", "ImageNet-22k natural photos"),
    ("in12k", "ImageNet-12k natural photos (a subset of ImageNet-22k)"),
    ("in1k", "ImageNet-1k natural photos"),
    ("laion2b", "LAION-2B web images with captions (CLIP)"),
    ("laion400m", "LAION-400M web images with captions (CLIP)"),
    ("datacompxl", "DataComp-XL web images with captions (CLIP)"),
    ("dfn", "DFN-filtered web images with captions (CLIP)"),
    ("openai", "OpenAI WIT-400M web images with captions (CLIP)"),
    ("metaclip", "MetaCLIP web images with captions"),
    ("webli", "WebLI web images with text (SigLIP)"),
    ("lvd142m", "LVD-142M curated web photos (DINOv2, self-supervised)"),
    ("dino", "ImageNet photos (DINO, self-supervised)"),
    ("ig1b", "Instagram-1B hashtagged photos"),
    ("ig", "Instagram hashtagged photos"),
    ("jft", "JFT-300M photos"),
    ("yfcc", "YFCC100M photos"),
    ("mim", "masked image modelling"),
)


def describe_token(token: str) -> str | None:
    """The dataset one word of a tag names (``in22k``, ``laion2b``...), or None."""
    return next((description for name, description in DATASETS if token.startswith(name)), None)


def source_domain(tag: str, num_classes: int | None) -> str:
    """``'ImageNet-22k natural photos, fine-tuned on ImageNet-1k natural photos'`` and the like.

    The datasets a tag names, in its order, are the checkpoint's training history
    (``laion2b_ft_in12k_in1k``: LAION-2B, then ImageNet-12k, then ImageNet-1k).
    """
    named = [d for d in (describe_token(t) for t in tag.lower().split("_")) if d] if tag else []
    if not named:
        return f"timm checkpoint '{tag or 'default'}' ({num_classes or 'no'} source classes)"
    text = named[0]
    for later in named[1:]:
        if later != text:
            text += f", fine-tuned on {later}"
    return text
