"""The report's tuning section from analysis.json data: trials, history, importances, learning curves.

Split from :mod:`tladvisor.report.view` (same rules: reads only the analysis dict; missing parts give an
empty part, never an error).
"""

from __future__ import annotations

from typing import Any

from tladvisor.report import charts, glossary, tuning_notes
from tladvisor.report.charts import Bar
from tladvisor.report.svg import colour, finite, fmt
from tladvisor.report.view import accuracy_text, run_strategy_colours, strategy_label
from tladvisor.tuning.folds import fold_standard_error

PARAM_ORDER = ("backbone", "strategy", "freeze_depth", "lr_head", "lr_backbone", "layer_decay", "weight_decay",
               "epochs")


# --- tuning -----------------------------------------------------------------------------------------


def tuning_view(analysis: dict) -> dict[str, Any] | None:
    tuning = analysis.get("tuning")
    if not tuning:
        return None
    trials = [dict(trial, strategy=(trial.get("params") or {}).get("strategy"), params=trial.get("params") or {})
              for trial in tuning.get("trials") or ()]
    by_number = {trial["number"]: trial for trial in trials}
    colours = run_strategy_colours(analysis)
    importances = sorted((tuning.get("param_importances") or {}).items(), key=lambda item: -(item[1] or 0))
    states = {}
    for trial in trials:
        states[trial.get("state")] = states.get(trial.get("state"), 0) + 1
    curves, curve_rows = [], []
    for strategy, number in (tuning.get("best_by_strategy") or {}).items():
        trial = by_number.get(number)
        if not trial or not trial.get("learning_curve"):
            continue
        curve = trial["learning_curve"]
        curves.append((f"{strategy_label(strategy)} (trial #{number})", colours.get(strategy, colour(len(curves))),
                       curve))
        start, slope, asymptote = curve_summary(curve)
        curve_rows.append({"strategy": strategy_label(strategy), "trial": number, "start": fmt(start),
                           "slope": fmt(slope), "asymptote": fmt(asymptote), "epochs": len(curve)})
    best = tuning.get("best")
    metrics = tuning_notes.metric_columns(analysis, trials)
    return {
        "study_name": tuning.get("study_name"),
        "storage": tuning.get("storage"),
        "device": tuning.get("device"),
        "requested": tuning.get("requested_trials"),
        "budget_text": tuning_notes.budget_text(len(trials), tuning.get("requested_trials"),
                                                (analysis.get("options") or {}).get("timeout")),
        "stop_reason": tuning.get("stop_reason"),
        "class_weights": tuning_notes.class_weights_text(analysis.get("options") or {}),
        "metric_columns": [(name, label) for name, label in tuning_notes.METRIC_LABELS if name in metrics],
        "states": sorted(states.items(), key=lambda item: str(item[0])),
        "scoring": scoring_text(tuning.get("cross_validation")),
        "cross_validated": int((tuning.get("cross_validation") or {}).get("folds") or 1) > 1,
        "best": best and {"number": best.get("number"), "value": trial_accuracy_text(best),
                          "params": _params_text(best.get("params") or {})},
        "best_model_dir": tuning.get("best_model_dir"),
        "history_chart": charts.history_chart(trials, "Optimisation history: accuracy per trial and running best",
                                              strategy_colours=colours),
        "importance_chart": charts.bar_chart([Bar(name, value) for name, value in importances],
                                             "Parameter importances", axis_label="importance"),
        "parallel_chart": charts.parallel_coordinates(trials, _varying_params(trials),
                                                      "Parallel coordinates of the completed trials"),
        "curves_chart": charts.line_chart(curves, "Validation accuracy per epoch, best trial of each strategy",
                                          x_label="epoch", y_label="validation accuracy"),
        "curve_rows": curve_rows,
        "curves_title": ("transfer against scratch" if "from_scratch" in (tuning.get("best_by_strategy") or {})
                         else "best trial of each strategy"),
        "glossary": glossary.entries((t.get("strategy") for t in trials), analysis.get("strategies")),
        "param_columns": (columns := _param_columns(trials)),
        "trials": [dict(_trial_row(trial, best, columns, analysis.get("strategies")),
                        metrics=[fmt((trial.get("metrics") or {}).get(name)) for name in metrics])
                   for trial in sorted(trials, key=lambda t: t["number"])],
    }


def trial_accuracy_text(trial: dict, long: bool = True) -> str:
    """``0.833 ± 0.083 (standard error over 3 folds, 12 images in all)`` for a cross-validated trial (``long``;
    else without the parenthesis: the table's header says what ± is), the bare accuracy otherwise."""
    value, folds = trial.get("value"), trial.get("folds")
    if not finite(value) or not isinstance(folds, dict) or not folds.get("k"):
        return accuracy_text(value)
    error = fold_standard_error(folds)
    over = (f" (standard error over {folds['k']} folds, {folds.get('images')} {folds.get('unit', 'images')} in all)"
            if long else "")
    return f"{accuracy_text(value)} ± {error:.3f}{over}"


def scoring_text(cross_validation: dict | None) -> str | None:
    """How the trials were scored, and why: cross-validation folds or one validation split."""
    if not isinstance(cross_validation, dict):
        return None
    folds = cross_validation.get("folds") or 1
    unit = cross_validation.get("unit", "images")
    how = (f"mean validation accuracy over {folds} cross-validation folds ({cross_validation.get('images')} {unit} "
           "in all, each validated once)"
           if folds > 1 else f"validation accuracy on one split of {cross_validation.get('images')} {unit}")
    reason = cross_validation.get("reason")
    return f"{how} ({reason})" if reason else how


def curve_summary(curve) -> tuple[float | None, float | None, float | None]:
    """(start, slope, asymptote) of a learning curve.

    start: accuracy after the first epoch; slope: mean gain per epoch over the first three epochs (how
    fast it learns); asymptote: mean of the last three epochs (where it levels off).
    """
    values = [v for v in curve if finite(v)]
    if not values:
        return None, None, None
    span = min(3, len(values) - 1)
    slope = (values[span] - values[0]) / span if span else None
    tail = values[-3:]
    return values[0], slope, sum(tail) / len(tail)


def _ordered_params(trials: list[dict]) -> list[str]:
    keys = list(dict.fromkeys(k for t in trials for k in t["params"]))
    return sorted(keys, key=lambda k: (PARAM_ORDER.index(k) if k in PARAM_ORDER else len(PARAM_ORDER), k))


def _param_columns(trials: list[dict]) -> list[str]:
    """Trial-table columns: every parameter but the two shown in their own columns."""
    return [k for k in _ordered_params(trials) if k not in ("strategy", "backbone")]


def _varying_params(trials: list[dict]) -> list[str]:
    keys = _ordered_params(trials)
    done = [t for t in trials if finite(t.get("value"))]
    return [k for k in keys if len({repr(t["params"].get(k)) for t in done}) > 1]


def _params_text(params: dict) -> str:
    return ", ".join(f"{name}={fmt(value) if isinstance(value, float) else value}" for name, value in params.items())


def _cell(value) -> str:
    """A parameter as the trials table shows it, narrow enough that every column fits 1280 px: rates as
    ``2.5e-4`` (not ``2.5e-04``), flags as yes/no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = fmt(value)
    if "e" in text and isinstance(value, float):
        mantissa, exponent = text.split("e")
        text = f"{mantissa.removesuffix('.0')}e{int(exponent)}"
    return text


def _trial_row(trial: dict, best: dict | None, columns: list[str], stored_strategies=None) -> dict[str, Any]:
    params = trial["params"]
    return {"number": trial.get("number"), "state": trial.get("state"), "strategy": strategy_label(trial.get("strategy")),
            "strategy_meaning": glossary.explain(trial.get("strategy"), stored_strategies),
            "backbone": params.get("backbone", "—"),
            "params": [(_cell(params.get(k)) if k in params else "—", params.get(k) if finite(params.get(k)) else None)
                       for k in columns],
            "value": trial_accuracy_text(trial, long=False),
            "value_sort": trial.get("value") if finite(trial.get("value")) else None,
            "duration": fmt(trial.get("duration_s")), "duration_sort": trial.get("duration_s"),
            "reason": trial.get("reason") or "", "best": bool(best) and trial.get("number") == best.get("number")}
