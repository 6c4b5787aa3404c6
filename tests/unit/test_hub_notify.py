"""Watch fan-out: a change wakes exactly the watchers of that cluster, at once; idle watchers cost no polling."""

from __future__ import annotations

import asyncio

from hub import notify


async def test_notify_wakes_only_that_clusters_watchers() -> None:
    notifier = notify.Notifier()
    seen_a, seen_b = notifier.version("a"), notifier.version("b")
    waiter_a = asyncio.create_task(notifier.wait("a", seen_a, timeout=5))
    waiter_b = asyncio.create_task(notifier.wait("b", seen_b, timeout=0.2))
    await asyncio.sleep(0)  # let both start waiting
    loop = asyncio.get_running_loop()
    started = loop.time()
    notifier.notify(["a"])
    result_a = await waiter_a
    assert result_a.changed and not result_a.closing
    assert result_a.version == seen_a + 1
    assert loop.time() - started < 1.0  # woken, not timed out
    result_b = await waiter_b
    assert not result_b.changed and result_b.version == seen_b


async def test_change_between_read_and_wait_is_not_lost() -> None:
    notifier = notify.Notifier()
    seen = notifier.version("a")
    notifier.notify(["a"])  # lands before the watcher starts waiting
    result = await notifier.wait("a", seen, timeout=5)
    assert result.changed and result.version == seen + 1


async def test_many_watchers_all_wake_once() -> None:
    notifier = notify.Notifier()
    waiters = [asyncio.create_task(notifier.wait("a", 0, timeout=5)) for _ in range(1000)]
    await asyncio.sleep(0)
    notifier.notify(["a"])
    results = await asyncio.gather(*waiters)
    assert all(r.changed and r.version == 1 for r in results)


async def test_close_wakes_everyone_with_closing() -> None:
    notifier = notify.Notifier()
    waiters = [asyncio.create_task(notifier.wait(name, 0, timeout=30)) for name in ("a", "b", "c")]
    await asyncio.sleep(0)
    notifier.close()
    results = await asyncio.wait_for(asyncio.gather(*waiters), 2)
    assert all(r.closing for r in results)
    assert (await notifier.wait("d", 0, timeout=30)).closing  # no new waits after close


def test_connection_accounting() -> None:
    notifier = notify.Notifier()
    notifier.connected("a")
    notifier.connected("a")
    notifier.connected("b")
    assert notifier.stream_count == 3 and notifier.connected_clusters == {"a", "b"}
    notifier.disconnected("a")
    assert notifier.is_connected("a")
    notifier.disconnected("a")
    assert not notifier.is_connected("a") and notifier.stream_count == 1


async def test_beat_wakes_every_watcher_without_a_change_and_a_later_change_still_arrives() -> None:
    notifier = notify.Notifier()
    waiters = [asyncio.create_task(notifier.wait(name, 0)) for name in ("a", "b", "c")]
    await asyncio.sleep(0)
    notifier.beat()
    results = await asyncio.wait_for(asyncio.gather(*waiters), 5)
    assert [r.changed for r in results] == [False, False, False]
    # The beat replaced the events: a change after it wakes the next wait of that cluster only.
    again_a = asyncio.create_task(notifier.wait("a", 0))
    again_b = asyncio.create_task(notifier.wait("b", 0))
    await asyncio.sleep(0)
    notifier.notify(["a"])
    assert (await asyncio.wait_for(again_a, 5)).changed
    for _ in range(10):  # give a wrongly woken waiter every chance to finish, without real time passing
        await asyncio.sleep(0)
    assert not again_b.done()
    again_b.cancel()
