"""Where a timm checkpoint's weights live, whether they are here offline, and loading them through timm.

timm downloads pretrained weights itself: from the Hugging Face Hub (``hf_hub_id``, into the Hub cache,
``model.safetensors`` first, else ``pytorch_model.bin``) or, for a few older checkpoints, from a URL into
torch hub's cache. This module only *looks* in those caches (no network) to say whether a checkpoint is
available offline, and turns timm's download failures into one line naming what to fetch.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from tladvisor.errors import UnsafeFileError, WeightsUnavailableError
from tladvisor.text import one_line

HF_FILES = ("model.safetensors", "pytorch_model.bin")  # the order timm tries them in
PROBE_TIMEOUT_S = 3.0
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def hf_cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hf_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hub_repo(cfg: dict) -> str | None:
    """The Hub repository timm downloads from (``timm/convnext_tiny.fb_in22k``), or None."""
    hub_id = cfg.get("hf_hub_id")
    return hub_id.split("@")[0] if hub_id else None


def cached_file(cfg: dict) -> Path | None:
    """The checkpoint timm would load, when it is already in the local cache; None otherwise."""
    repo = hub_repo(cfg)
    if repo:
        from huggingface_hub import try_to_load_from_cache

        revision = cfg["hf_hub_id"].split("@")[1] if "@" in cfg["hf_hub_id"] else None
        for filename in ([cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else HF_FILES):
            found = try_to_load_from_cache(repo, filename, cache_dir=hf_cache_dir(), revision=revision)
            if isinstance(found, str) and os.path.isfile(found):
                return Path(found)
        return None
    if cfg.get("url"):
        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(cfg["url"])
        return path if path.is_file() else None
    return None


def download_host(cfg: dict) -> str | None:
    """The host timm would download this checkpoint from."""
    if hub_repo(cfg):
        from huggingface_hub import constants

        return urlparse(constants.ENDPOINT).hostname
    return urlparse(cfg["url"]).hostname if cfg.get("url") else None


def unreachable(host: str | None) -> str | None:
    """Why ``host`` cannot be reached now (one short probe), or None when it can or a proxy decides.

    Without it, an offline machine waits a minute while the Hub client retries and prints two dozen
    warnings before the same error.
    """
    if not host or any(os.environ.get(name) for name in PROXY_VARIABLES):
        return None
    try:
        socket.create_connection((host, 443), timeout=PROBE_TIMEOUT_S).close()
    except OSError as error:
        return f"{host} cannot be reached: {one_line(error, limit=300)}"
    return None


def fetch_hint(cfg: dict) -> str:
    """What a user runs on a connected machine to bring this checkpoint into the cache."""
    repo = hub_repo(cfg)
    if repo:
        return (f"`hf download {repo}` (Hugging Face cache {hf_cache_dir()}, or set HF_HOME), "
                f"or give a local .safetensors checkpoint (tladvisor_timm.timm_backbone(..., checkpoint=PATH))")
    if cfg.get("url"):
        return f"download {cfg['url']} into {Path(torch.hub.get_dir()) / 'checkpoints'}"
    return "give a local .safetensors checkpoint (tladvisor_timm.timm_backbone(..., checkpoint=PATH))"


def check_checkpoint(path: Path) -> Path:
    """A local checkpoint must be a safetensors file: a pickle could run code when loaded."""
    if path.suffix != ".safetensors":
        raise UnsafeFileError(f"{path}: a local timm checkpoint must be a .safetensors file (a pickle could run code)")
    return path


def create_pretrained(name: str, model_name: str, cfg: dict, checkpoint: Path | None) -> nn.Module:
    """timm's own ``create_model(pretrained=True)``, from ``checkpoint`` when given; failures are one line."""
    import timm

    if checkpoint is not None:
        if not checkpoint.is_file():
            raise WeightsUnavailableError(f"{name}: checkpoint {checkpoint} does not exist")
        try:
            return timm.create_model(model_name, pretrained=True, pretrained_cfg_overlay={"file": str(checkpoint)})
        except Exception as error:
            raise WeightsUnavailableError(f"{name}: cannot load checkpoint {checkpoint} ({one_line(error, limit=300)})") from None
    cached = cached_file(cfg)
    if cached is None:
        why = "HF_HUB_OFFLINE is set" if hf_offline() and hub_repo(cfg) else unreachable(download_host(cfg))
        if why:
            raise WeightsUnavailableError(
                f"{name}: pretrained weights are not in the local cache and {why}; fetch them with {fetch_hint(cfg)}")
    try:
        return timm.create_model(model_name, pretrained=True)
    except Exception as error:  # no network, no such file on the Hub, a truncated or unsafe cache file
        if cached is not None:
            raise WeightsUnavailableError(
                f"{name}: the cached weights {cached} cannot be loaded ({one_line(error, limit=300)}); delete the file so it "
                f"is fetched again, or fetch it with {fetch_hint(cfg)}") from None
        raise WeightsUnavailableError(
            f"{name}: pretrained weights are not in the local cache and could not be downloaded "
            f"({one_line(error, limit=300)}); fetch them with {fetch_hint(cfg)}") from None
