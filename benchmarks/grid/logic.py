"""Pure logic of the honest grid (issue #13): when a curve is flat, whether a rate search was wide
enough, which tasks are at ceiling, and results written atomically. No torch; tested in milliseconds
(tests/test_benchmarks_honest_grid.py).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Flatness:
    """Train until the validation curve is flat: stop once ``patience`` epochs in a row have not beaten the
    best before them by more than ``min_delta``, but never before ``min_epochs``; ``cap`` ends a curve
    that is still rising (recorded as "cap", so the cap can be raised where fine-tuning needs it)."""

    patience: int = 10
    min_delta: float = 0.0
    min_epochs: int = 5
    cap: int = 100

    def __post_init__(self) -> None:
        if self.patience < 1 or self.cap < 1 or self.min_epochs < 1:
            raise ValueError("patience, cap and min_epochs must be at least 1")


def stop_reason(curve: Sequence[float], rule: Flatness) -> str | None:
    """``"flat"``, ``"cap"`` or None (keep training), after the epochs in ``curve``."""
    n = len(curve)
    if n >= rule.min_epochs and n > rule.patience:
        before, recent = max(curve[:n - rule.patience]), max(curve[n - rule.patience:])
        if recent <= before + rule.min_delta:
            return "flat"
    if n >= rule.cap:
        return "cap"
    return None


def best_epoch(curve: Sequence[float]) -> int:
    """0-based epoch of the best value (the first, on ties): the checkpoint early stopping keeps."""
    if not curve:
        raise ValueError("empty curve")
    return max(range(len(curve)), key=lambda i: (curve[i], -i))


def rate_at_edge(scores: Mapping[float, float], tolerance: float = 0.0) -> str | None:
    """``"lowest"``/``"highest"`` when the best-scoring rate is the smallest/largest searched (beyond
    ``tolerance`` over the runner-up): the search should extend that way. None when an inner rate wins."""
    if len(scores) < 3:
        return "too few rates"
    rates = sorted(scores)
    top = max(scores.values())
    winners = [r for r in rates if scores[r] >= top - tolerance]
    if winners == [rates[0]]:
        return "lowest"
    if winners == [rates[-1]]:
        return "highest"
    return None


def at_ceiling(accuracy_by_config: Mapping[str, float], threshold: float = 0.97) -> bool:
    """True when every strategy scores above ``threshold``: such a task cannot tell strategies apart."""
    return bool(accuracy_by_config) and min(accuracy_by_config.values()) > threshold


def ceiling_filter(tasks: Mapping[str, Mapping[str, float]], threshold: float = 0.97) -> tuple[list[str], list[str]]:
    """(kept, dropped) task names, dropped being those :func:`at_ceiling` (drop or harden them)."""
    kept = [t for t, accs in tasks.items() if not at_ceiling(accs, threshold)]
    return kept, [t for t in tasks if t not in kept]


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write to a temporary file in the same folder, fsync, then rename: a reader or a resumed run sees the
    whole file or none of it, even when the run is killed mid-write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(payload, out, indent=1, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_finished(path: Path, settings_key: str) -> dict[str, Any] | None:
    """A unit's stored result when it is whole and was made with the same settings; else None (rerun it)."""
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return result if isinstance(result, dict) and result.get("settings_key") == settings_key else None


def settings_key(settings: Mapping[str, Any]) -> str:
    """A short stable digest of the settings that change a unit's numbers."""
    import hashlib

    return hashlib.sha256(json.dumps(dict(settings), sort_keys=True).encode()).hexdigest()[:16]


# --- the fixed schedule of grid format 2 (issue #22) -------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """Every unit trains a fixed schedule, warm-up then cosine over all of it, and keeps its best validation
    epoch: ``max(min_epochs, enough epochs for min_steps optimiser steps)``, at most ``max_epochs``. No early
    stop cuts it short, so a slow starter (fine-tuning, training from scratch) gets the same run as a fast one."""

    min_epochs: int = 12  # the grid's defaults (benchmarks.grid.run --min-epochs/--min-steps/--max-epochs)
    min_steps: int = 300
    max_epochs: int = 30

    def __post_init__(self) -> None:
        if not 1 <= self.min_epochs <= self.max_epochs or self.min_steps < 0:
            raise ValueError("need 1 <= min_epochs <= max_epochs and min_steps >= 0")

    def epochs(self, steps_per_epoch: int) -> int:
        needed = math.ceil(self.min_steps / max(1, steps_per_epoch))
        return min(self.max_epochs, max(self.min_epochs, needed))


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimiser steps of one pass over ``n_train`` images, as the product's loader batches them (a last
    batch of one image is dropped: BatchNorm cannot train on it)."""
    full, rest = divmod(n_train, batch_size)
    return max(1, full + (1 if rest > 1 else 0))


def still_climbing(curve: Sequence[float], share: float = 0.2) -> bool:
    """True when the best validation epoch (the first, on ties) lies in the last ``share`` of the run: the
    schedule may have ended the run before it converged (rerun it longer to see)."""
    if not curve:
        return False
    return best_epoch(curve) >= len(curve) - max(1, math.ceil(share * len(curve)))


def chosen_multiplier(val_by_multiplier: Mapping[float, float]) -> float | None:
    """The multiplier with the best validation accuracy (the lower one on ties); None when all failed."""
    finite = {m: v for m, v in val_by_multiplier.items() if v is not None and math.isfinite(v)}
    if not finite:
        return None
    return max(sorted(finite), key=lambda m: (finite[m], -m))
