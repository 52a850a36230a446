"""The best model on disk: ``model.safetensors`` + ``config.json``, replaced atomically as the study improves.

A new model is written into a temporary folder beside the target and swapped in by renames, so a
killed run leaves either the previous complete model or the new complete one, never a mix. Only
safetensors is written or read: a pickled checkpoint can run code when loaded.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from safetensors.torch import save_file
from torch import nn

from tladvisor import __version__
from tladvisor.runtime.atomic import follow_umask
from tladvisor.backbones import BackboneSpec, Preprocessing, TextPreprocessing

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
MODEL_FORMAT = 1


def _previous(model_dir: Path) -> Path:
    return model_dir.with_name(model_dir.name + ".previous")


def restore_interrupted_swap(model_dir: Path) -> None:
    """A run killed between the two renames of :func:`save_model` left the old model aside: put it back."""
    previous = _previous(model_dir)
    if previous.is_dir() and not model_dir.exists():
        os.replace(previous, model_dir)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def model_config(spec: BackboneSpec, preprocessing: Preprocessing | TextPreprocessing, *, strategy: str, classes: tuple[str, ...],
                 val_accuracy: float, trial_number: int, study_name: str, params: dict[str, Any],
                 learning_curve: list[float]) -> dict[str, Any]:
    return {
        "format": MODEL_FORMAT,
        "tladvisor_version": __version__,
        "backbone": spec.name,
        "plugin": spec.plugin,
        "weights_id": spec.weights_id,
        "strategy": strategy,
        "classes": list(classes),
        # a text backbone's tokenizer is code: its facts are stored, the tokenizer comes with the backbone
        "preprocessing": asdict(spec.preprocessing if isinstance(preprocessing, TextPreprocessing) else preprocessing),
        **({"text": {"max_length": preprocessing.max_length, "pad_id": preprocessing.pad_id,
                     "tokenizer_id": preprocessing.tokenizer_id}} if isinstance(preprocessing, TextPreprocessing) else {}),
        "val_accuracy": val_accuracy,
        "trial_number": trial_number,
        "study_name": study_name,
        "params": params,
        "learning_curve": list(learning_curve),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def save_model(model_dir: Path, model: nn.Module, config: dict[str, Any]) -> Path:
    """Write the whole model's state_dict and its config into ``model_dir``, replacing it atomically."""
    model_dir = Path(model_dir)
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    restore_interrupted_swap(model_dir)
    for stale in model_dir.parent.glob(f".{model_dir.name}-tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by a run killed while writing
    staging = Path(tempfile.mkdtemp(dir=model_dir.parent, prefix=f".{model_dir.name}-tmp-"))
    try:
        state = {name: tensor.detach().to("cpu").contiguous() for name, tensor in model.state_dict().items()}
        save_file(state, str(staging / MODEL_FILE), metadata={"format": "pt", "backbone": config["backbone"]})
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2, allow_nan=False))
        for name in (MODEL_FILE, CONFIG_FILE):
            _fsync_file(staging / name)
        follow_umask(staging)  # mkdtemp made it private; the model is an output like the report
        previous = _previous(model_dir)
        shutil.rmtree(previous, ignore_errors=True)
        if model_dir.exists():
            os.replace(model_dir, previous)
        os.replace(staging, model_dir)
        shutil.rmtree(previous, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return model_dir


def read_config(model_dir: Path) -> dict[str, Any] | None:
    """The saved model's config, or None when there is no complete saved model."""
    model_dir = Path(model_dir)
    restore_interrupted_swap(model_dir)
    path = model_dir / CONFIG_FILE
    if not path.is_file() or not (model_dir / MODEL_FILE).is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
