"""Each number the README quotes from a committed result file is that file's number (#25 item 5).

The README states where a number comes from (docs/benchmarks.md, "Where each README number comes from");
these tests read the committed file, recompute what can be recomputed (the out-of-task evaluation from the
grid's units, the ranking means from its per-task values) and compare with the README's text. A result file
regenerated without updating the README, or a README edit that drifts from its file, fails here.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
FLAT = " ".join(line.removeprefix(">").strip() for line in README.splitlines())  # line breaks, quote marks: spaces
RESULTS = ROOT / "benchmarks" / "results"


def readme_match(pattern: str) -> re.Match:
    found = re.search(pattern, FLAT)
    assert found, f"the README no longer says /{pattern}/: update this test with the README"
    return found


def test_the_example_run_numbers_are_the_committed_runs():
    run = (RESULTS / "example_run.md").read_text(encoding="utf-8")
    flat = " ".join(run.split())  # the summary wraps at the terminal's width
    said = readme_match(r"linear probe (\d\.\d+)\).*?\*\*(\d+) min (\d+) s\*\*.*?freezing (\d) stages;.*?reached (\d\.\d+), "
                        r"its race's second contender \(freezing (\d) stages\) (\d\.\d+), and none of the (\d+) search "
                        r"trials \((\d+) of them pruned\) beat that")
    probe, minutes, seconds, advised_depth, advice, depth, best, searched, pruned = said.groups()
    assert f"linear probe {float(probe):.3f}" in run
    assert f"**{60 * int(minutes) + int(seconds)} s wall" in run
    assert f"trial #0 partial_freeze@{advised_depth} val {advice} (best" in run
    assert (f"the advice's race winner (trial #1, efficientnet_lite0 partial_freeze@{depth}) reached validation "
            f"accuracy {best} (its pick, trial #0 efficientnet_lite0 partial_freeze@{advised_depth}, reached {advice}) "
            f"and none of the {searched} search trials ({pruned} of them pruned) beat it") in flat


def test_the_text_embedding_throughput_is_the_committed_runs():
    run = (RESULTS / "text_embedding.md").read_text(encoding="utf-8")
    texts, ours, bare, ratio = readme_match(r"embedding the ([\d,]+) docstrings .*? ran at ([\d.]+) texts/s against "
                                            r"([\d.]+) for a bare .*?\(([\d.]+)x;").groups()
    assert f"{texts.replace(',', '')} texts" in run
    assert re.search(rf"\| tladvisor \| {re.escape(ours)} \|", run)
    assert re.search(rf"\| bare transformers loop \| {re.escape(bare)} \|", run)
    assert f"Ratio tladvisor / bare: **{ratio}**" in run


def test_the_backbone_ranking_table_is_the_committed_ranking():
    ranking = json.loads((RESULTS / "backbone_ranking.json").read_text(encoding="utf-8"))
    summary = ranking["summary"]
    order = ("linear_probe_accuracy", "knn_accuracy", "logme", "hscore", "leep", "nce", "rank_score")
    tasks = readme_match(r"Measured on (\d+) tasks of the benchmark corpus").group(1)
    assert len(summary["taus"]) == len(summary["regrets"]) == int(tasks)
    for row, key in (("mean tau", "taus"), ("mean regret, points", "regrets")):  # regrets are in points
        cells = readme_match(rf"\| {row}[^|]*((?:\|[^|]*){{7}})\|").group(1).split("|")[1:]
        quoted = [float(c.replace("*", "").strip()) for c in cells]
        means = [statistics.fmean(per_task[m] for per_task in summary[key].values()) for m in order]
        assert quoted == pytest.approx(means, abs=0.006), f"README {row} {quoted} vs result file {means}"
    tau, tau_se, regret, regret_se = map(float, readme_match(
        r"\(tau ([-\d.]+) ± ([\d.]+), regret ([-\d.]+) ± ([\d.]+) points\)").groups())
    out_tau, out_regret = summary["out_of_task_tau"]["difference"], summary["out_of_task_regret"]["difference"]
    assert (tau, tau_se) == pytest.approx((out_tau["mean"], out_tau["se"]), abs=0.006)
    assert (regret, regret_se) == pytest.approx((out_regret["mean"], out_regret["se"]), abs=0.06)


def test_the_honest_grid_out_of_task_numbers_recompute_from_its_units():
    """The README's out-of-task numbers (the shipped gain prior + race, leaving one family out; the rule) come
    from loto_family.json and loto_task.json, and those from the committed units: the evaluation is rerun here
    on the tasks the files name."""
    from benchmarks.advice.loto import evaluate, records, report

    grid = RESULTS / "honest_grid"
    family = json.loads((grid / "loto_family.json").read_text(encoding="utf-8"))
    shipped = family["methods"]["prior+race"]
    median, within, tasks, noise = readme_match(r"gain prior \+ race\*\* has a median regret of \*\*([\d.]+) points, "
                                                r"(\d+) of (\d+) within 2\*\* \((\d+) within").groups()
    assert float(median) == pytest.approx(100 * shipped["median"], abs=0.05)
    assert (int(within), int(tasks), int(noise)) == (shipped["within_2_points"], family["tasks"], shipped["within_noise"])
    compute = readme_match(r"for a median of (\d+) % of the grid's compute \(max ([\d.]+) %").groups()
    assert int(compute[0]) == round(100 * shipped["compute_ratio_median"])
    assert float(compute[1]) == pytest.approx(100 * shipped["compute_ratio_max"], abs=0.05)
    rule_median, rule_within, rule_tasks = readme_match(r"median out-of-task regret of \*\*([\d.]+) points, (\d+) of "
                                                        r"(\d+) within 2\*\*").groups()
    for stored in (family, json.loads((grid / "loto_task.json").read_text(encoding="utf-8"))):
        rule = stored["methods"]["rule"]
        assert float(rule_median) == pytest.approx(100 * rule["median"], abs=0.05)
        assert int(rule_tasks) == stored["tasks"] and int(rule_within) == rule["within_2_points"]

        rows, _ = records(grid, stored["settings_key"])
        rows = [r for r in rows if r["task"] in rule["regret_per_task"]]
        assert {r["task"] for r in rows} == set(rule["regret_per_task"]), "a task of the file has no finished grid"
        assert len(rows) == stored["runs"], (f"loto_{stored['holdout']}.json holds {stored['runs']} runs of its tasks, "
                                             f"the units now {len(rows)}: rerun python -m benchmarks.advice.loto "
                                             "(both holdouts) and fit_prior, and update the README")
        again = report(rows, evaluate(rows, stored["holdout"], None, 2, None))
        for method, result in stored["methods"].items():
            assert again["methods"][method]["regret_per_task"] == pytest.approx(result["regret_per_task"], abs=1e-9), method
        assert again["methods"]["prior+race"]["compute_ratio_max"] == pytest.approx(
            stored["methods"]["prior+race"]["compute_ratio_max"], abs=1e-9)


def test_the_advice_table_is_the_committed_out_of_task_evaluation():
    """Every cell of the README's advice table, from loto_family.json and loto_task.json."""
    grid = RESULTS / "honest_grid"
    family = json.loads((grid / "loto_family.json").read_text(encoding="utf-8"))["methods"]
    task = json.loads((grid / "loto_task.json").read_text(encoding="utf-8"))["methods"]
    rows = {"gain prior + race": "prior+race", "its zero-shot pick": "meta",
            "the best single config of the other tasks": "best-constant",
            "the four-scenario rule, refitted": "rule-refit", "the four-scenario rule as shipped before": "rule"}
    found = 0
    for line in README.splitlines():
        cells = [c.strip().replace("*", "") for c in line.removeprefix(">").strip().strip("|").split("|")]
        name = next((n for n in rows if cells and cells[0].startswith(n)), None)
        if name is None or len(cells) != 8:
            continue
        f, t = family[rows[name]], task[rows[name]]

        def pct(x):
            return f"{100 * x:.1f}"
        compute = "0" if f["compute_ratio_max"] == 0 else f"{pct(f['compute_ratio_median'])} % ({pct(f['compute_ratio_max'])} %)"
        assert cells[1:] == [pct(f["median"]), f"{f['within_2_points']} of {f['tasks']}", pct(f["mean"]), pct(f["worst"]),
                             compute, pct(t["median"]), f"{t['within_2_points']} of {t['tasks']}"], name
        found += 1
    assert found == len(rows), "the README's advice table lost a row"


def test_the_similarity_tables_are_the_committed_shift_rows():
    rows = json.loads((RESULTS / "similarity" / "shift.json").read_text(encoding="utf-8"))
    by_condition = {(r["family"], r["condition"]): r for r in rows}
    quoted = re.findall(r"^\| (photos|blur|noise|colour|other) \| ([^|]+?) \| ([\d.]+) ± ([\d.]+) \|(.*)\|$",
                        README, flags=re.M)
    assert len(quoted) == len(rows), "the README's similarity table and shift.json have other conditions"
    for family, condition, similarity, spread, rest in quoted:
        row = by_condition[(family, condition)]
        cells = [c.strip() for c in rest.split("|")]
        expected = [f"{row['similarity']:.3f}", f"{row['spread']:.3f}", f"{row['bn_shift']:.3f}",
                    f"{row['linear_probe']:.3f}", f"{row['knn']:.3f}", f"{row['pretraining_gain']:+.3f}",
                    f"{row['logme']:.3f}", f"{row['leep']:.3f}", f"{row['nce']:.3f}"]
        assert [similarity, spread, *cells] == expected, f"README row {family} {condition}"
    columns = {"clean": ("photos", "clean"), "blur r=5": ("blur", "radius 5.0"), "noise σ=0.4": ("noise", "sigma 0.4"),
               "greyscale": ("colour", "greyscale"), "digits": ("other", "digits"),
               "textures": ("other", "textures"), "text page": ("other", "text page")}
    header = re.search(r"^\| \| (clean \|.*)\|$", README, flags=re.M).group(1).split("|")
    names = [h.strip() for h in header if h.strip()]
    for label, key, raw_format in (("MMD² (normalised)", "mmd", ".3f"), ("Fréchet (normalised)", "frechet", ".0f")):
        cells = re.search(rf"^\| {re.escape(label)} \|(.*)\|$", README, flags=re.M).group(1).split("|")
        assert len(cells) == len(names) == len(columns), f"README {label}: {len(cells)} cells for {len(names)} columns"
        for name, cell in zip(names, (c.strip() for c in cells)):
            row = by_condition[columns[name]]
            assert cell == f"{row[key]:{raw_format}} ({row[key + '_normalised']:.3f})", f"README {label} {name}"


def test_the_race_rung_sweep_the_docs_quote_recomputes_from_the_units():
    """docs/benchmarks.md quotes benchmarks/results/honest_grid/race_rungs.md; its tables recompute from the units."""
    import contextlib
    import io

    from benchmarks.advice import race_rungs

    committed = (RESULTS / "honest_grid" / "race_rungs.md").read_text(encoding="utf-8")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert race_rungs.main([str(RESULTS / "honest_grid"), "--key", "9e331263e33015b9", "--no-record"]) == 0
    assert [line for line in printed.getvalue().splitlines() if line.startswith("|")] == \
        [line for line in committed.splitlines() if line.startswith("|")]
    docs = " ".join((ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8").split())
    quoted = re.search(r"family holdout gives a median of ([\d.]+), ([\d.]+), ([\d.]+) and ([\d.]+) \((\d+), (\d+), "
                       r"(\d+) and (\d+) of (\d+) within 2; mean ([\d.]+), ([\d.]+), ([\d.]+), ([\d.]+)\) at a median "
                       r"compute of ([\d.]+), ([\d.]+), ([\d.]+) and ([\d.]+) %", docs)
    assert quoted, "docs/benchmarks.md no longer quotes the rung sweep as this test reads it"
    values = quoted.groups()
    for i, rung in enumerate(race_rungs.RUNGS):
        row = (f"| family | {rung} | {values[i]} | {values[9 + i]} | {values[4 + i]} of {values[8]} | "
               f"{values[13 + i]} % (")
        assert row in committed, row
