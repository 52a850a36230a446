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
``Interrupted`` that reaches ``sys.unraisablehook`` is therefore sent again as the same signal to the main
thread, whose handler raises it in the code that runs next (a stop still on its way when the block ends
is raised there, before the old handlers come back).

``Interrupted`` derives from ``BaseException`` like ``KeyboardInterrupt``: the ``except Exception``
that turns a failed trial or plugin into data must not swallow a request to stop.
"""

from __future__ import annotations

import _thread
import contextlib
import logging
import os
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


class CleanupAfterStop(logging.Filter):
    """Drops a log record whose error happened while unwinding from an :class:`Interrupted`.

    A stop can land inside a library call; the library's own cleanup may then fail and log it with a
    traceback (SQLAlchemy: "Exception closing cursor ... Cannot operate on a closed database" when SIGTERM
    arrives mid-fetch). The stop has its one-line summary; that traceback is noise on the way out.
    Installed on the CLI's log handler; with ``--debug`` (``TLADVISOR_DEBUG``) it lets everything through.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if os.environ.get("TLADVISOR_DEBUG"):
            return True
        error = record.exc_info[1] if record.exc_info else None
        seen = 0
        while error is not None and seen < 20:  # the chain of "during handling of the above exception"
            if isinstance(error, (Interrupted, KeyboardInterrupt)):
                return False
            error, seen = error.__context__, seen + 1
        return True


def interrupted_from(error: BaseException) -> Interrupted:
    """``error`` as an :class:`Interrupted` (a bare KeyboardInterrupt is a SIGINT)."""
    if isinstance(error, Interrupted):
        return error
    return Interrupted("SIGINT", int(signal.SIGINT))


class _State:
    deferring = 0  # depth of nested deferred() blocks
    pending: Interrupted | None = None  # the signal that arrived while deferring
    swallowed: Interrupted | None = None  # a stop Python dropped, being sent again
    resent: _thread.LockType | None = None  # released once it has been sent again


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
    _State.swallowed = None  # a stop being sent again has arrived (if it is dropped again, the hook re-arms it)
    stop = Interrupted(signal.Signals(signum).name, signum)
    if _State.deferring and _State.pending is None:
        _State.pending = stop
        return
    raise stop


def _send_again(signum: int, done: _thread.LockType) -> None:
    try:
        # A real signal to the main thread: it also cuts short a sleep, a lock or a queue wait there.
        signal.pthread_kill(threading.main_thread().ident, signum)
    finally:
        done.release()


def _redeliver_swallowed(previous_hook):
    """An unraisable hook that sends a swallowed :class:`Interrupted` again; anything else goes to ``previous_hook``."""

    def hook(unraisable) -> None:
        stop = unraisable.exc_value
        if isinstance(stop, Interrupted):
            # Not from this thread: signal.raise_signal would run the handler right here, inside this
            # hook, where its exception is dropped too. The new thread (no Python-level start-up wait)
            # runs once the main thread lets go of the GIL, a few ms at most, and the handler then
            # raises in whatever code the main thread runs.
            done = _thread.allocate_lock()
            done.acquire()
            _State.swallowed, _State.resent = stop, done
            _thread.start_new_thread(_send_again, (stop.signum, done))
        else:
            previous_hook(unraisable)

    return hook


def _land_swallowed_stop() -> None:
    """At the end of the block: a stop still being sent again lands here, while the handler is installed
    (after it, SIGTERM would kill the process without cleanup and SIGINT surface in unrelated code)."""
    if _State.swallowed is None:
        return
    if _State.resent is not None:
        _State.resent.acquire(timeout=1.0)  # the signal interrupts this wait, and the handler raises
    stop, _State.swallowed = _State.swallowed, None
    if stop is not None:  # sent but not handled yet, or the sending thread failed
        raise stop


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
        try:
            _land_swallowed_stop()
        finally:
            for number, old in previous.items():
                signal.signal(number, old if old is not None else signal.SIG_DFL)
            sys.unraisablehook = previous_hook
