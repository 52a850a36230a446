"""Scientific images from scikit-image: imaging modality, and where in a fundus image a crop lies.

Sources: scikit-image ``immunohistochemistry`` (bright-field IHC), ``cell`` (phase contrast),
``retina`` (fundus photograph), ``hubble_deep_field`` (astronomy), ``microaneurysms`` (retinal
angiography detail), ``shepp_logan_phantom`` (CT phantom). ``cells3d``, ``human_mitosis``,
``kidney``, ``lily`` and ``skin`` need a download and are not used.
"""

from __future__ import annotations

import numpy as np

from .common import TaskSpec, Writer, module_missing, write_crops

FAMILY = "science"
_needs = module_missing("skimage")
MODALITIES = ("ihc", "phase_contrast", "fundus", "deep_field", "angiography", "ct_phantom")


def modalities() -> dict[str, np.ndarray]:
    from skimage import data

    phantom = data.shepp_logan_phantom()
    return {"ihc": data.immunohistochemistry(), "phase_contrast": data.cell(), "fundus": data.retina(),
            "deep_field": data.hubble_deep_field(), "angiography": data.microaneurysms(),
            "ct_phantom": phantom + np.random.default_rng(0).normal(0, 0.05, phantom.shape)}


def build_modality(writer: Writer, rng: np.random.Generator, counts: dict[str, int]) -> None:
    write_crops(writer, modalities(), rng, counts, (0.06, 0.15))


QUADRANTS = ("upper_left", "upper_right", "lower_left", "lower_right")


def build_fundus_quadrant(writer: Writer, rng: np.random.Generator, counts: dict[str, int]) -> None:
    """Fine detail: which quadrant of one fundus photograph a crop is from (vessel pattern, disc)."""
    from skimage import data

    retina = data.retina()
    half = retina.shape[0] // 2
    parts = {"upper_left": retina[:half, :half], "upper_right": retina[:half, half:],
             "lower_left": retina[half:, :half], "lower_right": retina[half:, half:]}
    # Keep each quadrant's inner part (the corners outside the fundus disc are black).
    trimmed = {k: v[int(0.15 * half):int(0.85 * half), int(0.15 * half):int(0.85 * half)] for k, v in parts.items()}
    write_crops(writer, trimmed, rng, counts, (0.15, 0.3))


TASKS = (
    TaskSpec("science-modality", FAMILY, "imaging modality",
             "scikit-image immunohistochemistry/cell/retina/hubble_deep_field/microaneurysms/shepp_logan_phantom",
             "which of 6 scientific imaging modalities a small crop shows", MODALITIES, 15, 15, 25,
             build_modality, _needs),
    TaskSpec("science-fundus-quadrant", FAMILY, "fine-grained (position in one image)", "scikit-image retina",
             "which quadrant of one fundus photograph a crop comes from", QUADRANTS, 100, 20, 30,
             build_fundus_quadrant, _needs),
)
