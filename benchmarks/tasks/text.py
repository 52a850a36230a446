"""Text tasks from real sources on this machine, for running the strategies on text (issue #23 item 6).

Six tasks, each from a distinct source, each a manifest (``text,label``) written by :func:`build`:

- ``debian-sections``: Debian package descriptions (``/var/lib/dpkg/status``) labelled by their archive
  section (libs, devel, utils...): short technical English;
- ``stdlib-areas``: docstrings of Python's standard library labelled by the area of their module (the
  ``stdlib-docs`` example's source, every docstring rather than 40 per area);
- ``library-docstrings``: docstrings of the installed third-party libraries (numpy, pandas, scikit-learn,
  torch, PIL, optuna) labelled by the library: scientific-software English;
- ``license-family``: paragraphs of the licence texts in ``/usr/share/common-licenses`` labelled by family
  (GPL, LGPL, GFDL, Apache, MPL, Artistic): legal English, near-duplicates across versions;
- ``gettext-language``: translated user-interface messages from the gettext catalogues under
  ``/usr/share/locale`` labelled by language: not English at all (a "different" domain for an English
  encoder);
- ``man-sections``: the NAME line and first DESCRIPTION paragraph of manual pages (``/usr/share/man``)
  labelled by manual section (commands, library calls, file formats, administration).

Every builder returns ``(text, label, origin)`` triples; :func:`build` caps each class at ``per_class``
(a seeded choice) and keeps each distinct text once (its first label), so no text is in two classes.
"""

from __future__ import annotations

import csv
import gettext
import gzip
import importlib
import inspect
import json
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tladvisor.data.text_intake import text_digest

Triple = tuple[str, str, str]  # (text, label, where it came from)
MIN_WORDS = 5


def _words(text: str) -> int:
    return len(text.split())


def debian_sections(status: Path = Path("/var/lib/dpkg/status"), classes: int = 6) -> list[Triple]:
    found = []
    for block in status.read_text(encoding="utf-8", errors="replace").split("\n\n"):
        section = re.search(r"^Section: (.+)$", block, re.M)
        package = re.search(r"^Package: (.+)$", block, re.M)
        description = re.search(r"^Description: (.+(?:\n .+)*)", block, re.M)
        if section and description and package:
            lines = [line.strip() for line in description.group(1).splitlines() if line.strip() not in ("", ".")]
            found.append((" ".join(lines), section.group(1).split("/")[-1], f"{status}: {package.group(1)}"))
    keep = {label for label, _ in Counter(label for _, label, _ in found).most_common(classes)}
    return [t for t in found if t[1] in keep]


def stdlib_areas() -> list[Triple]:
    from tladvisor.data.text_examples import AREAS, docstrings

    return [(text, area, f"{module}.{name}") for area, modules in AREAS.items() for module in modules
            for name, text in docstrings(module)]


LIBRARIES = {"numpy": ("numpy", "numpy.linalg", "numpy.random", "numpy.fft", "numpy.ma"),
             "pandas": ("pandas", "pandas.core.frame", "pandas.core.series", "pandas.core.groupby.groupby",
                        "pandas.io.parsers.readers"),
             "scikit-learn": ("sklearn.linear_model", "sklearn.ensemble", "sklearn.metrics", "sklearn.preprocessing",
                              "sklearn.model_selection", "sklearn.cluster", "sklearn.decomposition"),
             "torch": ("torch.nn.modules.conv", "torch.nn.modules.linear", "torch.nn.functional", "torch.optim.adamw",
                       "torch.utils.data.dataloader", "torch.autograd"),
             "pillow": ("PIL.Image", "PIL.ImageOps", "PIL.ImageFilter", "PIL.ImageDraw"),
             "optuna": ("optuna.study.study", "optuna.trial._trial", "optuna.samplers", "optuna.pruners")}


def _module_docstrings(module_name: str) -> list[tuple[str, str]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            module = importlib.import_module(module_name)
        except Exception:  # a library not installed (or broken): its other modules still serve
            return []
    found = []
    for name, member in sorted(vars(module).items()):
        if name.startswith("_") or not (inspect.isclass(member) or inspect.isfunction(member)):
            continue
        doc = inspect.getdoc(member)
        if doc:
            text = " ".join(doc.strip().split("\n\n")[0].split())
            if _words(text) >= MIN_WORDS:
                found.append((name, text))
    return found


def library_docstrings() -> list[Triple]:
    return [(text, library, f"{module}.{name}") for library, modules in LIBRARIES.items() for module in modules
            for name, text in _module_docstrings(module)]


LICENSE_FAMILIES = {"GPL": ("GPL-1", "GPL-2", "GPL-3"), "LGPL": ("LGPL-2", "LGPL-2.1", "LGPL-3"),
                    "GFDL": ("GFDL-1.2", "GFDL-1.3"), "Apache": ("Apache-2.0",), "MPL": ("MPL-1.1", "MPL-2.0"),
                    "Artistic": ("Artistic",)}


def license_family(folder: Path = Path("/usr/share/common-licenses")) -> list[Triple]:
    found = []
    for family, names in LICENSE_FAMILIES.items():
        for name in names:
            path = folder / name
            if not path.is_file():
                continue
            for number, paragraph in enumerate(re.split(r"\n\s*\n", path.read_text(encoding="utf-8", errors="replace"))):
                text = " ".join(paragraph.split())
                if _words(text) >= 15:
                    found.append((text, family, f"{path} paragraph {number + 1}"))
    return found


LANGUAGES = ("de", "fr", "es", "it", "sv", "ru", "uk", "zh_CN")


def gettext_language(root: Path = Path("/usr/share/locale")) -> list[Triple]:
    found = []
    for language in LANGUAGES:
        for catalogue in sorted((root / language / "LC_MESSAGES").glob("*.mo")):
            try:
                with open(catalogue, "rb") as handle:
                    messages = gettext.GNUTranslations(handle)._catalog  # the parsed msgid -> msgstr table
            except Exception:
                continue
            for key, value in messages.items():
                if key and isinstance(value, str) and _words(value) >= 3 and "%" not in value:
                    found.append((" ".join(value.split()), language, f"{catalogue}: {str(key)[:40]}"))
    return found


MAN_SECTIONS = {"1": "commands", "3": "library calls", "5": "file formats", "8": "administration"}
_TROFF = re.compile(r"\\f[BIRP]|\\\(..|\\[&e]|\\s[-+]?\d")


def _man_text(raw: str) -> str | None:
    """The NAME line's description and the first DESCRIPTION paragraph of a man page, troff removed."""
    lines = raw.splitlines()
    sections: dict[str, list[str]] = defaultdict(list)
    current = ""
    for line in lines:
        if line.startswith((".SH", ".Sh")):
            current = line[3:].strip().strip('"').upper()
            continue
        if line.startswith((".PP", ".LP", ".P", ".sp")) and sections.get(current):
            sections[current].append("\n")
            continue
        if line.startswith((".\\\"", "'\\\"")) or (line.startswith(".") and len(line) < 4):
            continue
        text = _TROFF.sub("", re.sub(r"^\.[A-Z]{1,2} ", "", line)).replace("\\-", "-").replace("\\", "")
        sections[current].append(text)
    name = " ".join("".join(sections.get("NAME", [])).split())
    description = " ".join(" ".join(sections.get("DESCRIPTION", [])).split("\n")[0].split())
    text = " ".join(f"{name.partition(' - ')[2] or name}. {description}".split())
    return text if _words(text) >= MIN_WORDS else None


def man_sections(root: Path = Path("/usr/share/man"), per_section: int = 600) -> list[Triple]:
    found = []
    for number, label in MAN_SECTIONS.items():
        pages = sorted((root / f"man{number}").glob("*.gz"))[:per_section * 3]
        kept = 0
        for page in pages:
            try:
                raw = gzip.decompress(page.read_bytes()).decode("utf-8", errors="replace")
            except (OSError, EOFError):
                continue
            if raw.startswith(".so "):  # a link to another page
                continue
            text = _man_text(raw)
            if text:
                found.append((text, label, str(page)))
                kept += 1
            if kept >= per_section:
                break
    return found


TASKS: dict[str, Callable[[], list[Triple]]] = {
    "debian-sections": debian_sections, "stdlib-areas": stdlib_areas, "library-docstrings": library_docstrings,
    "license-family": license_family, "gettext-language": gettext_language, "man-sections": man_sections,
}


def source_of(task: str) -> str:
    """The task's source as this module's docstring describes it (one line)."""
    _, found, rest = __doc__.partition(f"``{task}``: ")
    return " ".join(rest.split(";")[0].split()) if found else "(not described)"


def build(task: str, out_dir: Path, *, per_class: int = 150, seed: int = 0) -> Path:
    """Write ``out_dir/<task>.csv`` (text,label) and ``<task>.json`` (its provenance and class counts)."""
    triples = TASKS[task]()
    seen: set[str] = set()
    by_label: dict[str, list[Triple]] = defaultdict(list)
    for text, label, origin in triples:
        key = text_digest(text)  # the product's duplicate rule: case, spacing and punctuation ignored
        if key not in seen:
            seen.add(key)
            by_label[label].append((text, label, origin))
    rng = np.random.default_rng(seed)
    rows = []
    for label in sorted(by_label):
        members = by_label[label]
        rows += [members[i] for i in sorted(rng.permutation(len(members))[:per_class])]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{task}.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows((text, label) for text, label, _ in rows)
    counts = Counter(label for _, label, _ in rows)
    (out_dir / f"{task}.json").write_text(json.dumps(
        {"task": task, "source": source_of(task),
         "classes": dict(sorted(counts.items())), "available": dict(sorted(Counter(t[1] for t in triples).items())),
         "seed": seed, "per_class": per_class, "origins": [origin for _, _, origin in rows[:20]]}, indent=2))
    return path


if __name__ == "__main__":
    import sys

    destination = Path(sys.argv[1] if len(sys.argv) > 1 else "reports/benchmarks/text_tasks")
    for name in TASKS:
        written = build(name, destination)
        print(name, json.loads(written.with_suffix(".json").read_text())["classes"])
