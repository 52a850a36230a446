"""The report's tuning charts: what they draw where (#26 item 6)."""

from __future__ import annotations

import re

from tladvisor.report.charts import history_chart, parallel_coordinates


def _circles(svg: str) -> list[tuple[float, str]]:
    """(cy, title) of every marker circle."""
    found = []
    for match in re.finditer(r"<circle([^>]*)>\s*<title>([^<]*)</title>", svg):
        cy = float(re.search(r'cy="([-\d.]+)"', match.group(1)).group(1))
        found.append((cy, match.group(2)))
    return found


def test_a_pruned_or_deadline_stopped_trial_is_drawn_at_the_best_epoch_it_reached():
    trials = [
        {"number": 0, "state": "COMPLETE", "value": 0.8, "strategy": "feature_extraction", "learning_curve": [0.8]},
        {"number": 1, "state": "PRUNED", "value": None, "strategy": "full_finetune", "learning_curve": [0.43, 0.6],
         "reason": "pruned at epoch 2"},
        {"number": 2, "state": "PRUNED", "value": None, "strategy": "full_finetune", "learning_curve": [0.88],
         "reason": "stopped by the --timeout deadline during epoch 2"},
        {"number": 3, "state": "FAIL", "value": None, "strategy": "full_finetune", "learning_curve": []},
    ]
    svg = str(history_chart(trials, "history"))
    marks = {title.split(":")[0]: cy for cy, title in _circles(svg)}
    complete, pruned, stopped = marks["trial #0"], marks["trial #1"], marks["trial #2"]
    # y grows downwards: 0.88 above 0.8 above 0.6; none at the bottom where 0 lies
    assert stopped < complete < pruned
    span = (pruned - complete) / (0.8 - 0.6)  # pixels per accuracy unit
    assert abs((complete - stopped) - span * 0.08) < 1.0
    assert "reached 0.88 before it stopped" in svg and "reached 0.6 before it stopped" in svg


def _label_boxes(svg: str, size_default: float = 11.0) -> list[tuple[float, float, float, float, str]]:
    """Approximate boxes of the text labels: x, y, width (0.6 em a character), height."""
    boxes = []
    for match in re.finditer(r"<text([^>]*)>([^<]*)</text>", svg):
        attrs, label = match.group(1), match.group(2)
        x = float(re.search(r' x="([-\d.]+)"', attrs).group(1))
        y = float(re.search(r' y="([-\d.]+)"', attrs).group(1))
        size = float(m.group(1)) if (m := re.search(r'font-size="([\d.]+)"', attrs)) else size_default
        width = 0.6 * size * len(label)
        if 'text-anchor="middle"' in attrs:
            x -= width / 2
        elif 'text-anchor="end"' in attrs:
            x -= width
        boxes.append((x, y - size, width, size, label))
    return boxes


def test_parallel_coordinates_labels_do_not_overlap():
    axes = ["backbone", "strategy", "freeze_depth", "lr_head", "lr_backbone", "layer_decay", "weight_decay",
            "epochs", "gradual_unfreeze"]
    strategies = ["feature_extraction", "partial_freeze", "full_finetune", "from_scratch", "lp_ft"]
    trials = [{"number": i, "value": 0.5 + i / 40, "params": {
        "backbone": f"efficientnet_lite{i % 3}", "strategy": strategies[i % 5], "freeze_depth": i % 6,
        "lr_head": 10 ** (-4 + i % 4), "lr_backbone": 10 ** (-5 + i % 4), "layer_decay": 0.5 + i / 40,
        "weight_decay": 10 ** (-6 + i % 5), "epochs": 3 + i, "gradual_unfreeze": bool(i % 2)}} for i in range(12)]
    boxes = _label_boxes(str(parallel_coordinates(trials, axes, "parallel")))
    overlapping = [(a[4], b[4]) for i, a in enumerate(boxes) for b in boxes[i + 1:]
                   if a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]]
    assert overlapping == []
