"""Load a model saved by a tuning run and classify images with it (``tladvisor predict``); texts for a text
model (:mod:`tladvisor.tuning.predict_text`).

What it is given may be image files, folders (searched recursively for image extensions) and, as the
model, a ``best_model`` folder or the run folder holding one. It predicts what it can: a missing or
unreadable image is skipped with its reason, never the end of the batch.

The network is rebuilt from its backbone plugin (random init, no pretrained download needed), given a
new head and loaded from ``model.safetensors``; nothing else is ever loaded. Images go through the
saved evaluation preprocessing, the same code path that scored the validation images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from tladvisor.runtime import device as devices
from tladvisor.backbones import BackboneSpec, Preprocessing
from tladvisor.data.images import looks_like_image, open_rgb
from tladvisor.errors import TLAdvisorError, UnsafeFileError
from tladvisor.modeling import replace_head
from tladvisor.tuning.inference import predict_probabilities
from tladvisor.tuning.model_io import CONFIG_FILE, MODEL_FILE, read_config


@dataclass(frozen=True)
class LoadedModel:
    model: nn.Module
    spec: BackboneSpec
    classes: tuple[str, ...]
    preprocessing: Preprocessing
    config: dict[str, Any]


def _refuse_other_checkpoints(model_dir: Path) -> None:
    others = sorted(p.name for p in model_dir.glob("*") if p.suffix in {".pt", ".pth", ".bin", ".ckpt", ".pkl"})
    hint = f" (found {', '.join(others)}; pickled checkpoints can run code and are never loaded)" if others else ""
    raise UnsafeFileError(f"{model_dir}: no {MODEL_FILE}{hint}; point at a best_model folder written by tladvisor")


@dataclass(frozen=True)
class Predictions:
    """``rows``: ``{"path", "label", "probability"}`` per image predicted; ``skipped``: ``{"path", "reason"}``."""

    rows: list[dict[str, Any]]
    skipped: list[dict[str, str]]


def model_folder(path: str | Path) -> Path:
    """The ``best_model`` folder to load: ``path`` itself, or ``path/best_model`` for a run folder."""
    path = Path(path)
    if not path.is_dir():
        raise TLAdvisorError(f"{path}: not a folder; pass a run folder or its best_model folder")
    if (path / MODEL_FILE).exists() or not (path / "analysis.json").is_file() and not (path / "best_model").is_dir():
        return path
    if (path / "best_model").is_dir():
        return path / "best_model"
    raise TLAdvisorError(f"{path}: this run has no best_model (it ran no tuning trial); "
                         "run `tladvisor analyze DATA --trials N` to train one")


def collect_images(inputs: Sequence[str | Path]) -> tuple[list[Path], list[dict[str, str]]]:
    """Image files named or found in folders (recursively, sorted, hidden files left out), each once however
    often it was given (a file named and also inside a given folder, overlapping folders), and what was
    given but is not an image to read."""
    found: list[Path] = []
    seen: set[Path] = set()
    skipped: list[dict[str, str]] = []

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.append(path)
    for given in map(Path, inputs):
        if given.is_dir():
            images = sorted(p for p in given.rglob("*") if looks_like_image(p) and p.is_file())
            if not images:
                skipped.append({"path": str(given), "reason": "folder holds no image file"})
            for image in images:
                add(image)
        elif given.is_file():
            add(given)
        else:
            skipped.append({"path": str(given), "reason": "no such file or folder"})
    return found, skipped


def load_model(model_dir: str | Path, host=None) -> LoadedModel:
    """Rebuild the saved model: ``backbone.build(False)`` + new head + the safetensors state_dict.

    ``model_dir`` is a ``best_model`` folder or a run folder that holds one."""
    model_dir = model_folder(model_dir)
    if not (model_dir / MODEL_FILE).is_file():
        _refuse_other_checkpoints(model_dir)
    config = read_config(model_dir)
    if config is None:
        raise TLAdvisorError(f"{model_dir / CONFIG_FILE}: missing or unreadable; the model folder is incomplete")
    try:
        state = load_file(str(model_dir / MODEL_FILE))
    except (SafetensorError, OSError, ValueError) as error:
        raise UnsafeFileError(f"{model_dir / MODEL_FILE}: not a valid safetensors file ({error}); refusing to load it") from None
    preprocessing = _checked_config(config, model_dir / CONFIG_FILE)

    if host is None:
        from tladvisor.plugins import PluginHost

        host = PluginHost()
    spec = host.backbone(config["backbone"])  # BackboneError names the missing plugin's backbone
    classes = tuple(config["classes"])
    model = spec.build(False)
    replace_head(model, spec, len(classes))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise TLAdvisorError(f"{model_dir / MODEL_FILE}: weights do not fit backbone '{spec.name}' ({first})") from None
    return LoadedModel(model.eval(), spec, classes, preprocessing, config)


def _checked_config(config: Any, path: Path) -> Preprocessing:
    """The saved preprocessing, after checking the config holds what loading needs, with the right types.

    config.json is read as data only: keys other than these are ignored (it names no file to load).
    """
    def damaged(problem: str) -> TLAdvisorError:
        return TLAdvisorError(f"{path}: {problem}; the model folder is damaged or was not written by tladvisor")

    if not isinstance(config, dict):
        raise damaged("not a JSON object")
    if not isinstance(config.get("backbone"), str) or not config["backbone"]:
        raise damaged("'backbone' must name a backbone")
    classes = config.get("classes")
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) for c in classes):
        raise damaged("'classes' must be a list of at least two class names")
    known = {f.name for f in fields(Preprocessing)}
    preprocessing = config.get("preprocessing")
    if not isinstance(preprocessing, dict) or not set(preprocessing) <= known:
        raise damaged(f"'preprocessing' must be an object with keys among {', '.join(sorted(known))}")
    sizes_ok = all(isinstance(preprocessing.get(k, 1), int) and preprocessing.get(k, 1) > 0
                   for k in ("input_size", "resize_size"))
    stats_ok = all(isinstance(v, list) and len(v) == 3 and all(isinstance(x, (int, float)) for x in v)
                   for v in (preprocessing.get("mean", [0] * 3), preprocessing.get("std", [1] * 3)))
    if not (sizes_ok and stats_ok and isinstance(preprocessing.get("interpolation", ""), str)):
        raise damaged("'preprocessing' holds values of the wrong type")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in preprocessing.items()}
    return Preprocessing(**values)


class _Images(TorchDataset):
    """Images for prediction; an unreadable file gives a blank input and its reason in ``errors``."""

    def __init__(self, paths: Sequence[Path], transform, input_size: int):
        self.paths, self.transform, self.input_size = list(paths), transform, input_size
        self.labels = [0] * len(self.paths)
        self.errors: dict[int, str] = {}  # index -> why it could not be read (filled while loading)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            return self.transform(open_rgb(self.paths[index])), 0
        except Exception as error:  # PIL raises many types for broken files
            self.errors[index] = f"cannot read image ({type(error).__name__}: {' '.join(str(error).split())})"
            return torch.zeros(3, self.input_size, self.input_size), 0


def predict_all(model_dir: str | Path, inputs: Sequence[str | Path], *, device: str = "auto",
                batch_size: int = 32, host=None, text_column: str | None = None, stdin=None) -> Predictions:
    """Classify every image in ``inputs`` (files and folders); list what could not be read. A model trained on
    texts classifies texts instead (:mod:`tladvisor.tuning.predict_text`: .txt lines, manifests, stdin)."""
    from tladvisor.transforms import eval_transform

    loaded = load_model(model_dir, host=host)
    if loaded.spec.text is not None:
        from tladvisor.tuning.predict_text import predict_texts

        return predict_texts(loaded, inputs, device=device, batch_size=batch_size, text_column=text_column,
                             stdin=stdin)
    paths, skipped = collect_images(inputs)
    target = devices.pick_device(device)
    model = devices.prepare_model(loaded.model, target)
    images = _Images(paths, eval_transform(loaded.preprocessing), loaded.preprocessing.input_size)
    # num_workers=0: the errors are recorded in this process's dataset object
    probabilities = predict_probabilities(model, DataLoader(images, batch_size=batch_size, shuffle=False), target)
    best = probabilities.argmax(1) if len(paths) else torch.empty(0, dtype=torch.long)
    rows = []
    for row, (path, index) in enumerate(zip(paths, best.tolist())):
        if row in images.errors:
            skipped.append({"path": str(path), "reason": images.errors[row]})
        else:
            rows.append({"path": str(path), "label": loaded.classes[int(index)],
                         "probability": float(probabilities[row, index])})
    return Predictions(rows, skipped)


def predict(model_dir: str | Path, paths: Sequence[str | Path], *, device: str = "auto", batch_size: int = 32,
            host=None) -> list[dict[str, Any]]:
    """Classify each readable image: ``[{"path", "label", "probability"}]`` in the order given
    (:func:`predict_all` also says what was skipped)."""
    return predict_all(model_dir, paths, device=device, batch_size=batch_size, host=host).rows
