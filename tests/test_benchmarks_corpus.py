"""The benchmark corpus (benchmarks/tasks): the registry's promises, the written layout, graceful skips."""

from __future__ import annotations

import importlib
from dataclasses import replace

import pytest
from helpers import dependency_missing

@pytest.fixture
def corpus(monkeypatch):
    registry = importlib.import_module("benchmarks.tasks.registry")
    return registry, importlib.import_module("benchmarks.tasks.common"), importlib.import_module("benchmarks.tasks.fonts")


def test_registry_lists_at_least_24_tasks_from_distinct_sources_and_kinds(corpus):
    registry, _common, _fonts = corpus
    tasks = registry.TASKS
    assert len(tasks) >= 24
    assert len({t.name for t in tasks}) == len(tasks)
    assert len({(t.source, t.kind) for t in tasks}) == len(tasks)  # no task repeats another's source and kind
    assert len({t.source for t in tasks}) == len(tasks)
    assert len({t.family for t in tasks}) >= 8
    for module in registry.FAMILIES:  # one module per family
        assert {t.family for t in module.TASKS} == {module.FAMILY}


def test_registry_covers_the_kinds_and_sizes_the_issue_asks_for(corpus):
    registry, _common, _fonts = corpus
    kinds = " ".join(t.kind for t in registry.TASKS)
    for wanted in ("fine-grained", "count", "orientation", "position", "distance", "document", "glyph", "icon",
                   "symbol", "texture", "modality", "corrupted"):
        assert wanted in kinds, wanted
    sizes = [t.train_per_class for t in registry.TASKS]
    assert min(sizes) <= 5 and max(sizes) >= 500
    assert all(5 <= n <= 500 for n in sizes)
    for task in registry.TASKS:
        assert task.n_classes >= 2 and len(set(task.classes)) == task.n_classes
        assert task.val_per_class >= 10 and task.test_per_class >= 20


@pytest.mark.parametrize("name", ["vtab-position", "vtab-count", "photo-grey-scenes"])
def test_a_task_is_written_as_train_val_test_with_the_counts_asked(corpus, tmp_path, name):
    registry, common, _fonts = corpus
    task = replace(registry.task_by_name(name), val_per_class=2, test_per_class=3)
    if task.missing():
        dependency_missing(task.missing())
    folder = common.write_task(task, tmp_path / "t", seed=1, train_per_class=2)
    for split, n in (("train", 2), ("val", 2), ("test", 3)):
        assert sorted(p.name for p in (folder / split).iterdir()) == sorted(task.classes)
        for label in task.classes:
            assert len(list((folder / split / label).glob("*.png"))) == n
    again = common.write_task(task, tmp_path / "u", seed=1, train_per_class=2)  # deterministic per seed
    first = sorted((folder / "test").rglob("*.png"))
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in sorted((again / "test").rglob("*.png"))]


def test_a_task_whose_fonts_are_absent_is_skipped_with_the_package_to_install(corpus, monkeypatch, tmp_path):
    registry, common, fonts = corpus
    monkeypatch.setattr(fonts, "FONT_DIRS", (str(tmp_path / "no-fonts"),))
    fonts.installed_fonts.cache_clear()
    try:
        ready, skipped = registry.select(["glyph-letters", "vtab-position"])
        assert [t.name for t in ready] == ["vtab-position"]
        assert "fonts-dejavu-core" in skipped["glyph-letters"]
        with pytest.raises(common.SourceMissing, match="apt-get install fonts-dejavu-core"):
            common.write_task(registry.task_by_name("glyph-letters"), tmp_path / "g", seed=0)
        assert not (tmp_path / "g").exists()
    finally:
        fonts.installed_fonts.cache_clear()


def test_a_missing_icon_theme_is_reported_not_raised_at_import(corpus, monkeypatch, tmp_path):
    registry, _common, _fonts = corpus
    icons = importlib.import_module("benchmarks.tasks.icons")
    monkeypatch.setattr(icons, "THEME", tmp_path / "no-theme")
    _ready, skipped = registry.select(["icon-context"])
    assert "adwaita-icon-theme" in skipped["icon-context"]


def test_a_builder_that_fails_leaves_no_half_written_task(corpus, tmp_path):
    _registry, common, _fonts = corpus

    def broken(writer, rng, counts):
        from PIL import Image

        writer.save("train", "a", Image.new("L", (8, 8)))
        raise RuntimeError("boom")
    task = common.TaskSpec("broken", "x", "x", "x", "x", ("a", "b"), 1, 1, 1, broken)
    with pytest.raises(RuntimeError):
        common.write_task(task, tmp_path / "t", seed=0)
    assert list(tmp_path.iterdir()) == []


def test_too_few_source_images_is_a_clear_skip_not_a_short_task(corpus, tmp_path):
    _registry, common, _fonts = corpus

    def short(writer, rng, counts):
        from PIL import Image

        for split in counts:
            for label in ("a", "b"):
                writer.save(split, label, Image.new("L", (8, 8)))
    task = common.TaskSpec("short", "x", "x", "x", "x", ("a", "b"), 3, 1, 1, short)
    with pytest.raises(common.SourceMissing, match="too few source images: train/a 1 < 3"):
        common.write_task(task, tmp_path / "t", seed=0)
    assert list(tmp_path.iterdir()) == []


def test_one_registry_lists_every_benchmark_task_under_a_unique_name(corpus):
    registry = corpus[0]
    names = [n for group in registry.GROUPS.values() for n in group]
    assert len(names) == len(set(names)), "a task name is in two groups"
    assert registry.group_of("photos-small") == "suite" and registry.group_of("debian-sections") == "text"
    assert registry.task_by_name("photos-small").train_per_class == 15
    with pytest.raises(KeyError, match="is a suite task, not a corpus task"):
        registry.task_by_name("photos-small", "corpus")
    with pytest.raises(KeyError, match="text task"):
        registry.task_by_name("debian-sections")
    table = registry.table()
    assert all(f"| {n} |" in table for n in names)
