"""The text-task benchmark (benchmarks/advice/text_tasks.py) on a toy task with a tiny BERT: the advice is
recorded, every config trains at every rate into its own unit, a second run trains nothing again, and the
summary scores the advice out of the rates the validation chose."""

from __future__ import annotations

import json

from helpers import require_module

require_module("transformers", "pip install -e plugins/tladvisor-transformers")
from benchmarks.advice import text_tasks as bench_text_tasks  # noqa: E402
from benchmarks.tasks import text as text_corpus  # noqa: E402
from tladvisor_transformers.testing import WORDS, tiny_bert_folder  # noqa: E402


def test_the_text_task_benchmark_runs_resumes_and_summarises(tmp_path, monkeypatch):
    import numpy as np

    rng = np.random.default_rng(0)
    triples = [(" ".join(rng.choice(WORDS[:12] if y else WORDS[12:], size=6)), "yes" if y else "no", f"row {i}")
               for i, y in enumerate(rng.integers(0, 2, size=60))]
    monkeypatch.setitem(text_corpus.TASKS, "toy", lambda: triples)
    folder = tiny_bert_folder(tmp_path / "tiny")
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "tiny.py").write_text("from tladvisor import hookimpl\nfrom tladvisor_transformers import folder_backbone\n"
                                     f"@hookimpl\ndef register_backbones(register):\n"
                                     f"    register(folder_backbone('tiny-bert', {str(folder)!r}))\n")
    argv = ["--tasks", "toy", "--configs", "feature_extraction", "lora", "--multipliers", "1", "3", "--epochs", "2",
            "--backbone", "tiny-bert", "--per-class", "30", "--threads", "1", "--plugins-dir", str(plugins),
            "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"), "--cache", str(tmp_path / "cache")]
    assert bench_text_tasks.main(argv) == 0
    units = tmp_path / "out" / "units" / "toy"
    written = sorted(p.name for p in units.glob("*.json"))
    assert written == ["advice.json", "feature_extraction__x1.json", "feature_extraction__x3.json",
                       "lora__x1.json", "lora__x3.json"]
    run = json.loads((units / "lora__x3.json").read_text())
    assert run["epochs"] == 2 and 0 <= run["test"] <= 1 and len(run["curve"]) == 2
    advice = json.loads((units / "advice.json").read_text())
    rows = len((tmp_path / "work" / "toy.csv").read_text().splitlines()) - 1  # distinct texts (the header aside)
    assert advice["n_test"] + advice["n_train_val"] == rows and abs(advice["n_test"] - 0.3 * rows) <= 2
    assert advice["config"] in bench_text_tasks.CONFIGS
    stamps = {p.name: p.stat().st_mtime_ns for p in units.glob("*.json")}
    assert bench_text_tasks.main(argv) == 0  # resumes: nothing trains again
    assert {p.name: p.stat().st_mtime_ns for p in units.glob("*.json")} == stamps
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "| toy |" in summary and "rates chosen at an edge" in summary


def test_the_test_set_is_stratified_and_seeded():
    import numpy as np

    labels = np.array([0] * 10 + [1] * 20 + [2] * 2)
    test = bench_text_tasks.split_test(labels, 0.3, seed=0)
    assert np.bincount(labels[test], minlength=3).tolist() == [3, 6, 0]
    assert np.array_equal(test, bench_text_tasks.split_test(labels, 0.3, seed=0))


def test_the_test_set_keeps_duplicate_groups_on_one_side():
    import numpy as np

    labels = np.zeros(12, dtype=int)
    groups = np.array(["a", "a", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j"])
    for seed in range(10):
        test = set(bench_text_tasks.split_test(labels, 0.3, seed, groups).tolist())
        assert {0, 1, 2} <= test or not {0, 1, 2} & test
