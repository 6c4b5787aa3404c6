"""Group many concurrent small pieces of blocking work into one worker-thread call.

A commit that changes a thousand clusters wakes a thousand Watch streams at once, and a
fleet of spokes reports status continuously. Doing one database round trip (and one
thread hop) per stream or per report is what limits the hub; doing one per *batch*
is not. :class:`Batcher` collects what is submitted while the previous batch runs (and
in the same loop iteration), runs it with one call in a worker thread, and hands each
caller its own result — "group commit", as databases do it for their log.

At most one batch runs at a time, so batches grow with the load instead of competing
for the same lock (SQLite has one writer).

One caller's bad item must not fail the others it happened to be batched with: when a
batch of several fails, each item is run again alone, and only the items that fail alone
get an error (unless ``retry_alone`` says the error is not an item's own, e.g. the
database is down, when every caller gets it without further tries).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Batcher"]

T = TypeVar("T")
R = TypeVar("R")


class _Failed:
    """An item that failed when run alone: its caller gets ``error``."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


class Batcher(Generic[T, R]):
    """``await batcher.submit(item)`` returns ``run(batch)[i]`` for the item's place in its batch.

    ``run`` is blocking and gets the items in submission order; it returns one result per item.
    If it raises for a batch of several items, each is run again alone and its caller gets its own
    result or exception; ``retry_alone(exc)`` False skips that (every caller gets ``exc``). Use on
    one event loop.
    """

    def __init__(self, run: Callable[[Sequence[T]], Sequence[R]], *, max_batch: int = 2000,
                 retry_alone: Callable[[Exception], bool] = lambda exc: True) -> None:
        self._run = run
        self._retry_alone = retry_alone
        self.max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._running = False
        self._scheduled = False
        self._task: asyncio.Task[Sequence[R | _Failed]] | None = None
        self.batches_run = 0   #: batches handed to ``run`` so far (tests and metrics read it)
        self.isolated = 0      #: failed batches whose items were retried one by one

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        self._schedule(loop)
        return await future

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._running and not self._scheduled and self._pending:
            self._scheduled = True
            # After everything woken in this loop iteration has submitted.
            loop.call_soon(self._start)

    def _start(self) -> None:
        self._scheduled = False
        if self._running or not self._pending:
            return
        batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
        self._running = True
        self.batches_run += 1
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(self._run_isolated,
                                                                        [item for item, _ in batch]))
        task.add_done_callback(lambda done: self._finish(batch, done))
        self._task = task  # a reference, so the running batch is not garbage-collected

    def _run_isolated(self, items: list[T]) -> Sequence[R | _Failed]:
        """``run(items)``; when that fails for several items, each alone (in this worker thread)."""
        try:
            return self._run(items)
        except Exception as exc:
            if len(items) == 1 or not self._retry_alone(exc):
                raise
        self.isolated += 1
        results: list[R | _Failed] = []
        for item in items:
            try:
                (result,) = self._run([item])
            except Exception as exc:
                results.append(_Failed(exc))
            else:
                results.append(result)
        return results

    def _finish(self, batch: list[tuple[T, asyncio.Future[R]]],
                done: asyncio.Future[Sequence[R | _Failed]]) -> None:
        self._running = False
        if done.cancelled():
            error: BaseException | None = asyncio.CancelledError()
        else:
            error = done.exception()
        results = done.result() if error is None else ()
        if error is None and len(results) != len(batch):
            error = RuntimeError(f"batch function returned {len(results)} results for {len(batch)} items")
        for index, (_, future) in enumerate(batch):
            if future.done():
                continue  # that caller went away meanwhile
            if error is not None:
                future.set_exception(error)
                continue
            result = results[index]
            if isinstance(result, _Failed):
                future.set_exception(result.error)
            else:
                future.set_result(result)
        self._schedule(asyncio.get_running_loop())
