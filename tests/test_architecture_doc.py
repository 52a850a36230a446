"""docs/architecture.md names every module of tladvisor/, and names none that does not exist (#25 item 6)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tladvisor"
DOC = ROOT / "docs" / "architecture.md"


def modules() -> set[str]:
    """Every module as a path relative to tladvisor/, e.g. 'tuning/study/claims.py' (packages' __init__ aside,
    but the top-level one, the public API)."""
    found = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")}
    return {m for m in found if not m.endswith("__init__.py") or m == "__init__.py"}


def named() -> set[str]:
    """Every `name.py` (or `folder/name.py`) the document puts in backticks."""
    return set(re.findall(r"`([\w/]+\.py)`", DOC.read_text(encoding="utf-8")))


def test_every_module_is_named_in_the_architecture_doc():
    names = named()
    missing = sorted(m for m in modules() if m not in names and Path(m).name not in names)
    assert missing == [], f"docs/architecture.md does not name: {', '.join(missing)}"


def test_every_module_the_doc_names_exists():
    basenames = {Path(m).name for m in modules()}
    elsewhere = {p.relative_to(ROOT).as_posix() for p in ROOT.glob("tests/*.py")}
    ghosts = sorted(n for n in named() if n.removeprefix("tladvisor/") not in modules() and n not in elsewhere
                    and ("/" in n or n not in basenames))
    assert ghosts == [], f"docs/architecture.md names modules that do not exist: {', '.join(ghosts)}"


def test_the_top_level_holds_the_public_api_and_the_stage_packages_only():
    """#25: a newcomer sees the plugin API and one folder per stage, not a flat list of plumbing."""
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 12, f"tladvisor/ has {len(top)} top-level modules (at most 12): {', '.join(top)}"
    stages = {"data", "features", "measures", "advice", "tuning", "report", "builtin", "cli", "runtime"}
    assert stages <= {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
