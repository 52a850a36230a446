"""Every hook of the tladvisor pipeline, grouped by stage. The docstring of each hook is its contract.

Hooks are called with keyword arguments only; new arguments are only ever appended, so a plugin may
accept just the ones it needs (pluggy passes only the arguments an implementation names).
``PluginHost.call(hook, **kwargs)`` honours each spec's ``firstresult``. Hook wrappers are refused at
registration (the host calls implementations one by one, to isolate a failing plugin).

Why the host calls implementations itself instead of ``pluggy``'s ``hook.<name>(...)``: pluggy's call loop
stops at the first exception, so one broken third-party plugin (a measure that raises, a report section
that fails) would lose every other plugin's result and the run with it. ``PluginHost.call_each`` and
``call_first`` walk pluggy's registered implementations in pluggy's order and record a failing plugin as a
``PluginFailure`` (shown in the report) while the others go on; a ``TLAdvisorError`` (the user's mistake,
not the plugin's) still stops the run with its one line. The price: pluggy's hook wrappers, its
``historic`` calls and its tracing do not apply, and a plugin that calls ``host.hook.<name>(...)``
directly gets pluggy's loop, without that isolation.

Data flow: load -> profile -> (register backbones) -> embed -> measure -> recommend -> tune -> report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from tladvisor import PROJECT_NAME

if TYPE_CHECKING:  # annotations only: importing these at run time would be a cycle (plugins -> hookspecs)
    import optuna

    from tladvisor.backbones import BackboneSpec
    from tladvisor.plugins import PluginHost
    from tladvisor.records import (AnalysisOptions, AnalysisRun, BackboneMeasurement, Dataset, DatasetProfile,
                                   FeatureSet, Recommendation, ReportSection, Score, TuneRequest, TuningResult)
    from tladvisor.strategies import Strategy

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


# --- load -------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def load_dataset(source: Path, options: AnalysisOptions) -> Dataset | None:
    """Turn what the user pointed at into a :class:`tladvisor.records.Dataset`.

    Arguments: ``source`` (``pathlib.Path``: the folder or manifest file given on the command line),
    ``options`` (:class:`tladvisor.records.AnalysisOptions`).
    Return a ``Dataset``, or ``None`` when this loader does not recognise the source, so the next
    loader is tried. firstresult: the first loader that returns a dataset wins.
    Raise :class:`tladvisor.errors.DatasetError` when the source is recognised but unusable
    (for example a manifest with a path escaping its root): the message is shown as one line.
    Files that cannot be used are not errors: list them in ``Dataset.skipped`` with a reason.
    A dataset of texts has ``modality="text"`` and :class:`tladvisor.records.TextSample` samples (the text
    itself, its label, its origin); the rest of the pipeline then takes text backbones
    (``BackboneSpec.modality == "text"``) and tokenises instead of decoding.
    """


# --- profile ----------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def profile_dataset(dataset: Dataset, options: AnalysisOptions) -> DatasetProfile | None:
    """Describe a loaded dataset.

    Return a :class:`tladvisor.records.DatasetProfile`.
    Arguments: ``dataset`` (``Dataset``), ``options`` (``AnalysisOptions``).
    firstresult: the first profiler that returns a profile wins (the built-in one runs last).
    """


# --- backbones --------------------------------------------------------------------------------------


@hookspec
def register_backbones(register: Callable[[BackboneSpec], None]) -> None:
    """Offer backbones: call ``register(spec)`` once per :class:`tladvisor.backbones.BackboneSpec`.

    Arguments: ``register`` (a callable taking one ``BackboneSpec``). One plugin may register a
    whole model zoo. Return value is ignored. A name registered twice is reported as a plugin
    error naming both plugins; the first registration stands.
    """


@hookspec(firstresult=True)
def resolve_backbone(name: str) -> BackboneSpec | None:
    """Build the spec of a backbone asked for by a name no plugin registered (a model zoo too large to list).

    Arguments: ``name`` (``str``: what the user passed to ``--backbone``, or a measured backbone's
    name when tuning or predicting). Return a ``BackboneSpec`` whose ``name`` is the canonical form
    of ``name`` (the same backbone must resolve to the same spec name in every process), or ``None``
    when the name is not of this plugin's form, so the next plugin is tried. Raise
    :class:`tladvisor.errors.BackboneError` when the name is of this plugin's form but unknown.
    firstresult. Called only for names that ``register_backbones`` did not register; the spec is
    then kept in the registry under its name. The first line of the implementation's docstring is
    shown by ``tladvisor backbones`` as the names it accepts.
    """


# --- measure ----------------------------------------------------------------------------------------


@hookspec
def measure_backbone(backbone: BackboneSpec, features: FeatureSet, dataset: Dataset,
                     options: AnalysisOptions) -> dict[str, Score] | None:
    """Measure how well one backbone's frozen features fit the target data.

    Arguments: ``backbone`` (``BackboneSpec``), ``features`` (:class:`tladvisor.records.FeatureSet`:
    embeddings, labels, source-classifier probabilities and per-stage activation statistics of the
    target data, computed once per backbone), ``dataset`` (``Dataset``), ``options``
    (``AnalysisOptions``).
    Return a ``dict`` mapping a measure name to a :class:`tladvisor.records.Score`, or ``None``.
    Every plugin's scores are collected side by side (not firstresult); a name that two plugins
    both return is reported as a plugin error and the first one stands. A measure that cannot be
    computed (too few images, no source head) should be left out or returned as a ``Score`` whose
    ``detail`` says why, never raise for the others: an exception loses every score of that call.
    Built-in measure names are constants in :mod:`tladvisor.measures.names`; check a new measure plugin
    with :func:`tladvisor.testing.check_measure_plugin`.
    """


@hookspec(firstresult=True)
def summarise_similarity(backbone: BackboneSpec, scores: dict[str, Score], options: AnalysisOptions,
                         features: FeatureSet) -> Score | None:
    """Reduce one backbone's evidence to the summary similarity in [0, 1] (1 = like the source domain).

    Arguments: ``backbone`` (``BackboneSpec``), ``scores`` (``dict[str, Score]`` from
    ``measure_backbone``), ``options`` (``AnalysisOptions``), ``features`` (the ``FeatureSet``,
    whose ``stage_shift`` holds the per-stage BatchNorm shift).
    Return a ``Score`` whose ``value`` is in [0, 1] and whose ``spread`` is its uncertainty.
    firstresult.
    """


# --- recommend --------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def recommend(profile: DatasetProfile, measurements: list[BackboneMeasurement],
              options: AnalysisOptions) -> Recommendation | None:
    """Choose backbone, strategy, freeze depth and starting learning rates, and say why.

    Arguments: ``profile`` (``DatasetProfile``), ``measurements`` (list of
    :class:`tladvisor.records.BackboneMeasurement`, one per measured backbone), ``options``.
    Return a :class:`tladvisor.records.Recommendation` whose ``rationale`` cites numbers. Its ``learned`` may
    carry ``race``: contenders (``strategy``, ``freeze_depth``, ``learning_rates``, ``epochs``) queued after the
    recommendation as the study's first trials and raced (:mod:`tladvisor.tuning.race`); leave it empty for none.
    firstresult: a plugin returning a recommendation replaces the built-in advice (the learned gain prior's pick
    with the four-scenario rule beside it, :mod:`tladvisor.advice.learned`).
    """


# --- strategies -------------------------------------------------------------------------------------


@hookspec
def register_strategies(register: Callable[[Strategy], None]) -> None:
    """Offer transfer strategies: call ``register(strategy)`` once per :class:`tladvisor.strategies.Strategy`.

    Arguments: ``register`` (a callable taking one ``Strategy``). A strategy says whether it starts
    pretrained, which stages train (``freeze``) and which parameters in them (``trains``, e.g. only
    biases for BitFit), its starting rates and epochs, and its colour in the report. Every registered
    strategy is searched by the built-in search space, trained by the trainer and shown in the report.
    Return value is ignored. A name registered twice is reported as a plugin error naming both
    plugins; the first registration stands (the built-in tuning plugin registers the built-ins).
    """


# --- tune -------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def search_space(trial: optuna.Trial, recommendation: Recommendation, backbones: list[BackboneSpec],
                 options: AnalysisOptions, strategies: Mapping[str, Strategy]) -> dict[str, Any] | None:
    """Suggest one trial's hyper-parameters from an Optuna ``trial``.

    Arguments: ``trial`` (``optuna.Trial``), ``recommendation`` (``Recommendation``), ``backbones``
    (list of ``BackboneSpec`` that may be tried), ``options``.
    Arguments (appended): ``strategies`` (``Mapping[str, Strategy]``: the registry from
    ``register_strategies``, built-ins and plugins'; the ``strategy`` drawn must be one of its names).
    Return a ``dict`` of parameters (at least ``backbone``, ``strategy``, ``freeze_depth``,
    ``lr_head``, ``lr_backbone``, ``layer_decay``, ``weight_decay``, ``epochs``).
    firstresult: a plugin may replace the built-in search space.
    """


@hookspec(firstresult=True)
def tune(request: TuneRequest) -> TuningResult | None:
    """Run the hyper-parameter search and keep the best model.

    Argument: ``request`` (:class:`tladvisor.records.TuneRequest`): the dataset, the recommendation (the
    study's first trial), the backbones to search over, the options (the budget: ``options.trials``
    finished trials and/or ``options.timeout`` seconds, whichever ends first), the run's ``host`` (to call
    ``search_space`` through), and for ``tladvisor worker`` (:func:`tladvisor.tuning.worker.run_worker`,
    which tunes through this same hook) ``join``, ``max_trials`` and ``on_trial``. One hook, not a second
    one for workers: a plugin that replaces the tuner then replaces it on every worker too and cannot be
    half-replaced. For a worker, ``recommendation`` and the backbones come from the study's description,
    and ``options`` are the stored ones with this machine's data path, run folder and device; the worker
    reads that description as the built-in tuner stores it (:func:`tladvisor.tuning.study.description.
    describe_study`), so a plugin tuner meant for workers stores it too (or wraps ``Tuner``). Progress goes
    to :func:`tladvisor.runtime.progress.current`. Return the whole study's :class:`tladvisor.records.TuningResult`
    (every worker's trials; ``stop_reason`` says why the search stopped), or ``None`` to let the next tuner
    run. firstresult.
    """


@hookspec(firstresult=True)
def tuning_so_far(options: AnalysisOptions, connect: bool, host: PluginHost) -> TuningResult | None:
    """The study's trials as they are now, for the report of a run stopped (SIGINT/SIGTERM) before ``tune`` returned,
    and of an advice-only re-run (``connect`` False), which keeps the tuning its run folder holds.

    Arguments: ``options`` (``AnalysisOptions``: ``storage``, ``study_name`` and ``run_dir`` as ``tune``
    got them), ``connect`` (``bool``: False when the run stopped before tuning began; then read only a
    local file, never wait on a database server), ``host`` (the run's ``PluginHost``).
    Return a :class:`tladvisor.records.TuningResult`, or ``None`` (no study yet, storage unreachable).
    A plugin that implements ``tune`` implements this too, so a stopped run reports its own trials; the
    built-in one reads the Optuna study in ``options.storage``. Must not raise for a missing study.
    firstresult.
    """


# --- report -----------------------------------------------------------------------------------------


@hookspec
def report_sections(run: AnalysisRun | None, analysis: dict[str, Any]) -> list[ReportSection] | None:
    """Add sections to the HTML report.

    Arguments: ``run`` (:class:`tladvisor.records.AnalysisRun`, or ``None`` when the report is re-rendered
    from analysis.json: ``tladvisor report RUN`` and a tuning worker's refresh), ``analysis`` (appended:
    the ``dict`` that analysis.json holds, present in both cases). Build sections from ``analysis``, so
    a re-rendered report equals the first one; a section built from ``run`` alone is lost on re-render.
    Return a list of :class:`tladvisor.records.ReportSection` (or ``None``). Collected from every
    plugin; sections are ordered by their ``order`` field. ``html`` is inserted as is, so a
    plugin must escape what it takes from user data (``markupsafe.escape``).
    """


@hookspec
def write_report(run: AnalysisRun | None, out_dir: Path, sections: list[ReportSection],
                 analysis: dict[str, Any] | None) -> list[Path] | None:
    """Write the run's outputs into ``out_dir``.

    Arguments: ``run`` (``AnalysisRun``), ``out_dir`` (``pathlib.Path``, exists), ``sections`` (the
    collected ``ReportSection`` list). Return a list of the ``pathlib.Path`` written (or ``None``).
    Every writer runs (not firstresult): the built-in ones write ``analysis.json`` and ``index.html``.
    Writers must write atomically (temporary file, then rename).

    Arguments (appended): ``analysis`` (``dict`` or ``None``). A re-render (``tladvisor report RUN``, a
    worker adding its trials) calls this hook too, so every writer's output stays current: then ``run`` is
    ``None`` and ``analysis`` is the stored analysis.json (already on disk). On a first write ``analysis``
    is ``run``'s analysis as analysis.json will hold it, when the caller built it already, else ``None``
    (build it from ``run``: :func:`tladvisor.report.analysis_json.build_analysis`). A writer that
    needs the records returns ``None`` when ``run`` is ``None``. Only writers that name ``analysis`` are
    called on a re-render: one written for the earlier contract is left alone there.
    """
