"""Stopping cleanly on SIGINT (Ctrl+C) and SIGTERM (``kill``, a batch scheduler, a container stop).

While :func:`stop_on_signals` is active, either signal raises :class:`Interrupted` in the main thread,
wherever it is: a trial being trained is closed as FAIL "interrupted by SIGTERM" with its learning
curve so far, the Advisor writes the report and analysis.json from what exists, and the command exits
with 128 + the signal number (130 for SIGINT, 143 for SIGTERM). A second signal while that cleanup
runs raises again and cuts it short: every output is written atomically and the study is resumable,
so stopping at any point loses nothing finished (the same holds for SIGKILL, which cannot be caught).

Python runs a signal handler between any two bytecodes, also inside a ``__del__`` or a weakref callback
run by the garbage collector, where an exception cannot propagate: it is printed as "Exception ignored"
and dropped. The stop would be lost and the run would go on to the end. While the block is active, an
``Interrupted`` that reaches ``sys.unraisablehook`` is therefore marked as a new arrival of the same
signal, which the handler raises again in the code that runs next.

``Interrupted`` derives from ``BaseException`` like ``KeyboardInterrupt``: the ``except Exception``
that turns a failed trial or plugin into data must not swallow a request to stop.
"""

from __future__ import annotations

import _thread
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """The process was asked to stop by ``signal_name``; ``kept`` says what the run kept (one line)."""

    def __init__(self, signal_name: str, signum: int):
        super().__init__(f"interrupted by {signal_name}")
        self.signal_name = signal_name
        self.signum = signum
        self.kept = ""  # "while <stage>: kept ...", filled in by whoever saved the work (the Advisor)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM

    def summary(self) -> str:
        """The one line shown to the user."""
        kept = f" {self.kept}" if self.kept else ""
        return f"interrupted by {self.signal_name}{kept}; run the same command again to resume"


def reason(error: BaseException) -> str:
    """Why a trial stopped when ``error`` went through it (recorded as the trial's reason)."""
    if isinstance(error, Interrupted):
        return f"interrupted by {error.signal_name}"
    if isinstance(error, KeyboardInterrupt):  # Ctrl+C without stop_on_signals (the Python API)
        return "interrupted by SIGINT"
    return f"interrupted ({type(error).__name__})"


def interrupted_from(error: BaseException) -> Interrupted:
    """``error`` as an :class:`Interrupted` (a bare KeyboardInterrupt is a SIGINT)."""
    if isinstance(error, Interrupted):
        return error
    return Interrupted("SIGINT", int(signal.SIGINT))


class _State:
    deferring = 0  # depth of nested deferred() blocks
    pending: Interrupted | None = None  # the signal that arrived while deferring


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold a stop signal until the block ends (a few lines that must finish together, like recording a
    trial's result); it is raised when the block exits. A second signal inside the block raises at once.
    """
    _State.deferring += 1
    try:
        yield
    finally:
        _State.deferring -= 1
        if _State.deferring == 0 and _State.pending is not None:
            pending, _State.pending = _State.pending, None
            raise pending


def _handler(signum: int, _frame) -> None:
    stop = Interrupted(signal.Signals(signum).name, signum)
    if _State.deferring and _State.pending is None:
        _State.pending = stop
        return
    raise stop


def _redeliver_swallowed(previous_hook):
    """An unraisable hook that re-sends a swallowed :class:`Interrupted`; anything else goes to ``previous_hook``."""

    def hook(unraisable) -> None:
        stop = unraisable.exc_value
        if isinstance(stop, Interrupted):
            # Not signal.raise_signal, nor interrupt_main from this thread: both let the handler run
            # right here, inside this hook, where its exception is dropped too. A new thread marks the
            # signal as arrived once the main thread lets go of the GIL (a few ms at most), and the
            # handler raises at the main thread's next check, in whatever code runs then.
            _thread.start_new_thread(_thread.interrupt_main, (stop.signum,))
        else:
            previous_hook(unraisable)

    return hook


@contextlib.contextmanager
def stop_on_signals(signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> Iterator[None]:
    """Raise :class:`Interrupted` on ``signals`` inside the block; the previous handlers come back after it.

    Outside the main thread (where Python cannot install handlers) the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    previous = {}
    previous_hook = sys.unraisablehook
    try:
        sys.unraisablehook = _redeliver_swallowed(previous_hook)
        for number in signals:
            previous[number] = signal.signal(number, _handler)
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old if old is not None else signal.SIG_DFL)
        sys.unraisablehook = previous_hook
