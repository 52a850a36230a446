"""Icons of the Adwaita theme (Debian adwaita-icon-theme, under /usr/share/icons/Adwaita).

Two tasks: the icon's context (actions, devices, status...; icons split disjointly by name between
train, val and test, so a test icon was never seen) and which folder icon (documents, music,
pictures...: the same folder drawn with a small emblem, a fine-grained difference; train, val and
test use different rendered sizes of the theme, so test images differ in hinting and detail).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from .common import IMAGE_PX, TaskSpec, Writer

FAMILY = "icons"
THEME = Path(os.environ.get("TLADVISOR_ICON_THEME", "/usr/share/icons/Adwaita"))
CONTEXTS = ("actions", "devices", "status", "mimetypes", "emotes", "categories")
FOLDERS = ("folder-documents", "folder-download", "folder-music", "folder-pictures", "folder-templates",
           "folder-videos", "folder-publicshare", "folder-remote")
SIZE_SPLITS = {"train": ("48x48", "512x512", "16x16"), "val": ("32x32",), "test": ("22x22", "24x24")}


def missing() -> str | None:
    if not (THEME / "48x48").is_dir():
        return f"icon theme {THEME} not installed (apt-get install adwaita-icon-theme)"
    return None


def _on_background(path: Path, rng: np.random.Generator, scale: tuple[float, float] = (0.55, 0.9)) -> Image.Image:
    icon = Image.open(path).convert("RGBA")
    background = tuple(int(v) for v in rng.integers(120, 256, size=3))
    canvas = Image.new("RGBA", (IMAGE_PX, IMAGE_PX), (*background, 255))
    side = int(rng.uniform(*scale) * IMAGE_PX)
    icon = icon.resize((side, side), Image.Resampling.BICUBIC)
    x, y = (int(rng.integers(0, IMAGE_PX - side + 1)) for _ in range(2))
    canvas.alpha_composite(icon, (x, y))
    return canvas.convert("RGB")


def _icons_by_name(context: str) -> list[Path]:
    files = sorted((THEME / "48x48" / context).glob("*.png"))
    by_name: dict[str, Path] = {}
    for f in files:  # one file per icon name: the coloured one when both exist
        name = f.name.replace("-symbolic.symbolic.png", "").replace(".png", "")
        if name not in by_name or "symbolic" in by_name[name].name:
            by_name[name] = f
    return [by_name[k] for k in sorted(by_name)]


def build_contexts(writer: Writer, rng: np.random.Generator, counts: dict[str, int]) -> None:
    for context in CONTEXTS:
        icons = list(rng.permutation(_icons_by_name(context)))
        # Disjoint icons per split, in proportion to the counts asked (at least one each).
        total = sum(counts.values())
        n_val = max(1, round(len(icons) * counts["val"] / total))
        n_test = max(1, round(len(icons) * counts["test"] / total))
        pools = {"val": icons[:n_val], "test": icons[n_val:n_val + n_test], "train": icons[n_val + n_test:]}
        for split, n in counts.items():
            for index in range(n):
                writer.save(split, context, _on_background(pools[split][index % len(pools[split])], rng))


def build_folders(writer: Writer, rng: np.random.Generator, counts: dict[str, int]) -> None:
    for folder in FOLDERS:
        for split, n in counts.items():
            paths = [THEME / size / "places" / f"{folder}.png" for size in SIZE_SPLITS[split]]
            paths = [p for p in paths if p.exists()]
            for index in range(n if paths else 0):
                writer.save(split, folder.removeprefix("folder-"), _on_background(paths[index % len(paths)], rng))


TASKS = (
    TaskSpec("icon-context", FAMILY, "icon", "Adwaita icon theme 48x48 (adwaita-icon-theme)",
             "which context (actions, devices, status, mimetypes, emotes, categories) an unseen icon is from",
             CONTEXTS, 30, 15, 25, build_contexts, missing),
    TaskSpec("icon-folder-emblem", FAMILY, "fine-grained (emblem)", "Adwaita places/folder-*.png at 6 sizes",
             "which of 8 folder icons (they differ by a small emblem), unseen sizes for val and test",
             tuple(f.removeprefix("folder-") for f in FOLDERS), 10, 10, 20, build_folders, missing),
)
