"""Drift watch: one list+watch stream per kind in the bundle, across namespaces, selected by
``convoy.dev/cluster=<name>``, feeding live events to the agent.

Each kind runs in its own thread: list (emitting a ``Resync`` with every object, so deletions missed
while disconnected are noticed), then watch from the list's resourceVersion. The server ends each
watch after ``WATCH_SECONDS`` (the client then resumes from the last resourceVersion), so a stream
that carries nothing for ``WATCH_SECONDS`` plus ``WATCH_READ_SLACK`` has stalled (a connection lost
without FIN or RST): the client's read timeout cuts it, and the watch resumes from the last
resourceVersion it saw — at most 15 s of blindness, not the 70 s a watch of 60 s allowed. A 410 Gone,
or a watch that cannot be opened, re-lists after a jittered backoff. Events carry the whole live
object; deciding whether an event is drift (a managed field differs, or a managed object is gone) is
the agent's job.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from protos import bundle as bundles
from protos.objects import ObjectRef
from spoke import backoff
from spoke.cluster import ClusterClient, WatchStream, errors

__all__ = ["DriftWatch", "LiveChange", "Resync"]

log = logging.getLogger(__name__)

#: the ``timeoutSeconds`` of each watch request: the longest a quiet stream goes without its end
WATCH_SECONDS = 10

KindKey = tuple[str, str]  # (apiVersion, kind)


@dataclasses.dataclass(frozen=True)
class LiveChange:
    """An object of a watched kind was added, modified or deleted (``type``)."""

    type: str
    ref: ObjectRef
    api_version: str
    object: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Resync:
    """A full listing of one kind (after connecting or reconnecting)."""

    api_version: str
    kind: str
    objects: dict[ObjectRef, dict[str, Any]]


Sink = Callable[[LiveChange | Resync], None]


class _KindWatcher:
    def __init__(self, client: ClusterClient, key: KindKey, *, selector: str, sink: Sink,
                 timeout_seconds: int, backoff_cap: float) -> None:
        self._client = client
        self._api_version, self._kind = key
        self._selector = selector
        self._sink = sink
        self._timeout = timeout_seconds
        self._cap = backoff_cap
        self._stop = threading.Event()
        self._stream: WatchStream | None = None
        self._resource_version = ""
        self.synced = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"convoy-watch-{self._kind}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.close()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                listed = self._client.list(self._api_version, self._kind, label_selector=self._selector)
                self._sink(Resync(self._api_version, self._kind, {ObjectRef.of(o): o for o in listed.items}))
                self.synced.set()
                failures = 0
                self._watch_from(listed.resource_version)
            except errors.ClusterError as exc:
                if self._stop.is_set():
                    return
                failures += 1
                log.info("%s watch: %s; re-listing", self._kind, exc)
                self._stop.wait(backoff.full_jitter(failures, base=0.2, cap=self._cap))
            except Exception:  # a dead thread would stop drift correction for the kind unseen
                if self._stop.is_set():
                    return
                failures += 1
                log.exception("%s watch: unexpected error; re-listing", self._kind)
                self._stop.wait(backoff.full_jitter(failures, base=0.2, cap=self._cap))

    def _watch_from(self, resource_version: str) -> None:
        """Watch until the stream needs a re-list (410) or the spoke stops; resume from the last
        resourceVersion seen when a stream ends, stalls or breaks (a watch that cannot be opened re-lists)."""
        self._resource_version = resource_version
        broken = 0
        while not self._stop.is_set():
            stream = self._client.watch(self._api_version, self._kind, label_selector=self._selector,
                                        resource_version=self._resource_version, timeout_seconds=self._timeout)
            self._stream = stream
            if self._stop.is_set():
                stream.close()
                return
            try:
                self._follow(stream)
                broken = 0
            except _Gone:
                return  # expired: re-list
            except errors.ConnectionFailedError as exc:  # stalled (the read timeout) or cut
                if self._stop.is_set():
                    return
                broken += 1
                log.info("%s watch: %s; resuming from resourceVersion %s", self._kind, exc, self._resource_version)
                self._stop.wait(backoff.full_jitter(broken, base=0.2, cap=self._cap))
            finally:
                self._stream = None

    def _follow(self, stream: WatchStream) -> None:
        """Hand a stream's events on until it ends, keeping the last resourceVersion seen."""
        for event in stream:
            if event.type == "ERROR":
                code = int(event.object.get("code") or 0)
                if code == 410:
                    raise _Gone()
                raise errors.ApiError(f"{self._kind} watch", status=code or 500,
                                      reason=str(event.object.get("reason", "")),
                                      message=str(event.object.get("message", "")))
            rv = str((event.object.get("metadata") or {}).get("resourceVersion") or "")
            if rv:
                self._resource_version = rv
            if event.type == "BOOKMARK":
                continue
            self._sink(LiveChange(event.type, ObjectRef.of(event.object), self._api_version, event.object))


class _Gone(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


class DriftWatch:
    """The set of per-kind watchers; ``set_kinds`` follows the bundle's kinds."""

    def __init__(self, client: ClusterClient, *, cluster: str, sink: Sink, timeout_seconds: int = WATCH_SECONDS,
                 backoff_cap: float = 30.0) -> None:
        self._client = client
        self._selector = f"{bundles.LABEL_CLUSTER}={cluster}"
        self._sink = sink
        self._timeout = timeout_seconds
        self._cap = backoff_cap
        self._watchers: dict[KindKey, _KindWatcher] = {}

    @property
    def kinds(self) -> set[KindKey]:
        return set(self._watchers)

    def set_kinds(self, kinds: Iterable[KindKey]) -> None:
        wanted = set(kinds)
        for key in set(self._watchers) - wanted:
            self._watchers.pop(key).stop()
        for key in sorted(wanted - set(self._watchers)):
            self._watchers[key] = _KindWatcher(self._client, key, selector=self._selector, sink=self._sink,
                                               timeout_seconds=self._timeout, backoff_cap=self._cap)

    def wait_synced(self, timeout: float) -> bool:
        """True once every watcher has listed at least once."""
        return all(w.synced.wait(timeout) for w in list(self._watchers.values()))

    def stop(self) -> None:
        watchers = list(self._watchers.values())
        self._watchers.clear()
        for watcher in watchers:
            watcher.stop()
        for watcher in watchers:
            watcher.join(2.0)
