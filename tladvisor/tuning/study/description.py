"""What a study holds for its workers: the description ``tladvisor analyze`` stores in its ``user_attrs``
(options with the budget, recommendation, backbones, data fingerprint, heartbeat settings) and reading it back."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import optuna

from tladvisor import __version__
from tladvisor.backbones import BackboneSpec
from tladvisor.errors import TLAdvisorError
from tladvisor.records import AnalysisOptions, Dataset, Recommendation, to_jsonable
from tladvisor.tuning.search import backbone_choices
from tladvisor.tuning.study.storage import display_url, storage_url

# Study user_attrs: what a worker on another machine needs to join (written by Tuner.describe).
ATTR_FORMAT = "tladvisor_study_format"
ATTR_OPTIONS = "options"
ATTR_RECOMMENDATION = "recommendation"
ATTR_BACKBONES = "backbones"
ATTR_DATASET = "dataset"
ATTR_HEARTBEAT = "heartbeat"
ATTR_STRATEGIES = "strategies"
STUDY_FORMAT = 1


_PATH_OPTIONS = ("source", "out_dir", "cache_dir", "source_sample", "plugins_dir", "run_dir", "image_root")


def dataset_fingerprint(dataset: Dataset) -> str:
    """Classes, and every image's path (relative to the root), label and content hash: the same data
    mounted elsewhere has the same fingerprint, a different copy does not."""
    root = Path(dataset.root)

    def relative(path: Path) -> str:
        try:
            return Path(path).relative_to(root).as_posix()
        except ValueError:
            return Path(path).name

    from tladvisor.features.embed import sample_key  # a text's exact content (its digest ignores case and punctuation)

    digest = hashlib.sha256("\x1f".join(dataset.classes).encode())
    named = ((f"{relative(s.path)} {getattr(s, 'origin', '')}".rstrip(), s) for s in dataset.samples)
    for name, sample in sorted(named, key=lambda pair: pair[0]):
        content = sample_key(sample) if getattr(sample, "text", None) is not None else sample.digest
        digest.update(f"\x1e{name}\x1f{sample.label}\x1f{sample.split}\x1f{content}".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class StudyDescription:
    """What :meth:`Tuner.describe` stored in a study: everything a worker needs to join it."""

    options: AnalysisOptions
    recommendation: Recommendation
    backbones: tuple[str, ...]
    dataset: dict[str, Any]  # root, n_samples, n_classes, classes, fingerprint
    heartbeat_interval: int | None
    grace_period: int | None
    strategies: tuple[str, ...] = ()  # the strategy registry's names, in the search space's order

    @property
    def budget(self) -> int:
        return self.options.trials


def options_from_json(data: dict[str, Any]) -> AnalysisOptions:
    known = {f.name for f in fields(AnalysisOptions)}
    values = {key: value for key, value in data.items() if key in known}
    for key in _PATH_OPTIONS:
        if values.get(key) is not None:
            values[key] = Path(values[key])
    values["backbones"] = tuple(values.get("backbones") or ())
    return AnalysisOptions(**values)


def recommendation_from_json(data: dict[str, Any]) -> Recommendation:
    known = {f.name for f in fields(Recommendation)}
    values = {key: value for key, value in data.items() if key in known}
    for key in ("rationale", "ranking", "warnings"):
        values[key] = tuple(values.get(key) or ())
    return Recommendation(**values)


def read_description(study: optuna.Study) -> StudyDescription:
    """The description a ``tladvisor analyze`` run stored in ``study``; a one-line error when there is none."""
    attrs = study.user_attrs
    if not isinstance(attrs.get(ATTR_OPTIONS), dict) or not isinstance(attrs.get(ATTR_RECOMMENDATION), dict):
        raise TLAdvisorError(f"study '{study.study_name}' was not started by `tladvisor analyze` (it holds no "
                             "options or recommendation); start it with tladvisor analyze DATA --trials N "
                             "--storage URL --study NAME")
    if int(attrs.get(ATTR_FORMAT, STUDY_FORMAT)) > STUDY_FORMAT:
        raise TLAdvisorError(f"study '{study.study_name}' was written by a newer tladvisor "
                             f"({attrs.get('tladvisor_version')}); upgrade tladvisor on this machine")
    heartbeat = attrs.get(ATTR_HEARTBEAT) or {}
    return StudyDescription(
        options=options_from_json(attrs[ATTR_OPTIONS]),
        recommendation=recommendation_from_json(attrs[ATTR_RECOMMENDATION]),
        backbones=tuple(attrs.get(ATTR_BACKBONES) or ()),
        dataset=dict(attrs.get(ATTR_DATASET) or {}),
        heartbeat_interval=heartbeat.get("interval"), grace_period=heartbeat.get("grace"),
        strategies=tuple(attrs.get(ATTR_STRATEGIES) or ()))



def describe_study(study: optuna.Study, options: AnalysisOptions, dataset: Dataset, recommendation: Recommendation,
                   backbones: Sequence[BackboneSpec], *, heartbeat_interval: int | None,
                   grace_period: int | None, strategies: Sequence[str] = ()) -> None:
    """Store in the study what a worker needs to join it (options with the budget, advice, data)."""
    stored_options = to_jsonable(options)
    stored_options["storage"] = display_url(storage_url(options))  # never the password
    for key in _PATH_OPTIONS:  # absolute: a worker starts from another folder, maybe another machine
        if stored_options.get(key) is not None:
            stored_options[key] = str(Path(stored_options[key]).expanduser().resolve())
    attrs = {
        ATTR_FORMAT: STUDY_FORMAT,
        "tladvisor_version": __version__,
        ATTR_OPTIONS: stored_options,
        ATTR_RECOMMENDATION: to_jsonable(recommendation),
        ATTR_BACKBONES: backbone_choices(backbones),
        ATTR_DATASET: {"root": str(Path(dataset.root).resolve()), "n_samples": len(dataset.samples),
                       "n_classes": len(dataset.classes), "classes": list(dataset.classes),
                       "fingerprint": dataset_fingerprint(dataset)},
        ATTR_HEARTBEAT: {"interval": heartbeat_interval, "grace": grace_period},
        ATTR_STRATEGIES: list(strategies),
    }
    for key, value in attrs.items():
        if study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)


def stored_budget(study: optuna.Study, options: AnalysisOptions) -> int:
    """The study's budget as stored now (a later ``analyze --trials N`` may raise it), else the options'."""
    stored = study.user_attrs.get(ATTR_OPTIONS)
    if isinstance(stored, dict) and isinstance(stored.get("trials"), int):
        return stored["trials"]
    return options.trials


def check_same_backbones(study: optuna.Study, backbones: Sequence[BackboneSpec]) -> None:
    """A one-line error when the study was searched over other backbones than ``backbones``."""
    choices = backbone_choices(backbones)
    for trial in study.get_trials(deepcopy=False):
        stored = trial.distributions.get("backbone")
        if stored is not None and list(stored.choices) != choices:
            raise TLAdvisorError(
                f"study '{study.study_name}' was searched over backbones {list(stored.choices)}, not {choices}; "
                "use the same --backbones or another --study name")


def check_same_strategies(study: optuna.Study, strategies: Sequence[str]) -> None:
    """A one-line error when the study was searched over other strategies than ``strategies`` (the registry's
    names, in order): Optuna would refuse every trial's ``strategy`` draw, each one a FAIL trial.

    The study's list is the one its trials drew from, else the one ``analyze`` stored (a study none of whose
    trials has drawn yet); a study that holds neither is not checked.
    """
    names = list(strategies)
    stored = next((list(trial.distributions["strategy"].choices) for trial in study.get_trials(deepcopy=False)
                   if "strategy" in trial.distributions), None)
    if stored is None and isinstance(study.user_attrs.get(ATTR_STRATEGIES), list):
        stored = list(study.user_attrs[ATTR_STRATEGIES])
    if not stored or stored == names:
        return
    differences = []
    missing = [name for name in stored if name not in names]
    extra = [name for name in names if name not in stored]
    if missing:
        differences.append(f"missing here: {', '.join(missing)} (load the plugin that registers them)")
    if extra:
        differences.append(f"not in the study: {', '.join(extra)}")
    raise TLAdvisorError(f"study '{study.study_name}' was searched over other strategies than this process has ("
                         + ("; ".join(differences) or "the same ones in another order")
                         + "); use a new --study to search these strategies")
