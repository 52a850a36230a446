"""How ``tladvisor predict`` writes its predictions: an aligned table, CSV or JSON on stdout.

Skipped inputs go to stderr in every format except JSON, where they are part of the document, so a
pipe into a CSV reader gets only the predictions.
"""

from __future__ import annotations

import csv
import io
import json

from tladvisor.text import printable
from tladvisor.tuning.predict import Predictions

FORMATS = ("table", "csv", "json")


def render(predictions: Predictions, fmt: str) -> str:
    """The predictions as text in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "json":  # json.dumps escapes lone surrogates itself
        return json.dumps({"predictions": predictions.rows, "skipped": predictions.skipped}, indent=2)
    rows = [{**row, "path": printable(row["path"])} for row in predictions.rows]
    if fmt == "csv":
        buffer = io.StringIO()
        fields = ("path", "label", "probability") + (("text",) if rows and "text" in rows[0] else ())
        writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows({**row, "probability": f"{row['probability']:.4f}"} for row in rows)
        return buffer.getvalue().rstrip("\n")
    if not rows:
        return ""
    path_width = max(len("path"), *(len(r["path"]) for r in rows))
    label_width = max(len("label"), *(len(r["label"]) for r in rows))
    lines = [f"{'path':<{path_width}}  {'label':<{label_width}}  probability"]
    lines += [f"{r['path']:<{path_width}}  {r['label']:<{label_width}}  {r['probability']:.4f}" for r in rows]
    return "\n".join(lines)


def skipped_lines(predictions: Predictions) -> list[str]:
    """One line per skipped input, then nothing: ``skipped PATH: REASON``."""
    return [printable(f"skipped {s['path']}: {s['reason']}") for s in predictions.skipped]
