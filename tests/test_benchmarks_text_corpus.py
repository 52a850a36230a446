"""The text task builders (benchmarks/tasks/text.py) read their sources right: a dpkg status file, licence
texts, gettext catalogues and man pages made here, the installed libraries' docstrings; and a built task
keeps each text in one class and says where it came from."""

from __future__ import annotations

import csv
import gzip
import json
import struct
from pathlib import Path

from benchmarks.tasks import text as text_corpus  # noqa: E402


def test_debian_descriptions_are_labelled_by_section(tmp_path):
    status = tmp_path / "status"
    status.write_text("Package: a\nSection: libs\nDescription: a library\n that does things\n .\n more words\n\n"
                      "Package: b\nSection: contrib/utils\nDescription: a tool for files\n\n"
                      "Package: c\nDescription: no section here\n", encoding="utf-8")
    found = text_corpus.debian_sections(status)
    assert [(text, label) for text, label, _ in found] == [("a library that does things more words", "libs"),
                                                             ("a tool for files", "utils")]


def test_licence_paragraphs_are_labelled_by_family(tmp_path):
    long = " ".join(["word"] * 20)
    (tmp_path / "GPL-2").write_text(f"title\n\n{long} one\n\n{long} two\n", encoding="utf-8")
    (tmp_path / "MPL-2.0").write_text(f"{long} three\n", encoding="utf-8")
    found = text_corpus.license_family(tmp_path)
    assert sorted((label, text.split()[-1]) for text, label, _ in found) == [("GPL", "one"), ("GPL", "two"),
                                                                              ("MPL", "three")]


def write_mo(path: Path, messages: dict[str, str]) -> None:
    """A GNU gettext catalogue (the .mo format: header, then tables of lengths and offsets)."""
    keys = sorted(messages)
    ids = b"".join(k.encode() + b"\0" for k in keys)
    strs = b"".join(messages[k].encode() + b"\0" for k in keys)
    start = 7 * 4 + 16 * len(keys)
    id_offsets, str_offsets, position = [], [], 0
    for key in keys:
        id_offsets += [len(key.encode()), start + position]
        position += len(key.encode()) + 1
    position = 0
    for key in keys:
        str_offsets += [len(messages[key].encode()), start + len(ids) + position]
        position += len(messages[key].encode()) + 1
    header = struct.pack("Iiiiiii", 0x950412DE, 0, len(keys), 7 * 4, 7 * 4 + 8 * len(keys), 0, 0)
    path.parent.mkdir(parents=True)
    path.write_bytes(header + struct.pack(f"{len(id_offsets)}i", *id_offsets)
                     + struct.pack(f"{len(str_offsets)}i", *str_offsets) + ids + strs)


def test_translated_messages_are_labelled_by_language(tmp_path):
    write_mo(tmp_path / "de" / "LC_MESSAGES" / "app.mo", {"": "Content-Type: text/plain; charset=UTF-8\n",
                                                          "Open the file": "Die Datei öffnen jetzt",
                                                          "Quit": "Ende", "%d files": "%d Dateien sind da"})
    found = text_corpus.gettext_language(tmp_path)
    assert [(text, label) for text, label, _ in found] == [("Die Datei öffnen jetzt", "de")]


def test_man_pages_give_their_name_line_and_description(tmp_path):
    page = (".TH LS 1\n.SH NAME\nls \\- list directory contents\n.SH SYNOPSIS\n\\fBls\\fR [OPTION]...\n"
            ".SH DESCRIPTION\n.PP\nList information about the FILEs (the current directory by default).\n"
            ".PP\nA second paragraph that is left out.\n")
    (tmp_path / "man1").mkdir()
    (tmp_path / "man1" / "ls.1.gz").write_bytes(gzip.compress(page.encode()))
    (tmp_path / "man1" / "dir.1.gz").write_bytes(gzip.compress(b".so man1/ls.1\n"))
    found = text_corpus.man_sections(tmp_path)
    assert [(text, label) for text, label, _ in found] == [
        ("list directory contents. List information about the FILEs (the current directory by default).", "commands")]


def test_a_built_task_keeps_each_text_in_one_class_and_its_provenance(tmp_path, monkeypatch):
    triples = [(f"text {i} " + "w " * 5, "a" if i % 2 else "b", f"origin {i}") for i in range(30)]
    triples += [("Same text!", "a", "x"), ("same TEXT", "b", "y")]
    monkeypatch.setitem(text_corpus.TASKS, "toy", lambda: triples)
    path = text_corpus.build("toy", tmp_path, per_class=10)
    with open(path, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 20 and {r["label"] for r in rows} == {"a", "b"}
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["classes"] == {"a": 10, "b": 10} and meta["available"]["b"] == 16  # the duplicate dropped
    assert meta["origins"][0].startswith("origin")


def test_the_docstring_tasks_read_the_installed_libraries():
    areas = text_corpus.stdlib_areas()
    assert {label for _, label, _ in areas} == {"networking", "text", "files", "concurrency"}
    libraries = {label for _, label, _ in text_corpus.library_docstrings()}
    assert {"numpy", "torch", "optuna"} <= libraries  # the dev environment's own dependencies
