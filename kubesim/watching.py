"""Watch streams: one chunk per event, from a resourceVersion, selector-aware, with bookmarks.

A watch subscribes to the store's events for one resource *before* it reads the initial state (both
happen on the loop without an await in between), so no write falls between the two. Events are
translated per watcher as the watch cache does: an object that starts matching the selectors is
ADDED, one that stops matching is DELETED. A start older than the retained history gets the 410
``Expired`` ERROR event and the stream ends.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from kubesim import errors, registry
from kubesim.resources import ResourceType
from kubesim.selectors import FieldSelector, LabelSelector
from kubesim.store import POKE, Event

if TYPE_CHECKING:
    from kubesim.clusters import Cluster

__all__ = ["WatchRequest", "serve"]

Obj = dict[str, Any]
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
PARTIAL_KIND = "PartialObjectMetadata"
META_API_VERSION = "meta.k8s.io/v1"


class WatchRequest:
    """What one watch asks for (parsed from the query by the HTTP edge)."""

    def __init__(self, *, rt: ResourceType, namespace: str | None, labels: LabelSelector, fields: FieldSelector,
                 resource_version: str, send_initial: bool, bookmarks: bool, timeout: float,
                 metadata_only: bool = False) -> None:
        self.rt = rt
        self.namespace = namespace
        self.labels = labels
        self.fields = fields
        self.resource_version = resource_version
        self.send_initial = send_initial
        self.bookmarks = bookmarks
        self.timeout = timeout
        #: The metadata client's watch: each event's object as PartialObjectMetadata, as lists answer.
        self.metadata_only = metadata_only

    def matches(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        if self.namespace is not None and (obj["metadata"].get("namespace") or "") != self.namespace:
            return False
        return self.labels.matches(obj) and self.fields.matches(obj)

    def translate(self, event: Event) -> tuple[str, Obj, str | None] | None:
        """The event this watcher sees (type, object, pre-encoded object), or None."""
        if event.type == "DELETED":
            return ("DELETED", event.obj, event.encoded_object()) if self.matches(event.prev) else None
        now_matches = self.matches(event.obj)
        was = event.type == "MODIFIED" and self.matches(event.prev)
        if now_matches:
            return ("MODIFIED" if was else "ADDED", event.obj, event.encoded_object())
        if was and event.prev is not None:
            gone = dict(event.prev, metadata=dict(event.prev["metadata"], resourceVersion=str(event.revision)))
            return ("DELETED", gone, None)
        return None

    def line(self, kind: str, obj: Obj, encoded: str | None) -> bytes:
        if self.metadata_only:
            encoded = json.dumps({"kind": PARTIAL_KIND, "apiVersion": META_API_VERSION, "metadata": obj["metadata"]},
                                 separators=(",", ":"))
        elif encoded is None or obj.get("apiVersion") != self.rt.api_version:
            encoded = json.dumps(registry.present(self.rt, obj), separators=(",", ":"))
        return f'{{"type":"{kind}","object":{encoded}}}\n'.encode()

    def bookmark(self, revision: int, *, initial_end: bool = False) -> bytes:
        meta: Obj = {"resourceVersion": str(revision)}
        if initial_end:
            meta["annotations"] = {INITIAL_EVENTS_END: "true"}
        obj = ({"kind": PARTIAL_KIND, "apiVersion": META_API_VERSION, "metadata": meta} if self.metadata_only
               else {"kind": self.rt.kind, "apiVersion": self.rt.api_version, "metadata": meta})
        return json.dumps({"type": "BOOKMARK", "object": obj}, separators=(",", ":")).encode() + b"\n"


async def serve(request: web.Request, cluster: Cluster, watch: WatchRequest) -> web.StreamResponse:
    store = cluster.store
    rt = watch.rt
    rv = watch.resource_version
    initial: list[bytes] = []
    expired: bytes | None = None
    sub = store.subscribe(rt.key)
    try:
        if watch.send_initial or rv in ("", "0"):
            for obj in store.list(rt.key, watch.namespace if rt.namespaced else None):
                if watch.matches(obj):
                    initial.append(watch.line("ADDED", obj, None))
        else:
            try:
                start = int(rv)
            except ValueError as exc:
                raise errors.bad_request(f'invalid resource version "{rv}"') from exc
            oldest = store.oldest_revision
            if start < oldest:
                status = errors.status_body(410, "Expired", f"too old resource version: {start} ({oldest + 1})")
                expired = json.dumps({"type": "ERROR", "object": status}, separators=(",", ":")).encode() + b"\n"
            else:
                for event in store.events_after(start, rt.key):
                    seen = watch.translate(event)
                    if seen is not None:
                        initial.append(watch.line(*seen))
        if watch.send_initial:
            initial.append(watch.bookmark(store.revision, initial_end=True))
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            if expired is not None:
                await response.write(expired)
                await response.write_eof()
                return response
            for chunk in initial:
                await response.write(chunk)
        except ConnectionResetError:
            return response  # the client went away during the initial events
        await _pump(request, response, cluster, watch, sub)
        return response
    finally:
        store.unsubscribe(sub)


async def _pump(request: web.Request, response: web.StreamResponse, cluster: Cluster, watch: WatchRequest,
                sub: Any) -> None:
    loop_time = time.monotonic
    deadline = loop_time() + watch.timeout
    interval = cluster.options.bookmark_interval
    next_bookmark = loop_time() + interval
    if watch.timeout >= 4:
        # Like the watch cache, send one about 2 s before the timeout, so the client resumes recently.
        next_bookmark = min(next_bookmark, deadline - 2.0)
    started = loop_time()
    queue: asyncio.Queue[Event | None] = sub.queue
    try:
        while True:
            now = loop_time()
            # Faults switch at run time (the store pokes watchers): a cut set later applies here too.
            cut = cluster.faults.watch_cut_after
            cut_at = started + cut if cut is not None else None
            if cut_at is not None and now >= cut_at:
                # An injected fault: the connection dies mid-stream, without the terminating chunk.
                if request.transport is not None:
                    request.transport.abort()
                return
            wake = min(deadline, next_bookmark if watch.bookmarks else deadline)
            if cut_at is not None:
                wake = min(wake, cut_at)
            try:
                event = await asyncio.wait_for(queue.get(), timeout=max(wake - now, 0))
            except TimeoutError:
                now = loop_time()
                if now >= deadline:
                    break
                if watch.bookmarks and now >= next_bookmark and queue.empty():
                    await response.write(watch.bookmark(cluster.store.revision))
                    next_bookmark = now + interval
                continue
            if event is None:
                break
            if event.type == POKE:
                continue  # the faults changed: re-read them at the top of the loop
            seen = watch.translate(event)
            if seen is not None:
                await response.write(watch.line(*seen))
        await response.write_eof()
    except ConnectionResetError:
        return  # the client went away
