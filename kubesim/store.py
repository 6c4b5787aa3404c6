"""One cluster's objects: versioned by ONE revision counter, with a bounded history for watches.

The store is etcd's role: every create, update and delete takes the next revision (shared across all
types), an object's ``metadata.resourceVersion`` is the revision of its last write, and each write is
recorded as an :class:`Event` in a ring of recent history that watches replay from. Watchers and the
simulated controllers subscribe to events; all of it runs on the server's event loop, so a write and
the fan-out of its event are one atomic step.
"""

from __future__ import annotations

import asyncio
import builtins
import json
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["POKE", "Event", "Key", "Store", "Subscription"]

#: Event type that only wakes watchers (their settings changed); never sent to clients.
POKE = "POKE"

Key = tuple[str, str]  # (group, plural)
Obj = dict[str, Any]


@dataclass(slots=True)
class Event:
    """One write: ``obj`` is the state after it (for DELETED the last state at the deletion revision)."""

    revision: int
    type: str
    key: Key
    obj: Obj
    prev: Obj | None
    _encoded: str | None = field(default=None, repr=False)

    def encoded_object(self) -> str:
        # Encoded once, shared by every watcher that receives the event.
        if self._encoded is None:
            self._encoded = json.dumps(self.obj, separators=(",", ":"))
        return self._encoded


@dataclass(eq=False, slots=True)
class Subscription:
    """A watcher's inbox for the events of one resource."""

    key: Key
    queue: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)


def _meta(obj: Obj) -> dict[str, Any]:
    meta: dict[str, Any] = obj.setdefault("metadata", {})
    return meta


class Store:
    """Objects by resource and ``(namespace, name)``; indexes by uid and by owner uid for the GC."""

    def __init__(self, *, history: int = 10000) -> None:
        self.revision = 1
        self._objects: dict[Key, dict[tuple[str, str], Obj]] = {}
        self.history: deque[Event] = deque(maxlen=max(history, 1))
        self._subs: dict[Key, set[Subscription]] = {}
        self.by_uid: dict[str, tuple[Key, str, str]] = {}
        self.dependents: dict[str, set[tuple[Key, str, str]]] = {}
        self.listeners: list[Callable[[Event], None]] = []
        # Objects every cluster starts with but few requests read (bootstrap RBAC, APIServices, the
        # pre-created namespaces' defaults): written on the first touch of their resource, so an idle
        # or admin-only cluster costs what it did before they existed (kubesim.wiring).
        self.seeders: dict[Key, Callable[[], None]] = {}

    def seed(self, key: Key) -> None:
        """Write ``key``'s start-up objects now, if they are still pending (before reading ``revision``)."""
        if self.seeders:
            self._seed(key)

    def _seed(self, key: Key) -> None:
        seeder = self.seeders.pop(key, None)
        if seeder is not None:
            seeder()

    # -- reads ------------------------------------------------------------------------------------

    def get(self, key: Key, namespace: str, name: str) -> Obj | None:
        if self.seeders:
            self._seed(key)
        bucket = self._objects.get(key)
        return None if bucket is None else bucket.get((namespace, name))

    def list(self, key: Key, namespace: str | None = None) -> list[Obj]:
        if self.seeders:
            self._seed(key)
        bucket = self._objects.get(key)
        if not bucket:
            return []
        keys = sorted(k for k in bucket if namespace is None or k[0] == namespace)
        return [bucket[k] for k in keys]

    def items(self, key: Key) -> Iterator[tuple[tuple[str, str], Obj]]:
        if self.seeders:
            self._seed(key)
        yield from list((self._objects.get(key) or {}).items())

    def resource_keys(self) -> builtins.list[Key]:
        return [k for k, v in self._objects.items() if v]

    def count(self, key: Key) -> int:
        if self.seeders:
            self._seed(key)
        return len(self._objects.get(key) or {})

    def by_uid_get(self, uid: str) -> tuple[Key, Obj] | None:
        where = self.by_uid.get(uid)
        if where is None:
            return None
        obj = self.get(*where)
        return None if obj is None else (where[0], obj)

    @property
    def oldest_revision(self) -> int:
        """The oldest revision a watch can still start after (events after it are all retained)."""
        if len(self.history) < (self.history.maxlen or 0):
            return 0
        return self.history[0].revision - 1

    # -- writes -----------------------------------------------------------------------------------

    def put(self, key: Key, obj: Obj) -> Obj:
        """Store a created or updated object under the next revision; emits ADDED or MODIFIED."""
        if self.seeders:
            self._seed(key)
        meta = _meta(obj)
        ns, name = meta.get("namespace") or "", meta["name"]
        bucket = self._objects.setdefault(key, {})
        prev = bucket.get((ns, name))
        self.revision += 1
        meta["resourceVersion"] = str(self.revision)
        bucket[(ns, name)] = obj
        uid = meta.get("uid")
        if uid:
            self.by_uid[uid] = (key, ns, name)
        self._index_owners(key, ns, name, prev, obj)
        self._emit(Event(self.revision, "MODIFIED" if prev is not None else "ADDED", key, obj, prev))
        return obj

    def remove(self, key: Key, namespace: str, name: str) -> Obj | None:
        bucket = self._objects.get(key)
        if bucket is None or (namespace, name) not in bucket:
            return None
        prev = bucket.pop((namespace, name))
        self.revision += 1
        last = dict(prev)
        last["metadata"] = dict(prev["metadata"], resourceVersion=str(self.revision))
        uid = prev["metadata"].get("uid")
        if uid:
            self.by_uid.pop(uid, None)
        self._index_owners(key, namespace, name, prev, None)
        self._emit(Event(self.revision, "DELETED", key, last, prev))
        return last

    def _index_owners(self, key: Key, ns: str, name: str, prev: Obj | None, new: Obj | None) -> None:
        where = (key, ns, name)
        for obj, add in ((prev, False), (new, True)):
            if obj is None:
                continue
            for ref in obj["metadata"].get("ownerReferences") or ():
                uid = ref.get("uid")
                if not uid:
                    continue
                if add:
                    self.dependents.setdefault(uid, set()).add(where)
                else:
                    deps = self.dependents.get(uid)
                    if deps is not None:
                        deps.discard(where)
                        if not deps:
                            del self.dependents[uid]

    # -- events -----------------------------------------------------------------------------------

    def subscribe(self, key: Key) -> Subscription:
        if self.seeders:
            self._seed(key)
        sub = Subscription(key)
        self._subs.setdefault(key, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.key)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.key]

    def close_subscriptions(self, key: Key | None = None) -> None:
        """End the watches of one resource (its type went away) or of all of them (shutdown)."""
        for sub_key, subs in self._subs.items():
            if key is None or sub_key == key:
                for sub in subs:
                    sub.queue.put_nowait(None)

    def poke_subscriptions(self) -> None:
        for subs in self._subs.values():
            for sub in subs:
                sub.queue.put_nowait(Event(self.revision, POKE, sub.key, {}, None))

    def events_after(self, revision: int, key: Key) -> builtins.list[Event]:
        if self.seeders:
            self._seed(key)
        return [e for e in self.history if e.revision > revision and e.key == key]

    def _emit(self, event: Event) -> None:
        self.history.append(event)
        for sub in self._subs.get(event.key, ()):
            sub.queue.put_nowait(event)
        for listener in self.listeners:
            listener(event)
