"""Where a run says what it is doing: stages, counts with rate and ETA, and one line per finished step.

The code that does the work asks :func:`current` for the reporter and tells it what happens; the command
line chooses the reporter once (:func:`for_console`):

* a terminal gets a spinner whose text changes (the stage, ``640/2000 images, 41 img/s, ETA 33 s``) and
  permanent lines above it (``trial 3/5 partial_freeze@4 val 0.912 (best 0.930) 41 s``);
* a pipe or a file gets plain time-stamped lines (``[15:04:05] measuring resnet18``, bracketed as log
  lines are, so an error line stays apart): every permanent line, every stage, and a count at most
  every :data:`LOG_INTERVAL` seconds (so ``analyze ... >out 2>err`` shows progress while it runs);
* ``--quiet`` and library use get :class:`Reporter`, which says nothing.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import TextIO

from tladvisor.text import printable

LOG_INTERVAL = 10.0  # seconds between two count lines in a log (permanent lines are never held back)


def duration_text(seconds: float) -> str:
    """``41 s``, ``3 min 05 s``, ``1 h 02 min``: short, and exact enough for a wait."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


class Counter:
    """Counts ``done`` of ``total`` units of one task and words it with its rate and time left."""

    def __init__(self, reporter: Reporter, what: str, total: int, unit: str = "images",
                 clock: Callable[[], float] = time.monotonic):
        self.reporter, self.what, self.total, self.unit, self.clock = reporter, what, max(0, int(total)), unit, clock
        self.done = 0
        self.started = clock()

    def advance(self, n: int) -> None:
        self.done += int(n)
        self.reporter.status(self.text(), final=self.done >= self.total)

    def text(self) -> str:
        elapsed = self.clock() - self.started
        parts = [f"{self.what}: {self.done}/{self.total} {self.unit}"]
        if self.done and elapsed > 0:
            rate = self.done / elapsed
            parts.append(f"{rate:.1f} {self.unit_short}/s" if rate < 10 else f"{rate:.0f} {self.unit_short}/s")
            if self.done < self.total:
                parts.append(f"ETA {duration_text((self.total - self.done) / rate)}")
        return ", ".join(parts)

    @property
    def unit_short(self) -> str:
        return "img" if self.unit == "images" else self.unit


class Reporter:
    """Says nothing: the reporter of ``--quiet`` and of library use. Subclasses write somewhere."""

    def stage(self, text: str) -> None:
        """A new stage begins (``measuring resnet18``)."""

    def status(self, text: str, *, final: bool = False) -> None:
        """Where the current stage stands; replaced by the next status (``final``: the last one of a count)."""

    def line(self, text: str) -> None:
        """Something finished that stays on record (a trial, a backbone measured)."""

    def counter(self, what: str, total: int, unit: str = "images") -> Counter:
        return Counter(self, what, total, unit)


class LogReporter(Reporter):
    """Plain time-stamped lines for a pipe or a file; counts at most every :data:`LOG_INTERVAL` seconds."""

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, interval: float = LOG_INTERVAL):
        self.stream, self.clock, self.wall, self.interval = stream, clock, wall, interval
        self._last_status = -float("inf")

    def _write(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(self.wall()))
        self.stream.write(f"[{stamp}] {printable(text)}\n")  # bracketed, as log lines are: not an error line
        self.stream.flush()

    def stage(self, text: str) -> None:
        self._write(text)
        self._last_status = self.clock()  # the stage line says enough for now

    def status(self, text: str, *, final: bool = False) -> None:
        now = self.clock()
        if final or now - self._last_status >= self.interval:
            self._write(text)
            self._last_status = now

    def line(self, text: str) -> None:
        self._write(text)


class TerminalReporter(Reporter):
    """A rich spinner on ``console`` whose text is the stage or its count; lines print above it."""

    def __init__(self, console, status) -> None:
        self.console, self._status = console, status

    def stage(self, text: str) -> None:
        self._status.update(printable(text))

    def status(self, text: str, *, final: bool = False) -> None:
        self._status.update(printable(text))

    def line(self, text: str) -> None:
        self.console.print(printable(text), markup=False, highlight=False)


_current: Reporter = Reporter()


def current() -> Reporter:
    """The reporter of the run in progress (a silent one outside :func:`reporting`)."""
    return _current


@contextlib.contextmanager
def reporting(reporter: Reporter) -> Iterator[Reporter]:
    """Make ``reporter`` the one :func:`current` returns for the ``with`` block."""
    global _current
    before, _current = _current, reporter
    try:
        yield reporter
    finally:
        _current = before


@contextlib.contextmanager
def for_console(console, *, quiet: bool = False, stream: TextIO | None = None) -> Iterator[Reporter]:
    """The reporter for a command's stderr ``console`` (a rich Console): silent when ``quiet``, a spinner
    on a terminal, plain lines otherwise; current for the ``with`` block."""
    if quiet:
        with reporting(Reporter()) as reporter:
            yield reporter
    elif console.is_terminal:
        with console.status("starting") as status, reporting(TerminalReporter(console, status)) as reporter:
            yield reporter
    else:
        with reporting(LogReporter(stream or console.file or sys.stderr)) as reporter:
            yield reporter
