"""tladvisor plugin: any timm model as a backbone, named ``timm-<model>[.<pretrained tag>]``.

``--backbone timm-convnext_tiny.fb_in22k`` (or the Hub-style ``timm/convnext_tiny.fb_in22k``) builds
timm's ``convnext_tiny`` with its ``fb_in22k`` checkpoint; without a tag, timm's default checkpoint for
that architecture is used and the name is completed with its tag. Everything else comes from timm:
stages from ``feature_info`` (:mod:`.stages`), preprocessing from the checkpoint's pretrained config,
the source classifier from ``get_classifier()``, the source domain from the tag (:mod:`.source`), and
the weights through timm's own download and cache (:mod:`.weights`). ``register_backbones`` lists a
short curated set; ``resolve_backbone`` builds any other name on demand.
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path

import torch
from torch import nn

from tladvisor import hookimpl
from tladvisor.backbones import BackboneSpec, Preprocessing
from tladvisor.errors import BackboneError
from tladvisor_timm.source import source_domain
from tladvisor_timm.stages import stages_from_feature_info
from tladvisor_timm.weights import cached_file, check_checkpoint, create_pretrained, fetch_hint, hub_repo

__version__ = "0.1.0"

PREFIXES = ("timm-", "timm/")  # timm-NAME is the canonical form (a file-name-safe backbone name)
# Listed by `tladvisor backbones` (each costs a weightless build when the registry fills): one per family
# and source domain; any other timm name works too.
CURATED = (
    "resnet50.a1_in1k",
    "mobilenetv3_large_100.ra_in1k",
    "convnext_tiny.fb_in22k",
    "vit_small_patch16_224.augreg_in21k_ft_in1k",
    "vit_base_patch16_clip_224.laion2b_ft_in12k_in1k",
)


def timm_name(name: str) -> str | None:
    """``convnext_tiny.fb_in22k`` from ``timm-convnext_tiny.fb_in22k`` or ``timm/...``; None for other names."""
    for prefix in PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix):]
    return None


def _skeleton(name: str, model_name: str, checkpoint: Path | None) -> nn.Module:
    """The architecture without weights, on the meta device when timm allows it (no memory, no init)."""
    import timm

    architecture = model_name.partition(".")[0]
    if not timm.is_model(architecture):
        hint = difflib.get_close_matches(architecture, timm.list_models(), n=1)
        suggestion = f" (did you mean 'timm-{hint[0]}'?)" if hint else ""
        raise BackboneError(f"unknown timm model '{architecture}' in backbone '{name}'{suggestion}; "
                            "`python -c 'import timm; print(timm.list_models())'` lists them")
    overlay = {"file": str(checkpoint)} if checkpoint else None
    try:
        with torch.device("meta"):
            return timm.create_model(model_name, pretrained=False, pretrained_cfg_overlay=overlay)
    except Exception:
        pass
    try:
        return timm.create_model(model_name, pretrained=False, pretrained_cfg_overlay=overlay)
    except Exception as error:  # an unknown pretrained tag, for instance
        raise BackboneError(f"timm cannot create '{model_name}' for backbone '{name}': "
                            f"{' '.join(str(error).split())[:200]}") from None


def _module_path(model: nn.Module, module: nn.Module) -> str | None:
    return next((path for path, m in model.named_modules() if m is module and path), None)


def preprocessing_of(cfg: dict) -> Preprocessing:
    """timm's evaluation transform: resize to floor(size / crop_pct), centre crop ``size``, normalise."""
    size = int(cfg.get("input_size", (3, 224, 224))[-1])
    crop_pct = float(cfg.get("crop_pct") or 0.875)
    interpolation = cfg.get("interpolation") or "bilinear"
    return Preprocessing(input_size=size, resize_size=int(math.floor(size / crop_pct)),
                         mean=tuple(float(v) for v in cfg.get("mean", (0.485, 0.456, 0.406))),
                         std=tuple(float(v) for v in cfg.get("std", (0.229, 0.224, 0.225))),
                         interpolation=interpolation if interpolation in ("bilinear", "bicubic", "nearest") else "bilinear")


def timm_backbone(model_name: str, *, checkpoint: str | Path | None = None, name: str | None = None) -> BackboneSpec:
    """The spec of timm model ``model_name`` (``arch`` or ``arch.tag``), its weights from ``checkpoint``
    (a local ``.safetensors`` file) when given, else through timm's download and cache."""
    path = check_checkpoint(Path(checkpoint)) if checkpoint is not None else None
    skeleton = _skeleton(name or f"timm-{model_name}", model_name, path)
    cfg = dict(skeleton.pretrained_cfg)
    full_name = f"{cfg.get('architecture') or model_name.partition('.')[0]}.{cfg['tag']}" if cfg.get("tag") else model_name
    spec_name = name or f"timm-{full_name}"
    classifier = skeleton.get_classifier() if hasattr(skeleton, "get_classifier") else None
    head = _module_path(skeleton, classifier) if isinstance(classifier, nn.Linear) else None
    feature_modules = [info["module"] for info in getattr(skeleton, "feature_info", []) if info.get("module")]
    num_classes = int(cfg.get("num_classes") or 0)

    def build(pretrained: bool) -> nn.Module:
        if pretrained:
            return create_pretrained(spec_name, full_name, cfg, path)
        import timm

        return timm.create_model(full_name, pretrained=False)

    def weights_available() -> bool:
        return path.is_file() if path is not None else cached_file(cfg) is not None

    location = cached_file(cfg) if path is None else path
    where = hub_repo(cfg) or cfg.get("url") or "(no download source)"
    return BackboneSpec(
        name=spec_name,
        build=build,
        stages=stages_from_feature_info(skeleton, feature_modules, head),
        head=head,
        feature_dim=int(classifier.in_features if head else getattr(skeleton, "head_hidden_size", None)
                        or skeleton.num_features),
        preprocessing=preprocessing_of(cfg),
        fixed_input_size=bool(cfg.get("fixed_input_size", False)),
        source_domain=source_domain(cfg.get("tag") or "", num_classes),
        source_classes=num_classes if head else None,
        license=str(cfg.get("license") or "see the checkpoint's model card"),
        weights_id=f"timm:{full_name}:{path.name if path else where}",
        weights_location=str(location) if location else f"(not cached: fetch with {fetch_hint(cfg)})",
        weights_available=weights_available,
        description=f"timm {full_name}" + ("" if head else " (no source classifier: LEEP/NCE not measured)"),
    )


@hookimpl
def register_backbones(register):
    for model_name in CURATED:
        register(timm_backbone(model_name))


@hookimpl
def resolve_backbone(name):
    """timm-<model>[.<tag>] (or timm/<model>[.<tag>]): any timm model, e.g. timm-convnext_tiny.fb_in22k"""
    model_name = timm_name(name)
    return None if model_name is None else timm_backbone(model_name)
