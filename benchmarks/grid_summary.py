"""Reading the honest grid's unit files: each config's learning rate chosen on validation, its test
accuracy, rates at the edge of the search, tasks at ceiling, and every learning curve (curves.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from honest_logic import at_ceiling, read_finished, rate_at_edge, write_json_atomic
from suite_stats import mean_spread


def load_units(units_dir: Path, key: str) -> tuple[list[dict], dict[tuple[str, int], dict]]:
    """(training units, advice units by (task, seed)) made with settings ``key``; others are ignored."""
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


def select_rates(trained: list[dict]) -> dict[tuple[str, int], dict[str, dict]]:
    """Per (task, seed) and config: the unit of the rate with the best validation accuracy (ties: the lower
    rate), with ``by_rate`` (validation best per rate) and the unit's cost."""
    runs: dict[tuple[str, int], dict[str, list[dict]]] = {}
    for unit in trained:
        runs.setdefault((unit["task"], unit["seed"]), {}).setdefault(unit["config"], []).append(unit)
    chosen: dict[tuple[str, int], dict[str, dict]] = {}
    for key, configs in runs.items():
        for config, units in configs.items():
            best = max(units, key=lambda u: (u["val_best"], -u["rate"]))
            chosen.setdefault(key, {})[config] = {
                **best, "by_rate": {u["rate"]: u["val_best"] for u in units},
                "grid_cpu_s": sum(u["cpu_s"] for u in units),
                "rate_edge": rate_at_edge({u["rate"]: u["val_best"] for u in units})}
    return chosen


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
            "test_mean": {c: m for c, (m, _) in means.items()}, "test_spread": {c: s for c, (_, s) in means.items()},
            "stops": {c: [u["stop"] for u in units] for c, units in entry["configs"].items()},
            "rate_edges": {c: [u["rate_edge"] for u in units] for c, units in entry["configs"].items()},
            "chosen_rates": {c: [u["rate"] for u in units] for c, units in entry["configs"].items()},
            "at_ceiling": at_ceiling({c: m for c, (m, _) in means.items()}, ceiling),
        }
    return {"tasks": rows, "advice_units": len(advice), "training_units": len(trained), "ceiling": ceiling,
            "curves": [{k: u[k] for k in ("task", "seed", "config", "rate", "val_curve", "stop", "test_at_best")}
                       for u in trained]}


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    out = Path(out)
    write_json_atomic(out / "grid_summary.json", summary)
    configs = sorted({c for row in summary["tasks"].values() for c in row["test_mean"]})
    lines = ["| task | family | seeds | " + " | ".join(configs) + " | at ceiling | rate at an edge | stopped at cap |",
             "|---|---|---|" + "---|" * (len(configs) + 3)]
    for task, row in summary["tasks"].items():
        cells = [f"{100 * row['test_mean'][c]:.1f} ± {100 * row['test_spread'][c]:.1f}" if c in row["test_mean"] else "–"
                 for c in configs]
        edges = sorted({f"{c} ({e})" for c, es in row["rate_edges"].items() for e in es if e})
        capped = sorted({c for c, stops in row["stops"].items() if "cap" in stops})
        lines.append(f"| {task} | {row['family']} | {len(row['seeds'])} | " + " | ".join(cells)
                     + f" | {'yes' if row['at_ceiling'] else 'no'} | {', '.join(edges) or '–'} | {', '.join(capped) or '–'} |")
    (out / "grid_summary.md").write_text(
        "Test accuracy (%) of each config at the learning rate chosen on validation, mean ± seed spread\n\n"
        + "\n".join(lines) + "\n")
    curves = ["Validation accuracy per epoch, every unit (task, seed, config, learning rate)", ""]
    for c in sorted(summary["curves"], key=lambda c: (c["task"], c["seed"], c["config"], c["rate"])):
        curves.append(f"- {c['task']} seed {c['seed']} {c['config']} lr {c['rate']:g} ({c['stop']}, test "
                      f"{c['test_at_best']:.3f}): " + " ".join(f"{v:.2f}" for v in c["val_curve"]))
    (out / "curves.md").write_text("\n".join(curves) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="re-summarise an honest grid's units")
    parser.add_argument("out", type=Path)
    parser.add_argument("--key", required=True, help="settings_key of the units to read")
    a = parser.parse_args()
    write_summary(a.out, summarise(a.out / "units", a.key))
    print(json.dumps({"written": str(a.out / "grid_summary.json")}))
