"""The race among the learned prior's contenders: the study's first trials, stopped early where they lose.

The contenders (:func:`tladvisor.advice.learned.advise`) train one after another, best predicted first, each on
its own full schedule. At each *rung* (``min_epochs`` x ``eta``^j epochs) a contender stops unless its best
validation accuracy so far is among the top ``max(1, n // eta)`` of the ``n`` contenders that reached that rung
(itself included): successive halving run asynchronously (Li et al. 2020, ASHA), so the first contender always
trains to its end and a later one trains on only while it keeps up. The winner is the contender with the best
validation accuracy among those that finished.

:func:`survives` is the rule, used by :class:`RacePruner` in a study and by the benchmark that replays the race
on stored learning curves (benchmarks/advice/loto.py), so the evaluated race and the shipped one are the same.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

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
    wins and what the race cost beyond training the winner once."""
    if not contenders:
        raise ValueError("no contenders to race")
    reached: dict[int, list[float]] = {}  # rung -> best-so-far of each contender that reached it
    trained, finished = {}, []
    for name in contenders:
        curve = list(curves[name])
        stopped = None
        for rung in rungs(len(curve), min_epochs, eta):
            score = max(curve[:rung])
            peers = reached.setdefault(rung, [])
            keep = survives(score, peers, eta)
            peers.append(score)
            if not keep:
                stopped = rung
                break
        trained[name] = stopped or len(curve)
        if stopped is None:
            finished.append(name)
    winner = max(finished, key=lambda c: (max(curves[c]), -contenders.index(c)))
    cost = sum(epoch_cost[c] * trained[c] for c in contenders) - epoch_cost[winner] * trained[winner]
    return Replay(winner, trained, cost)


class RacePruner(optuna.pruners.BasePruner):
    """:func:`survives` at each rung for the race's trials (user attr ``source`` "race" or "recommendation");
    every other trial is judged by ``fallback``."""

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
        """(this contender's best so far, the earlier contenders' at the same epoch) when its last epoch is a
        rung, else None."""
        step = trial.last_step
        if step is None or step + 1 not in rungs(step + 2, self.min_epochs, self.eta):  # steps are 0-based epochs
            return None
        peers = [_best_until(t, step) for t in study.get_trials(deepcopy=False)
                 if t.number < trial.number and self.racing(t) and step in t.intermediate_values
                 and t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)]
        return _best_until(trial, step), peers

    def reason(self, study: optuna.Study, trial: FrozenTrial) -> str | None:
        """Why the race stopped ``trial`` (None when it is not a race trial judged at this epoch)."""
        judged = self.judged(study, trial) if self.racing(trial) else None
        if judged is None:
            return None
        score, peers = judged
        keep = max(1, (len(peers) + 1) // self.eta)
        return (f"stopped by the race at epoch {trial.last_step + 1}: best val accuracy {score:.3f} is not among "
                f"the top {keep} of the {len(peers) + 1} contenders at that epoch (best {max(peers, default=score):.3f})")


def _best_until(trial: FrozenTrial, step: int) -> float:
    values = [v for s, v in trial.intermediate_values.items() if s <= step and v is not None and math.isfinite(v)]
    return max(values) if values else -math.inf
