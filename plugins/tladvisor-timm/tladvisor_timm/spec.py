"""A timm model as a BackboneSpec, in two steps: *facts* derived from a weightless build (JSON-able, so a
fixed list can ship them precomputed), then the spec built from those facts without importing timm."""

from __future__ import annotations

import difflib
import math
from pathlib import Path

import torch
from torch import nn

from tladvisor.backbones import BackboneSpec, Preprocessing, Stage
from tladvisor.errors import BackboneError
from tladvisor_timm.source import source_domain
from tladvisor_timm.stages import stages_from_feature_info
from tladvisor_timm.weights import cached_file, check_checkpoint, create_pretrained, fetch_hint, hub_repo

CFG_KEYS = ("architecture", "tag", "hf_hub_id", "hf_hub_filename", "url", "input_size", "crop_pct", "interpolation",
            "mean", "std", "num_classes", "fixed_input_size", "license")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


def _skeleton(label: str, model_name: str, checkpoint: Path | None) -> nn.Module:
    """The architecture without weights, on the meta device when timm allows it (no memory, no init)."""
    import timm

    architecture = model_name.partition(".")[0]
    if not timm.is_model(architecture):
        hint = difflib.get_close_matches(architecture, timm.list_models(), n=1)
        suggestion = f" (did you mean 'timm-{hint[0]}'?)" if hint else ""
        raise BackboneError(f"unknown timm model '{architecture}' in backbone '{label}'{suggestion}; "
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
        raise BackboneError(f"timm cannot create '{model_name}' for backbone '{label}': "
                            f"{' '.join(str(error).split())[:200]}") from None


def _module_path(model: nn.Module, module: nn.Module) -> str | None:
    return next((path for path, m in model.named_modules() if m is module and path), None)


def derive_facts(model_name: str, checkpoint: Path | None = None, label: str | None = None) -> dict:
    """What the spec needs from timm: the full name, the pretrained config, head, embedding size, stages."""
    skeleton = _skeleton(label or f"timm-{model_name}", model_name, checkpoint)
    cfg = {key: skeleton.pretrained_cfg.get(key) for key in CFG_KEYS}
    architecture = cfg.get("architecture") or model_name.partition(".")[0]
    classifier = skeleton.get_classifier() if hasattr(skeleton, "get_classifier") else None
    head = _module_path(skeleton, classifier) if isinstance(classifier, nn.Linear) else None
    feature_dim = classifier.in_features if head else (getattr(skeleton, "head_hidden_size", None) or skeleton.num_features)
    feature_modules = [info["module"] for info in getattr(skeleton, "feature_info", []) if info.get("module")]
    stages = stages_from_feature_info(skeleton, feature_modules, head)
    return {"full_name": f"{architecture}.{cfg['tag']}" if cfg.get("tag") else model_name,
            "cfg": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
            "head": head, "feature_dim": int(feature_dim),
            "stages": [[stage.name, list(stage.members)] for stage in stages]}


def preprocessing_of(cfg: dict) -> Preprocessing:
    """timm's evaluation transform: resize to floor(size / crop_pct), centre crop ``size``, normalise."""
    size = int((cfg.get("input_size") or (3, 224, 224))[-1])
    crop_pct = float(cfg.get("crop_pct") or 0.875)
    interpolation = cfg.get("interpolation") or "bilinear"
    return Preprocessing(input_size=size, resize_size=int(math.floor(size / crop_pct)),
                         mean=tuple(float(v) for v in cfg.get("mean") or (0.485, 0.456, 0.406)),
                         std=tuple(float(v) for v in cfg.get("std") or (0.229, 0.224, 0.225)),
                         interpolation=interpolation if interpolation in INTERPOLATIONS else "bilinear")


def spec_from_facts(facts: dict, checkpoint: Path | None = None, name: str | None = None) -> BackboneSpec:
    """The BackboneSpec; timm is imported only when the model is built."""
    cfg, full_name, head = facts["cfg"], facts["full_name"], facts["head"]
    spec_name = name or f"timm-{full_name}"
    num_classes = int(cfg.get("num_classes") or 0)

    def build(pretrained: bool) -> nn.Module:
        if pretrained:
            return create_pretrained(spec_name, full_name, cfg, checkpoint)
        import timm

        return timm.create_model(full_name, pretrained=False)

    def weights_available() -> bool:
        return checkpoint.is_file() if checkpoint is not None else cached_file(cfg) is not None

    location = cached_file(cfg) if checkpoint is None else checkpoint
    where = hub_repo(cfg) or cfg.get("url") or "(no download source)"
    return BackboneSpec(
        name=spec_name,
        build=build,
        stages=tuple(Stage(stage_name, tuple(members)) for stage_name, members in facts["stages"]),
        head=head,
        feature_dim=facts["feature_dim"],
        preprocessing=preprocessing_of(cfg),
        fixed_input_size=bool(cfg.get("fixed_input_size")),
        source_domain=source_domain(cfg.get("tag") or "", num_classes),
        source_classes=num_classes if head else None,
        license=str(cfg.get("license") or "see the checkpoint's model card"),
        weights_id=f"timm:{full_name}:{checkpoint.name if checkpoint else where}",
        weights_location=str(location) if location else f"(not cached: fetch with {fetch_hint(cfg)})",
        weights_available=weights_available,
        description=f"timm {full_name}" + ("" if head else " (no source classifier: LEEP/NCE not measured)"),
    )


def timm_backbone(model_name: str, *, checkpoint: str | Path | None = None, name: str | None = None) -> BackboneSpec:
    """The spec of timm model ``model_name`` (``arch`` or ``arch.tag``), its weights from ``checkpoint``
    (a local ``.safetensors`` file) when given, else through timm's download and cache."""
    path = check_checkpoint(Path(checkpoint)) if checkpoint is not None else None
    return spec_from_facts(derive_facts(model_name, path, name), path, name)
