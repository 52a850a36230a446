"""The one ``printable`` helper every output uses for names that are not UTF-8."""

from __future__ import annotations

import os

from tladvisor.text import printable


def test_a_non_utf8_file_name_is_shown_with_backslash_escapes():
    name = os.fsdecode(b"caf\xe9.png")  # how Python holds a Latin-1 file name: a lone surrogate
    assert printable(name) == "caf\\xe9.png"
    assert printable("café ✓") == "café ✓"  # UTF-8 text is left alone
    assert printable("\ud800 odd").encode("utf-8") == b"\\ud800 odd"  # not an escaped byte: no crash either
    assert printable(3) == "3"
