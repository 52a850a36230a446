"""What each transfer strategy name means, for the report's tooltips and its glossary under the trials.

The meanings are the strategies' own ``description`` (:class:`tladvisor.strategies.Strategy`), as the run's
registry stored them in analysis.json ``strategies`` (plugins' strategies included); an analysis.json
written before that key existed falls back to the built-ins' descriptions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tladvisor.strategies import BUILT_IN_STRATEGIES


def meanings(stored: Any = None) -> dict[str, str]:
    """Strategy name -> description: the built-ins', then those stored in analysis.json ``strategies``."""
    found = {name: strategy.description for name, strategy in BUILT_IN_STRATEGIES.items()}
    if isinstance(stored, dict):
        found.update({str(name): str(entry.get("description") or "") for name, entry in stored.items()
                      if isinstance(entry, dict)})
    return found


def explain(strategy: str | None, stored: Any = None) -> str:
    """One sentence for a strategy name ('' when unknown); ``stored``: analysis.json ``strategies``."""
    return meanings(stored).get(strategy or "", "")


def entries(strategies: Iterable[str | None], stored: Any = None) -> list[tuple[str, str]]:
    """(label, meaning) for the strategies that appear and have a meaning, in the registry's order."""
    present = set(strategies)
    return [(name.replace("_", " "), meaning) for name, meaning in meanings(stored).items()
            if name in present and meaning]
