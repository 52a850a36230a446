"""benchmarks/similarity/shift.py: the source-sample distances it reports are the ones `analyze --source-sample` gives."""

from __future__ import annotations


import pytest

from tladvisor.advisor import Advisor
from tladvisor.plugins import PluginHost
from tladvisor.records import AnalysisOptions

from helpers import TINY_PLUGIN, write_image_folder


@pytest.fixture
def bench(benchmark_module):
    return benchmark_module("benchmarks.similarity.shift")


@pytest.fixture
def host(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "tiny_plugin.py").write_text(TINY_PLUGIN)
    return PluginHost(plugins)


def test_distances_and_summary_match_what_analyze_with_a_source_sample_reports(bench, host, tmp_path):
    target = write_image_folder(tmp_path / "target", n_classes=3, per_class=10, seed=1)
    sample = write_image_folder(tmp_path / "sample", n_classes=2, per_class=12, seed=2)
    cache = tmp_path / "cache"

    [row] = bench.measure_conditions([("photos", "clean", 0, target)], "tiny_cnn", 32, cache, host=host,
                                     source_sample=sample)

    options = AnalysisOptions(source=target, backbones=("tiny_cnn",), image_size=32, cache_dir=tmp_path / "cache2",
                              source_sample=sample)
    advisor = Advisor(options, host=host)
    measured = advisor.measure(host.backbone("tiny_cnn"), advisor.load(options), options)
    assert row["frechet"] == pytest.approx(measured.scores["frechet_to_source"].value, rel=1e-6)
    assert row["mmd"] == pytest.approx(measured.scores["mmd_to_source"].value, rel=1e-6, abs=1e-9)
    assert row["frechet_normalised"] == pytest.approx(measured.scores["frechet_to_source"].normalised, rel=1e-6)
    assert row["similarity"] == pytest.approx(measured.similarity.value, rel=1e-6)  # the sample leaves it alone
    assert row["frechet"] > 0


def test_correlations_include_the_distances_only_when_every_row_has_them(bench):
    def row(severity, similarity, **extra):
        base = {key: -severity for key, _ in bench.MEASURES}
        return {"family": "blur" if severity else "photos", "severity": severity, **base,
                "similarity": similarity, **extra}

    with_distances = [row(s, 1 - s / 10, frechet=s * 2.0, frechet_normalised=1 - s / 5, mmd=s * 0.1,
                          mmd_normalised=1 - s / 4) for s in range(4)]
    found = bench.severity_correlations(with_distances)["blur"]
    assert found["frechet"] == pytest.approx(1.0) and found["mmd"] == pytest.approx(1.0)
    assert found["frechet_normalised"] == pytest.approx(-1.0)
    without = [row(s, 1 - s / 10) for s in range(4)]
    assert "frechet" not in bench.severity_correlations(without)["blur"]

