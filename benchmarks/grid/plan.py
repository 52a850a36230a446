"""What the honest grid trains (issue #22): the configs resolved to a backbone's depths, the rate multipliers
and the step-out ladder, where each unit's file lives, and the one-settings-key rule of an output folder.
No training here (benchmarks/grid/run.py trains); tested in tests/test_benchmarks_honest_grid.py.
"""

from __future__ import annotations

import json
from pathlib import Path

BASE_MULTIPLIERS = {"feature_extraction": (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)}  # on cached features: cheap
DEFAULT_MULTIPLIERS = (0.3, 1.0, 3.0)
LADDER = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
# The top two stages (partial_freeze@top2) lie between top1 and half; left out of the default for cost
# (docs/benchmarks.md, "The honest grid"), available with --configs.
CONFIGS = ("feature_extraction", "partial_freeze@top1", "partial_freeze@half", "partial_freeze@shift",
           "full_finetune", "from_scratch")


def multipliers_of(config: str) -> tuple[float, ...]:
    return BASE_MULTIPLIERS.get(config.split("@")[0], DEFAULT_MULTIPLIERS)


def rates_at(strategy: str, multiplier: float) -> dict[str, float]:
    """The product's starting rates of ``strategy`` (head and backbone) times ``multiplier``."""
    from tladvisor.strategies import BUILT_IN_STRATEGIES

    start = BUILT_IN_STRATEGIES[strategy].learning_rates
    return {"head": start["head"] * multiplier, "backbone": start.get("backbone", 0.0) * multiplier,
            "layer_decay": start.get("layer_decay", 1.0)}


def resolve_config(config: str, n_stages: int, shift_depth: int | None) -> str | None:
    """A config with a symbolic depth (top1, top2, half, shift) as ``partial_freeze@K``, by the product's own
    mapping (:func:`tladvisor.advice.learned.role_config`); None when it does not apply (no shift depth known)."""
    from tladvisor.advice.learned import config_label, role_config

    if "@" not in config:
        return config
    if config.endswith("@shift") and shift_depth is None:
        return None
    return config_label(*role_config(config, n_stages, shift_depth))


def resolved_configs(configs: list[str], n_stages: int, shift_depth: int | None) -> list[str]:
    """Each config once, in the order given (the shift depth joins only when it is a new depth)."""
    out: list[str] = []
    for config in configs:
        name = resolve_config(config, n_stages, shift_depth)
        if name is not None and name not in out:
            out.append(name)
    return out


def unit_path(out: Path, task: str, seed: int, config: str, multiplier: float | None, long: bool = False) -> Path:
    name = "advice" if config == "advice" else f"{config.replace('@', '-')}__x{multiplier:g}" + ("__long" if long else "")
    return out / "units" / task / f"seed{seed}" / f"{name}.json"


def check_out_folder(out: Path, key: str) -> str | None:
    """Why ``out`` cannot take units of settings ``key`` (it holds units of other settings, which the same
    paths would overwrite), or None. One settings key per output folder: give another size its own --out."""
    for path in sorted(Path(out).glob("units/*/seed*/advice.json")):
        try:
            other = json.loads(path.read_text()).get("settings_key")
        except (OSError, ValueError):
            continue
        if other and other != key:
            return (f"{out} holds units made with other settings (key {other}, e.g. {path}); "
                    "use another --out for these settings (image size, schedule, batch, device)")
    return None
