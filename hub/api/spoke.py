"""SpokeService: Register, Watch, GetBundle, ReportStatus and StreamStatus.

A thin servicer: it authenticates, bounds and validates, then calls the store in
a worker thread and converts rows to wire messages. Errors are raised as typed
exceptions and mapped to status codes by :mod:`hub.api.grpc_errors`.

Two kinds of work come in floods and go through a :class:`~hub.api.batching.Batcher`:
the desired-state reads of Watch streams woken by one commit, and status reports,
written in one upsert per batch. A Watch stream that waits costs one suspended
coroutine (:mod:`hub.notify`); one timer wakes them all every ``heartbeat_seconds`` to send
their heartbeats.

Credentials can be withdrawn: a cluster that is removed, or whose rotated credential has just been
used, is revoked in the notifier, which ends its Watch and StreamStatus streams with UNAUTHENTICATED.
A pending rotation rides on the Watch read: the stream hands the spoke a new credential once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import itertools
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from grpc import aio

from hub import notify
from hub.api import auth, batching, grpc_errors, limits
from hub.security import secrets
from hub.store import db as store_db
from hub.store import errors as store_errors
from hub.store import models
from hub.store import repository as store
from protos import codec
from protos.codec import pb
from protos.convoy.v1 import convoy_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from sqlmodel import Session

__all__ = ["CHUNK_BYTES", "SpokeOptions", "SpokeServicer"]

log = logging.getLogger(__name__)

#: Bytes of compressed bundle per BundleChunk: well under the 4 MiB default message limit.
CHUNK_BYTES = 1024 * 1024

Context = aio.ServicerContext[Any, Any]

_REGISTER_METHOD = f"/{pb.DESCRIPTOR.services_by_name['SpokeService'].full_name}/Register"


@dataclasses.dataclass(frozen=True)
class SpokeOptions:
    """What the spoke service hands out and how hard it may be pushed."""

    ca_pem: bytes                       #: hub CA (empty when insecure)
    signing_public_key: bytes           #: raw 32-byte Ed25519 public key
    heartbeat_seconds: float = 30.0     #: Watch heartbeat interval
    register_rate: float = 1.0          #: Register calls per second per peer (sustained)
    register_burst: int = 10
    report_rate: float = 5.0            #: ReportStatus calls per second per peer (sustained)
    report_burst: int = 50
    report_limits: limits.ReportLimits = dataclasses.field(default_factory=limits.ReportLimits)
    #: Bundles up to this many bytes compressed travel inside the Watch notice (0: never).
    inline_bundle_bytes: int = 256 * 1024
    #: A status or refused-registration event that repeats within this many seconds counts up the
    #: earlier row instead of writing a new one (hub setting ``event_aggregate_window``).
    event_aggregate_seconds: float = 600.0
    watch_rate: float = 1.0             #: Watch opens per second per cluster (sustained)
    watch_burst: int = 20
    #: GetBundle calls per minute per cluster for one digest (a spoke fetches each digest once or twice).
    bundle_fetches_per_minute: int = 30
    #: ``--oci-push`` target (REGISTRY/REPOSITORY), "" when the hub does not push: Watch names the pushed
    #: manifest (``DesiredState.oci_reference``) once the push of the desired bundle is recorded.
    oci_push_target: str = ""
    #: How long a notice of a bundle not sent inline waits for its push (hub setting ``oci_announce_wait``).
    oci_announce_wait: float = 10.0


@dataclasses.dataclass(frozen=True, slots=True)
class _PresenceChange:
    """A Watch stream of ``cluster`` that opened (``opened``) or ended; ``at``: when it opened."""

    cluster: str
    at: dt.datetime
    opened: bool


@dataclasses.dataclass(frozen=True, slots=True)
class _DesiredNotice:
    """A cluster's desired state message and, when small enough to inline, its compressed bundle."""

    message: pb.DesiredState
    inline_bundle: bytes | None
    registered: bool = True     #: False: the cluster's registration is gone (removed)
    rotate: bool = False        #: a credential rotation is pending
    rotate_age_key: bool = False  #: an age key rotation is pending


class SpokeServicer(pb_grpc.SpokeServiceServicer):  # type: ignore[misc]
    def __init__(self, *, db: store_db.Database, authenticator: auth.Authenticator, notifier: notify.Notifier,
                 options: SpokeOptions, on_registered: Callable[[str], Awaitable[object]] | None = None,
                 on_reported: Callable[[], None] | None = None,
                 declared_names: Callable[[], Awaitable[frozenset[str] | None]] | None = None,
                 reports_wait: Callable[[], Awaitable[None]] | None = None,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.db = db
        self.auth = authenticator
        self.notifier = notifier
        self.options = options
        self.on_registered = on_registered
        #: Called after reports are stored (the rollout controller re-checks its wave at once).
        self.on_reported = on_reported
        #: The cluster names the fleet repository declares (None: not known yet); an unbound
        #: bootstrap token may not register them. Without it, every name is free for unbound tokens.
        self.declared_names = declared_names
        #: Awaited before a report is stored (the hub's sync goes first; bounded well below a spoke's 30 s
        #: acknowledgement timeout). None: store at once.
        self.reports_wait = reports_wait
        self.clock = clock
        self._aggregate = dt.timedelta(seconds=options.event_aggregate_seconds)
        self._register_limit = limits.RateLimiter(rate=options.register_rate, burst=options.register_burst)
        self._report_limit = limits.RateLimiter(rate=options.report_rate, burst=options.report_burst)
        # Keyed by cluster (after authentication): many spokes may share one address.
        self._watch_limit = limits.RateLimiter(rate=options.watch_rate, burst=options.watch_burst)
        self._fetch_limit = limits.RateLimiter(rate=options.bundle_fetches_per_minute / 60.0,
                                               burst=options.bundle_fetches_per_minute)
        self._background: set[asyncio.Task[object]] = set()
        self._heartbeats: asyncio.Future[None] | None = None
        self._report_streams: set[asyncio.Task[Any]] = set()
        self._report_streams_of: dict[str, set[asyncio.Task[Any]]] = {}
        notifier.on_revoke(self._end_report_streams)
        self._report_closer: asyncio.Future[None] | None = None
        self._beat_message = _heartbeat(options.heartbeat_seconds)
        # Watchers woken together read together; reports arriving together are written together.
        self._desired: batching.Batcher[str, _DesiredNotice] = batching.Batcher(self._desired_states)
        # A report the store refuses fails alone, not the other clusters' reports batched with it.
        self._reports: batching.Batcher[tuple[str, pb.StatusReport], None] = batching.Batcher(
            self._save_reports, retry_alone=_not_an_outage)
        # After a hub restart every spoke opens its Watch at once: one write per batch of them.
        # Opens and ends go through one batcher, so they reach the database in the order they happened.
        self._presence: batching.Batcher[_PresenceChange, bool] = batching.Batcher(self._record_presence)
        # A commit makes every spoke fetch at once: one read session per batch of fetches.
        self._bundles: batching.Batcher[tuple[str, str], models.Bundle | Exception] = batching.Batcher(
            self._bundles_for)

    # -- Register ---------------------------------------------------------------------------
    @grpc_errors.unary
    async def Register(self, request: pb.RegisterRequest, context: Context) -> pb.RegisterResponse:
        peer = limits.peer_host(context.peer())
        self._register_limit.check(peer, "register")
        labels = dict(request.labels)
        limits.check_registration(cluster_name=request.cluster_name, labels=labels, token=request.bootstrap_token,
                                  age_recipient=request.age_recipient)
        credential = secrets.new_credential()
        declared = await self.declared_names() if self.declared_names is not None else frozenset()
        cluster = await asyncio.to_thread(self._register, request, labels, credential, peer, declared)
        log.info("cluster %s registered from %s", cluster.name, peer)
        if self.on_registered is not None:
            self._in_background(self.on_registered(cluster.name))
        return pb.RegisterResponse(cluster_name=cluster.name, credential=credential,
                                   hub_ca_pem=self.options.ca_pem,
                                   bundle_signing_key=self.options.signing_public_key,
                                   labels=dict(cluster.labels or {}))

    async def _learn_age_key(self, name: str, recipient: str) -> None:
        """Store a cluster's age key sent with Watch; a new one re-renders the cluster (its sealed secrets)."""
        limits.check_age_recipient(recipient, where=f"watch of cluster {name}")

        def store_it() -> bool:
            with self.db.session() as session:
                return store.set_age_recipient(session, name, recipient, now=self.clock())
        if await asyncio.to_thread(store_it):
            log.info("cluster %s: new age key %s...", name, recipient[:16])
            if self.on_registered is not None:
                self._in_background(self.on_registered(name))

    def malformed_request(self, method: str, peer: str) -> None:
        """A request to ``method`` from ``peer`` whose bytes did not parse: it counts against the peer's
        limits like a parsed one (raises :class:`~hub.api.limits.RateLimited` past them)."""
        if method == _REGISTER_METHOD:
            self._register_limit.check(peer, "register")

    def _register(self, request: pb.RegisterRequest, labels: dict[str, str], credential: str,
                  peer: str, declared: frozenset[str] | None) -> models.Cluster:
        now = self.clock()
        name = request.cluster_name
        try:
            # One unit of work: a refused registration (name taken, not the token's) spends no use of it.
            with self.db.session() as session:
                token = store.usable_token(session, request.bootstrap_token, now=now, name=name,
                                           declared=declared)
                # The store stamps the token's labels over the spoke's: they are the operator's word.
                cluster = store.register_cluster(session, name=name, labels=labels, token=token,
                                                 credential_hash=secrets.hash_secret(credential), now=now,
                                                 age_recipient=request.age_recipient)
                # Last, just before the commit: spending the use locks the token's row, and every
                # registration with the same token (a fleet joining at once) waits for that lock.
                store.spend_token_use(session, token, now=now)
                return cluster
        except (store_errors.TokenRefused, store_errors.ClusterExists, store_errors.TokenNotForName) as exc:
            if isinstance(exc, store_errors.TokenRefused) and exc.reason in _NO_TOKEN:
                # Anyone can send made-up tokens: a row each would let them fill the audit log.
                log.debug("cluster %s: registration from %s refused: %s", name, peer, exc)
                raise
            with self.db.session() as session:
                store.add_event(session, models.EventKind.REGISTRATION_REFUSED, cluster=name,
                                message=f"cluster {name}: registration refused: {exc}",
                                details={"peer": peer, "spoke_version": request.spoke_version[:64]}, now=now,
                                aggregate=self._aggregate)
            raise

    # -- Watch ------------------------------------------------------------------------------
    @grpc_errors.stream
    async def Watch(self, request: pb.WatchRequest, context: Context) -> AsyncIterator[pb.WatchEvent]:
        name = await self.auth.cluster(context.invocation_metadata(), method="watch",
                                       peer=limits.peer_host(context.peer()))
        if not self._watch_limit.allow(name):
            raise limits.RateLimited(f"watch of cluster {name}: more than {self.options.watch_burst} Watch streams "
                                     f"opened in a burst ({self.options.watch_rate:g}/s sustained); retry later")
        limits.check_digest(request.applied_digest, where=f"watch of cluster {name}", allow_empty=True)
        if request.age_recipient:
            await self._learn_age_key(name, request.age_recipient)
        revocation = self.notifier.revocation(name)
        heartbeat = self.options.heartbeat_seconds
        opened_at = self.clock()
        self.notifier.connected(name)
        self._ensure_heartbeats()
        log.debug("cluster %s watching (applied %s)", name, request.applied_digest or "nothing")
        try:
            # Stored before the first notice: whoever asks the hub sees the cluster online from here on.
            await self._presence.submit(_PresenceChange(name, opened_at, opened=True))
            version = self.notifier.version(name)
            last_sent: tuple[str, str, bool] | None = None
            # The bundle the spoke holds: what it said it applied, then the last digest sent to it.
            spoke_has = request.applied_digest
            changed = True
            # The notice held back for its bundle's push (oci_announce_wait), re-checked on every wake.
            held: tuple[str, str, bool] | None = None
            rotation_sent = False
            age_rotation_sent = False
            announced = False   #: a heartbeat (saying the interval) was sent on this stream
            while True:
                if self.notifier.closing:
                    raise grpc_errors.ShuttingDown()
                if self.notifier.detached:
                    # Serving what this replica remembers as current would be stale state passed off as
                    # current: end the stream, the spoke reconnects to a replica that can confirm it.
                    raise store_errors.StoreUnavailable(
                        f"watch of cluster {name}: this hub replica lost its database and cannot confirm "
                        "the desired state; reconnect (to another replica)")
                if self.notifier.revocation(name) != revocation:
                    raise _revoked(name, "watch")
                if changed or held is not None:
                    notice = await self._desired.submit(name)
                    if not notice.registered:
                        raise _revoked(name, "watch")
                    if notice.rotate and not rotation_sent:
                        # Once per stream: a new stream (the spoke reconnecting without having stored
                        # it) gets a fresh one, so a lost message never locks the spoke out.
                        rotation_sent = True
                        rotation = await self._rotation(name)
                        if rotation is not None:
                            yield rotation
                    if notice.rotate_age_key and not age_rotation_sent:
                        # Once per stream, like a credential: the spoke answers by reconnecting with its
                        # new recipient, which clears the request (set_age_recipient).
                        age_rotation_sent = True
                        log.info("cluster %s: asked for a new age key on its Watch stream", name)
                        yield pb.WatchEvent(age_key_rotation=pb.AgeKeyRotation())
                    desired = notice.message
                    key = (desired.commit, desired.digest, desired.paused)
                    hold = self._hold_for_push(notice, spoke_has) if desired.digest and key != last_sent else 0.0
                    if hold > 0:
                        if key != held:  # one wake-up when the wait ends; the pusher's record wakes it sooner
                            asyncio.get_running_loop().call_later(hold, self.notifier.notify_local, [name])
                        held = key
                        announced = True
                        yield _heartbeat(heartbeat)  # the spoke hears from its hub while it waits
                    elif desired.digest and key != last_sent:
                        held = None
                        last_sent = key
                        event = pb.WatchEvent(desired=desired)
                        # A paused spoke applies nothing: the notice that unpauses it carries the bundle.
                        if notice.inline_bundle is not None and desired.digest != spoke_has and not desired.paused:
                            # One message instead of a notice plus a GetBundle call per spoke: after a
                            # commit, that call was most of the hub's work per cluster.
                            event.desired.inline_bundle = notice.inline_bundle
                            event.desired.inline_compression = "zlib"
                            spoke_has = desired.digest
                        yield event
                        if not announced:
                            # The interval at once, not one heartbeat later: a spoke (on its first stream,
                            # knowing no interval yet) whose connection freezes now notices within three
                            # intervals instead of its channel keepalive's 40 s.
                            announced = True
                            yield _heartbeat(heartbeat)
                    else:
                        held = None
                        if last_sent is None:
                            # Nothing desired yet: say so with a heartbeat, so the spoke knows it is connected.
                            announced = True
                            yield _heartbeat(heartbeat)
                else:
                    yield self._beat_message
                # Woken by a change, by the shared heartbeat tick, or by shutdown.
                result = await self.notifier.wait(name, version)
                version, changed = result.version, result.changed
        finally:
            self.notifier.disconnected(name)
            if not self.notifier.is_connected(name) and not self.notifier.closing:
                # The spoke went (closed the stream, or its connection broke or stopped answering pings):
                # offline at once. Not when the hub itself closes: the spokes reconnect in seconds.
                self._in_background(self._went_away(name, opened_at))

    def _hold_for_push(self, notice: _DesiredNotice, spoke_has: str) -> float:
        """Seconds to hold this notice back for its bundle's push (0: send it now). Only with ``--oci-push``,
        for a new bundle the notice cannot carry inline and no push of which is recorded yet: then the
        spoke fetches it from the registry instead of every spoke calling GetBundle on the hub."""
        desired = notice.message
        wait = self.options.oci_announce_wait
        if (not self.options.oci_push_target or wait <= 0 or desired.oci_reference or desired.paused
                or notice.inline_bundle is not None or desired.digest == spoke_has):
            return 0.0
        since = codec.datetime_from_wire(desired.since) if desired.HasField("since") else None
        if since is None:
            return 0.0
        return max(0.0, wait - (self.clock() - since).total_seconds())

    def _in_background(self, work: Awaitable[object]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _record_presence(self, changes: Sequence[_PresenceChange]) -> list[bool]:
        """Watch streams opened and ended, in order, in one unit of work; True where an end was recorded."""
        recorded: list[bool] = []
        with self.db.session() as session:
            for opened, run in itertools.groupby(changes, key=lambda change: change.opened):
                batch = list(run)
                if opened:
                    store.mark_connected(session, [(c.cluster, c.at) for c in batch])
                    recorded += [False] * len(batch)
                else:
                    recorded += [store.mark_disconnected(session, c.cluster, opened_at=c.at, now=self.clock())
                                 for c in batch]
        return recorded

    async def _went_away(self, name: str, opened_at: dt.datetime) -> None:
        try:
            recorded = await self._presence.submit(_PresenceChange(name, opened_at, opened=False))
        except Exception:  # keep_presence stops refreshing last-seen: the cluster goes offline anyway, later
            log.exception("cluster %s: cannot record that its Watch stream ended", name)
            return
        if recorded:
            log.info("cluster %s: its Watch stream ended; offline until it watches again", name)
            if self.on_reported is not None:
                self.on_reported()  # the rollout controller re-checks its wave


    async def _rotation(self, name: str) -> pb.WatchEvent | None:
        """A new credential for ``name``, its hash recorded as the rotation's successor (None: the
        rotation is no longer pending, and a credential sent now would not work)."""
        credential = secrets.new_credential()
        if not await asyncio.to_thread(self._issue_credential, name, secrets.hash_secret(credential)):
            return None
        # The old credential now expires after the grace period: it must not stay cached past that.
        self.auth.forget(name)
        log.info("cluster %s: new credential handed over on its Watch stream", name)
        grace = int(self.auth.rotation_grace.total_seconds())
        return pb.WatchEvent(rotation=pb.CredentialRotation(credential=credential, old_valid_seconds=grace))

    def _issue_credential(self, name: str, credential_hash: str) -> bool:
        with self.db.session() as session:
            return store.issue_next_credential(session, name, credential_hash, now=self.clock())

    def _ensure_heartbeats(self) -> None:
        """One timer beats every Watch stream of this process; it runs while any stream is open."""
        if self._heartbeats is None or self._heartbeats.done():
            self._heartbeats = asyncio.ensure_future(self._beat_while_watched())

    async def _beat_while_watched(self) -> None:
        while self.notifier.stream_count and not self.notifier.closing:
            await asyncio.sleep(self.options.heartbeat_seconds)
            # One message for every stream woken by this beat (a Timestamp costs more than the send).
            self._beat_message = _heartbeat(self.options.heartbeat_seconds)
            self.notifier.beat()

    def _desired_states(self, names: Sequence[str]) -> list[_DesiredNotice]:
        """Desired state messages of several clusters (repeats allowed) in one unit of work."""
        with self.db.session(write=False) as session:
            rows = store.watch_rows(session, names)
            metas = store.bundle_metas(session, (r.desired.digest for r in rows.values() if r.desired is not None),
                                       inline_up_to=self.options.inline_bundle_bytes)
            target = self.options.oci_push_target
            pushed = store.oci_manifests(session, target, [(name, r.desired.commit, r.desired.digest)
                                                           for name, r in rows.items()
                                                           if r.desired is not None]) if target else {}
        notices = {}
        for name in dict.fromkeys(names):
            row = rows.get(name)
            if row is None:
                notices[name] = _DesiredNotice(message=pb.DesiredState(cluster_name=name), inline_bundle=None,
                                               registered=False)
                continue
            message = pb.DesiredState(cluster_name=name, paused=row.paused)
            inline = None
            desired = row.desired
            if desired is not None:
                message.commit = desired.commit
                message.digest = desired.digest
                message.since.CopyFrom(codec.timestamp(desired.since))
                found = metas.get(desired.digest)
                if found is not None:
                    meta, inline = found
                    message.size = meta.size
                    message.signature = meta.signature
                manifest = pushed.get((name, desired.commit, desired.digest))
                if manifest:
                    message.oci_reference = f"{target}@{manifest}"
            notices[name] = _DesiredNotice(message=message, inline_bundle=inline, rotate=row.rotate,
                                           rotate_age_key=row.rotate_age_key)
        return [notices[name] for name in names]

    # -- GetBundle --------------------------------------------------------------------------
    @grpc_errors.stream
    async def GetBundle(self, request: pb.GetBundleRequest, context: Context) -> AsyncIterator[pb.BundleChunk]:
        name = await self.auth.cluster(context.invocation_metadata(), method="get bundle",
                                       peer=limits.peer_host(context.peer()))
        limits.check_digest(request.digest, where=f"get bundle for cluster {name}")
        if not self._fetch_limit.allow(f"{name}/{request.digest}"):
            raise limits.RateLimited(f"get bundle for cluster {name}: bundle {request.digest} fetched more than "
                                     f"{self.options.bundle_fetches_per_minute} times in a minute; retry later")
        found = await self._bundles.submit((name, request.digest))
        if isinstance(found, Exception):
            raise found
        bundle = found
        data = bundle.data
        for offset in range(0, max(len(data), 1), CHUNK_BYTES):
            chunk = pb.BundleChunk(data=data[offset:offset + CHUNK_BYTES], offset=offset)
            if offset == 0:
                chunk.digest = bundle.digest
                chunk.size = bundle.size
                chunk.compression = "zlib"
                chunk.signature = bundle.signature
                chunk.compressed_size = len(data)
            yield chunk

    def _bundles_for(self, wanted: Sequence[tuple[str, str]]) -> list[models.Bundle | Exception]:
        """Bundles for a batch of fetches in one read session; a refusal is returned as its caller's error."""
        with self.db.session(write=False) as session:
            return [_bundle_for(session, name, digest) for name, digest in wanted]

    # -- ReportStatus, StreamStatus -----------------------------------------------------------
    @grpc_errors.unary
    async def ReportStatus(self, request: pb.StatusReport, context: Context) -> pb.ReportStatusResponse:
        peer = limits.peer_host(context.peer())
        name = await self.auth.cluster(context.invocation_metadata(), method="report status", peer=peer)
        await self._accept_report(peer, name, request)
        return pb.ReportStatusResponse(accepted=True)

    @grpc_errors.stream
    async def StreamStatus(self, request_iterator: AsyncIterator[pb.StatusReport],
                           context: Context) -> AsyncIterator[pb.ReportStatusResponse]:
        """ReportStatus over one long-lived stream: authenticated once, each report checked, stored and
        acknowledged in order. A refused report ends the stream with its error, like a refused call."""
        peer = limits.peer_host(context.peer())
        name = await self.auth.cluster(context.invocation_metadata(), method="report status", peer=peer)
        revocation = self.notifier.revocation(name)
        task = asyncio.current_task()
        assert task is not None
        self._report_streams.add(task)
        self._report_streams_of.setdefault(name, set()).add(task)
        self._ensure_report_streams_end_on_close()
        try:
            async for report in request_iterator:
                await self._accept_report(peer, name, report)
                yield pb.ReportStatusResponse(accepted=True)
        except asyncio.CancelledError:
            if self.notifier.revocation(name) != revocation:
                raise _revoked(name, "report status") from None
            if not self.notifier.closing:
                raise
            # Woken by the hub's shutdown while waiting for the next report: the spoke reconnects.
            raise grpc_errors.ShuttingDown() from None
        finally:
            self._report_streams.discard(task)
            streams = self._report_streams_of.get(name)
            if streams is not None:
                streams.discard(task)
                if not streams:
                    del self._report_streams_of[name]

    def _ensure_report_streams_end_on_close(self) -> None:
        """Report streams idle between reports; when the hub closes, end them as Watch streams end."""
        if self._report_closer is None:
            async def end_on_close() -> None:
                await self.notifier.wait_closed()
                for stream in list(self._report_streams):
                    stream.cancel()
            self._report_closer = asyncio.ensure_future(end_on_close())

    def _end_report_streams(self, name: str) -> int:
        """End ``name``'s StreamStatus streams at once (its credential was withdrawn)."""
        streams = list(self._report_streams_of.get(name, ()))
        for stream in streams:
            stream.cancel()
        return len(streams)

    async def _accept_report(self, peer: str, name: str, report: pb.StatusReport) -> None:
        """Rate limit, validate, store (batched with concurrent reports); returns once stored."""
        self._report_limit.check(f"{peer}/{name}", f"status report of cluster {name}")
        limits.check_report(report, self.options.report_limits, cluster=name)
        if self.reports_wait is not None:
            await self.reports_wait()
        await self._reports.submit((name, report))
        if self.on_reported is not None:
            self.on_reported()

    def _save_reports(self, reports: Sequence[tuple[str, pb.StatusReport]]) -> list[None]:
        inputs = [_status_input(name, report) for name, report in reports]
        with self.db.session() as session:
            # One upsert for the batch; also refreshes last-seen and records applied / phase / drift
            # events. A cluster that reported twice in one batch keeps its later report.
            store.save_statuses(session, inputs, now=self.clock(), aggregate=self._aggregate)
        return [None] * len(reports)

    # -- presence ---------------------------------------------------------------------------
    async def keep_presence(self, stop: asyncio.Event) -> None:
        """Refresh last-seen of every cluster with an open Watch, once per heartbeat, in one write."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.options.heartbeat_seconds)
            names = self.notifier.connected_clusters
            if names:
                try:
                    await asyncio.to_thread(self._touch, names)
                except Exception:
                    log.exception("cannot refresh last-seen of %d watching cluster(s)", len(names))

    def _touch(self, names: Iterable[str]) -> None:
        with self.db.session() as session:
            store.touch_clusters(session, names, self.clock())


#: Refusals that prove no knowledge of any real token: they are not written to the event log.
_NO_TOKEN = frozenset({store_errors.TokenRefusal.MALFORMED, store_errors.TokenRefusal.UNKNOWN})


def _revoked(name: str, method: str) -> grpc_errors.Unauthenticated:
    return grpc_errors.Unauthenticated(f"{method}: cluster {name}: the credential this stream was opened with "
                                  "no longer works (the cluster was removed, or its credential rotated)")


def _not_an_outage(exc: Exception) -> bool:
    """Whether a failed batch may be one member's fault (worth retrying each alone)."""
    return not isinstance(exc, store_errors.StoreUnavailable)


def _status_input(name: str, report: pb.StatusReport) -> store.StatusInput:
    return store.StatusInput(
        cluster=name, phase=str(codec.PHASE_FROM_WIRE[report.phase]), applied_commit=report.applied_commit,
        applied_digest=report.applied_digest, objects=[_object_doc(result) for result in report.objects],
        # Only drift that is there now; a spoke from before drift_events listed corrected items too.
        drift=[_drift_doc(item) for item in report.drift if not item.corrected], errors=list(report.errors),
        message=report.message, observed_at=codec.datetime_from_wire(report.observed_at),
        spoke_version=report.spoke_version, backlog=report.backlog,
        drift_events=[_drift_event_doc(event) for event in report.drift_events])


def _bundle_for(session: Session, name: str, digest: str) -> models.Bundle | Exception:
    # The current desired digest (a primary-key read) is what spokes fetch almost always.
    desired = store.get_desired(session, name)
    if (desired is None or desired.digest != digest) and not store.was_desired_for(session, name, digest):
        return grpc_errors.PermissionDenied(f"cluster {name}: bundle {digest} was never desired for this "
                                       "cluster; a spoke can read only its own bundles")
    bundle = store.get_bundle(session, digest)
    if bundle is None:
        return grpc_errors.NotFound(f"cluster {name}: bundle {digest} is no longer stored (pruned); "
                               "watch again for the current desired state")
    return bundle


def _heartbeat(interval: float) -> pb.WatchEvent:
    # Whole seconds on the wire, never 0: a spoke derives its dead-connection timeout from it.
    return pb.WatchEvent(heartbeat=pb.Heartbeat(sent_at=codec.timestamp(),
                                                interval_seconds=max(1, math.ceil(interval))))


def _ref_doc(ref: pb.ObjectRef) -> dict[str, str]:
    return {"group": ref.group, "kind": ref.kind, "namespace": ref.namespace, "name": ref.name}


def _object_doc(result: pb.ObjectResult) -> dict[str, Any]:
    return {"ref": _ref_doc(result.ref), "app": result.app, "action": result.action, "health": result.health,
            "reason": result.reason, "error": result.error}


def _drift_doc(item: pb.DriftItem) -> dict[str, Any]:
    detected = codec.datetime_from_wire(item.detected_at)
    return {"ref": _ref_doc(item.ref), "app": item.app, "kind_of_drift": item.kind_of_drift,
            "fields": [{"path": f.path, "desired": f.desired, "live": f.live} for f in item.fields],
            "corrected": item.corrected, "detected_at": detected.isoformat() if detected else None,
            "managers": list(item.managers)}


def _drift_event_doc(event: pb.DriftEvent) -> dict[str, Any]:
    at = codec.datetime_from_wire(event.at)
    return {"ref": _ref_doc(event.ref), "app": event.app, "action": event.action,
            "kind_of_drift": event.kind_of_drift,
            "fields": [{"path": f.path, "desired": f.desired, "live": f.live} for f in event.fields],
            "managers": list(event.managers), "at": at.isoformat() if at else None, "message": event.message}
