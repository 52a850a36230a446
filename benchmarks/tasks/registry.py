"""Every benchmark task, in one registry: the image corpus, the suite's image tasks, and the text tasks.

    python -m benchmarks.tasks.registry   # the table: task, group, family, kind, classes, sizes, source

Three groups, each written its own way (the benchmarks that use them were built at different times):

- ``corpus`` (:data:`CORPUS`, :mod:`.common`): 25 image tasks with train/val/test folders, at least 500 test
  images where the source allows; the honest grid and the backbone ranking use them;
- ``suite`` (:data:`SUITE`, :mod:`.suite`): the 12 image tasks of ``run_all.py``, train/val only, small (15
  per class) and large (200);
- ``text`` (:data:`TEXT`, :mod:`.text`): six text tasks written as a CSV manifest (text, label).

A task name is unique across groups (tested), so :func:`task_by_name` and :func:`write_image_task` need no
group. A task whose source is not installed (fonts, the icon theme, a Python package) is skipped with one
line saying what is missing and which Debian package provides it; the rest still run.
"""

from __future__ import annotations

import sys
from pathlib import Path

from . import documents, glyphs, icons, lowres, photos, science, structured, suite, text, textures
from .common import TaskSpec
from .common import write_task as write_corpus_task

FAMILIES = (photos, textures, science, lowres, glyphs, documents, icons, structured)
CORPUS: tuple[TaskSpec, ...] = tuple(task for module in FAMILIES for task in module.TASKS)
TASKS = CORPUS  # the corpus is what "the tasks" means to the grid
SUITE: tuple[suite.TaskSpec, ...] = suite.TASKS
TEXT: tuple[str, ...] = tuple(text.TASKS)
GROUPS = {"corpus": tuple(t.name for t in CORPUS), "suite": tuple(t.name for t in SUITE), "text": TEXT}


def group_of(name: str) -> str:
    for group, names in GROUPS.items():
        if name in names:
            return group
    raise KeyError(f"unknown task '{name}'; choose from {', '.join(n for names in GROUPS.values() for n in names)}")


def task_by_name(name: str, group: str | None = None) -> TaskSpec | suite.TaskSpec:
    """The image task ``name`` (a corpus or a suite task); ``group``, when given, must be the task's."""
    found = group_of(name)
    if group is not None and found != group:
        raise KeyError(f"task '{name}' is a {found} task, not a {group} task; choose from {', '.join(GROUPS[group])}")
    if found == "text":
        raise KeyError(f"'{name}' is a text task: write it with benchmarks.tasks.text.build")
    return next(t for t in (CORPUS if found == "corpus" else SUITE) if t.name == name)


def write_image_task(name: str, folder: Path, seed: int, *, train_per_class: int | None = None,
                     val_per_class: int | None = None) -> bool:
    """Write the image task ``name`` into ``folder``; True when it has a held-out test split (a corpus task)."""
    task = task_by_name(name)
    if isinstance(task, TaskSpec):
        write_corpus_task(task, folder, seed, train_per_class=train_per_class)
        return True
    suite.write_task(task, folder, seed, train_per_class=train_per_class, val_per_class=val_per_class)
    return False


def select(names: list[str] | None = None) -> tuple[list[TaskSpec], dict[str, str]]:
    """The corpus tasks asked for (all when None) that can be built here, and the reason for each one skipped."""
    chosen = [task_by_name(n, "corpus") for n in names] if names else list(CORPUS)
    ready, skipped = [], {}
    for task in chosen:
        reason = task.missing()
        if reason:
            skipped[task.name] = reason
        else:
            ready.append(task)
    return ready, skipped


def table() -> str:
    rows = ["| task | group | family | kind | classes | train / val / test per class | source |",
            "|---|---|---|---|---|---|---|"]
    for t in CORPUS:
        rows.append(f"| {t.name} | corpus | {t.family} | {t.kind} | {t.n_classes} | "
                    f"{t.train_per_class} / {t.val_per_class} / {t.test_per_class} | {t.source} |")
    for t in SUITE:
        rows.append(f"| {t.name} | suite | {t.domain} | {t.size} | | {t.train_per_class} / {t.val_per_class} / - | "
                    f"{t.description} |")
    for name in TEXT:
        rows.append(f"| {name} | text | text | | | manifest, split by the benchmark | {text.source_of(name)} |")
    return "\n".join(rows)


def main() -> int:
    print(table())
    _ready, skipped = select()
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason}", file=sys.stderr)
    total = sum(len(names) for names in GROUPS.values())
    print(f"{total} tasks ({len(CORPUS)} corpus, {len(SUITE)} suite, {len(TEXT)} text); "
          f"{len(CORPUS) - len(skipped)} of the corpus buildable here", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
