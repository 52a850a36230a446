"""Reading the honest grid's unit files: each config's rate chosen on validation, its test accuracy, and the
evidence that the grid is fair (issue #22 item 2): the share of chosen runs still climbing at the end of
their schedule (best epoch in the last fifth) with what twice the schedule gave them, and the rates chosen
at an edge of those tried. ``curves.md`` holds every learning curve.

    .venv/bin/python -m benchmarks.grid.summary benchmarks/results/honest_grid --key KEY
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from benchmarks.grid.logic import at_ceiling, chosen_multiplier, read_finished, rate_at_edge, write_json_atomic
from benchmarks.common.stats import config_rank, mean_spread


def load_units(units_dir: Path, key: str) -> tuple[list[dict], dict[tuple[str, int], dict]]:
    """(training units, advice units by (task, seed)) made with settings ``key``; others are ignored.
    Training units include the ``long`` reruns (``unit["long"]``); :func:`select_rates` keeps them apart."""
    trained, advice = [], {}
    for path in sorted(Path(units_dir).rglob("*.json")):
        unit = read_finished(path, key)
        if unit is None:
            continue
        if path.stem == "advice":
            advice[(unit["task"], unit["seed"])] = unit
        elif "val_best" in unit:
            trained.append(unit)
    return trained, advice


def _multiplier(unit: dict) -> float:
    return float(unit.get("multiplier", unit["rate"]))


def select_rates(trained: list[dict]) -> dict[tuple[str, int], dict[str, dict]]:
    """Per (task, seed) and config: the run at the multiplier with the best validation accuracy (ties: the
    lower), with ``by_rate`` (validation best per multiplier), ``rate_edge``, the grid's cost for the config
    and, when it was rerun at twice its schedule, ``long`` (that run)."""
    runs: dict[tuple[str, int], dict[str, list[dict]]] = {}
    longs: dict[tuple[str, int, str, float], dict] = {}
    for unit in trained:
        if unit.get("long"):
            longs[(unit["task"], unit["seed"], unit["config"], _multiplier(unit))] = unit
        else:
            runs.setdefault((unit["task"], unit["seed"]), {}).setdefault(unit["config"], []).append(unit)
    chosen: dict[tuple[str, int], dict[str, dict]] = {}
    for key, configs in runs.items():
        for config, units in configs.items():
            by_rate = {_multiplier(u): u["val_best"] for u in units}
            best_m = chosen_multiplier(by_rate)
            best = next(u for u in units if _multiplier(u) == best_m)
            chosen.setdefault(key, {})[config] = {
                **best, "by_rate": by_rate, "grid_cpu_s": sum(u["cpu_s"] for u in units),
                "rate_edge": rate_at_edge(by_rate) if len(by_rate) >= 3 else None,
                "long": longs.get((*key, config, best_m))}
    return chosen


def fairness(chosen: dict[tuple[str, int], dict[str, dict]]) -> dict[str, dict[str, Any]]:
    """Per config over (task, seed): how many chosen runs, the share still climbing at the end, how many of
    those were rerun at twice the length and the mean test change that bought, and the share whose rate
    sits at an edge of those tried (the rate ladder's end, or a rate search held to one rate)."""
    rows: dict[str, dict[str, Any]] = {}
    for configs in chosen.values():
        for config, unit in configs.items():
            row = rows.setdefault(config, {"runs": 0, "climbing": 0, "rerun": 0, "long_gain": [], "edge": 0,
                                           "searched": 0})
            row["runs"] += 1
            row["climbing"] += bool(unit.get("climbing"))
            if unit.get("long"):
                row["rerun"] += 1
                row["long_gain"].append(unit["long"]["test_at_best"] - unit["test_at_best"])
            if len(unit["by_rate"]) >= 3:
                row["searched"] += 1
                row["edge"] += unit["rate_edge"] is not None
    for row in rows.values():
        gains = row.pop("long_gain")
        row["climbing_share"] = row["climbing"] / row["runs"]
        row["long_test_gain_mean"] = sum(gains) / len(gains) if gains else None
        row["edge_share"] = row["edge"] / row["searched"] if row["searched"] else None
    return dict(sorted(rows.items(), key=lambda kv: config_rank(kv[0])))


def summarise(units_dir: Path, key: str, ceiling: float = 0.97) -> dict[str, Any]:
    trained, advice = load_units(units_dir, key)
    chosen = select_rates(trained)
    tasks: dict[str, dict[str, Any]] = {}
    for (task, seed), configs in sorted(chosen.items()):
        entry = tasks.setdefault(task, {"seeds": [], "configs": {}})
        entry["seeds"].append(seed)
        for config, unit in configs.items():
            entry["configs"].setdefault(config, []).append(unit)
    rows = {}
    for task, entry in tasks.items():
        means = {c: mean_spread(u["test_at_best"] for u in units) for c, units in entry["configs"].items()}
        rows[task] = {
            "seeds": entry["seeds"], "family": next(iter(entry["configs"].values()))[0]["family"],
            "n_test": next(iter(entry["configs"].values()))[0].get("n_test"),
            "test_mean": {c: m for c, (m, _) in means.items()}, "test_spread": {c: s for c, (_, s) in means.items()},
            "climbing": {c: [bool(u.get("climbing")) for u in units] for c, units in entry["configs"].items()},
            "rate_edges": {c: [u["rate_edge"] for u in units] for c, units in entry["configs"].items()},
            "chosen_multipliers": {c: [_multiplier(u) for u in units] for c, units in entry["configs"].items()},
            "cpu_s": sum(u["grid_cpu_s"] for units in entry["configs"].values() for u in units),
            "at_ceiling": at_ceiling({c: m for c, (m, _) in means.items()}, ceiling),
        }
    return {"tasks": rows, "fairness": fairness(chosen), "advice_units": len(advice),
            "training_units": len(trained), "ceiling": ceiling,
            "curves": [{k: u.get(k) for k in ("task", "seed", "config", "multiplier", "rate", "long", "val_curve",
                                              "climbing", "test_at_best")} for u in trained]}


def _percent(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{100 * value:.0f} %"


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    out = Path(out)
    write_json_atomic(out / "grid_summary.json", summary)
    configs = sorted({c for row in summary["tasks"].values() for c in row["test_mean"]}, key=config_rank)
    lines = ["| task | family | seeds | test images | " + " | ".join(configs) + " | at ceiling | rate at an edge |",
             "|---|---|---|---|" + "---|" * (len(configs) + 2)]
    for task, row in summary["tasks"].items():
        cells = [f"{100 * row['test_mean'][c]:.1f}" + (f" ± {100 * row['test_spread'][c]:.1f}"
                                                        if len(row["seeds"]) > 1 else "")
                 if c in row["test_mean"] else "–" for c in configs]
        edges = sorted({f"{c} ({e})" for c, es in row["rate_edges"].items() for e in es if e})
        lines.append(f"| {task} | {row['family']} | {len(row['seeds'])} | {row.get('n_test')} | " + " | ".join(cells)
                     + f" | {'yes' if row['at_ceiling'] else 'no'} | {', '.join(edges) or '–'} |")
    fair = ["| config | chosen runs | still climbing at the end | rerun at 2x | mean test change at 2x | "
            "rate at an edge |", "|---|---|---|---|---|---|"]
    for config, row in summary["fairness"].items():
        gain = row["long_test_gain_mean"]
        fair.append(f"| {config} | {row['runs']} | {row['climbing']} ({_percent(row['climbing_share'])}) | "
                    f"{row['rerun']} | {'–' if gain is None else f'{100 * gain:+.1f} points'} | "
                    f"{row['edge']} of {row['searched']} ({_percent(row['edge_share'])}) |")
    (out / "grid_summary.md").write_text(
        "Test accuracy (%) of each config at the rate chosen on validation (mean ± seed spread over seeds)\n\n"
        + "\n".join(lines) + "\n\nFairness: chosen runs whose best validation epoch lies in the last fifth of "
        "the schedule (still climbing), what twice the schedule changed, and rates chosen at an edge\n\n"
        + "\n".join(fair) + "\n")
    curves = ["Validation accuracy per epoch, every unit (task, seed, config, rate multiplier)", ""]
    for c in sorted(summary["curves"], key=lambda c: (c["task"], c["seed"], config_rank(c["config"]),
                                                      c["multiplier"] or 0, bool(c["long"]))):
        curves.append(f"- {c['task']} seed {c['seed']} {c['config']} x{c['multiplier']:g}"
                      f"{' (2x schedule)' if c['long'] else ''}{' climbing' if c['climbing'] else ''}, test "
                      f"{c['test_at_best']:.3f}: " + " ".join(f"{v:.2f}" for v in c["val_curve"]))
    (out / "curves.md").write_text("\n".join(curves) + "\n")
    print("\n".join(lines + [""] + fair))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="re-summarise an honest grid's units")
    parser.add_argument("out", type=Path)
    parser.add_argument("--key", required=True, help="settings_key of the units to read")
    a = parser.parse_args()
    write_summary(a.out, summarise(a.out / "units", a.key))
    print(json.dumps({"written": str(a.out / "grid_summary.json")}))
