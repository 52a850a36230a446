"""From a list of (text, label, split) candidates to a checked text :class:`Dataset`.

Both text loaders (class folders of ``.txt`` files, manifests with a text column) only find candidates;
checking each text and refusing datasets that cannot be analysed happens here, once, as
:mod:`tladvisor.data.assemble` does for images. A text is skipped, with its reason, when it is empty
(or only spaces) or when its bytes are not UTF-8; the loaders decode with :func:`decode_marking` so such
bytes reach this check instead of failing the whole file.
"""

from __future__ import annotations

import codecs
import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tladvisor.data.assemble import skip_summary, sorted_class_names
from tladvisor.data.wording import counted
from tladvisor.errors import DatasetError
from tladvisor.records import Dataset, SkippedFile, TextSample

MAX_TEXT_BYTES = 1_000_000
"""A longer text file is skipped: one sample is a document, not a corpus (and encoders read 512 tokens)."""

_NOT_WORD = re.compile(r"[\W_]+")
# A byte that is not UTF-8 decodes to U+10FF00 + its value: a private-use code point no real text holds, and
# (unlike Python's surrogateescape) one that pandas and pyarrow accept, so a table can carry it to the check.
_MARK_BASE = 0x10FF00
_MARKING = "tladvisor-mark-bad-bytes"


def _mark(error: UnicodeDecodeError) -> tuple[str, int]:
    bad = error.object[error.start:error.end]
    return "".join(chr(_MARK_BASE + b) for b in bad), error.end


codecs.register_error(_MARKING, _mark)


def decode_marking(data: bytes) -> str:
    """``data`` as UTF-8 (a leading byte-order mark dropped), each invalid byte kept as a marker."""
    return data.decode("utf-8", _MARKING).removeprefix("\ufeff")


@dataclass(frozen=True)
class TextCandidate:
    """A text a loader wants in the dataset, before it is checked."""

    path: Path  # its .txt file, or the manifest
    text: str  # decoded with decode_marking: an undecodable byte is a marker the check finds
    label: str
    split: str | None = None
    origin: str = ""  # "row 3 (line 4)" for a manifest row


def text_digest(text: str) -> str:
    """The hash that makes two texts duplicates: case, accents' forms, spacing and punctuation ignored, so
    'Great film!' and 'great film' are one text to the split (never on both sides) and to the profile."""
    normal = unicodedata.normalize("NFKC", text).casefold()
    folded = _NOT_WORD.sub(" ", normal).strip()
    # a text of punctuation or emoji only (":)", "😡") has no words: it is compared as written, spaces aside,
    # or every such text would be one "duplicate" of the others
    key = folded if folded else "\x00" + " ".join(normal.split())
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def undecodable_bytes(text: str) -> str | None:
    """None for valid UTF-8; else where the first bad byte is ('byte 0xff at character 12')."""
    for position, char in enumerate(text):
        if ord(char) >= _MARK_BASE:
            return f"byte 0x{ord(char) - _MARK_BASE:02x} at character {position}"
    return None


def check_text(text: str) -> str | None:
    """Why ``text`` cannot be used, or None."""
    bad = undecodable_bytes(text)
    if bad is not None:
        return f"not UTF-8 ({bad}); save the text as UTF-8"
    if not text.strip():
        return "empty text"
    return None


def build_text_dataset(root: Path, candidates: Iterable[TextCandidate], *, source_format: str,
                       skipped: Iterable[SkippedFile] = (), notes: Iterable[str] = (),
                       layout_hint: str = "") -> Dataset:
    """Check every candidate; refuse a dataset with no usable text or a single class."""
    skipped = list(skipped)
    accepted: list[TextCandidate] = []
    n_candidates = 0
    for candidate in candidates:
        n_candidates += 1
        reason = check_text(candidate.text)
        if reason is not None:
            where = f"{candidate.path} {candidate.origin}".strip()
            skipped.append(SkippedFile(where, f"{candidate.origin}: {reason}" if candidate.origin else reason))
            continue
        accepted.append(candidate)

    hint = f"; {layout_hint}" if layout_hint else ""
    if not accepted:
        if n_candidates == 0 and not skipped:
            raise DatasetError(f"no texts found in {root}{hint}")
        raise DatasetError(f"no usable texts in {root}: {counted(len(skipped), 'text')} skipped "
                           f"({skip_summary(skipped)}){hint}")
    classes = sorted_class_names(c.label for c in accepted)
    if len(classes) < 2:
        raise DatasetError(f"only one class ('{classes[0]}', {counted(len(accepted), 'text')}) in {root}; "
                           f"a classifier needs at least two classes{hint}")
    label_of = {name: index for index, name in enumerate(classes)}
    samples = tuple(TextSample(path=c.path, label=label_of[c.label], text=c.text.strip(), split=c.split,
                               digest=text_digest(c.text), origin=c.origin) for c in accepted)
    return Dataset(root=root, classes=classes, samples=samples, skipped=tuple(skipped),
                   source_format=source_format, notes=tuple(notes), modality="text")
