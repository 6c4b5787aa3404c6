"""Watchers that wake together share one read of their desired states."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from hub.api import spoke
from protos.codec import pb


async def test_concurrent_reads_are_one_load_and_each_gets_its_own_message() -> None:
    calls: list[list[str]] = []

    def load(names: Sequence[str]) -> dict[str, pb.DesiredState]:
        calls.append(sorted(names))
        return {n: pb.DesiredState(cluster_name=n, digest=f"sha256:{n}") for n in names}

    coalescer = spoke._Coalescer(load)
    names = [f"c{i}" for i in range(100)] + ["c0"]  # two watchers of c0
    results = await asyncio.gather(*(coalescer.get(n) for n in names))
    assert calls == [sorted(set(names))]
    assert [r.cluster_name for r in results] == names
    assert results[0] is not results[-1] and results[0] == results[-1]
    later = await coalescer.get("c5")  # a later wake is a new read
    assert later.digest == "sha256:c5" and len(calls) == 2


async def test_a_failed_load_fails_every_waiter() -> None:
    def load(names: Sequence[str]) -> dict[str, pb.DesiredState]:
        raise RuntimeError("database away")

    coalescer = spoke._Coalescer(load)
    results = await asyncio.gather(coalescer.get("a"), coalescer.get("b"), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)


async def test_a_waiter_that_went_away_does_not_break_the_others() -> None:
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    def load(names: Sequence[str]) -> dict[str, pb.DesiredState]:
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result(5)
        return {n: pb.DesiredState(cluster_name=n) for n in names}

    coalescer = spoke._Coalescer(load)
    gone = asyncio.ensure_future(coalescer.get("a"))
    stays = asyncio.ensure_future(coalescer.get("b"))
    await asyncio.sleep(0)
    gone.cancel()
    release.set()
    assert (await stays).cluster_name == "b"
    with pytest.raises(asyncio.CancelledError):
        await gone
