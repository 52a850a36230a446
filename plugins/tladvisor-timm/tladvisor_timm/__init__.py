"""tladvisor plugin: any timm model as a backbone, named ``timm-<model>[.<pretrained tag>]``.

``--backbone timm-convnext_tiny.fb_in22k`` (or the Hub-style ``timm/convnext_tiny.fb_in22k``) builds
timm's ``convnext_tiny`` with its ``fb_in22k`` checkpoint; without a tag, timm's default checkpoint for
that architecture is used and the name is completed with its tag. Everything else comes from timm:
stages from ``feature_info`` (:mod:`.stages`), preprocessing from the checkpoint's pretrained config,
the source classifier from ``get_classifier()``, the source domain from the tag (:mod:`.source`), and
the weights through timm's own download and cache (:mod:`.weights`). ``register_backbones`` lists a
short curated set (:mod:`.curated`); ``resolve_backbone`` builds any other name on demand.
"""

from __future__ import annotations

from tladvisor import hookimpl, hookspecs
from tladvisor_timm.curated import CURATED, curated_facts
from tladvisor_timm.spec import spec_from_facts, timm_backbone

__version__ = "0.1.0"
__all__ = ["CURATED", "timm_backbone", "timm_name"]

PREFIXES = ("timm-", "timm/")  # timm-NAME is the canonical form (a file-name-safe backbone name)


def timm_name(name: str) -> str | None:
    """``convnext_tiny.fb_in22k`` from ``timm-convnext_tiny.fb_in22k`` or ``timm/...``; None for other names."""
    for prefix in PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix):]
    return None


@hookimpl
def register_backbones(register):
    for facts in curated_facts().values():
        register(spec_from_facts(facts))


if hasattr(hookspecs, "resolve_backbone"):  # a tladvisor without the hook rejects the plugin: offer the list only

    @hookimpl
    def resolve_backbone(name):
        """timm-<model>[.<tag>] (or timm/<model>[.<tag>]): any timm model, e.g. timm-convnext_tiny.fb_in22k"""
        model_name = timm_name(name)
        return None if model_name is None else timm_backbone(model_name)
