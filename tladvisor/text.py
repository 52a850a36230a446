"""Text any output takes: the one helper the terminal, the predictions and the HTML report use."""

from __future__ import annotations


def printable(text: object) -> str:
    """``text`` a strict UTF-8 stream (or page) accepts.

    A file or class name that is not UTF-8 is held by Python as lone surrogates and cannot be encoded;
    its bytes are shown with backslash escapes (``\\xff``, as ``ls -b`` would) instead of failing.
    """
    text = str(text)
    if not any("\ud800" <= character <= "\udfff" for character in text):
        return text
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte (not from a file name)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def one_line(error: BaseException | str, *, with_type: bool = True, limit: int | None = None) -> str:
    """An error (or message) as one line: whitespace runs folded to one space, ``Type: message`` unless
    ``with_type`` is False (the message alone, or the type's name when it has none), cut at ``limit``.
    The one formatter every failure record, skip reason and error line uses."""
    if isinstance(error, BaseException):
        message = " ".join(str(error).split())
        text = f"{type(error).__name__}: {message}" if with_type else (message or type(error).__name__)
    else:
        text = " ".join(str(error).split())
    return text if limit is None else text[:limit]
