"""In-process fan-out of "cluster X's desired state changed" to its Watch streams.

An idle Watch stream costs one suspended coroutine and a share of one
``asyncio.Event`` per cluster: no timers of its own beyond the heartbeat wait,
no polling. Each cluster has a version counter; a watcher remembers the version
it last served and waits on the cluster's current event. ``notify`` bumps the
version and sets (then replaces) the event, so every waiter wakes once and a
change that lands between "read desired state" and "wait" is never missed.

A cluster whose credential is withdrawn (removed, or rotated once the spoke used its new one) is
*revoked*: :meth:`Notifier.revoke` bumps its revocation counter, wakes its Watch streams (each ends
when it sees the counter moved past the value it started with) and calls the revocation listeners
(the StreamStatus servicer ends that cluster's report streams).

All methods must be called on the event loop thread; the hub's blocking work
returns to the loop before notifying.

Several hub replicas share one PostgreSQL: :attr:`Notifier.publish` (set by the composition root)
is called with every local ``notify``/``revoke`` so the other replicas hear of it
(:mod:`hub.store.replicas` carries it over LISTEN/NOTIFY); what arrives from them is applied with
:meth:`Notifier.notify_local` and :meth:`Notifier.revoke_local`, which do not publish again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable

__all__ = ["Notifier", "WaitResult"]


@dataclasses.dataclass(frozen=True, slots=True)
class WaitResult:
    """Why :meth:`Notifier.wait` returned."""

    version: int        #: the cluster's version now (pass it to the next wait)
    changed: bool       #: the version moved past the one the caller had seen
    closing: bool       #: the hub is shutting down; the stream must end


class Notifier:
    """Per-cluster version counters and wake-ups for Watch streams."""

    def __init__(self) -> None:
        self._versions: dict[str, int] = {}
        self._events: dict[str, asyncio.Event] = {}
        self._connected: Counter[str] = Counter()
        self._closing = asyncio.Event()
        self._revocations: Counter[str] = Counter()
        self._revoke_listeners: list[Callable[[str], int]] = []
        #: Called as ``publish(kind, clusters)`` ("changed" or "revoked") after a local change, so
        #: other replicas wake their streams too; None on a single replica.
        self.publish: Callable[[str, list[str]], None] | None = None
        #: This replica cannot hear the others or reach the database: it cannot confirm any cluster's
        #: desired state, so Watch streams end (the spoke reconnects to another replica) until it can.
        self.detached = False

    # -- producers ------------------------------------------------------------------------
    def notify(self, clusters: Iterable[str]) -> None:
        """Wake every watcher of these clusters (their desired state or paused flag changed)."""
        names = list(clusters)
        self.notify_local(names)
        if self.publish is not None and names:
            self.publish("changed", names)

    def notify_local(self, clusters: Iterable[str]) -> None:
        """Wake this process's watchers of these clusters only (another replica made the change)."""
        for name in clusters:
            self._versions[name] = self._versions.get(name, 0) + 1
            event = self._events.pop(name, None)
            if event is not None:
                event.set()

    def wake_all(self) -> None:
        """Treat every cluster as changed: each watcher re-reads its desired state from the database.

        For a replica that may have missed other replicas' notifications (its listening connection
        dropped): it must not trust what it remembers.
        """
        for name in set(self._versions) | set(self._events):
            self._versions[name] = self._versions.get(name, 0) + 1
        self.beat()

    def detach(self) -> None:
        """Lost the database: every Watch stream wakes and ends; new ones are refused until :meth:`attach`."""
        self.detached = True
        self.beat()

    def attach(self) -> None:
        """The database is back: serve again; whatever was missed is re-read (:meth:`wake_all`)."""
        self.detached = False
        self.wake_all()

    def beat(self) -> None:
        """Wake every waiting watcher without a change, so each sends its heartbeat.

        One timer for all streams (the Watch servicer's), instead of a timeout per stream: an idle
        hub with 1,000 streams should cost next to nothing between heartbeats.
        """
        events, self._events = self._events, {}
        for event in events.values():
            event.set()

    def revoke(self, cluster: str) -> int:
        """End every stream of ``cluster`` on this process (its credential no longer works).

        Returns how many streams were told to end (Watch streams, plus what the listeners ended).
        Other replicas are told too (:attr:`publish`), so the cluster's streams end everywhere.
        """
        ended = self.revoke_local(cluster)
        if self.publish is not None:
            self.publish("revoked", [cluster])
        return ended

    def revoke_local(self, cluster: str) -> int:
        """End ``cluster``'s streams on this process only (another replica withdrew the credential)."""
        self._revocations[cluster] += 1
        ended = self._connected.get(cluster, 0)
        for listener in self._revoke_listeners:
            ended += listener(cluster)
        self.notify_local([cluster])
        return ended

    def on_revoke(self, listener: Callable[[str], int]) -> None:
        """Call ``listener(cluster)`` on every :meth:`revoke`; it returns how many streams it ended."""
        self._revoke_listeners.append(listener)

    def revocation(self, cluster: str) -> int:
        """How often ``cluster`` was revoked; a stream that saw this number move must end."""
        return self._revocations.get(cluster, 0)

    def close(self) -> None:
        """Shutting down: wake every watcher so it can end its stream with a reconnect status."""
        self._closing.set()
        for event in self._events.values():
            event.set()
        self._events.clear()

    # -- consumers ------------------------------------------------------------------------
    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    async def wait_closed(self) -> None:
        """Return once :meth:`close` has been called."""
        await self._closing.wait()

    def version(self, cluster: str) -> int:
        return self._versions.get(cluster, 0)

    async def wait(self, cluster: str, seen: int, *, timeout: float | None = None) -> WaitResult:
        """Wait until ``cluster`` moves past version ``seen``, the hub closes, :meth:`beat` is called,
        or ``timeout`` (if any) passes."""
        current = self.version(cluster)
        if current != seen or self.closing:
            return WaitResult(current, current != seen, self.closing)
        event = self._events.get(cluster)
        if event is None:
            event = self._events[cluster] = asyncio.Event()
        if timeout is None:
            await event.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
        current = self.version(cluster)
        return WaitResult(current, current != seen, self.closing)

    # -- connection accounting (metrics, "online") -----------------------------------------
    def connected(self, cluster: str) -> None:
        self._connected[cluster] += 1

    def disconnected(self, cluster: str) -> None:
        self._connected[cluster] -= 1
        if self._connected[cluster] <= 0:
            del self._connected[cluster]

    def is_connected(self, cluster: str) -> bool:
        return self._connected.get(cluster, 0) > 0

    @property
    def stream_count(self) -> int:
        """Open Watch streams in this process."""
        return sum(self._connected.values())

    @property
    def connected_clusters(self) -> frozenset[str]:
        return frozenset(self._connected)
