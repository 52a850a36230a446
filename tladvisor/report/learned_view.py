"""The report's view of the learned advice: what the gain prior predicted for each config, which ones it could not
tell apart (the race), where it comes from, and the four-scenario rule's pick beside it."""

from __future__ import annotations

from typing import Any


def learned_view(recommendation: dict[str, Any] | None, tuning: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Rows for the verdict's table, or None when the recommendation carries no learned prediction. With the run's
    ``tuning``, a contender no trial of the study trained is marked unraced (a budget below the contenders, or a
    study whose places were taken)."""
    learned = (recommendation or {}).get("learned") or {}
    textbook = learned.get("textbook") or {}
    if not learned.get("applied"):  # the rule advised (with why), or a plugin's recommendation: nothing to show
        return {"applied": False, "why": learned["why"], "textbook": textbook.get("label")} if "why" in learned else None
    gains = learned.get("predicted_gain") or {}
    configs = learned.get("configs") or {}
    contenders = list(learned.get("contenders") or ())
    top = max(gains.values(), default=0.0)
    trained = {_label(t.get("params") or {}) for t in (tuning or {}).get("trials") or () if t.get("learning_curve")}
    rows, shown = [], set()
    for role in sorted(gains, key=lambda r: -gains[r]):  # two roles training one config: its best prediction shows
        config = (configs.get(role) or {}).get("label", role)
        if config in shown:
            continue
        shown.add(config)
        gain = float(gains[role])
        rows.append({"role": role, "config": config, "gain": f"{100 * gain:+.1f}", "behind": f"{100 * (top - gain):.1f}",
                     "pick": role == learned.get("pick"), "contender": role in contenders,
                     "race_order": contenders.index(role) + 1 if role in contenders else None,
                     "unraced": bool(tuning) and role in contenders and config not in trained})
    fitted = learned.get("provenance") or {}
    source = (f"{len(fitted.get('tasks') or ())} tasks, {fitted.get('backbone', '?')} at {fitted.get('image_size', '?')} px, "
              f"seeds {', '.join(str(s) for s in fitted.get('seeds') or ())}; grid {fitted.get('grid_settings_key', '?')}, "
              f"commit {fitted.get('code_and_units_commit', '?')}")
    margin = f"{100 * float(learned.get('margin') or 0):.1f}"
    return {"applied": True, "method": learned.get("method"), "rows": rows, "margin": margin,
            "racing": len(contenders) > 1, "outside": list(learned.get("outside") or ()), "source": source,
            "textbook": textbook.get("label"), "pick": learned.get("pick_config")}


def _label(params: dict[str, Any]) -> str:
    strategy = str(params.get("strategy"))
    return f"{strategy}@{params.get('freeze_depth')}" if strategy == "partial_freeze" else strategy
