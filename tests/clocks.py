"""A fake clock for code that waits on ``threading.Event`` s with timeouts (``spoke.report.Clock``).

Time moves only when the test calls :meth:`FakeClock.advance`. :meth:`FakeClock.settle` blocks until
the code under test is parked in a wait that fake time has not yet ended, so a test can say "after
everything that could happen by now has happened" without sleeping and hoping it was long enough.
"""

from __future__ import annotations

import threading
import time

__all__ = ["FakeClock"]

# How often a parked waiter looks at its Event: Event.set() cannot wake our condition directly.
_GRAIN = 0.002


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        # Not 0: real monotonic clocks are far from 0, and code compares against "never attempted" = 0.
        self._now = start
        self._cond = threading.Condition()
        self._parked: dict[int, tuple[threading.Event, float]] = {}   #: thread id -> (event, deadline)

    def monotonic(self) -> float:
        with self._cond:
            return self._now

    def wait(self, event: threading.Event, timeout: float) -> bool:
        me = threading.get_ident()
        with self._cond:
            self._parked[me] = (event, self._now + timeout)
            self._cond.notify_all()
            try:
                while not event.is_set() and self._now < self._parked[me][1]:
                    self._cond.wait(_GRAIN)
                return event.is_set()
            finally:
                del self._parked[me]
                self._cond.notify_all()

    def advance(self, seconds: float) -> None:
        """Let the code under test catch up with now, move time on, and let it catch up again."""
        self.settle()
        with self._cond:
            self._now += seconds
            self._cond.notify_all()
        self.settle()

    def settle(self, *, threads: int = 1, timeout: float = 10.0) -> None:
        """Wait until ``threads`` threads are parked with an unset event and a deadline still ahead."""
        give_up = time.monotonic() + timeout
        with self._cond:
            while sum(1 for event, deadline in self._parked.values()
                      if not event.is_set() and deadline > self._now) < threads:
                remaining = give_up - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out after {timeout}s waiting for {threads} thread(s) to park")
                self._cond.wait(min(_GRAIN, remaining))
