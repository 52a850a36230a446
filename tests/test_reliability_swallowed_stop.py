"""A stop signal whose handler runs inside a ``__del__`` or a garbage-collector weakref callback is not lost.

Python drops an exception raised there ("Exception ignored in ..."), so without re-delivery a ``kill``
that lands at that moment would let the run go on to its end and exit 0 (seen in CI, inside SQLAlchemy's
weakref callback). The handler is called directly inside the callback, which is where the interpreter
would have run it; the stop must then reach the code that runs next.
"""

from __future__ import annotations

import signal
import sys
import time
import weakref

import pytest

from tladvisor.runtime import interrupts
from tladvisor.runtime.interrupts import Interrupted, stop_on_signals


class StopsInDel:
    signum = signal.SIGTERM

    def __del__(self):
        interrupts._handler(self.signum, None)


class CtrlCInDel(StopsInDel):
    signum = signal.SIGINT


class Target:
    pass


def stop_in_weakref_callback(_ref) -> None:
    interrupts._handler(signal.SIGTERM, None)


def busy_work(seconds: float = 5.0) -> None:
    """Python code running for a while, as the run would go on after the callback (the stop lands in ms)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.001)


def drop_in_del(kind: type = StopsInDel) -> None:
    holder = [kind()]
    holder.clear()  # __del__ runs here


def drop_in_weakref_callback() -> None:
    target = Target()
    ref = weakref.ref(target, stop_in_weakref_callback)
    del target  # the callback runs here
    assert ref() is None


@pytest.mark.parametrize("swallowing_place", [drop_in_del, drop_in_weakref_callback])
def test_a_stop_raised_where_python_ignores_exceptions_reaches_the_main_code(swallowing_place):
    reached_the_end = False
    with pytest.raises(Interrupted) as caught:
        with stop_on_signals():
            swallowing_place()
            busy_work()
            reached_the_end = True
    assert caught.value.signal_name == "SIGTERM" and caught.value.exit_code == 143
    assert not reached_the_end


def test_the_stop_cuts_short_a_blocking_wait_as_a_real_signal_would():
    started = time.monotonic()
    with pytest.raises(Interrupted):
        with stop_on_signals():
            drop_in_del()
            time.sleep(30)  # one long sleep: only a real signal interrupts it
    # interrupted at once, or after the whole sleep: the margin is wide so a loaded machine (CI beside a
    # long benchmark) cannot fail it by slowness alone
    assert time.monotonic() - started < 15


def test_a_stop_swallowed_just_before_the_block_ends_is_raised_there_not_later():
    previous = sys.unraisablehook
    with pytest.raises(Interrupted) as caught:
        with stop_on_signals():
            drop_in_del(CtrlCInDel)  # the block ends a few bytecodes later, before the stop is sent again
    assert caught.value.signal_name == "SIGINT"
    assert sys.unraisablehook is previous  # restored on the way out through Interrupted too
    time.sleep(0.1)  # a late SIGINT would raise KeyboardInterrupt here, outside any block


def test_other_ignored_exceptions_go_to_the_previous_hook_which_comes_back_after_the_block(monkeypatch):
    seen = []
    def recording_hook(unraisable) -> None:
        seen.append(type(unraisable.exc_value))

    monkeypatch.setattr(sys, "unraisablehook", recording_hook)

    class FailsInDel:
        def __del__(self):
            raise ValueError("not a stop")

    with stop_on_signals():
        holder = [FailsInDel()]
        holder.clear()
        busy_work(0.05)
        assert sys.unraisablehook is not recording_hook
    assert seen == [ValueError]
    assert sys.unraisablehook is recording_hook
