"""The one way tests wait: poll a condition until it holds, or fail naming what never happened.

Tests never assert on elapsed time; they wait for what a user would see. ``wait_for`` polls a plain
function (threads, subprocesses, HTTP); ``poll`` awaits a coroutine function on the running loop.
Both return the first truthy value, so ``row = wait_for(lambda: find(...))`` reads naturally.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["poll", "wait_for"]

T = TypeVar("T")

#: How often a condition is checked; short, because each check is cheap next to what it waits for.
INTERVAL = 0.02


def _timed_out(timeout: float, what: str) -> AssertionError:
    return AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_for(check: Callable[[], T | None], *, timeout: float = 10.0, what: str = "condition",
             interval: float = INTERVAL) -> T:
    """Call ``check`` until it returns something truthy and return that; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(timeout, what)
        time.sleep(interval)


async def poll(check: Callable[[], Awaitable[T | None]], *, timeout: float = 10.0, what: str = "condition",
               interval: float = INTERVAL) -> T:
    """Await ``check`` until it returns something truthy and return that; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise _timed_out(timeout, what)
        await asyncio.sleep(interval)
