"""From a list of (file, label, split) candidates to a validated :class:`Dataset`.

Both loaders (folders, manifests) only find candidates; validating them, naming the classes and
refusing datasets that cannot be analysed happens here, once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tladvisor.data.validate import ImageFacts, UnusableImage, inspect_image
from tladvisor.data.wording import counted, reason_kind
from tladvisor.errors import DatasetError
from tladvisor.records import Dataset, Sample, SkippedFile

SPLITS = ("train", "val")


@dataclass(frozen=True)
class Candidate:
    """A file a loader wants in the dataset, before its image is checked."""

    path: Path
    label: str
    split: str | None = None  # "train", "val" or None
    origin: str = ""  # where it was listed (a manifest row), to prefix skip reasons


def sorted_class_names(names: Iterable[str]) -> tuple[str, ...]:
    """Class names in label order: numerically when every name is an integer ("2" before "10")."""
    unique = set(names)
    if unique and all(_is_integer(name) for name in unique):
        return tuple(sorted(unique, key=int))
    return tuple(sorted(unique))


def _is_integer(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def skip_summary(skipped: Iterable[SkippedFile], limit: int = 3) -> str:
    """'corrupt image x2, empty file x1': the commonest kinds of reason, details dropped."""
    counts = Counter(reason_kind(item.reason) for item in skipped)
    return ", ".join(f"{reason} x{n}" for reason, n in counts.most_common(limit))


def build_dataset(root: Path, candidates: Iterable[Candidate], *, source_format: str,
                  max_pixels: int | None, skipped: Iterable[SkippedFile] = (),
                  notes: Iterable[str] = (), layout_hint: str = "") -> Dataset:
    """Validate every candidate image one at a time; refuse a dataset with no images or one class.

    ``layout_hint`` finishes the error messages with what the loader expected to find.
    """
    skipped = list(skipped)
    accepted: list[tuple[Candidate, ImageFacts]] = []
    n_candidates = 0
    for candidate in candidates:
        n_candidates += 1
        try:
            facts = inspect_image(candidate.path, max_pixels=max_pixels)
        except UnusableImage as reason:
            prefix = f"{candidate.origin}: " if candidate.origin else ""
            skipped.append(SkippedFile(str(candidate.path), f"{prefix}{reason}"))
            continue
        accepted.append((candidate, facts))

    hint = f"; {layout_hint}" if layout_hint else ""
    if not accepted:
        if n_candidates == 0 and not skipped:
            raise DatasetError(f"no images found in {root}{hint}")
        raise DatasetError(f"no usable images in {root}: {counted(len(skipped), 'file')} skipped "
                           f"({skip_summary(skipped)}){hint}")

    classes = sorted_class_names(candidate.label for candidate, _ in accepted)
    if len(classes) < 2:
        raise DatasetError(f"only one class ('{classes[0]}', {counted(len(accepted), 'image')}) in {root}; "
                           f"a classifier needs at least two classes{hint}")

    label_of = {name: index for index, name in enumerate(classes)}
    samples = tuple(
        Sample(path=candidate.path, label=label_of[candidate.label], split=candidate.split,
               width=facts.width, height=facts.height, mode=facts.mode, digest=facts.digest)
        for candidate, facts in accepted
    )
    return Dataset(root=root, classes=classes, samples=samples, skipped=tuple(skipped),
                   source_format=source_format, notes=tuple(notes))
