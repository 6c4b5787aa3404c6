"""``convoy hub serve`` and ``convoy hub migrate``, and the composition root that wires a hub together.

:func:`start_hub` builds every part from :class:`hub.settings.HubSettings` and
starts it in the running event loop (gRPC and aiohttp share the loop); it
returns a :class:`RunningHub` whose :meth:`~RunningHub.stop` shuts down in order:
Watch streams end with UNAVAILABLE "hub shutting down; reconnect", in-flight calls
and the sync in progress finish, then the ports close. ``serve`` runs that until
SIGTERM or SIGINT. Tests call :func:`start_hub` directly with port 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import math
import signal
import ssl
import tempfile
import typing
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hub import metrics as metrics_mod
from hub import notify
from hub.api import admin_servicer as admin_api
from hub.api import auth, grpc_errors
from hub.api import limits as api_limits
from hub.api import server as server_api
from hub.api import spoke as spoke_api
from hub.publish import pushing
from hub.rollout import controller as rollout_controller
from hub.security import admin_credential as admin_sec
from hub.security import ca as ca_sec
from hub.security import files, signing
from hub.service import HubService, SyncOutcome
from hub.source import git as gitsource
from hub.store import db as store_db
from hub.store import errors as store_errors
from hub.store import models, replicas
from hub.store import repository as store
from hub.web import app as web_app
from hub.web import registry as web_registry

if TYPE_CHECKING:
    from hub import settings as settings_mod

__all__ = ["RunningHub", "hub", "start_hub"]

log = logging.getLogger("convoy.hub")

#: How long Watch streams get to end cleanly, then how long in-flight calls get, at shutdown.
STREAM_CLOSE_SECONDS = 3.0
GRACE_SECONDS = 10.0
#: Longest a status report waits for a sync in progress before it is stored (see HubService.sync_finished).
REPORT_WAIT_FOR_SYNC_SECONDS = 10.0


@dataclasses.dataclass
class RunningHub:
    """A started hub: its parts, its bound ports and where it wrote the operator's files."""

    settings: settings_mod.HubSettings
    db: store_db.Database
    service: HubService
    notifier: notify.Notifier
    metrics: metrics_mod.HubMetrics
    grpc: server_api.ServerParts
    http_runner: Any
    http_port: int
    ca_pem: bytes
    ca_fingerprint: str
    admin_credential_path: Path
    cli_config_path: Path
    _stop: asyncio.Event
    _tasks: list[asyncio.Task[None]]
    replication: Replication | None = None
    #: The TLS port of the OCI read API (/v2/); None with insecure (then /v2/ is on the HTTP port).
    registry_port: int | None = None
    registry_runner: Any = None

    @property
    def grpc_port(self) -> int:
        return self.grpc.port

    @property
    def grpc_address(self) -> str:
        return f"{_host_of(self.settings.grpc_listen)}:{self.grpc.port}"

    async def stop(self, *, grace: float = GRACE_SECONDS) -> None:
        """Close Watch streams with the reconnect status, let in-flight work finish, then close."""
        self._stop.set()
        self.notifier.close()
        await self.grpc.health.enter_graceful_shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STREAM_CLOSE_SECONDS
        while self.notifier.stream_count and loop.time() < deadline:
            await asyncio.sleep(0.02)  # streams end on their own once woken; this only bounds the wait
        await self.grpc.server.stop(grace)
        _done, pending = await asyncio.wait(self._tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await self.http_runner.cleanup()
        if self.registry_runner is not None:
            await self.registry_runner.cleanup()
        try:
            await asyncio.to_thread(self._record, "hub stopped")
        except Exception:
            log.exception("cannot record the hub's stop in the event log")
        if self.replication is not None:
            await asyncio.to_thread(self.replication.close)
        await asyncio.to_thread(self.db.dispose)

    def _record(self, message: str) -> None:
        with self.db.session() as session:
            store.add_event(session, models.EventKind.HUB, message=message)


async def start_hub(settings: settings_mod.HubSettings) -> RunningHub:
    """Build and start a hub in the running loop."""
    if settings.insecure:
        log.warning("INSECURE: gRPC without TLS; credentials and bundles travel in clear text. "
                    "Use --insecure only for a local sandbox.")
    data_dir = Path(settings.data_dir)
    files.ensure_private_dir(data_dir)
    db = store_db.Database(settings.database_url or store_db.default_sqlite_url(data_dir))
    replication = Replication(db, heartbeat=settings.replica_heartbeat,
                              handoff_timeout=settings.sync_handoff_timeout)
    try:
        replication.claim()
        return await _build(settings, data_dir, db, replication)
    except BaseException:
        # Whatever failed, a hub that did not start holds no lock, thread or connection.
        await asyncio.to_thread(replication.close)
        await asyncio.to_thread(db.dispose)
        raise


async def _build(settings: settings_mod.HubSettings, data_dir: Path, db: store_db.Database,
                 replication: Replication) -> RunningHub:
    """Everything after the database is claimed: keys, parts, the gRPC server, then :func:`_serve_rest`."""
    await asyncio.to_thread(db.migrate)
    identity_dir = Path(settings.identity_dir) if settings.identity_dir else data_dir
    signing_key = await asyncio.to_thread(signing.load_or_create_signing_key, identity_dir)
    await asyncio.to_thread(signing.write_public_key, data_dir, signing_key)
    tls, ca_pem, ca_path = await asyncio.to_thread(_tls_material, settings, data_dir, identity_dir)
    fingerprint = ca_sec.fingerprint_of(ca_pem) if ca_pem else ""
    admin_credential = await asyncio.to_thread(admin_sec.ensure_admin_credential, identity_dir)

    notifier = notify.Notifier()
    metrics = metrics_mod.HubMetrics()
    metrics.watch_streams(lambda: notifier.stream_count)
    source = gitsource.GitSource(
        url=settings.repo, mirror_dir=data_dir / "mirror", ref=settings.tracked_ref,
        auth=gitsource.GitAuth(ssh_key_file=settings.ssh_key_file, https_token_file=settings.https_token_file,
                               https_token_env=settings.https_token_env),
        timeout=settings.git_timeout, stall_seconds=settings.git_stall_seconds)
    policy = (gitsource.SignaturePolicy(allowed_signers_file=settings.allowed_signers_file,
                                        gpg_keyring=settings.gpg_keyring)
              if settings.require_signed_commits else None)
    rollouts = rollout_controller.RolloutController(db=db, notifier=notifier,
                                                    heartbeat_seconds=settings.heartbeat_seconds)
    service = HubService(settings=settings, db=db, source=source, signing_key=signing_key, notifier=notifier,
                         metrics=metrics, signature_policy=policy, rollouts=rollouts)
    rollouts.rerender = service.render_clusters
    rollouts.changed_paths = source.changed_paths
    authenticator = auth.Authenticator(
        db=db, admin_credential=admin_credential, on_rotated=notifier.revoke,
        rotation_grace=dt.timedelta(seconds=settings.credential_rotation_grace),
        unknown_seconds=settings.unknown_credential_cache, failure_rate=settings.auth_failure_rate,
        failure_burst=settings.auth_failure_burst)

    def forget(cluster: str) -> int:
        # Every revocation, this replica's or another's (LISTEN/NOTIFY): no cached credential
        # outlives it on any replica.
        authenticator.forget(cluster)
        return 0
    notifier.on_revoke(forget)

    async def registered(name: str) -> object:
        if not replication.is_leader:
            replication.publish("render", [name])  # only the leader has the fleet repository
            return None
        try:
            return await service.render_clusters([name])
        except Exception:  # the next sync renders it anyway; a background task must not die silently
            log.exception("cluster %s: rendering right after registration failed", name)
            return None

    async def sync_now() -> SyncOutcome:
        # Only the leader reads the fleet repository: a follower hands the sync over and waits.
        return await replication.sync_now(service)

    oci_target = str(pushing.PushTarget.parse(settings.oci_push)) if settings.oci_push else ""
    spoke = spoke_api.SpokeServicer(
        db=db, authenticator=authenticator, notifier=notifier, on_registered=registered, on_reported=rollouts.poke,
        declared_names=lambda: replication.declared_names(service),
        reports_wait=lambda: service.sync_finished(at_most=REPORT_WAIT_FOR_SYNC_SECONDS),
        options=spoke_api.SpokeOptions(
            ca_pem=ca_pem, signing_public_key=signing.public_key_bytes(signing_key),
            heartbeat_seconds=settings.heartbeat_seconds, inline_bundle_bytes=settings.inline_bundle_bytes,
            register_rate=settings.register_rate,
            register_burst=settings.register_burst, report_rate=settings.report_rate,
            report_burst=settings.report_burst, event_aggregate_seconds=settings.event_aggregate_window,
            watch_rate=settings.watch_rate, watch_burst=settings.watch_burst,
            bundle_fetches_per_minute=settings.bundle_fetches_per_minute,
            oci_push_target=oci_target, oci_announce_wait=settings.oci_announce_wait))
    admin = admin_api.AdminServicer(
        db=db, authenticator=authenticator, notifier=notifier, sync_now=sync_now, rollouts=rollouts,
        options=admin_api.AdminOptions(ca_fingerprint=fingerprint, advertise_address=settings.advertise_address,
                                       heartbeat_seconds=settings.heartbeat_seconds,
                                       oci_push_target=oci_target))
    parts = server_api.create_server(listen=settings.grpc_listen, spoke=spoke, admin=admin, tls=tls,
                                     heartbeat_seconds=settings.heartbeat_seconds)
    address = settings.advertise_address or f"{_host_of(settings.grpc_listen)}:{parts.port}"
    # Join tokens name the address spokes dial; without --advertise-address that is the bound one.
    admin.options = dataclasses.replace(admin.options, advertise_address=address)
    await parts.server.start()
    try:
        running = await _serve_rest(settings, service, spoke, parts, metrics, notifier, db, address,
                                    ca_pem=ca_pem, ca_path=ca_path, fingerprint=fingerprint,
                                    replication=replication, authenticator=authenticator, tls=tls)
    except BaseException:
        # A half-started hub must not keep its gRPC port (start_hub closes the rest).
        await parts.server.stop(None)
        raise
    return running


def _read_refs(db: store_db.Database, cluster: str | None) -> list[store.BundleRef]:
    with db.session(write=False) as session:
        return store.bundle_refs(session, cluster)


def _read_bundle(db: store_db.Database, digest: str) -> pushing.StoredBundle | None:
    with db.session(write=False) as session:
        row = store.get_bundle(session, digest)
        return None if row is None else pushing.StoredBundle(
            compressed=bytes(row.data), signature=bytes(row.signature), created_at=row.created_at)


def _pusher(settings: settings_mod.HubSettings, db: store_db.Database, metrics: metrics_mod.HubMetrics,
            notifier: notify.Notifier | None = None) -> pushing.Pusher | None:
    """The ``--oci-push`` pusher, or None when pushing is off. With ``notifier`` (call on the loop), the
    Watch streams of clusters whose bundles were pushed are woken (on every replica)."""
    if not settings.oci_push:
        return None
    target = pushing.PushTarget.parse(settings.oci_push)
    on_pushed: Callable[[list[str]], None] | None = None
    if notifier is not None:
        loop, wake = asyncio.get_running_loop(), notifier.notify

        def on_pushed(names: list[str]) -> None:  # in the push thread
            loop.call_soon_threadsafe(wake, names)
    client = pushing.OrasRegistry(target, docker_config=settings.oci_push_docker_config,
                                  insecure=settings.oci_push_insecure, connections=settings.oci_push_concurrency)
    return pushing.Pusher(client=client, refs=lambda: _read_refs(db, None),
                          load=lambda digest: _read_bundle(db, digest), source=gitsource.redact_url(settings.repo),
                          metrics=metrics, ledger=pushing.DbLedger(db, str(target)), on_pushed=on_pushed,
                          workers=settings.oci_push_concurrency)


def _registry_hooks(settings: settings_mod.HubSettings, db: store_db.Database,
                    authenticator: auth.Authenticator) -> web_registry.RegistryHooks:
    """The OCI read API's view of the store, behind the gRPC API's credentials."""

    async def authorize(credential: str, peer: str | None) -> str | None:
        metadata = (("authorization", f"Bearer {credential}"),)
        try:
            # Not charged as a failure here: the credential is tried as a cluster's next, which charges it.
            await authenticator.admin(metadata, method="OCI registry", peer=peer, charge=False)
            return None
        except grpc_errors.Unauthenticated:
            pass
        except api_limits.RateLimited as exc:
            raise web_registry.Denied(str(exc), status=429) from exc
        try:
            return await authenticator.cluster(metadata, method="OCI registry", peer=peer)
        except grpc_errors.Unauthenticated as exc:
            raise web_registry.Denied(str(exc)) from exc
        except api_limits.RateLimited as exc:
            raise web_registry.Denied(str(exc), status=429) from exc

    async def refs(cluster: str | None) -> list[store.BundleRef]:
        return await asyncio.to_thread(_read_refs, db, cluster)

    async def load(digest: str) -> web_registry.StoredBundle | None:
        row = await asyncio.to_thread(_read_bundle, db, digest)
        return None if row is None else web_registry.StoredBundle(
            compressed=row.compressed, signature=row.signature, created_at=row.created_at)

    return web_registry.RegistryHooks(authorize=authorize, refs=refs, load=load,
                                      source=gitsource.redact_url(settings.repo))


async def _serve_rest(settings: settings_mod.HubSettings, service: HubService, spoke: spoke_api.SpokeServicer,
                      parts: server_api.ServerParts, metrics: metrics_mod.HubMetrics, notifier: notify.Notifier,
                      db: store_db.Database, address: str, *, ca_pem: bytes, ca_path: Path | None,
                      fingerprint: str, replication: Replication, authenticator: auth.Authenticator,
                      tls: server_api.TlsMaterial | None = None) -> RunningHub:
    """After the gRPC server started: health, the HTTP side port, the operator's files, background tasks."""
    data_dir = Path(settings.data_dir)
    await server_api.mark_serving(parts)

    async def readiness() -> web_app.Readiness:
        try:
            await asyncio.to_thread(db.check_writable)
        except Exception as exc:
            # After failed writes the reason is the hub's own message (locked, disk full); it names no secret.
            why = str(exc) if db.write_failure else type(exc).__name__
            return web_app.Readiness(False, f"database unreachable: {why}")
        if replication.is_leader and not service.first_sync_done:
            # A follower serves what the leader stored; it never syncs itself.
            return web_app.Readiness(False, "first sync of the fleet repository not done yet")
        return web_app.Readiness(True, "ready")

    async def phase_counts() -> Mapping[str, int]:
        return await asyncio.to_thread(_phase_counts, db)

    hooks = web_app.WebHooks(trigger=replication.trigger, readiness=readiness, phase_counts=phase_counts,
                             webhook_secret=_webhook_secret(settings), branch=settings.branch,
                             max_body_bytes=settings.webhook_max_bytes,
                             max_concurrent=settings.webhook_max_concurrent)
    registry_hooks = _registry_hooks(settings, db, authenticator)
    # /v2/ takes credentials: over TLS on its own port, on the plain HTTP port only when the operator
    # said so (insecure, or a sandbox's oci_plain_http).
    plain_v2 = tls is None or settings.oci_plain_http
    app = web_app.create_app(hooks, metrics, registry_hooks if plain_v2 else None)
    runner, http_port = await web_app.start_site(app, settings.http_listen)
    registry_runner, registry_port = None, None
    if tls is not None:
        try:
            context = await asyncio.to_thread(_ssl_context, tls, data_dir)
            registry_runner, registry_port = await web_app.start_site(
                web_app.create_registry_app(registry_hooks), settings.registry_listen, context)
        except BaseException:
            await runner.cleanup()
            raise

    credential_path = admin_sec.admin_credential_path(Path(settings.identity_dir or data_dir))
    cli_config = await asyncio.to_thread(
        admin_sec.write_cli_config, data_dir, hub_address=address, ca_path=ca_path,
        credential_path=credential_path, insecure=settings.insecure)
    stop = asyncio.Event()
    replication.start(asyncio.get_running_loop(), notifier=notifier, service=service, address=address)
    metrics.leader.set_function(lambda: float(replication.is_leader))
    tasks = [asyncio.create_task(replication.lead(stop), name="convoy-leader-work"),
             asyncio.create_task(replication.beat(stop), name="convoy-replica-heartbeat"),
             asyncio.create_task(spoke.keep_presence(stop), name="convoy-presence"),
             asyncio.create_task(_retain_events(settings, db, stop), name="convoy-event-retention")]
    pusher = _pusher(settings, db, metrics, notifier)
    if pusher is not None:
        # Leader-only, like the sync loop: the ledger in the database tells a new leader what is left.
        tasks.append(asyncio.create_task(pusher.run(stop, settings.oci_push_interval,
                                                    is_leader=lambda: replication.is_leader),
                                         name="convoy-oci-push"))
        log.info("pushing bundles as OCI artifacts to %s", settings.oci_push)
    running = RunningHub(settings=settings, db=db, service=service, notifier=notifier, metrics=metrics,
                         grpc=parts, http_runner=runner, http_port=http_port, ca_pem=ca_pem,
                         ca_fingerprint=fingerprint, admin_credential_path=credential_path,
                         cli_config_path=cli_config, _stop=stop, _tasks=tasks, replication=replication,
                         registry_port=registry_port, registry_runner=registry_runner)
    await asyncio.to_thread(running._record, f"hub started (gRPC {running.grpc_address})")
    log.info("gRPC listening on %s (%s)", running.grpc_address, "plaintext" if settings.insecure else "TLS")
    log.info("HTTP listening on %s:%d (/webhook /metrics /healthz /readyz%s)", _host_of(settings.http_listen),
             http_port, ", OCI /v2/ in plain HTTP" if plain_v2 else "")
    if registry_port is not None:
        log.info("OCI registry /v2/ listening on %s:%d (TLS)", _host_of(settings.registry_listen), registry_port)
    log.info("admin credential: %s; CLI config: %s (export CONVOY_CONFIG=%s)", credential_path, cli_config,
             cli_config)
    return running


class Replication:
    """This replica's place among several on one PostgreSQL (:mod:`hub.store.replicas`).

    On PostgreSQL: a change feed (LISTEN/NOTIFY) wakes other replicas' streams and carries webhook
    triggers and post-registration renders to the leader; a leader lease decides who runs the sync
    loop and rollout ticks. On SQLite: one replica, always the leader, and a file lock refuses a second.
    """

    def __init__(self, db: store_db.Database, *, heartbeat: float = 5.0, handoff_timeout: float = 60.0) -> None:
        self.db = db
        self.replica = replicas.new_replica_id()
        self.name = self.replica
        self.address = ""
        self.started = dt.datetime.now(dt.UTC)
        self.heartbeat = heartbeat
        self.handoff_timeout = handoff_timeout
        self.is_leader = db.is_sqlite
        self._sqlite_lock = replicas.SqliteReplicaLock(Path(db.url.database or "")) if db.is_sqlite else None
        self._feed: replicas.ChangeFeed | None = None
        self._lease: replicas.LeaderLease | None = None
        self._leader_changed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._notifier: notify.Notifier | None = None
        self._service: HubService | None = None
        self._background: set[asyncio.Future[None]] = set()
        self._syncing: set[str] = set()  # handed-over sync requests this leader is running

    def claim(self) -> None:
        """SQLite: take the one-replica lock (raises StoreError naming the holder if taken)."""
        if self._sqlite_lock is not None:
            self._sqlite_lock.acquire()

    def start(self, loop: asyncio.AbstractEventLoop, *, notifier: notify.Notifier, service: HubService,
              address: str) -> None:
        self._loop, self._notifier, self._service = loop, notifier, service
        if self.db.is_sqlite:
            return
        self.address = address
        self.replica = f"{self.replica} ({address})"
        self._feed = replicas.ChangeFeed(self.db.url, replica=self.replica, handler=self._heard)
        notifier.publish = self._feed.publish
        self._feed.start()
        self._lease = replicas.LeaderLease(self.db.url, replica=self.replica, on_change=self._lease_changed)
        self._lease.start()

    def close(self) -> None:
        if self._feed is not None and self._notifier is not None:
            try:  # a clean stop says so at once; a killed replica is shown gone after missed heartbeats
                self._beat(streams=0, stopped=True)
            except Exception:
                log.warning("cannot record this replica's stop in the database", exc_info=True)
        if self._lease is not None:
            self._lease.stop()
        if self._feed is not None:
            self._feed.stop()
        if self._sqlite_lock is not None:
            self._sqlite_lock.release()

    def publish(self, kind: str, names: list[str]) -> None:
        if self._feed is not None:
            self._feed.publish(kind, names)

    def trigger(self, reason: str) -> None:
        """A webhook (or any sync request) on any replica wakes the leader's sync loop."""
        if self.is_leader and self._service is not None:
            self._service.trigger(reason)
        else:
            self.publish("sync", [reason])

    async def beat(self, stop: asyncio.Event) -> None:
        """Record this replica (address, start, open Watch streams) every ``heartbeat`` seconds (PostgreSQL)."""
        if self.db.is_sqlite or self._notifier is None:
            return
        notifier = self._notifier
        while not stop.is_set():
            try:
                await asyncio.to_thread(self._beat, streams=notifier.stream_count)
            except Exception as exc:  # the database is away: the rows of the others show this one stale
                log.warning("cannot record this replica's heartbeat (%s)", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.heartbeat)

    def _beat(self, *, streams: int, stopped: bool = False) -> None:
        now = dt.datetime.now(dt.UTC)
        record = replicas.ReplicaRecord(replica=self.replica, name=self.name, address=self.address,
                                        started=self.started, heartbeat=now, interval=self.heartbeat,
                                        streams=streams, stopped=stopped)
        with self.db.session() as session:
            replicas.record_heartbeat(session, record)
            replicas.replica_records(session, now=now, forget=True)

    async def sync_now(self, service: HubService) -> SyncOutcome:
        """Run an admin sync here when leading; otherwise hand it to the leader and wait for its outcome."""
        if self.is_leader or self._feed is None:
            return await service.sync_once(reason="admin sync", force=True)
        request = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.handoff_timeout
        published = -math.inf
        while loop.time() < deadline:
            if self.is_leader:  # the lease came to this replica meanwhile
                return await service.sync_once(reason="admin sync", force=True)
            if loop.time() - published >= _REPUBLISH_SECONDS:
                # Again now and then: a notification sent while the leader was changing is lost.
                self.publish("sync-now", [request])
                published = loop.time()
            document = await asyncio.to_thread(self._take_sync_result, request)
            if document is not None:
                return _outcome_from_doc(document)
            await asyncio.sleep(_HANDOFF_POLL_SECONDS)
        leader = await asyncio.to_thread(_leader_name, self.db)
        who = f"the leader replica {leader}" if leader else "no replica holds the leader lease; the leader"
        raise grpc_errors.LeaderUnavailable(
            f"replica {self.replica} is not the leader and handed the sync over, but {who} did not answer "
            f"within {self.handoff_timeout:g}s; the sync may still run (see `convoy history --all`)")

    def _take_sync_result(self, request: str) -> dict[str, object] | None:
        with self.db.session() as session:
            return replicas.take_sync_result(session, request)

    async def _answer_sync(self, service: HubService, request: str) -> None:
        """As the leader: run a sync another replica was asked for and store its outcome for it."""
        if request in self._syncing:
            return  # already running (the asking replica repeated its request)
        self._syncing.add(request)
        try:
            try:
                outcome = await service.sync_once(reason="admin sync (handed over by a replica)", force=True)
                document = _outcome_to_doc(outcome)
            except Exception as exc:
                log.exception("a sync handed over by another replica failed")
                document = {"error": f"the sync failed on the leader replica {self.replica}: "
                                     f"{type(exc).__name__}", "commit": None}
            await asyncio.to_thread(self._put_sync_result, request, document)
        finally:
            self._syncing.discard(request)

    def _put_sync_result(self, request: str, document: dict[str, object]) -> None:
        with self.db.session() as session:
            replicas.put_sync_result(session, request, document, now=dt.datetime.now(dt.UTC))

    async def declared_names(self, service: HubService) -> frozenset[str] | None:
        # Only the leader reads the fleet repository; a follower uses the names the leader stored.
        if self.is_leader:
            return await service.declared_names()
        return await asyncio.to_thread(service.declared_names_stored)

    # -- called from the feed's and the lease's threads ------------------------------------------
    def _heard(self, kind: str, names: list[str]) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._apply, kind, names)

    def _lease_changed(self, leader: bool) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._set_leader, leader)

    # -- on the loop -------------------------------------------------------------------------------
    def _set_leader(self, leader: bool) -> None:
        self.is_leader = leader
        self._leader_changed.set()

    def _apply(self, kind: str, names: list[str]) -> None:
        notifier, service = self._notifier, self._service
        if notifier is None or service is None:
            return
        if kind == "changed":
            notifier.notify_local(names)
        elif kind == "revoked":
            for name in names:
                notifier.revoke_local(name)
        elif kind == "resync":
            notifier.attach()
        elif kind == "detached":
            notifier.detach()
        elif kind == "sync" and self.is_leader:
            service.trigger(names[0] if names else "sync request from a replica")
        elif kind == "sync-now" and self.is_leader:
            for request in names:
                answer = asyncio.ensure_future(self._answer_sync(service, request))
                self._background.add(answer)
                answer.add_done_callback(self._background.discard)
        elif kind == "render" and self.is_leader:
            task = asyncio.ensure_future(self._render(service, names))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _render(self, service: HubService, names: list[str]) -> None:
        try:
            await service.render_clusters(names)
        except Exception:  # the next sync renders them anyway
            log.exception("rendering %s for another replica's registration failed", ", ".join(names))

    async def lead(self, stop: asyncio.Event) -> None:
        """Run the singleton work (sync loop, rollout ticks) while this replica holds the lease."""
        service = self._service
        assert service is not None
        while not stop.is_set():
            if not self.is_leader:
                self._leader_changed.clear()
                waiter = asyncio.ensure_future(self._leader_changed.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
                continue
            log.info("leading: this replica fetches Git, renders and ticks rollouts")
            await asyncio.to_thread(self._record_leader)
            resign = asyncio.Event()
            work = [asyncio.create_task(service.run(resign), name="convoy-sync")]
            if service.rollouts is not None:
                work.append(asyncio.create_task(service.rollouts.run(resign), name="convoy-rollouts"))
            while self.is_leader and not stop.is_set():
                self._leader_changed.clear()
                waiter = asyncio.ensure_future(self._leader_changed.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
            resign.set()
            await asyncio.gather(*work, return_exceptions=True)

    def _record_leader(self) -> None:
        if self.db.is_sqlite:
            return
        try:
            with self.db.session() as session:
                store.add_event(session, models.EventKind.HUB, message=f"replica {self.replica} leads")
        except Exception:
            log.exception("cannot record the new leader in the event log")


#: A follower waiting for a handed-over sync reads the database this often and repeats its request this often.
_HANDOFF_POLL_SECONDS = 0.2
_REPUBLISH_SECONDS = 5.0


def _outcome_to_doc(outcome: SyncOutcome) -> dict[str, object]:
    document = dataclasses.asdict(outcome)
    document["render_errors"] = {name: list(errors) for name, errors in outcome.render_errors.items()}
    return document


def _outcome_from_doc(document: Mapping[str, Any]) -> SyncOutcome:
    def names(key: str) -> tuple[str, ...]:
        return tuple(str(n) for n in document.get(key) or ())
    commit = document.get("commit")
    return SyncOutcome(
        commit=None if commit is None else str(commit), changed=names("changed"),
        render_errors={str(k): tuple(str(e) for e in v) for k, v in (document.get("render_errors") or {}).items()},
        refused=document.get("refused"), error=document.get("error"), skipped=bool(document.get("skipped")),
        desired=names("desired"), held=names("held"), pinned=names("pinned"),
        unchanged=int(document.get("unchanged") or 0), again=bool(document.get("again")))


def _leader_name(db: store_db.Database) -> str:
    try:
        return replicas.current_leader(db.url)
    except Exception:  # only for a message
        return ""


async def _retain_events(settings: settings_mod.HubSettings, db: store_db.Database, stop: asyncio.Event) -> None:
    """Apply the audit log's retention (age and count) at start and every ``event_prune_interval``."""
    while not stop.is_set():
        try:
            deleted = await asyncio.to_thread(_prune_events, db, settings)
            if deleted:
                log.info("event retention: deleted %d event(s) (older than %s or beyond the newest %d)",
                         deleted, dt.timedelta(seconds=settings.event_retention), settings.event_max_count)
        except Exception:  # the next round tries again; retention must never stop the hub
            log.exception("event retention failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.event_prune_interval)


def _prune_events(db: store_db.Database, settings: settings_mod.HubSettings) -> int:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=settings.event_retention)
    with db.session() as session:
        return store.prune_events(session, before=before, keep=settings.event_max_count)


def _ssl_context(tls: server_api.TlsMaterial, data_dir: Path) -> ssl.SSLContext:
    """A server context from the gRPC port's certificate chain and key (the CA spokes already pin)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # ssl loads a chain only from files: a private temporary pair in the (0700) data directory.
    with tempfile.TemporaryDirectory(dir=data_dir) as scratch:
        cert, key = Path(scratch) / "cert.pem", Path(scratch) / "key.pem"
        cert.write_bytes(tls.cert_pem)
        key.touch(mode=0o600)
        key.write_bytes(tls.key_pem)
        context.load_cert_chain(cert, key)
    return context


def _host_of(listen: str) -> str:
    """The host to dial for a listen address (a wildcard means this machine), bracketed if IPv6."""
    host = listen.rpartition(":")[0].strip("[]")
    if not host or host in {"0.0.0.0", "::"}:
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _tls_material(settings: settings_mod.HubSettings, data_dir: Path,
                  identity_dir: Path) -> tuple[server_api.TlsMaterial | None, bytes, Path | None]:
    """(serving material or None when insecure, CA PEM handed to spokes, CA file path for the CLI)."""
    if settings.insecure:
        return None, b"", None
    if settings.tls_cert and settings.tls_key:
        cert = Path(settings.tls_cert).read_bytes()
        key = Path(settings.tls_key).read_bytes()
        ca_file = Path(settings.tls_ca) if settings.tls_ca else Path(settings.tls_cert)
        ca = ca_file.read_bytes()
        if settings.tls_ca and ca.strip() not in cert:
            # Spokes pin the CA at first contact from the presented chain, before they send their
            # token: a chain without it makes them refuse the hub.
            cert = cert.rstrip(b"\n") + b"\n" + ca
        return server_api.TlsMaterial(cert_pem=cert, key_pem=key), ca, ca_file
    authority = ca_sec.ensure_ca(identity_dir)  # shared by every replica; the server cert is per replica
    hosts = ["localhost", "127.0.0.1", "::1", _host_of(settings.grpc_listen).strip("[]")]
    if settings.advertise_address:
        hosts.append(settings.advertise_address.rpartition(":")[0].strip("[]") or settings.advertise_address)
    served = ca_sec.ensure_server_cert(data_dir, authority, hosts=hosts)
    # The CA travels in the chain, so a spoke can pin it at first contact (kubeadm-style) from the
    # handshake itself, before it has registered.
    chain = served.cert_pem.rstrip(b"\n") + b"\n" + authority.cert_pem
    return (server_api.TlsMaterial(cert_pem=chain, key_pem=served.key_pem), authority.cert_pem,
            authority.cert_path)


def _webhook_secret(settings: settings_mod.HubSettings) -> bytes | None:
    secret = settings.webhook_secret
    if not secret:
        return None
    return secret.encode() if isinstance(secret, str) else bytes(secret)


def _phase_counts(db: store_db.Database) -> dict[str, int]:
    counts: dict[str, int] = {}
    with db.session(write=False) as session:
        reported = store.statuses(session, summary=True)
        for cluster in store.list_clusters(session):
            row = reported.get(cluster.name)
            phase = row.phase if row is not None else "Unknown"
            counts[phase] = counts.get(phase, 0) + 1
    return counts


async def serve(settings: settings_mod.HubSettings) -> None:
    """Run a hub until SIGTERM or SIGINT."""
    running = await start_hub(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("shutting down: closing Watch streams, finishing in-flight calls")
        await running.stop()
        log.info("stopped")


#: Failures at start that are about the environment, not bugs.
_START_ERRORS: tuple[type[Exception], ...] = (OSError, store_errors.StoreError, ca_sec.CertificateError,
                                               files.PrivateFileError, signing.SigningKeyError)


# -- CLI ----------------------------------------------------------------------------------------

def _settings_options(command: Any) -> Any:
    """The flags of ``serve`` and ``migrate``: one per HubSettings field (``x_y`` -> ``--x-y``).

    They are made from the dataclass, so every setting has a flag and every help text shows the
    default the hub really uses. Secrets get no flag (argv shows in ``ps`` and shell history): their
    ``*_file`` setting has one. Unset flags stay None so that environment variables
    (``CONVOY_HUB_*``) and the config file still apply underneath them.
    """
    from hub import settings as settings_mod

    hints = typing.get_type_hints(settings_mod.HubSettings)
    options = [click.option("--config", "config_file", type=click.Path(path_type=Path),
                            help="YAML config file (flags > env > file).")]
    for field in dataclasses.fields(settings_mod.HubSettings):
        if not field.metadata.get("secret"):
            options.append(_settings_option(field, hints[field.name], settings_mod.display_default(field)))
    for option in reversed(options):
        command = option(command)
    return command


def _settings_option(field: dataclasses.Field[Any], hint: Any, default: str) -> Any:
    doc = str(field.metadata.get("doc", ""))
    first = doc.split(" ", 1)[0]
    if first.isalpha() and first.islower():  # "gRPC", "host:port" stay as written
        doc = doc[:1].upper() + doc[1:]
    text = doc.rstrip(".") + "." + (f" [{default}]" if default else "")
    flag = "--" + field.name.replace("_", "-")
    base = next((arg for arg in typing.get_args(hint) if arg is not type(None)), hint)
    if base is bool:
        return click.option(flag, field.name, is_flag=True, default=None, help=text)
    if base is Path:
        return click.option(flag, field.name, type=click.Path(path_type=Path), help=text)
    kind = field.metadata.get("kind")
    if kind is not None:
        # Durations and sizes take units ("5m", "32MiB"); the settings loader parses them.
        return click.option(flag, field.name, type=str, metavar=str(kind).upper(), help=text)
    return click.option(flag, field.name, type=base if base in (int, float) else str, help=text)


@click.group()
def hub() -> None:
    """Run the Convoy hub."""


@hub.command("serve")
@_settings_options
def serve_command(config_file: Path | None, **values: Any) -> None:
    """Follow the fleet repository and serve every cluster its bundle (gRPC + HTTP side port).

    \b
    Examples:
      convoy hub serve --repo https://git.example.com/fleet.git --data-dir /var/lib/convoy
      convoy hub serve --config /etc/convoy/hub.yaml
    """
    settings = _load(values, config_file)
    _configure_logging()
    try:
        asyncio.run(serve(settings))
    except _START_ERRORS as exc:
        # What an operator can fix (a port in use, an unreadable key, a database away): one line.
        raise click.ClickException(f"the hub cannot start: {exc}") from exc


@hub.command("migrate")
@_settings_options
def migrate_command(config_file: Path | None, **values: Any) -> None:
    """Bring the hub's database schema up to date, then exit.

    \b
    Examples:
      convoy hub migrate --config /etc/convoy/hub.yaml
    """
    settings = _load(values, config_file, require_repo=False)
    data_dir = Path(settings.data_dir)
    try:
        files.ensure_private_dir(data_dir)
    except files.PrivateFileError as exc:
        raise click.ClickException(str(exc)) from exc
    db = store_db.Database(settings.database_url or store_db.default_sqlite_url(data_dir))
    try:
        db.migrate()
        revision = db.current_revision()
    except store_errors.StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        db.dispose()
    click.echo(f"database {db.display_url} is at revision {revision}")


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Alembic announces every plugin it loads at INFO; the migration itself is still logged.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def _load(values: Mapping[str, Any], config_file: Path | None, *,
          require_repo: bool = True) -> settings_mod.HubSettings:
    from hub import settings as settings_mod

    given = {key: value for key, value in values.items() if value is not None}
    try:
        settings = settings_mod.load_settings(cli_values=given, config_file=config_file)
    except settings_mod.SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    if require_repo and not settings.repo:
        raise click.ClickException("no fleet repository: give --repo URL_OR_PATH, CONVOY_HUB_REPO or `repo:` "
                                   "in the config file")
    return settings
