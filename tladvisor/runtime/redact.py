"""Keeping secrets out of what tladvisor writes: passwords inside URLs (``scheme://user:password@host``)."""

from __future__ import annotations

import re

# scheme://user:password@ — the password is anything up to the last '@' before the host part
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][\w+.-]*://[^\s:/@]*):(?P<password>[^\s@]*)@")


def redact_passwords(text: str) -> str:
    """Replace the password of every URL in ``text`` (a URL or a whole command line) with ``***``."""
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}:***@", text)
