"""Concurrent small jobs run as one batch: one call, results in order, failures shared, leavers skipped."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from hub.api import batching
from protos.codec import pb


async def test_concurrent_reads_are_one_load_and_each_gets_its_own_message() -> None:
    calls: list[list[str]] = []

    def load(names: Sequence[str]) -> list[pb.DesiredState]:
        calls.append(list(names))
        return [pb.DesiredState(cluster_name=n, digest=f"sha256:{n}") for n in names]

    batcher = batching.Batcher(load)
    names = [f"c{i}" for i in range(100)] + ["c0"]  # two watchers of c0
    results = await asyncio.gather(*(batcher.submit(n) for n in names))
    assert calls == [names] and batcher.batches_run == 1
    assert [r.cluster_name for r in results] == names
    later = await batcher.submit("c5")  # a later wake is a new batch
    assert later.digest == "sha256:c5" and len(calls) == 2


async def test_work_arriving_while_a_batch_runs_forms_the_next_batch() -> None:
    release = threading.Event()
    started = threading.Event()
    calls: list[list[int]] = []

    def run(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        if len(calls) == 1:
            started.set()
            release.wait(5)
        return [i * 10 for i in items]

    batcher: batching.Batcher[int, int] = batching.Batcher(run)
    first = asyncio.ensure_future(batcher.submit(1))
    # Until the first batch is running in its thread.
    assert await asyncio.to_thread(started.wait, 5), "the first batch never started"
    rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(2, 7)]
    await asyncio.sleep(0)
    release.set()
    assert await first == 10 and await asyncio.gather(*rest) == [20, 30, 40, 50, 60]
    assert calls == [[1], [2, 3, 4, 5, 6]]  # one batch at a time; the waiting ones went together


async def test_a_failed_load_fails_every_waiter() -> None:
    def load(names: Sequence[str]) -> list[pb.DesiredState]:
        raise RuntimeError("database away")

    batcher = batching.Batcher(load)
    results = await asyncio.gather(batcher.submit("a"), batcher.submit("b"), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)


async def test_a_waiter_that_went_away_does_not_break_the_others() -> None:
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    def load(names: Sequence[str]) -> list[pb.DesiredState]:
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result(5)
        return [pb.DesiredState(cluster_name=n) for n in names]

    batcher = batching.Batcher(load)
    gone = asyncio.ensure_future(batcher.submit("a"))
    stays = asyncio.ensure_future(batcher.submit("b"))
    await asyncio.sleep(0)
    gone.cancel()
    release.set()
    assert (await stays).cluster_name == "b"
    with pytest.raises(asyncio.CancelledError):
        await gone


async def test_one_bad_item_fails_only_its_own_caller() -> None:
    calls: list[list[int]] = []

    def save(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        if 13 in items:
            raise ValueError("year 10000 is out of range")
        return [i * 10 for i in items]

    batcher: batching.Batcher[int, int] = batching.Batcher(save)
    results = await asyncio.gather(*(batcher.submit(i) for i in (1, 13, 2, 3)), return_exceptions=True)
    assert results[0] == 10 and results[2:] == [20, 30]
    assert isinstance(results[1], ValueError) and "out of range" in str(results[1])
    assert calls == [[1, 13, 2, 3], [1], [13], [2], [3]] and batcher.isolated == 1


async def test_an_error_that_is_no_items_fault_is_not_retried_item_by_item() -> None:
    calls: list[list[int]] = []

    def save(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        raise ConnectionError("database away")

    batcher: batching.Batcher[int, int] = batching.Batcher(
        save, retry_alone=lambda exc: not isinstance(exc, ConnectionError))
    results = await asyncio.gather(*(batcher.submit(i) for i in range(5)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert calls == [[0, 1, 2, 3, 4]]
