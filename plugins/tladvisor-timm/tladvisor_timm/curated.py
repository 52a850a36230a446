"""The short list ``tladvisor backbones`` shows, with its facts precomputed (curated.json).

Deriving a spec needs ``import timm`` and a weightless build: seconds per process, paid by every command
that fills the backbone registry. The listed models' facts ship in curated.json, made with the timm
version it names; with another timm they are derived at run time. Regenerate after changing the list or
the pinned timm (the test ``test_curated_facts_match_what_timm_derives`` says when):

    python -c "from tladvisor_timm.curated import write_table; write_table()"
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

from tladvisor_timm.spec import derive_facts

TABLE = Path(__file__).with_name("curated.json")
# One per family and source domain; any other timm name works too.
CURATED = (
    "resnet50.a1_in1k",
    "mobilenetv3_large_100.ra_in1k",
    "convnext_tiny.fb_in22k",
    "vit_small_patch16_224.augreg_in21k_ft_in1k",
    "vit_base_patch16_clip_224.laion2b_ft_in12k_in1k",
)


def timm_version() -> str:
    try:
        return importlib.metadata.version("timm")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def curated_facts() -> dict[str, dict]:
    """Facts of each listed model: from curated.json when it matches the installed timm, else derived."""
    try:
        table = json.loads(TABLE.read_text())
        if table.get("timm") == timm_version() and list(table["models"]) == list(CURATED):
            return table["models"]
    except (OSError, ValueError, KeyError):
        pass
    return {model: derive_facts(model) for model in CURATED}


def write_table() -> None:
    table = {"timm": timm_version(), "models": {model: derive_facts(model) for model in CURATED}}
    TABLE.write_text(json.dumps(table, indent=1) + "\n")
    print(f"wrote {TABLE} for timm {table['timm']}")


if __name__ == "__main__":
    write_table()
