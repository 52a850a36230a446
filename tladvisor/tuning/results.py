"""From the Optuna study to the :class:`tladvisor.records.TuningResult` the report shows."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tladvisor.records import TrialRecord, TuningResult
from tladvisor.advice.recommend import smallest_gap_told_apart
from tladvisor.tuning.imbalance import METRICS
from tladvisor.tuning.paired_test import ALPHA, CORRECTNESS_ATTR, paired_verdict

log = logging.getLogger(__name__)

MIN_TRIALS_FOR_IMPORTANCE = 4  # below this the importance estimate is noise
# The trials' user attributes the study code writes and the report reads, named once here (this module
# imports nothing of the study package, so both sides import them without a cycle).
NOT_RUN = "not_run"  # user attr of a trial that lost the race for the last slots and never trained
STOPPED_BY = "stopped_by"  # user attr: DEADLINE for a trial the --timeout deadline stopped
DEADLINE = "timeout"


def trial_params(trial: FrozenTrial) -> dict[str, Any]:
    """The parameters the trial trained with (resolved by the search space), else Optuna's drawn ones."""
    return dict(trial.user_attrs.get("params") or trial.params)


def trial_record(trial: FrozenTrial) -> TrialRecord:
    duration = trial.user_attrs.get("duration")
    if duration is None and trial.duration is not None:
        duration = trial.duration.total_seconds()
    return TrialRecord(
        number=trial.number,
        state=trial.state.name,
        value=trial.value if trial.state == TrialState.COMPLETE else None,
        params=trial_params(trial),
        duration_s=None if duration is None else float(duration),
        reason=trial.user_attrs.get("reason"),
        learning_curve=learning_curve(trial),
        metrics={name: float(trial.user_attrs[name]) for name in METRICS
                 if isinstance(trial.user_attrs.get(name), (int, float))},
        folds=trial.user_attrs.get("folds") if isinstance(trial.user_attrs.get("folds"), dict) else None,
    )


def learning_curve(trial: FrozenTrial) -> tuple[float, ...]:
    """Validation accuracy per epoch; from the reported values when the trial never finished."""
    curve = trial.user_attrs.get("learning_curve")
    if curve is None:
        curve = [trial.intermediate_values[step] for step in sorted(trial.intermediate_values)]
    return tuple(float(v) for v in curve)


def best_complete(trials: list[FrozenTrial]) -> FrozenTrial | None:
    """Highest validation accuracy; the earliest trial wins a tie (it is the one whose model was saved)."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    return max(complete, key=lambda t: (t.value, -t.number)) if complete else None


def best_by_strategy(trials: list[FrozenTrial]) -> dict[str, int]:
    best: dict[str, FrozenTrial] = {}
    for trial in trials:
        if trial.state != TrialState.COMPLETE or trial.value is None:
            continue
        strategy = str(trial_params(trial).get("strategy"))
        current = best.get(strategy)
        if current is None or trial.value > current.value:
            best[strategy] = trial
    return {strategy: trial.number for strategy, trial in best.items()}


def param_importances(study: optuna.Study) -> dict[str, float]:
    """Optuna's importance estimate over complete trials; {} when too few or when it cannot be computed."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE or len({t.value for t in complete}) < 2:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importances = optuna.importance.get_param_importances(study)
    except Exception as error:  # conditional spaces with few trials can defeat the estimator
        log.info("parameter importances not computed: %s", error)
        return {}
    return {name: float(value) for name, value in importances.items()}


def config_label(params: dict[str, Any]) -> str:
    """``partial_freeze@4`` (the freeze depth only where the strategy has one), with the backbone."""
    strategy = str(params.get("strategy", "?"))
    label = f"{strategy}@{params.get('freeze_depth')}" if strategy == "partial_freeze" else strategy
    return f"{params['backbone']} {label}" if params.get("backbone") else label


def versus_advice(trials: list[FrozenTrial], scoring: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The advised config's trial against the best trial: did the search find something better?

    ``None`` when no trial was the advice (a study started outside ``analyze``). The advice's trial is
    the first COMPLETE trial enqueued from the recommendation (``source``); ``beats_advice`` is None while
    it has not completed, else whether the best trial's accuracy is strictly higher. A higher best trial
    is a win only when a paired test says so: exact McNemar on the validation images the two disagree
    on, Bonferroni-corrected for the trials the best was picked from (:mod:`tladvisor.tuning.paired_test`;
    ``test``, ``p_value``, ``p_adjusted``); otherwise it is ``within_noise``. Trials recorded without
    per-image correctness fall back to ``noise``, the gap ``scoring['images']`` validation images can tell
    apart (binomial, as in :func:`tladvisor.advice.recommend.smallest_gap_told_apart`), and say so (``test``).
    """
    advised = [t for t in trials if t.user_attrs.get("source") == "recommendation" and NOT_RUN not in t.user_attrs]
    if not advised:
        return None
    # The latest recommendation's race (an earlier analyze may have advised otherwise: its trials are search now)
    race_id = advised[-1].user_attrs.get("race_id")
    advised = [t for t in advised if t.user_attrs.get("race_id") == race_id]
    complete = [t for t in advised if t.state == TrialState.COMPLETE and t.value is not None]
    advice = complete[0] if complete else advised[-1]
    from tladvisor.tuning.race import RACE  # here: the race reads this module's deadline marks

    # The advice is the learned prior with its race (tladvisor.tuning.race): the best contender that finished is
    # its answer, and the search is every other trial.
    raced = [t for t in trials if t.user_attrs.get("source") == RACE and NOT_RUN not in t.user_attrs
             and t.user_attrs.get("race_id") == race_id]
    finished_race = [t for t in raced if t.state == TrialState.COMPLETE and t.value is not None]
    pick = advice
    if advice in complete and finished_race:
        advice = max([advice, *finished_race], key=lambda t: (t.value, -t.number))
        complete = [*complete, *finished_race]
    who, ahead = "the advised config", ""
    if advice is not pick:
        who = "the advice's race winner"
        ahead = f" (its pick, trial #{pick.number} {config_label(trial_params(pick))}, reached {pick.value:.3f})"
    best = best_complete(trials)
    view: dict[str, Any] = {
        "advice_trial": advice.number, "advice_state": advice.state.name,
        "advice_value": advice.value if advice in complete else None,
        "advice_params": trial_params(advice),
        "best_trial": best.number if best else None, "best_value": best.value if best else None,
        "best_params": trial_params(best) if best else None,
        "beats_advice": None, "gain": None, "noise": None, "within_noise": None,
        "test": None, "p_value": None, "p_adjusted": None,
    }
    # Trials the deadline stopped, the advice's own earlier attempts aside (its re-run is what is compared).
    stopped = [t for t in trials if t.user_attrs.get(STOPPED_BY) == DEADLINE and t.number != advice.number
               and t.user_attrs.get("source") != "recommendation"]
    # The best was picked among every other finished trial (pruned ones too: they were judged on the same
    # images); one the deadline stopped did not finish.
    race_numbers = {t.number for t in raced} | {t.number for t in advised}
    searched = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                and t.number not in race_numbers and t.user_attrs.get(STOPPED_BY) != DEADLINE]
    rivals, pruned = len(searched), sum(t.state == TrialState.PRUNED for t in searched)
    if advice not in complete:
        found = (f"; the best so far is trial #{best.number} ({config_label(trial_params(best))}) at {best.value:.3f}"
                 if best else "")
        how = ("stopped by the --timeout deadline; the next run tries it again"
               if advice.user_attrs.get(STOPPED_BY) == DEADLINE else advice.state.name.lower())
        view["summary"] = (f"The advised config (trial #{advice.number}) did not finish ({how}), so tuning cannot "
                           f"say yet whether the search beat it{found}.")
        return view
    view["beats_advice"] = best is not None and best.number != advice.number and best.value > advice.value
    scored = _folds_note(best if view["beats_advice"] else advice)
    images = (scoring or {}).get("images")
    unit = (scoring or {}).get("unit", "images")
    if isinstance(images, int) and images > 0:
        level = min(max((advice.value + (best.value if best is not None else advice.value)) / 2, 0.0), 1.0)
        view["noise"] = round(smallest_gap_told_apart(images, accuracy=level), 6)
    if view["beats_advice"]:
        gain = best.value - advice.value
        view["gain"] = round(gain, 6)
        compared = (f"trial #{best.number} ({config_label(trial_params(best))}) reached validation accuracy "
                    f"{best.value:.3f} against {advice.value:.3f} for {who} (trial #{advice.number}, "
                    f"{config_label(trial_params(advice))}){ahead}, {100 * gain:+.1f} points"
                    f"{' over the winner' if ahead else ''}{scored}")
        paired = paired_verdict(str(advice.user_attrs.get(CORRECTNESS_ATTR) or ""),
                                str(best.user_attrs.get(CORRECTNESS_ATTR) or ""), rivals)
        if paired is not None:
            view.update({"test": "exact McNemar, Bonferroni-corrected", "p_value": float(f"{paired.p_value:.6g}"),
                         "p_adjusted": float(f"{paired.p_adjusted:.6g}"), "within_noise": not paired.significant})
            if paired.significant:
                view["summary"] = f"Tuning beat the advice: {compared}; {paired.text(unit)}."
            else:
                view["summary"] = (f"Tuning matched the advice within noise: {compared}, not a significant "
                                   f"difference ({paired.text(unit)}; a win needs below {ALPHA}).")
        else:
            view["test"] = "binomial bound (no per-image record)"
            view["within_noise"] = view["noise"] is not None and gain < view["noise"]
            if view["within_noise"]:
                view["summary"] = (f"Tuning matched the advice within noise: {compared}, less than the "
                                   f"{100 * view['noise']:.1f} points {images} validation {unit} can tell apart.")
            else:
                view["summary"] = f"Tuning beat the advice: {compared}."
    else:
        view["gain"] = 0.0
        stopped_early = f" ({pruned} of them pruned)" if pruned and rivals > 1 else " (pruned)" if pruned else ""
        rivals_text = ("no search trial has finished yet" if rivals == 0 else
                       f"the one search trial{stopped_early} did not beat it" if rivals == 1 else
                       f"none of the {rivals} search trials{stopped_early} beat it")
        view["summary"] = (f"The advice held: {who} (trial #{advice.number}, "
                           f"{config_label(trial_params(advice))}) reached validation accuracy "
                           f"{advice.value:.3f}{ahead}{scored} and {rivals_text}.")
    if stopped:
        view["summary"] += " " + _stopped_note(stopped)
    return view


def _stopped_note(stopped: list[FrozenTrial]) -> str:
    """Trials the deadline stopped are neither beaten nor winners: they did not finish. Say so, with the
    best epoch each reached before it stopped."""
    parts = []
    for trial in stopped:
        curve = learning_curve(trial)
        reached = (f", its best epoch so far at {max(curve):.3f} after {len(curve)} epoch{'s' * (len(curve) != 1)}"
                   if curve else ", before its first epoch ended")
        parts.append(f"trial #{trial.number} ({config_label(trial_params(trial))}) was stopped by the --timeout "
                     f"deadline before it finished{reached}")
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + " (not compared: it did not finish)."


def _folds_note(trial: FrozenTrial) -> str:
    """`` (mean over 3 folds, 12 images validated in all, standard error 0.083)`` for a cross-validated trial,
    else nothing."""
    from tladvisor.tuning.folds import fold_standard_error

    folds = trial.user_attrs.get("folds")
    if not isinstance(folds, dict) or not folds.get("k"):
        return ""
    return (f" (mean over {folds['k']} folds, {folds.get('images')} {folds.get('unit', 'images')} validated in all, "
            f"standard error {fold_standard_error(folds):.3f})")


def summary_lines(result: TuningResult) -> list[str]:
    """What the terminal says after tuning: the advice against the best trial, and why tuning stopped."""
    lines = []
    if result.versus_advice and result.versus_advice.get("summary"):
        lines.append(result.versus_advice["summary"])
    if result.stop_reason:
        lines.append(f"Tuning stopped: {result.stop_reason}.")
    return lines
