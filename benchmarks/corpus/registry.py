"""Every task of the corpus, and which of them this machine can build.

    python -m corpus.registry            # (from benchmarks/) the table: task, family, kind, classes, sizes, source

A task whose source is not installed (fonts, the icon theme, a Python package) is skipped with one
line saying what is missing and which Debian package provides it; the rest still run.
"""

from __future__ import annotations

import sys

from . import documents, glyphs, icons, lowres, photos, science, structured, textures
from .common import TaskSpec

FAMILIES = (photos, textures, science, lowres, glyphs, documents, icons, structured)
TASKS: tuple[TaskSpec, ...] = tuple(task for module in FAMILIES for task in module.TASKS)


def task_by_name(name: str) -> TaskSpec:
    for task in TASKS:
        if task.name == name:
            return task
    raise KeyError(f"unknown corpus task '{name}'; choose from {', '.join(t.name for t in TASKS)}")


def select(names: list[str] | None = None) -> tuple[list[TaskSpec], dict[str, str]]:
    """The tasks asked for (all when None) that can be built here, and the reason for each one skipped."""
    chosen = [task_by_name(n) for n in names] if names else list(TASKS)
    ready, skipped = [], {}
    for task in chosen:
        reason = task.missing()
        if reason:
            skipped[task.name] = reason
        else:
            ready.append(task)
    return ready, skipped


def table(tasks: tuple[TaskSpec, ...] = TASKS) -> str:
    rows = ["| task | family | kind | classes | train / val / test per class | source |", "|---|---|---|---|---|---|"]
    for t in tasks:
        rows.append(f"| {t.name} | {t.family} | {t.kind} | {t.n_classes} | "
                    f"{t.train_per_class} / {t.val_per_class} / {t.test_per_class} | {t.source} |")
    return "\n".join(rows)


def main() -> int:
    print(table())
    _ready, skipped = select()
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason}", file=sys.stderr)
    print(f"{len(TASKS)} tasks, {len(TASKS) - len(skipped)} buildable here", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
