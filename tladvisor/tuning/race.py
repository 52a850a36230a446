"""The race among the learned prior's contenders: the study's first trials, stopped early where they lose.

The contenders (:func:`tladvisor.advice.learned.advise`) train one after another, best predicted first, each on
its own full schedule. At each *rung* (``min_epochs`` x ``eta``^j epochs) a contender stops unless its best
validation accuracy so far is among the top ``max(1, n // eta)`` of the ``n`` contenders that reached that rung
(itself included): successive halving run asynchronously (Li et al. 2020, ASHA), so the first contender always
trains to its end and a later one trains on only while it keeps up. The winner is the contender with the best
validation accuracy among those that finished.

:func:`survives` is the rule, used by :class:`RacePruner` in a study and by the benchmark that replays the race
on stored learning curves (benchmarks/advice/loto.py), so the evaluated race and the shipped one follow the same
rule; they differ in their schedules (the grid's curves span 30 epochs, judged at 2, 4, 8 and 16; the product's
trials train 8 or 12, judged at 2 and 4, or 2, 4 and 8) and in their rates (the grid's chosen on validation,
the product's its defaults).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from tladvisor.tuning.results import DEADLINE, STOPPED_BY

RACE = "race"  # the user attr "source" of a contender's trial; the first contender is the recommendation
MIN_EPOCHS = 2  # the first rung: both epochs of the learning-rate warm-up
ETA = 2  # each rung keeps the top half


def rungs(epochs: int, min_epochs: int = MIN_EPOCHS, eta: int = ETA) -> list[int]:
    """The epoch counts at which a contender of ``epochs`` epochs is judged (its last epoch never is)."""
    out, budget = [], max(1, int(min_epochs))
    while budget < epochs:
        out.append(budget)
        budget *= eta
    return out


def survives(score: float, peer_scores: Sequence[float], eta: int = ETA) -> bool:
    """Whether a contender with ``score`` at a rung goes on, given the scores there of the contenders that
    reached it before (``peer_scores``): it must be among the top ``max(1, n // eta)`` of all ``n``; ties
    favour the contender already running."""
    if not math.isfinite(score):
        return False
    n = len(peer_scores) + 1
    better = sum(1 for p in peer_scores if math.isfinite(p) and p > score)
    return better < max(1, n // eta)


@dataclass(frozen=True)
class Replay:
    winner: str
    epochs: dict[str, int]  # contender -> epochs it trained before it stopped (or finished)
    overhead: float  # the cost of every epoch trained except the winner's own full run


def replay(contenders: Sequence[str], curves: Mapping[str, Sequence[float]], epoch_cost: Mapping[str, float],
           min_epochs: int = MIN_EPOCHS, eta: int = ETA) -> Replay:
    """The race on stored validation curves (one per contender, per epoch, its full schedule): which contender
    wins and what the race cost beyond training the winner once. A contender is a peer at a rung only where it
    was judged itself (a rung before its last epoch), as in :class:`RacePruner`."""
    if not contenders:
        raise ValueError("no contenders to race")
    reached: dict[int, list[float]] = {}  # rung -> best-so-far of each contender judged there
    trained, finished = {}, []
    for name in contenders:
        curve = list(curves[name])
        stopped = None
        for rung in rungs(len(curve), min_epochs, eta):
            score = best_of(curve[:rung])
            peers = reached.setdefault(rung, [])
            keep = survives(score, peers, eta)
            peers.append(score)
            if not keep:
                stopped = rung
                break
        trained[name] = stopped or len(curve)
        if stopped is None:
            finished.append(name)
    winner = max(finished, key=lambda c: (best_of(curves[c]), -contenders.index(c)))
    cost = sum(epoch_cost[c] * trained[c] for c in contenders) - epoch_cost[winner] * trained[winner]
    return Replay(winner, trained, cost)


def best_of(values: Sequence[float]) -> float:
    """The best finite value (-inf when there is none)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return max(finite) if finite else -math.inf


class RacePruner(optuna.pruners.BasePruner):
    """:func:`survives` at each rung for the race's trials (user attr ``source`` "race" or "recommendation");
    every other trial is judged by ``fallback``.

    A contender's place in the race is its user attr ``race_position`` (the recommendation is 0), not its trial
    number: a rerun that queues the recommendation again keeps its place. Only contenders of the same race
    (user attr ``race_id``, one per recommendation) are peers. Its peers at a rung are the contenders
    placed before it that were judged there (finished, running or stopped by the race, not cut short by a failure
    or the deadline, and a rung before their own last epoch), as in :func:`replay`."""

    def __init__(self, fallback: optuna.pruners.BasePruner, min_epochs: int = MIN_EPOCHS, eta: int = ETA):
        self.fallback, self.min_epochs, self.eta = fallback, min_epochs, eta

    @staticmethod
    def racing(trial: FrozenTrial) -> bool:
        return trial.user_attrs.get("source") in (RACE, "recommendation")

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if not self.racing(trial):
            return self.fallback.prune(study, trial)
        judged = self.judged(study, trial)
        return judged is not None and not survives(judged[0], judged[1], self.eta)

    def judged(self, study: optuna.Study, trial: FrozenTrial) -> tuple[float, list[float]] | None:
        """(this contender's best so far, its peers' at the same epoch) when its last epoch is a rung before its
        planned last epoch, else None."""
        step = trial.last_step
        if step is None or not self.judged_at(trial, step + 1):  # steps are 0-based epochs
            return None
        position = place(trial)
        peers = [best_of([v for s, v in t.intermediate_values.items() if s <= step])
                 for t in study.get_trials(deepcopy=False)
                 if t.number != trial.number and self.racing(t) and place(t) < position
                 and t.user_attrs.get("race_id") == trial.user_attrs.get("race_id")
                 and t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
                 and t.user_attrs.get(STOPPED_BY) != DEADLINE and step in t.intermediate_values
                 and self.judged_at(t, step + 1)]
        return best_of([v for s, v in trial.intermediate_values.items() if s <= step]), peers

    def judged_at(self, trial: FrozenTrial, epochs: int) -> bool:
        """Whether ``trial`` is judged after ``epochs`` epochs: a rung before its planned last epoch."""
        return epochs in rungs(planned_epochs(trial), self.min_epochs, self.eta)

    def reason(self, study: optuna.Study, trial: FrozenTrial) -> str | None:
        """Why the race stopped ``trial`` (None when it is not a race trial judged at this epoch)."""
        judged = self.judged(study, trial) if self.racing(trial) else None
        if judged is None:
            return None
        score, peers = judged
        keep = max(1, (len(peers) + 1) // self.eta)
        return (f"stopped by the race at epoch {trial.last_step + 1}: best val accuracy {score:.3f} is not among "
                f"the top {keep} of the {len(peers) + 1} contenders at that epoch (best {max(peers, default=score):.3f})")


def place(trial: FrozenTrial) -> float:
    """A race trial's position (``race_position``; the recommendation, queued without one, is first)."""
    if "race_position" in trial.user_attrs:
        return float(trial.user_attrs["race_position"])
    return 0.0 if trial.user_attrs.get("source") == "recommendation" else float(trial.number)


def planned_epochs(trial: FrozenTrial) -> int:
    """The epochs a trial was planned to train (its parameters; unbounded when unknown)."""
    resolved = trial.user_attrs.get("params")
    epochs = (resolved if isinstance(resolved, dict) else {}).get("epochs", trial.params.get("epochs"))
    return int(epochs) if isinstance(epochs, (int, float)) and epochs > 0 else 1 << 30
