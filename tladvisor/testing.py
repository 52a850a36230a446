"""Helpers for tests and plugin authors: a tiny backbone, and conformance checks for any backbone and any
measure plugin."""

from __future__ import annotations

import re

import torch
from torch import nn

from tladvisor.backbones import BackboneSpec, Preprocessing, Stage
from tladvisor.text import one_line
from tladvisor.modeling import (EmbeddingReader, freeze_stages, member_parameters, replace_head, resolve_member,
                                stage_parameters)


class TinyConvNet(nn.Module):
    """A 3-stage conv net with BatchNorm and a 10-class source head: fast enough for any test."""

    def __init__(self, width: int = 8, n_source_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.block1 = nn.Sequential(nn.Conv2d(width, width * 2, 3, stride=2, padding=1),
                                    nn.BatchNorm2d(width * 2), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv2d(width * 2, width * 4, 3, stride=2, padding=1),
                                    nn.BatchNorm2d(width * 4), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width * 4, n_source_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.block2(self.block1(self.stem(x)))).flatten(1))


def tiny_backbone_spec(name: str = "tiny_cnn", width: int = 8, input_size: int = 32, seed: int = 0) -> BackboneSpec:
    """A BackboneSpec around :class:`TinyConvNet`. 'Pretrained' weights are a fixed seeded init."""

    def build(pretrained: bool) -> nn.Module:
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed if pretrained else seed + 1)
        model = TinyConvNet(width)
        torch.random.set_rng_state(generator_state)
        return model

    return BackboneSpec(
        name=name,
        build=build,
        stages=(Stage("stem", ("stem",)), Stage("block1", ("block1",)), Stage("block2", ("block2",))),
        head="fc",
        feature_dim=width * 4,
        preprocessing=Preprocessing(input_size=input_size, resize_size=input_size),
        source_domain="seeded random init (tests only)",
        source_classes=10,
        license="Apache-2.0",
        weights_id=f"tiny-seed{seed}-w{width}",
        weights_location="(built in code)",
        weights_available=lambda: True,
        description="Tiny test backbone",
    )


# --- conformance checks ------------------------------------------------------------------------------
# A plugin author runs these on a new BackboneSpec: every problem the rest of tladvisor would trip over
# later (freezing the wrong layers, a head it cannot swap, an embedding of the wrong size) shows up
# here as one line, before any dataset is involved.

IDENTIFIER_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]*$")  # used in cache keys and file names
N_TARGET_CLASSES = 3  # any small number different from the usual source class counts
MAX_NAMES_SHOWN = 5


def check_backbone(spec: BackboneSpec, *, image_size: int | None = None, pretrained: bool = False,
                   batch_size: int = 2) -> list[str]:
    """Every way ``spec`` breaks the backbone contract, one line each; an empty list means it conforms.

    ``image_size`` is the input size to test at (the native one when None, or when the spec has a
    fixed input size); ``pretrained=False`` builds with random weights so no download is needed.
    """
    problems = _check_fields(spec)
    if problems:
        return problems  # a malformed spec would make the model checks fail for unrelated reasons
    try:
        model = spec.build(pretrained)
    except Exception as error:
        return [f"{spec.name}: build({pretrained}) raised {one_line(error)}"]
    if not isinstance(model, nn.Module):
        return [f"{spec.name}: build({pretrained}) returned {type(model).__name__}, not an nn.Module"]
    model.eval()  # BatchNorm in training mode fails on a batch of one and would update its statistics

    problems += _check_member_paths(spec, model)
    if problems:
        return problems  # ownership and freezing cannot be judged with paths that do not resolve
    ownership_problems = _check_ownership(spec, model)
    problems += ownership_problems
    problems += _check_forward(spec, model, image_size, batch_size)
    if not ownership_problems:  # with a parameter missing or shared, freezing is wrong for that reason alone
        problems += _check_freezing(spec, model)
    return problems


def assert_backbone_conforms(spec: BackboneSpec, **kwargs) -> None:
    """Raise AssertionError listing every problem :func:`check_backbone` finds."""
    problems = check_backbone(spec, **kwargs)
    if problems:
        raise AssertionError(f"backbone '{spec.name}' does not conform:\n" + "\n".join(f"- {p}" for p in problems))


def _names(names: list[str]) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:MAX_NAMES_SHOWN])
    more = len(names) - MAX_NAMES_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def _check_fields(spec: BackboneSpec) -> list[str]:
    name = spec.name if isinstance(spec.name, str) else repr(spec.name)
    problems = []
    if not isinstance(spec.name, str) or not IDENTIFIER_LIKE.match(spec.name):
        problems.append(f"{name}: name must start with a letter and hold only letters, digits, '_', '.', '-'")
    if not callable(spec.build):
        problems.append(f"{name}: build must be callable as build(pretrained: bool)")
    if not isinstance(spec.feature_dim, int) or spec.feature_dim <= 0:
        problems.append(f"{name}: feature_dim must be a positive int, got {spec.feature_dim!r}")
    if not spec.stages:
        problems.append(f"{name}: stages is empty; list at least one layer group (stem first)")
    stage_names = [stage.name for stage in spec.stages]
    if len(set(stage_names)) != len(stage_names):
        problems.append(f"{name}: stage names repeat: {stage_names}")
    problems += [f"{name}: stage '{stage.name}' has no members" for stage in spec.stages if not stage.members]
    if spec.head is not None and spec.source_classes is not None and (
            not isinstance(spec.source_classes, int) or spec.source_classes <= 0):
        problems.append(f"{name}: source_classes must be a positive int (or None: the head is a placeholder), "
                        f"got {spec.source_classes!r}")
    prep = spec.preprocessing
    if prep.input_size <= 0 or prep.resize_size <= 0:
        problems.append(f"{name}: preprocessing sizes must be positive, got input_size={prep.input_size}, "
                        f"resize_size={prep.resize_size}")
    if len(prep.mean) != 3 or len(prep.std) != 3:
        problems.append(f"{name}: preprocessing mean and std need 3 values (RGB), got {len(prep.mean)} and {len(prep.std)}")
    elif any(s <= 0 for s in prep.std):
        problems.append(f"{name}: preprocessing std must be positive, got {prep.std}")
    try:
        available = spec.weights_available()
        if not isinstance(available, bool):
            problems.append(f"{name}: weights_available() must return a bool, got {type(available).__name__}")
    except Exception as error:
        problems.append(f"{name}: weights_available() raised {one_line(error)}")
    return problems


def _check_member_paths(spec: BackboneSpec, model: nn.Module) -> list[str]:
    problems = []
    paths = [(f"stage '{stage.name}'", path) for stage in spec.stages for path in stage.members]
    if spec.head is not None:
        paths.append(("head", spec.head))
    for owner, path in paths:
        try:
            resolve_member(model, path)
        except KeyError:
            problems.append(f"{spec.name}: {owner} member '{path}' does not exist in the built model")
    return problems


def _owner_of_each_parameter(spec: BackboneSpec, model: nn.Module) -> tuple[dict[int, list[str]], list[str]]:
    """Which owners (stage names, 'head') claim each parameter, by id; and the owner names in order."""
    owners = [(stage.name, stage.members) for stage in spec.stages]
    if spec.head is not None:
        owners.append(("head", (spec.head,)))
    claims: dict[int, list[str]] = {}
    for owner, members in owners:
        for param in member_parameters(model, members):
            claims.setdefault(id(param), []).append(owner)
    return claims, [owner for owner, _ in owners]


def _check_ownership(spec: BackboneSpec, model: nn.Module) -> list[str]:
    claims, owner_order = _owner_of_each_parameter(spec, model)
    named = list(model.named_parameters())
    missing = [name for name, param in named if id(param) not in claims]
    shared = [f"{name} ({' and '.join(claims[id(param)])})" for name, param in named
              if len(claims.get(id(param), ())) > 1]
    problems = []
    if missing:
        problems.append(f"{spec.name}: parameters owned by no stage or head: {_names(missing)}; "
                        "add their modules to a stage so freezing covers them")
    if shared:
        problems.append(f"{spec.name}: parameters owned more than once: {_names(shared)}; each belongs to one stage")
    # Freeze depth counts stages from the input: stage i must come wholly before stage i+1 in the model.
    rank = {owner: index for index, owner in enumerate(owner_order)}
    latest = -1
    for name, param in named:
        owners = claims.get(id(param))
        if not owners or len(owners) > 1:
            continue
        index = rank[owners[0]]
        if index < latest:
            problems.append(f"{spec.name}: stages out of order: parameter '{name}' of '{owners[0]}' comes after "
                            f"parameters of '{owner_order[latest]}' in model.named_parameters(); list stages "
                            "in the order the model defines them (stem first, head last)")
            break
        latest = index
    return problems


SAMPLE_TEXTS = ("A short sentence.", "Another one, a little longer than the first.", "Third", "and a fourth text")


def sample_input(spec: BackboneSpec, image_size: int | None, batch_size: int) -> tuple[torch.Tensor, str]:
    """A batch the backbone must take, and how to name it in a message: random images, or for a text
    backbone :data:`SAMPLE_TEXTS` through its own tokenizer, padded."""
    if spec.text is not None:
        texts = [SAMPLE_TEXTS[i % len(SAMPLE_TEXTS)] for i in range(batch_size)]
        ids = [row[:spec.text.max_length] for row in spec.text.load_tokenizer()(texts)]
        batch = torch.full((batch_size, max(map(len, ids))), spec.text.pad_id, dtype=torch.long)
        for row, tokens in enumerate(ids):
            batch[row, :len(tokens)] = torch.tensor(tokens)
        return batch, f"{batch_size} texts"
    size = spec.preprocessing_at(image_size).input_size
    return (torch.randn(batch_size, 3, size, size, generator=torch.Generator().manual_seed(0)),
            f"{batch_size} images at {size} px")


def _check_forward(spec: BackboneSpec, model: nn.Module, image_size: int | None, batch_size: int) -> list[str]:
    try:
        images, what = sample_input(spec, image_size, batch_size)
    except Exception as error:
        return [f"{spec.name}: its tokenizer raised {one_line(error)}"]
    expected_embedding = (batch_size, spec.feature_dim)
    try:
        reader = EmbeddingReader(model, spec)
    except TypeError as error:  # head is not an nn.Linear
        return [f"{spec.name}: {error}"]
    try:
        with torch.no_grad():
            embedding, logits = reader(images)
    except Exception as error:
        return [f"{spec.name}: forward on a batch of {what} raised {one_line(error)}"]
    finally:
        reader.close()
    problems = []
    if tuple(embedding.shape) != expected_embedding:
        problems.append(f"{spec.name}: embedding has shape {tuple(embedding.shape)}, expected {expected_embedding} "
                        f"(feature_dim={spec.feature_dim})")
    if spec.head is not None:
        expected_logits = (batch_size, spec.source_classes) if spec.source_classes is not None else None
        if expected_logits is not None and (logits is None or tuple(logits.shape) != expected_logits):
            shape = None if logits is None else tuple(logits.shape)
            problems.append(f"{spec.name}: source logits have shape {shape}, expected {expected_logits} "
                            f"(source_classes={spec.source_classes})")
        try:
            replace_head(model, spec, N_TARGET_CLASSES)
            with torch.no_grad():
                output = model(images)
            if tuple(output.shape) != (batch_size, N_TARGET_CLASSES):
                problems.append(f"{spec.name}: after replace_head the output has shape {tuple(output.shape)}, "
                                f"expected {(batch_size, N_TARGET_CLASSES)}")
        except Exception as error:
            problems.append(f"{spec.name}: forward after replace_head({N_TARGET_CLASSES} classes) raised "
                            f"{one_line(error)}")
    return problems


def _check_freezing(spec: BackboneSpec, model: nn.Module) -> list[str]:
    head_params = {id(p) for p in member_parameters(model, (spec.head,))} if spec.head else set()
    per_stage = [{id(p) for p in params} for params in stage_parameters(model, spec)]
    names = {id(param): name for name, param in model.named_parameters()}
    for depth in range(spec.n_stages + 1):
        for param in model.parameters():
            param.requires_grad_(True)
        freeze_stages(model, spec, depth)
        expected = set().union(head_params, *per_stage[depth:])
        trainable = {id(p) for p in model.parameters() if p.requires_grad}
        if trainable != expected:
            wrong = sorted(names[i] for i in trainable ^ expected)
            return [f"{spec.name}: freeze_stages({depth}) left the wrong parameters trainable: {_names(wrong)}"]
    return []


# --- measure plugins --------------------------------------------------------------------------------
# A measure plugin's author runs this on their module (or any object with a ``measure_backbone``): the
# contract the Advisor, the report and the measurement cache rely on, checked on generated features.


def measure_check_features(*, n_classes: int = 3, per_class: int = 8, dim: int = 12, seed: int = 0,
                           with_extras: bool = True):
    """A small FeatureSet of separable Gaussian classes, with source probabilities, random-init features and
    a per-stage shift when ``with_extras``: what a real backbone's pass would hand a measure."""
    import numpy as np

    from tladvisor.records import FeatureSet, StageShift

    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), per_class)
    features = (rng.normal(size=(n_classes, dim))[labels] * 3 + rng.normal(size=(len(labels), dim))).astype(np.float32)
    extras = {}
    if with_extras:
        logits = rng.normal(size=(len(labels), 10))
        extras = dict(source_probs=np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True),
                      random_features=rng.normal(size=features.shape).astype(np.float32),
                      stage_shift=(StageShift("stem", 0.2, 1), StageShift("stage1", 0.6, 1)))
    return FeatureSet(backbone="tiny_cnn", image_size=32, features=features, labels=labels,
                      sample_indices=np.arange(len(labels)), **extras)


def check_measure_plugin(plugin, *, reserved: tuple[str, ...] = ()) -> list[str]:
    """Every way ``plugin``'s ``measure_backbone`` breaks the measure contract, one line each (empty: conforms).

    Checked on generated features (with and without the optional arrays, and with one image per class):
    it returns ``None`` or a ``dict`` of ``str`` -> :class:`~tladvisor.records.Score` without raising; each
    score has a float value (NaN only with a detail saying why), a spread that is None or >= 0, a normalised
    value None or in [0, 1], a bool ``higher_is_better`` and a ``detail``; the same input gives the same
    scores (the measurement cache relies on it); and no name is in ``reserved`` (e.g. the built-in names,
    :data:`tladvisor.measures.names.BUILT_IN_MEASURES`, for a plugin's new measure).
    """
    import math

    from tladvisor.records import AnalysisOptions, Score

    hook = getattr(plugin, "measure_backbone", None)
    label = getattr(plugin, "__name__", type(plugin).__name__)
    if not callable(hook):
        return [f"{label}: has no measure_backbone function"]
    options, spec = AnalysisOptions(source=".", seed=0), tiny_backbone_spec()
    cases = {"full features": measure_check_features(), "no optional arrays": measure_check_features(with_extras=False),
             "one image per class": measure_check_features(per_class=1)}
    problems: list[str] = []
    for case, features in cases.items():
        call = _measure_call(hook, spec, features, options)
        try:
            first = call()
        except Exception as error:
            problems.append(f"{label}: measure_backbone raised on {case}: {one_line(error)} (leave a measure out "
                            "when the data cannot support it)")
            continue
        if first is None:
            continue
        if not isinstance(first, dict):
            problems.append(f"{label}: measure_backbone returned {type(first).__name__} on {case}, not a dict or None")
            continue
        for name, score in first.items():
            where = f"{label}: score {name!r} on {case}"
            if not isinstance(name, str) or not name:
                problems.append(f"{label}: a score name on {case} is {name!r}, not a non-empty string")
            elif name in reserved:
                problems.append(f"{where}: the name is already taken (a built-in measure); choose another")
            if not isinstance(score, Score):
                problems.append(f"{where} is a {type(score).__name__}, not a tladvisor.records.Score")
                continue
            problems += [f"{where}: {p}" for p in _score_problems(score, math)]
        try:
            again = call()
        except Exception as error:
            problems.append(f"{label}: measure_backbone raised on a second call with {case}: {one_line(error)}")
            continue
        if _comparable(again) != _comparable(first):
            problems.append(f"{label}: measure_backbone gave different scores for the same input ({case}); "
                            "seed any randomness from options.seed")
    return problems


def assert_measure_plugin_conforms(plugin, **kwargs) -> None:
    """Raise AssertionError listing every problem :func:`check_measure_plugin` finds."""
    problems = check_measure_plugin(plugin, **kwargs)
    if problems:
        raise AssertionError("measure plugin does not conform:\n" + "\n".join(f"- {p}" for p in problems))


def _measure_call(hook, spec: BackboneSpec, features, options):
    import inspect

    wanted = inspect.signature(hook).parameters
    given = {"backbone": spec, "features": features, "dataset": None, "options": options}
    return lambda: hook(**{name: value for name, value in given.items() if name in wanted})


def _score_problems(score, math) -> list[str]:
    problems = []
    if not isinstance(score.value, (int, float)) or isinstance(score.value, bool):
        return [f"value is a {type(score.value).__name__}, not a float"]
    if not math.isfinite(score.value) and not score.detail:
        problems.append("value is not finite and no detail says why")
    if score.spread is not None and not (isinstance(score.spread, (int, float)) and score.spread >= 0):
        problems.append(f"spread {score.spread!r} is neither None nor >= 0")
    if score.normalised is not None and not (isinstance(score.normalised, (int, float))
                                             and 0.0 <= score.normalised <= 1.0):
        problems.append(f"normalised {score.normalised!r} is neither None nor in [0, 1]")
    if not isinstance(score.higher_is_better, bool):
        problems.append(f"higher_is_better is a {type(score.higher_is_better).__name__}, not a bool")
    if not isinstance(score.detail, str) or not score.detail:
        problems.append("has no detail (the report shows it beside the number)")
    return problems


def _comparable(scores) -> object:
    import math

    if not isinstance(scores, dict):
        return scores
    return {name: tuple("nan" if isinstance(v, float) and math.isnan(v) else v
                        for v in (s.value, s.spread, s.normalised)) if hasattr(s, "value") else s
            for name, s in scores.items()}
