"""The end of an ``analyze`` run: partly available backbones, the warnings block, the tiny-data warning
and its lowered confidence, and ``--debug`` after the command."""

from __future__ import annotations

import json
import logging
import os

from tladvisor.cli import main
from tladvisor.advice.recommend import smallest_gap_told_apart, validation_images_needed

from helpers import TINY_PLUGIN, analyze_tiny, write_image, write_image_folder

MISSING_WEIGHTS_PLUGIN = '''
from dataclasses import replace
from tladvisor import hookimpl
from tladvisor.errors import WeightsUnavailableError
from tladvisor.testing import tiny_backbone_spec

def builder(name):
    def build(pretrained):
        if pretrained:  # what the torchvision zoo raises offline without the cached file
            raise WeightsUnavailableError(f"{name}: pretrained weights are not in the cache at /cache/{name}.pth "
                                          "and could not be downloaded (URLError: offline)")
        return tiny_backbone_spec().build(False)
    return build

@hookimpl
def register_backbones(register):
    for name in ("no_weights_a", "no_weights_b"):
        register(replace(tiny_backbone_spec(name=name), build=builder(name), weights_available=lambda: False,
                         weights_location=f"/cache/{name}.pth", weights_url=f"https://example.invalid/{name}.pth"))
'''


def plugins_with_missing_weights(write_plugin):
    write_plugin("tiny_plugin", TINY_PLUGIN)
    return write_plugin("missing_weights", MISSING_WEIGHTS_PLUGIN)


def test_a_backbone_without_weights_is_left_out_and_the_others_go_on(tmp_path, write_plugin, capsys):
    plugins = plugins_with_missing_weights(write_plugin)
    data = write_image_folder(tmp_path / "data", n_classes=2, per_class=8)
    assert analyze_tiny(plugins, data, tmp_path, "--backbone", "no_weights_a") == 0
    out = capsys.readouterr().out
    assert "no_weights_a was not measured: pretrained weights are not in the cache" in out  # named once
    analysis = json.loads((tmp_path / "reports" / "run" / "analysis.json").read_text())
    assert [b["name"] for b in analysis["backbones"]] == ["tiny_cnn"]
    assert list(analysis["backbones_left_out"]) == ["no_weights_a"]


def test_no_backbone_with_weights_is_one_error_naming_each(tmp_path, write_plugin, capsys):
    plugins = plugins_with_missing_weights(write_plugin)
    data = write_image_folder(tmp_path / "data", n_classes=2, per_class=8)
    code = main(["--plugins-dir", str(plugins), "analyze", str(data), "--backbone", "no_weights_a",
                 "--backbone", "no_weights_b", "--out", str(tmp_path / "reports"), "--cache-dir", str(tmp_path / "c")])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip() and not line.startswith("[")]
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith("error: no backbone has its weights: no_weights_a: ") and "no_weights_b: " in lines[0]


def test_backbones_table_says_where_missing_weights_go_and_come_from(write_plugin, capsys):
    plugins = plugins_with_missing_weights(write_plugin)
    assert main(["--plugins-dir", str(plugins), "backbones"]) == 0
    out = capsys.readouterr().out
    assert ("no_weights_a: weights not available offline; download https://example.invalid/no_weights_a.pth "
            "to /cache/no_weights_a.pth") in out
    assert "tiny_cnn: weights not available" not in out


def test_the_run_ends_with_a_block_of_the_reports_warnings(tmp_path, write_plugin, capsys):
    plugins = write_plugin("tiny_plugin", TINY_PLUGIN)
    data = write_image_folder(tmp_path / "data", n_classes=2, per_class=24)
    for i in range(20):  # 44 vs 24 ... make a 10x imbalance with a third class of 4 greyscale images
        write_image(data / "class_0" / f"extra{i}.png", colour=(200, i, 0))
    for i in range(4):
        write_image(data / "rare" / f"{i}.png", colour=(10 * i, 10 * i, 10 * i), mode="RGB")
    write_image(data / "class_1" / "grey.png", colour=90, mode="L")
    (data / "class_1" / "broken.png").write_bytes(b"not an image")
    assert analyze_tiny(plugins, data, tmp_path, "--max-samples", "30") == 0
    out = capsys.readouterr().out
    block = out[out.index("Warnings ("):out.index("Report:")]
    assert "1 file skipped (" in block and ": broken.png) and not analysed" in block  # named, not only counted
    assert "greyscale" in block and "(1 of 73)" in block
    assert "measured 29 of 73 images per backbone" in block
    assert "classes are imbalanced: 'class_0' has 11.0x the images of 'rare'" in block
    assert "Validation set too small to tell strategies apart" in block
    # the same list as the report's verdict shows, in the same order
    from tladvisor.report.view import collect_warnings

    analysis = json.loads((tmp_path / "reports" / "run" / "analysis.json").read_text())
    shown = [line[len("  ! "):] for line in block.splitlines() if line.startswith("  ! ")]
    assert shown == [w["text"] for w in collect_warnings(analysis)]
    assert any("greyscale" in line for line in shown) and any(line.startswith("measured 29 of 73") for line in shown)


def test_tiny_data_warns_of_the_validation_size_and_lowers_the_confidence(tmp_path, write_plugin, capsys):
    plugins = write_plugin("tiny_plugin", TINY_PLUGIN)
    data = write_image_folder(tmp_path / "data", n_classes=2, per_class=5)
    assert analyze_tiny(plugins, data, tmp_path) == 0
    analysis = json.loads((tmp_path / "reports" / "run" / "analysis.json").read_text())
    recommendation = analysis["recommendation"]
    n_val = analysis["dataset"]["profile"]["split_counts"]["val"]
    assert n_val <= 4
    assert recommendation["confidence"] <= 0.15
    (warning,) = [w for w in recommendation["warnings"] if w.startswith("Validation set too small")]
    assert f"{n_val} images resolve only accuracy differences of" in warning
    assert f"about {validation_images_needed()} validation images" in warning
    assert "Validation set too small" in capsys.readouterr().out


def test_validation_size_formula():
    # n >= 2 * 1.96^2 * p(1-p) / gap^2 at p = 0.5
    assert validation_images_needed(0.10) == 193 and validation_images_needed(0.05) == 769
    assert abs(smallest_gap_told_apart(193) - 0.0998) < 1e-3


def test_debug_after_the_command(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TLADVISOR_DEBUG", raising=False)
    code = main(["analyze", str(tmp_path / "nowhere"), "--debug"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback (most recent call last)" in err  # tracebacks shown
    # an in-process caller gets its process state back: no debug flag or DEBUG root logger leaks into
    # the next command (it did, and made later in-process runs print tracebacks)
    assert "TLADVISOR_DEBUG" not in os.environ and logging.getLogger().level != logging.DEBUG
    assert main(["examples", "--debug"]) == 0


def test_the_summary_says_frozen_from_the_strategy_record_or_a_zero_rate():
    from tladvisor.cli.summary import learning_rate_text

    rates = {"head": 3e-3, "backbone": 1e-3}
    assert learning_rate_text(rates, {"freeze": "all"}) == "lr head 3e-03, backbone frozen"  # a plugin's linear probe
    assert learning_rate_text(rates, {"freeze": "none"}) == "lr head 3e-03, backbone 1e-03"
    assert learning_rate_text({"head": 3e-3, "backbone": 0.0}) == "lr head 3e-03, backbone frozen"


def test_how_to_get_weights_reads_as_a_sentence_for_urls_paths_and_plugin_hints():
    from types import SimpleNamespace

    from tladvisor.cli import _how_to_get_weights

    def spec(url="", location=""):
        return SimpleNamespace(weights_url=url, weights_location=location)

    assert _how_to_get_weights(spec("https://x/w.pth", "/c/w.pth")) == "download https://x/w.pth to /c/w.pth (or run once online)"
    assert _how_to_get_weights(spec(location="/models/w.safetensors")) == "place the weights at /models/w.safetensors"
    # a plugin's own hint (timm: "(not cached: fetch with `hf download ...`)") is said as it is, not as a path
    hint = "(not cached: fetch with `hf download timm/x` (cache /h), or give a checkpoint (f(..., checkpoint=PATH)))"
    assert _how_to_get_weights(spec(location=hint)) == hint[1:-1]


def test_the_advice_lines_wrap_whole_at_120_columns(tmp_path):
    """#26 item 7: the recommendation line wrapped at 120 columns and left 'confidence 0.42' alone."""
    import io

    from rich.console import Console

    from tladvisor.cli.summary import print_summary
    from tladvisor.report.demo import demo_run

    run = demo_run(tmp_path)
    stream = io.StringIO()
    print_summary(run, Console(file=stream, width=120, force_terminal=False), Console(file=io.StringIO()))
    lines = stream.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Recommendation:"))
    assert lines[start].endswith("confidence 0.72") and len(lines[start]) <= 120
    assert lines[start + 1].startswith("  starting rates: ")
    end = next(i for i, line in enumerate(lines) if line.startswith("Best trial:"))
    rationale = lines[start + 2:end]
    assert len(rationale) > len(run.recommendation.rationale)  # one sentence wrapped: under 120, indented
    assert all(len(line) <= 120 and line.startswith(("  - ", "    ")) for line in rationale)
    assert not any(len(line.split()) == 2 and line.split()[0] == "confidence" for line in lines)
