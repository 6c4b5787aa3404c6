"""Time for the emulated API server: timestamps as Kubernetes writes them, and controller timers.

The registry, the verbs and the controllers all stamp objects; they take the time from here rather
than from each other, so a controller never imports the registry just to know what time it is.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Timers", "now"]


def now() -> str:
    """RFC 3339 UTC with whole seconds, as every Kubernetes timestamp."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Timers:
    """One cluster's pending controller steps on the event loop; all cancelled when the cluster closes."""

    def __init__(self) -> None:
        self._pending: set[asyncio.TimerHandle] = set()

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` after ``delay`` seconds on the running loop."""
        loop = asyncio.get_running_loop()
        holder: list[asyncio.TimerHandle] = []

        def run() -> None:
            self._pending.discard(holder[0])
            callback(*args)

        # A fresh context: controller writes must not inherit the triggering request's settings.
        handle = loop.call_later(delay, run, context=contextvars.Context())
        holder.append(handle)
        self._pending.add(handle)

    def cancel_all(self) -> None:
        for handle in list(self._pending):
            handle.cancel()
        self._pending.clear()
