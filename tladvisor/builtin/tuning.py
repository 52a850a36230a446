"""Built-in plugin: the strategies, the Optuna search space and the tuner (the work lives in
:mod:`tladvisor.strategies` and :mod:`tladvisor.tuning`)."""

from __future__ import annotations

from tladvisor import hookimpl
from tladvisor.strategies import BUILT_IN_STRATEGIES
from tladvisor.tuning.search import suggest_params


@hookimpl(trylast=True)
def register_strategies(register):
    """The built-in strategies: feature extraction, partial freeze, full fine-tune, from scratch, LP-FT."""
    for strategy in BUILT_IN_STRATEGIES.values():
        register(strategy)


@hookimpl(trylast=True)
def search_space(trial, recommendation, backbones, options, strategies=None):
    """Backbone, strategy (every registered one), freeze depth, learning rates, weight decay and epochs."""
    return suggest_params(trial, recommendation, backbones, options, strategies=strategies)


@hookimpl(trylast=True)
def tune(request):
    """Continue (or start) the study in ``options.storage`` until it holds ``options.trials`` finished trials
    or ``options.timeout`` seconds have passed, whichever comes first (either alone is the whole budget)."""
    options = request.options
    if not request.join and options.trials <= 0 and not options.timeout:
        return None
    from tladvisor.tuning.study import Tuner  # torch training code: imported only when tuning runs

    # join (tladvisor worker): take part in the study analyze described, with its heartbeat settings.
    make = Tuner.joining if request.join else Tuner
    return make(options, host=request.host, max_trials=request.max_trials, on_trial=request.on_trial).run(
        request.dataset, request.recommendation, list(request.backbones), join=request.join)


@hookimpl(trylast=True)
def tuning_so_far(options, connect, host=None):
    """The built-in tuner's study as it is now (for the report of an interrupted run), or None."""
    from tladvisor.tuning.study.result import study_so_far

    return study_so_far(options, connect=connect)
