"""Small helpers for the one-line messages users read (counts with the right noun form)."""

from __future__ import annotations

import re

_ROW_PREFIX = re.compile(r"^row \d+( \(line \d+\))?: ")


def sample_noun(dataset) -> str:
    """What one sample of ``dataset`` is called in messages: "image" or "text"."""
    return "text" if getattr(dataset, "modality", "image") == "text" else "image"


def counted(n: int, singular: str, plural: str | None = None) -> str:
    """'1 class', '3 classes'."""
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


def reason_kind(reason: str) -> str:
    """The kind of a skip reason, details dropped: 'row 3: no label' -> 'no label'."""
    kind = _ROW_PREFIX.sub("", reason)
    return re.split(r" \(|: ", kind, maxsplit=1)[0]
