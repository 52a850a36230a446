"""analysis.json: documented keys, JSON-safe values, round trip, and refusing what it cannot read."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from tladvisor.errors import OutputError
from tladvisor.records import Score
from tladvisor.report.analysis_json import (
    EXAMPLES_PER_CLASS, SCHEMA_VERSION, build_analysis, dumps_analysis, load_analysis,
)
from tladvisor.report.demo import demo_run

TOP_KEYS = {"schema_version", "run_id", "created", "options", "environment", "timings", "plugin_failures",
            "dataset", "backbones", "recommendation", "tuning"}


@pytest.fixture
def run(tmp_path: Path):
    return demo_run(tmp_path, run_id="run-1")


def test_build_analysis_has_the_documented_keys(run) -> None:
    analysis = build_analysis(run)
    assert TOP_KEYS <= set(analysis)
    assert analysis["schema_version"] == SCHEMA_VERSION == 1
    assert analysis["run_id"] == "run-1"
    assert {"versions", "device", "command", "seed"} <= set(analysis["environment"])
    assert analysis["plugin_failures"] == [{"plugin": "fancy_measures", "hook": "measure_backbone",
                                            "error": "ValueError: could not converge after 200 iterations"}]
    dataset = analysis["dataset"]
    assert {"root", "n_samples", "n_classes", "classes", "class_counts", "skipped", "profile", "examples"} <= set(dataset)
    assert dataset["n_samples"] == 35 and dataset["n_classes"] == 4
    assert dataset["class_counts"] == {"circle": 14, "square": 10, "stripes": 7, "triangle": 4}
    assert dataset["skipped"][0]["path"].endswith("broken/IMG_0042.jpg") and dataset["skipped"][0]["reason"]
    # "profile" holds the rest of DatasetProfile, without repeating what sits above it
    assert {"imbalance_ratio", "image_size", "leakage", "warnings"} <= set(dataset["profile"])
    assert not {"n_samples", "class_counts", "skipped"} & set(dataset["profile"])
    backbone = analysis["backbones"][0]
    assert {"name", "similarity", "scores", "stage_shift", "n_measured", "image_size", "from_cache", "seconds",
            "warnings", "embedding_2d"} <= set(backbone)
    assert backbone["name"] == "resnet18" and "backbone" not in backbone
    assert set(backbone["similarity"]) >= {"value", "spread"}
    assert set(backbone["scores"]["logme"]) == {"value", "spread", "normalised", "higher_is_better", "detail"}
    assert backbone["stage_shift"][0] == {"stage": "stem", "value": 0.08, "n_layers": 1}
    assert len(backbone["embedding_2d"]) == 35 and len(backbone["embedding_2d"][0]) == 3
    recommendation = analysis["recommendation"]
    assert {"backbone", "strategy", "freeze_depth", "n_stages", "learning_rates", "confidence", "rationale",
            "ranking", "size", "warnings", "epochs"} <= set(recommendation)
    assert isinstance(recommendation["rationale"], list) and len(recommendation["rationale"]) == 4
    tuning = analysis["tuning"]
    assert len(tuning["trials"]) == 9 and tuning["best"]["number"] == 4
    failed = next(t for t in tuning["trials"] if t["state"] == "FAIL")
    assert failed["value"] is None and "diverged" in failed["reason"]


def test_examples_are_spread_over_each_class_and_capped(run) -> None:
    examples = build_analysis(run)["dataset"]["examples"]
    circles = [str(s.path) for s in run.dataset.samples if s.label == 0]
    assert len(circles) == 14 and len(examples["circle"]) == EXAMPLES_PER_CLASS
    assert examples["circle"][0] == circles[0] and examples["circle"][-1] != circles[EXAMPLES_PER_CLASS - 1]
    assert len(examples["triangle"]) == 4  # fewer than the cap: all of them


def test_nan_and_infinity_become_null_and_the_text_is_strict_json(run) -> None:
    measurement = run.measurements[0]
    broken = replace(measurement, similarity=Score(float("nan"), float("inf")))
    run = replace(run, measurements=(broken, *run.measurements[1:]), timings={"tune": float("-inf")})
    text = dumps_analysis(build_analysis(run))
    def refuse(constant: str):
        raise AssertionError(f"non-standard JSON constant {constant} written")

    analysis = json.loads(text, parse_constant=refuse)
    assert analysis["backbones"][0]["similarity"]["value"] is None
    assert analysis["backbones"][0]["similarity"]["spread"] is None
    assert analysis["backbones"][0]["scores"]["nce"]["value"] is None  # NaN in the demo's own scores
    assert analysis["timings"] == {"tune": None}


def test_round_trip_through_json_keeps_every_value(run) -> None:
    analysis = build_analysis(run)
    assert json.loads(dumps_analysis(analysis)) == analysis
    assert math.isclose(json.loads(dumps_analysis(analysis))["recommendation"]["learning_rates"]["backbone"], 1e-4)


def test_flat_environment_versions_are_gathered_under_versions(run) -> None:
    environment = build_analysis(run)["environment"]
    assert environment["versions"]["torch"] == "2.4.1" and environment["versions"]["tladvisor"]
    assert "torch" not in environment and environment["platform"] == "Linux-6.1-x86_64"
    assert environment["seed"] == 0 and environment["device"] == "cpu"
    assert environment["command"].startswith("tladvisor analyze ")
    assert build_analysis(run)["created"] == "2025-01-15T10:24:00+00:00"


def test_a_run_that_stopped_early_gives_nulls(run) -> None:
    analysis = build_analysis(replace(run, dataset=None, profile=None, measurements=(), recommendation=None,
                                      tuning=None))
    assert analysis["dataset"] is None and analysis["recommendation"] is None and analysis["tuning"] is None
    assert analysis["backbones"] == []
    json.loads(dumps_analysis(analysis))


def test_load_analysis_reads_a_file_or_its_run_folder(run, tmp_path: Path) -> None:
    path = tmp_path / "analysis.json"
    path.write_text(dumps_analysis(build_analysis(run)))
    assert load_analysis(path)["run_id"] == "run-1"
    assert load_analysis(tmp_path)["run_id"] == "run-1"


@pytest.mark.parametrize(("content", "message"), [
    ('{"schema_version": 2, "run_id": "x"}', "newer than this tladvisor reads"),
    ('{"schema_version": 1, "run_id": ', r"is not valid JSON \(line 1"),
    ('[1, 2]', "no integer schema_version"),
    ('{"run_id": "x"}', "no integer schema_version"),
    ('{"schema_version": "1"}', "no integer schema_version"),
])
def test_load_analysis_refuses_in_one_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "analysis.json"
    path.write_text(content)
    with pytest.raises(OutputError, match=message) as error:
        load_analysis(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_load_analysis_of_a_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        load_analysis(tmp_path / "nowhere")
