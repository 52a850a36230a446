"""Encoders named by their Hugging Face Hub repository: ``hf-<org>--<model>`` (or ``hf:<org>/<model>``).

The repository is read from the Hub's own cache (``HF_HUB_CACHE``); a repository that is not cached is
downloaded when the machine can reach the Hub (the real download path, through ``huggingface_hub``), and
otherwise is one line naming the command that fetches it. Only the files an encoder needs are fetched:
configs, tokenizer files and safetensors weights (never a pickled checkpoint).
"""

from __future__ import annotations

from pathlib import Path

from tladvisor.errors import BackboneError, WeightsUnavailableError
from tladvisor.text import one_line

PREFIXES = ("hf-", "hf:", "hf/")
WANTED = ["*.json", "*.txt", "*.model", "*.safetensors", "1_Pooling/*"]


def hub_repo(name: str) -> str | None:
    """``org/model`` for a name of this plugin's form; None for other names."""
    for prefix in PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            rest = name[len(prefix):]
            return rest.replace("--", "/", 1) if prefix == "hf-" else rest
    return None


def canonical_name(repo: str) -> str:
    """The file-name-safe backbone name of a repository: ``hf-org--model``."""
    return "hf-" + repo.replace("/", "--", 1)


def local_folder(repo: str) -> Path | None:
    """The repository's snapshot in the Hub cache, when one is there (no network)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo, allow_patterns=WANTED, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError), or a damaged cache entry
        return None


def fetch(repo: str) -> Path:
    """The repository's folder: from the cache, else downloaded; one line when neither works."""
    folder = local_folder(repo)
    if folder is not None and (folder / "config.json").is_file():
        return folder
    from huggingface_hub import constants, snapshot_download

    if constants.HF_HUB_OFFLINE:
        why = "HF_HUB_OFFLINE is set"
    else:
        try:
            return Path(snapshot_download(repo, allow_patterns=WANTED))
        except Exception as error:
            why = one_line(error, limit=200)
    raise WeightsUnavailableError(
        f"{canonical_name(repo)}: not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and not downloadable "
        f"({why}); fetch it where there is a network with `hf download {repo}` and copy the cache here, or point "
        "a folder_backbone at a model folder")


def hub_backbone(name: str):
    """The spec of the encoder ``name`` names, or None when ``name`` is not of this plugin's form."""
    from tladvisor_transformers.spec import folder_backbone

    repo = hub_repo(name)
    if repo is None:
        return None
    if repo.count("/") > 1 or not all(repo.split("/")):
        raise BackboneError(f"{name}: name a Hub repository as hf-<org>--<model> or hf:<org>/<model>")
    folder = fetch(repo)
    return folder_backbone(canonical_name(repo), folder, weights_url=f"https://huggingface.co/{repo}",
                           description=f"Hugging Face encoder {repo} (from the Hub cache)")
