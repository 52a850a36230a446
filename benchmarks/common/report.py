"""Tables (Markdown, for the terminal and the docs) and one self-contained HTML page of the results."""

from __future__ import annotations

import html
import math
from typing import Any

from benchmarks.common.stats import CONFIG_ORDER

SHORT = {"feature_extraction": "FE", "partial_freeze@1": "PF1", "partial_freeze@2": "PF2",
         "partial_freeze@3": "PF3", "partial_freeze@4": "PF4", "partial_freeze@5": "PF5",
         "full_finetune": "FT", "from_scratch": "scratch"}


def short(config: str) -> str:
    return SHORT.get(config, config)


def pct(value: float | None, spread: float | None = None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = f"{100 * value:.{digits}f}"
    if spread is not None and not math.isnan(spread):
        text += f" ± {100 * spread:.{digits}f}"
    return text


def num(value: float | None, fmt: str = ".2f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, fmt)


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# --- section tables ----------------------------------------------------------------------------------


def advice_rows(summaries: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["task", "size (train/class)", "domain", "similarity", "best (val acc %)", "advice", "regret (points)",
              "within noise", "advice CPU s", "grid CPU s", "advice / grid"]
    rows = []
    for s in summaries:
        best = s["summary"]["best"]
        stats = s["summary"]["configs"][best]
        picks = ", ".join(f"{short(c)}×{n}" if n > 1 else short(c) for c, n in s["recommended_counts"].items())
        rows.append([
            s["task"], f"{s['size']} ({s['train_per_class']})", s["domain"],
            f"{num(s['similarity_mean'])} ± {num(s['similarity_spread'])}",
            f"{short(best)} {pct(stats['mean'], stats['spread'])}", picks,
            pct(s["summary"]["regret_mean"], s["summary"]["regret_spread"]),
            "yes" if s["summary"]["within_noise"] else "no",
            num(s["advice_cpu_mean"], ".1f"), num(s["grid_cpu_mean"], ".0f"), num(s["compute_ratio"], ".3f"),
        ])
    return header, rows


def strategy_rows(summaries: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    configs = [c for c in CONFIG_ORDER if any(c in s["summary"]["configs"] for s in summaries)]
    header = ["task", "epochs"] + [short(c) for c in configs]
    rows = []
    for s in summaries:
        cells = []
        for c in configs:
            stats = s["summary"]["configs"].get(c)
            cell = pct(stats["mean"], stats["spread"]) if stats else "–"
            if c == s["summary"]["best"]:
                cell = f"**{cell}**"
            cells.append(cell)
        rows.append([s["task"], str(s["epochs"])] + cells)
    return header, rows


def similarity_rows(rows_in: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["data", "condition", "similarity", "BN shift (geo. mean)", "linear probe", "k-NN", "pretraining gain",
              "LogME", "LEEP", "NCE", "Frechet to source sample (normalised)", "MMD² to source sample (normalised)"]
    rows = [[r["family"], r["condition"], f"{r['similarity']:.3f} ± {r['spread']:.3f}", f"{r['bn_shift']:.3f}",
             num(r.get("linear_probe"), ".3f"), num(r.get("knn"), ".3f"), num(r.get("pretraining_gain"), "+.3f"),
             num(r.get("logme"), ".3f"), num(r.get("leep"), ".3f"), num(r.get("nce"), ".3f"),
             f"{num(r.get('frechet'), '.1f')} ({num(r.get('frechet_normalised'), '.3f')})",
             f"{num(r.get('mmd'), '.3f')} ({num(r.get('mmd_normalised'), '.3f')})"]
            for r in rows_in]
    return header, rows


def spearman_rows(correlations: dict[str, dict[str, float]]) -> tuple[list[str], list[list[str]]]:
    families = list(correlations)
    measures = [k for k in next(iter(correlations.values()), {}) if k != "similarity_falls_every_step"]
    header = ["measure"] + [f"Spearman vs {f} severity" for f in families]
    rows = [[m] + [num(correlations[f][m], "+.2f") for f in families] for m in measures]
    rows.append(["similarity falls at every step"] + ["yes" if correlations[f]["similarity_falls_every_step"] else "no"
                                                       for f in families])
    return header, rows


def tuning_rows(results: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["task (seed)", "arm", "target %", "trials to target", "wall s to target", "CPU s to target",
              "best in budget %", "pruned", "search CPU s"]
    rows = []
    for r in results:
        reached = r["trials_to_target"] is not None
        rows.append([f"{r['task']} ({r['seed']})", r["arm"], pct(r["target"]),
                     f"{r['trials_to_target']} of {r['budget']}" if reached else f"not in {r['budget']}",
                     num(r["wall_to_target_s"], ".0f"), num(r["cpu_to_target_s"], ".0f"), pct(r["best"]),
                     str(r["n_pruned"]), num(r["search_cpu_s"], ".0f")])
    return header, rows


def throughput_rows(t: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    c = t["cached_trials"]
    header = ["what", "value"]
    rows = [
        ["images, size, device, threads", f"{t['n_images']}, {t['image_size']} px, {t['device']}, {t['threads']}"],
        ["feature extraction (images/s)", num(t["extraction_images_per_s"], ".1f")],
        ["bare forward loop, tensors in memory (images/s)", num(t["bare_forward_images_per_s"], ".1f")],
        ["bare forward loop with the BatchNorm-statistics hooks (images/s)",
         num(t.get("forward_with_bn_statistics_images_per_s"), ".1f")],
        ["image decode + transform, all images (s); model build (s)",
         f"{num(t['decode_transform_s'], '.2f')}; {num(t.get('model_build_s'), '.2f')}"],
        ["extraction / bare forward", num(t["extraction_over_bare"], ".2f")],
        ["extraction / (decode + bare forward)", num(t["extraction_over_bare_plus_decode"], ".2f")],
        ["feature cache: first / second extraction (s)",
         f"{num(t['cache_first_s'], '.2f')} / {num(t['cache_second_s'], '.3f')} ({num(t['cache_speedup'], '.0f')}x)"],
        [f"feature-extraction trial, {c['epochs']} epochs: cached vs backbone every epoch (s)",
         f"{num(c['cached_trial_s'], '.3f')} vs {num(c['forward_trial_s'], '.2f')} ({num(c['speedup'], '.0f')}x; "
         f"{num(c['speedup_with_extraction'], '.1f')}x counting the one-off extraction)"],
    ]
    return header, rows


def sweep_rows(sweeps: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["constant", "value", "mean regret (points)", "median regret", "advice = best",
              "unknown (config not trained, or value not swept in that run)"]
    rows = []
    for s in sweeps:
        label = f"**{s['value']}**" if s["current"] else str(s["value"])
        rows.append([s["constant"], label, pct(s["mean_regret"], digits=2), pct(s["median_regret"], digits=2),
                     f"{s['hits']} of {s['known']}", str(s["unknown"])])
    return header, rows


def joint_rows(cells: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    smalls = sorted({c["small_per_class"] for c in cells.values()}, key=float)
    probes = sorted({c["probe_enough"] for c in cells.values()}, key=float)
    header = ["SMALL_PER_CLASS (rows) / PROBE_ENOUGH (columns)"] + probes
    rows = []
    for small in smalls:
        row = [small]
        for probe in probes:
            c = cells.get(f"{small}|{probe}")
            if c is None:
                row.append("–")
                continue
            # fewer runs known: units kept by --resume that predate the value, or configs the grid lacks
            known = "" if c["known"] == c["runs"] else f" of {c['known']}"
            row.append(f"{pct(c['mean_regret'], digits=1)} ({c['hits']}{known})")
        rows.append(row)
    return header, rows


# --- HTML --------------------------------------------------------------------------------------------


def html_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(text: str, tag: str) -> str:
        bold = text.startswith("**") and text.endswith("**")
        inner = html.escape(text.strip("*") if bold else text)
        return f"<{tag}>{'<b>' + inner + '</b>' if bold else inner}</{tag}>"

    head = "".join(cell(h, "th") for h in header)
    body = "".join("<tr>" + "".join(cell(c, "td") for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def regret_svg(summaries: list[dict[str, Any]]) -> str:
    """Horizontal bars: mean regret per task (points), whiskers one seed spread."""
    width, bar_h, left, right = 640, 22, 170, 60
    height = bar_h * len(summaries) + 40
    top = max([100 * (s["summary"]["regret_mean"] + s["summary"]["regret_spread"]) for s in summaries] + [5.0])
    scale = (width - left - right) / top
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="regret per task">']
    for i, s in enumerate(summaries):
        y = 10 + i * bar_h
        mean, spread = 100 * s["summary"]["regret_mean"], 100 * s["summary"]["regret_spread"]
        colour = "#4a7" if s["summary"]["within_noise"] else "#c54"
        parts.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end" font-size="12">{html.escape(s["task"])}</text>')
        parts.append(f'<rect x="{left}" y="{y + 3}" width="{max(mean * scale, 1):.1f}" height="{bar_h - 8}" fill="{colour}"/>')
        if spread:
            x0, x1 = left + max(mean - spread, 0) * scale, left + (mean + spread) * scale
            parts.append(f'<line x1="{x0:.1f}" x2="{x1:.1f}" y1="{y + bar_h / 2}" y2="{y + bar_h / 2}" stroke="#333"/>')
        parts.append(f'<text x="{left + (mean + spread) * scale + 4:.1f}" y="{y + 14}" font-size="11">{mean:.1f}</text>')
    axis_y = 10 + len(summaries) * bar_h + 14
    parts.append(f'<text x="{left}" y="{axis_y}" font-size="11">regret, accuracy points (green: within seed '
                 f'noise; whisker: ± one seed spread)</text></svg>')
    return "".join(parts)


def html_page(title: str, sections: list[tuple[str, str]], meta: list[str]) -> str:
    style = ("body{font:14px system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}"
             "table{border-collapse:collapse;margin:0.5em 0 1.5em}th,td{border:1px solid #ccc;padding:3px 8px;"
             "text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
             "h2{margin-top:1.5em}.meta{color:#555;font-size:12px}")
    body = "".join(f"<h2>{html.escape(name)}</h2>{content}" for name, content in sections)
    meta_html = "".join(f"<div>{html.escape(m)}</div>" for m in meta)
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            f"<title>{html.escape(title)}</title><style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<div class=\"meta\">{meta_html}</div>{body}</body></html>")
