"""The bundled text example: docstrings of Python's standard library, labelled by what the module is for.

Every Python installation carries these texts, so the example is written offline on any machine. Each text
is the first paragraph of a public function's or class's docstring; the label is the area of its module
(networking, text processing, files and the OS, concurrency). It is a real task with real English prose,
and not an easy one: many docstrings ("Return the value...") could belong to any area.
"""

from __future__ import annotations

import importlib
import inspect
import warnings
from pathlib import Path

import numpy as np

AREAS: dict[str, tuple[str, ...]] = {
    "networking": ("http.client", "http.server", "http.cookiejar", "urllib.request", "urllib.parse", "socket",
                   "smtplib", "ftplib", "imaplib", "poplib", "ssl", "ipaddress", "socketserver", "email.message",
                   "email.utils", "xmlrpc.client"),
    "text": ("string", "re", "textwrap", "difflib", "unicodedata", "html", "html.parser", "csv", "json",
             "codecs", "locale", "gettext", "shlex", "fnmatch", "stringprep", "base64", "quopri"),
    "files": ("os", "os.path", "shutil", "pathlib", "tempfile", "glob", "filecmp", "zipfile", "tarfile", "gzip",
              "bz2", "lzma", "fileinput", "stat", "io", "mmap"),
    "concurrency": ("threading", "multiprocessing", "multiprocessing.pool", "concurrent.futures", "queue",
                    "asyncio", "asyncio.tasks", "asyncio.queues", "asyncio.locks", "sched", "subprocess",
                    "selectors", "signal", "contextvars"),
}
PER_CLASS = 40
MIN_WORDS = 6


def _first_paragraph(doc: str) -> str:
    return " ".join(doc.strip().split("\n\n")[0].split())


def docstrings(module_name: str) -> list[tuple[str, str]]:
    """``(name, text)`` for the public functions, classes and methods defined in ``module_name``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # a Python built without it (ssl, lzma): the other modules still serve
            return []
    found = []
    for name, member in sorted(vars(module).items()):
        if name.startswith("_") or getattr(member, "__module__", None) != module.__name__:
            continue
        candidates = [(name, member)]
        if inspect.isclass(member):
            candidates += [(f"{name}.{attr}", value) for attr, value in sorted(vars(member).items())
                           if not attr.startswith("_") and callable(value)]
        for qualified, obj in candidates:
            doc = inspect.getdoc(obj) if (inspect.isclass(obj) or callable(obj)) else None
            if doc:
                text = _first_paragraph(doc)
                if len(text.split()) >= MIN_WORDS:
                    found.append((qualified, text))
    return found


def write_stdlib_docs(dest: Path, rng: np.random.Generator, per_class: int = PER_CLASS) -> None:
    """``dest/<area>/<module>.<name>.txt``, up to ``per_class`` texts per area, a text written once (the first
    module that has it keeps it: a docstring shared by two areas would be a label conflict)."""
    seen: set[str] = set()
    for area, modules in AREAS.items():
        texts = []
        for module_name in modules:
            for name, text in docstrings(module_name):
                if text not in seen:
                    seen.add(text)
                    texts.append((f"{module_name}.{name}", text))
        for index in sorted(rng.permutation(len(texts))[:per_class]):
            name, text = texts[index]
            (dest / area / f"{name}.txt").write_text(text + "\n", encoding="utf-8")
