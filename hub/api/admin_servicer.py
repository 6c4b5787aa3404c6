"""AdminService: what the ``convoy`` CLI asks the hub (needs the admin credential).

Rollout calls (RolloutStatus, RolloutControl, Pin) go to the hub's
:class:`hub.rollout.controller.RolloutController`; without one they answer UNIMPLEMENTED.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from grpc import aio

from hub import notify, presence, service
from hub.api import auth, grpc_errors, limits
from hub.rollout import controller as rollout_controller
from hub.rollout import planning as rollout_planning
from hub.security import secrets
from hub.store import db as store_db
from hub.store import errors as store_errors
from hub.store import models, replicas
from hub.store import repository as store
from protos import bundle as bundles
from protos import codec, selectors, version
from protos.codec import pb
from protos.convoy.v1 import convoy_pb2_grpc as pb_grpc

__all__ = ["AdminOptions", "AdminServicer", "redact_secrets"]

log = logging.getLogger(__name__)

Context = aio.ServicerContext[Any, Any]

#: What a token may be bound to: a cluster name (a DNS label), or the start of one.
_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_PREFIX = re.compile(r"[a-z0-9][a-z0-9-]{0,61}")
#: Largest uncompressed bundle GetBundleObjects inflates.
MAX_INFLATE_BYTES = 256 * 1024 * 1024
REDACTED = "<redacted>"


@dataclasses.dataclass(frozen=True)
class AdminOptions:
    ca_fingerprint: str                 #: ``sha256:<hex>`` of the hub CA ("" when insecure)
    advertise_address: str | None       #: put in join tokens so a spoke knows where to dial
    heartbeat_seconds: float = 30.0
    #: ``--oci-push`` target (REGISTRY/REPOSITORY), "" when the hub does not push: ListClusters then
    #: reports the push backlog.
    oci_push_target: str = ""


class AdminServicer(pb_grpc.AdminServiceServicer):  # type: ignore[misc]
    def __init__(self, *, db: store_db.Database, authenticator: auth.Authenticator, notifier: notify.Notifier,
                 options: AdminOptions, sync_now: Callable[[], Awaitable[service.SyncOutcome]],
                 rollouts: rollout_controller.RolloutController | None = None,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.db = db
        self.auth = authenticator
        self.notifier = notifier
        self.options = options
        self._sync_now = sync_now
        self.rollouts = rollouts
        self.clock = clock

    async def _admin(self, context: Context, method: str) -> str:
        """The calling admin credential's name (it is refused unless it is a valid admin credential)."""
        return await self.auth.admin(context.invocation_metadata(), method=method,
                                     peer=limits.peer_host(context.peer()))

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    # -- clusters ---------------------------------------------------------------------------
    @grpc_errors.unary
    async def ListClusters(self, request: pb.ListClustersRequest, context: Context) -> pb.ListClustersResponse:
        await self._admin(context, "list clusters")
        selector = _parse_selector(request.selector)
        summaries, fleet_commit, seen, fleet = await self._run(self._list, selector,
                                                               self.notifier.connected_clusters)
        response = pb.ListClustersResponse(clusters=summaries, fleet_commit=fleet_commit,
                                           heartbeat_seconds=int(self.options.heartbeat_seconds))
        if seen is not None:
            response.fleet_commit_seen.CopyFrom(codec.timestamp(seen))
        refused, response.fetch_error = fleet
        if refused is not None:
            response.refused_commit.CopyFrom(refused)
        if not self.db.is_sqlite:
            response.replicas.extend(await self._run(self._replicas))
        if self.options.oci_push_target:
            backlog = await self._run(self._push_backlog)
            response.oci_push.CopyFrom(pb.OciPushLag(target=self.options.oci_push_target, pending=backlog.pending,
                                                     oldest_seconds=backlog.oldest_seconds))
        return response

    def _push_backlog(self) -> store.PushBacklog:
        with self.db.session(write=False) as session:
            return store.oci_push_backlog(session, self.options.oci_push_target, now=self.clock())

    def _replicas(self) -> list[pb.HubReplica]:
        """Every replica sharing the database, from the heartbeat rows, and which holds the leader lease."""
        now = self.clock()
        with self.db.session(write=False) as session:
            records = replicas.replica_records(session, now=now)
            leader = replicas.leader_of(session, records)
        out = []
        for record in records:
            row = pb.HubReplica(name=record.name, address=record.address, leader=record.replica == leader,
                                gone=record.gone(now), streams=record.streams)
            row.started.CopyFrom(codec.timestamp(record.started))
            row.last_heartbeat.CopyFrom(codec.timestamp(record.heartbeat))
            out.append(row)
        return out

    def _list(self, selector: selectors.Selector, connected: frozenset[str]) -> tuple[
            list[pb.ClusterSummary], str, dt.datetime | None, tuple[pb.RefusedCommit | None, str]]:
        with self.db.session(write=False) as session:
            fleet = _fleet_hold(session)
            clusters = [c for c in store.list_clusters(session) if selector.matches(dict(c.labels or {}))]
            desired = store.desired_all(session)
            reported = store.statuses(session, summary=True)
            errors = store.render_errors_all(session)
            fleet_commit = store.get_state(session, store.StateKey.LAST_DEPLOYED_COMMIT) or ""
            seen_text = store.get_state(session, service.STATE_DEPLOYED_AT)
            places = self.rollouts.cluster_states(session) if self.rollouts is not None else {}
        seen = dt.datetime.fromisoformat(seen_text) if seen_text else None
        summaries = [self._summary(c, desired.get(c.name), reported.get(c.name), errors.get(c.name),
                                   online=c.name in connected, rollout=places.get(c.name)) for c in clusters]
        return summaries, fleet_commit, seen, fleet

    def _summary(self, cluster: models.Cluster, desired: store.DesiredRow | models.DesiredState | None,
                 reported: models.ClusterStatus | None, render_errors: models.RenderError | None, *,
                 online: bool, rollout: rollout_controller.ClusterRollout | None = None) -> pb.ClusterSummary:
        """One cluster's row; ``online``: it has a Watch stream open on this hub process.

        ``summary.online`` is the hub's presence rule (:mod:`hub.presence`), which the rollout gate
        uses too; the CLI shows a cluster that is not online as Offline.
        """
        now = self.clock()
        summary = pb.ClusterSummary(name=cluster.name, labels=dict(cluster.labels or {}),
                                    paused=bool(cluster.paused), pinned_digest=cluster.pinned_digest or "",
                                    online=presence.is_online(
                                        last_seen=cluster.last_seen, disconnected_at=cluster.disconnected_at,
                                        now=now, heartbeat_seconds=self.options.heartbeat_seconds))
        if cluster.age_recipient:
            summary.age_recipient = cluster.age_recipient
            if cluster.age_recipient_at is not None:
                summary.age_recipient_changed.CopyFrom(codec.timestamp(_aware(cluster.age_recipient_at)))
        if rollout is not None:
            summary.wave, summary.rollout_state = rollout.wave, rollout.state
        if cluster.pinned_digest:
            summary.rollout_state = "pinned"
        if desired is not None:
            summary.desired_commit = desired.commit
            summary.desired_digest = desired.digest
        last_seen = cluster.last_seen
        if online:
            last_seen = now  # an open Watch stream is proof of life right now
        if last_seen is not None:
            summary.last_seen.CopyFrom(codec.timestamp(_aware(last_seen)))
        if reported is not None:
            summary.applied_commit = reported.applied_commit or ""
            summary.applied_digest = reported.applied_digest or ""
            summary.phase = _phase_to_wire(reported.phase)
            summary.objects_total = reported.objects_total
            summary.objects_ready = reported.objects_ready
            summary.drift_count = reported.drift_count
            summary.errors.extend(str(e) for e in (reported.errors or []))
            summary.last_report.CopyFrom(codec.timestamp(_aware(reported.updated_at)))
            if reported.observed_at is not None:
                summary.last_report_observed.CopyFrom(codec.timestamp(_aware(reported.observed_at)))
        else:
            summary.phase = pb.PHASE_UNSPECIFIED
        if render_errors is not None:
            summary.render_errors.extend(_render_error_lines(render_errors))
        _bound_summary_errors(summary)
        return summary

    @grpc_errors.unary
    async def GetCluster(self, request: pb.GetClusterRequest, context: Context) -> pb.ClusterDetail:
        await self._admin(context, "get cluster")
        return await self._run(  # type: ignore[no-any-return]
            self._detail, request.name, self.notifier.is_connected(request.name))

    def _detail(self, name: str, online: bool) -> pb.ClusterDetail:
        with self.db.session(write=False) as session:
            cluster = store.get_cluster(session, name)
            if cluster is None:
                raise grpc_errors.NotFound(f"cluster {name} is not registered")
            desired = store.get_desired(session, name)
            reported = store.get_status(session, name)
            errors = store.render_errors_all(session).get(name)
            recent = store.events(session, cluster=name, limit=20)
            place = self.rollouts.cluster_states(session).get(name) if self.rollouts is not None else None
        detail = pb.ClusterDetail(summary=self._summary(cluster, desired, reported, errors, online=online,
                                                        rollout=place))
        if reported is not None:
            detail.objects.extend(_object_from_doc(o) for o in (reported.objects or []))
            detail.drift.extend(_drift_from_doc(d) for d in (reported.drift or []))
            detail.message = reported.message or ""
        detail.recent_events.extend(_event_to_wire(e) for e in recent)
        if errors is not None:
            detail.render_errors.extend(_render_error_lines(errors))
        return detail

    @grpc_errors.unary
    async def History(self, request: pb.HistoryRequest, context: Context) -> pb.HistoryResponse:
        await self._admin(context, "history")
        if not request.all and not request.cluster:
            raise limits.InvalidRequest("history: name a cluster or ask for all clusters")
        limits.check_timestamp(request.since, field="since", where="history")
        since = codec.datetime_from_wire(request.since)
        limit = request.limit if 0 < request.limit <= 10_000 else 200
        known = {kind.value: kind for kind in models.EventKind}
        unknown = sorted(set(request.kinds) - set(known))
        if unknown:
            raise limits.InvalidRequest(f"history: unknown event type {', '.join(unknown)} "
                                        f"(known: {', '.join(sorted(known))})")
        kinds = [known[k] for k in request.kinds] or None
        rows = await self._run(self._events, None if request.all else request.cluster, since, limit, kinds)
        return pb.HistoryResponse(events=[_event_to_wire(e) for e in rows])

    def _events(self, cluster: str | None, since: dt.datetime | None, limit: int,
                kinds: list[models.EventKind] | None = None) -> list[models.Event]:
        with self.db.session(write=False) as session:
            if cluster is not None and store.get_cluster(session, cluster) is None:
                raise grpc_errors.NotFound(f"cluster {cluster} is not registered")
            return list(store.events(session, cluster=cluster, since=since, kinds=kinds, limit=limit))

    # -- tokens -----------------------------------------------------------------------------
    @grpc_errors.unary
    async def CreateToken(self, request: pb.CreateTokenRequest, context: Context) -> pb.CreateTokenResponse:
        await self._admin(context, "create token")
        ttl = request.ttl_seconds or 3600
        if not 0 < ttl <= 30 * 24 * 3600:
            raise limits.InvalidRequest(f"create token: ttl must be between 1 second and 30 days, got {ttl}s")
        uses = request.uses or 1
        if not 0 < uses <= 10_000:
            raise limits.InvalidRequest(f"create token: uses must be between 1 and 10000, got {uses}")
        labels = dict(request.labels)
        limits.check_labels(labels, where="create token")
        limits.check_text(request.description, field="description", where="create token", limit=1024)
        if sum(map(bool, (request.cluster, request.name_prefix, request.any_name))) > 1:
            raise limits.InvalidRequest("create token: bind it to a cluster name, a name prefix or any name; "
                                        "only one of them")
        if request.cluster and not _NAME.fullmatch(request.cluster):
            raise limits.InvalidRequest(f"create token: cluster name {request.cluster[:80]!r} must be a DNS label "
                                        "(lowercase letters, digits and '-', at most 63 characters)")
        if request.name_prefix and not _PREFIX.fullmatch(request.name_prefix):
            raise limits.InvalidRequest(f"create token: name prefix {request.name_prefix[:80]!r} must be the start "
                                        "of a DNS label (lowercase letters, digits and '-', at most 62 characters)")
        row, token = await self._run(self._create_token, dt.timedelta(seconds=ttl), uses, labels,
                                     request.description, request.cluster,
                                     "" if request.any_name else (request.name_prefix or None))
        join = secrets.make_join_token(token, self.options.ca_fingerprint, self.options.advertise_address)
        return pb.CreateTokenResponse(info=_token_to_wire(row), token=token,
                                      ca_fingerprint=self.options.ca_fingerprint, join_token=join)

    def _create_token(self, ttl: dt.timedelta, uses: int, labels: dict[str, str], description: str,
                      cluster: str, prefix: str | None) -> tuple[models.BootstrapToken, str]:
        with self.db.session() as session:
            return store.create_token(session, ttl=ttl, uses=uses, labels=labels, description=description,
                                      now=self.clock(), cluster_name=cluster or None, name_prefix=prefix)

    @grpc_errors.unary
    async def ListTokens(self, request: pb.ListTokensRequest, context: Context) -> pb.ListTokensResponse:
        await self._admin(context, "list tokens")
        rows = await self._run(self._tokens)
        return pb.ListTokensResponse(tokens=[_token_to_wire(r) for r in rows])

    def _tokens(self) -> list[models.BootstrapToken]:
        with self.db.session(write=False) as session:
            return list(store.list_tokens(session))

    @grpc_errors.unary
    async def RevokeToken(self, request: pb.RevokeTokenRequest, context: Context) -> pb.RevokeTokenResponse:
        await self._admin(context, "revoke token")
        revoked = await self._run(self._revoke, request.id)
        return pb.RevokeTokenResponse(revoked=revoked)

    def _revoke(self, token_id: str) -> bool:
        with self.db.session() as session:
            if store.get_token(session, token_id) is None:
                raise grpc_errors.NotFound(f"bootstrap token {token_id} does not exist")
            return store.revoke_token(session, token_id, now=self.clock())

    # -- remove, rotate ---------------------------------------------------------------------------
    @grpc_errors.unary
    async def RemoveCluster(self, request: pb.RemoveClusterRequest, context: Context) -> pb.RemoveClusterResponse:
        await self._admin(context, "remove cluster")
        limits.check_text(request.name, field="name", where="remove cluster", limit=253)
        if not await self._run(self._remove, request.name):
            raise grpc_errors.NotFound(f"cluster {request.name} is not registered")
        # The credential is gone from the store; drop it from the cache and end its streams now.
        self.auth.forget(request.name)
        ended = self.notifier.revoke(request.name)
        log.info("cluster %s: registration removed; %d open stream(s) ended", request.name, ended)
        return pb.RemoveClusterResponse(removed=True, streams_ended=ended)

    def _remove(self, name: str) -> bool:
        with self.db.session() as session:
            return store.remove_cluster(session, name, now=self.clock())

    @grpc_errors.unary
    async def GetVersion(self, request: pb.GetVersionRequest, context: Context) -> pb.GetVersionResponse:
        await self._admin(context, "version")
        return pb.GetVersionResponse(version=version.installed())

    @grpc_errors.unary
    async def RotateCredential(self, request: pb.RotateCredentialRequest,
                               context: Context) -> pb.RotateCredentialResponse:
        await self._admin(context, "rotate credential")
        limits.check_text(request.name, field="name", where="rotate credential", limit=253)
        await self._run(self._request_rotation, request.name)
        # Wakes the cluster's Watch streams: each reads the pending rotation and hands over a credential.
        self.notifier.notify([request.name])
        return pb.RotateCredentialResponse(online=self.notifier.is_connected(request.name))

    def _request_rotation(self, name: str) -> None:
        with self.db.session() as session:
            store.request_rotation(session, name, now=self.clock())  # UnknownCluster: NOT_FOUND

    @grpc_errors.unary
    async def RotateAgeKey(self, request: pb.RotateAgeKeyRequest, context: Context) -> pb.RotateAgeKeyResponse:
        await self._admin(context, "rotate age key")
        limits.check_text(request.name, field="name", where="rotate age key", limit=253)
        await self._run(self._request_age_rotation, request.name)
        self.notifier.notify([request.name])  # its Watch streams read the request and pass it on
        return pb.RotateAgeKeyResponse(online=self.notifier.is_connected(request.name))

    def _request_age_rotation(self, name: str) -> None:
        with self.db.session() as session:
            store.request_age_rotation(session, name, now=self.clock())  # UnknownCluster: NOT_FOUND

    # -- pause, sync --------------------------------------------------------------------------
    @grpc_errors.unary
    async def SetPaused(self, request: pb.SetPausedRequest, context: Context) -> pb.SetPausedResponse:
        await self._admin(context, "pause" if request.paused else "resume")
        if not request.clusters and not request.selector:
            raise limits.InvalidRequest("pause/resume: name clusters or give a selector")
        selector = _parse_selector(request.selector) if request.selector else None
        names = await self._run(self._set_paused, list(request.clusters), selector, request.paused)
        self.notifier.notify(names)
        return pb.SetPausedResponse(clusters=names)

    def _set_paused(self, names: Sequence[str], selector: selectors.Selector | None, paused: bool) -> list[str]:
        with self.db.session() as session:
            chosen = dict.fromkeys(names)
            if selector is not None:
                chosen.update(dict.fromkeys(c.name for c in store.list_clusters(session)
                                            if selector.matches(dict(c.labels or {}))))
            # Raises UnknownCluster (NOT_FOUND) for a name that is not registered; records the events.
            store.set_paused(session, list(chosen), paused, now=self.clock())
        return sorted(chosen)

    @grpc_errors.unary
    async def SyncNow(self, request: pb.SyncNowRequest, context: Context) -> pb.SyncNowResponse:
        await self._admin(context, "sync")
        outcome = await self._sync_now()
        return pb.SyncNowResponse(
            commit=outcome.commit or "", changed=bool(outcome.changed or outcome.desired), message=outcome.report,
            desired_clusters=sorted(outcome.desired), held_clusters=sorted(outcome.held),
            pinned_clusters=sorted(outcome.pinned), render_error_clusters=sorted(outcome.render_errors),
            unchanged_count=outcome.unchanged, failed=outcome.failed)

    # -- bundles ------------------------------------------------------------------------------
    @grpc_errors.unary
    async def GetBundleObjects(self, request: pb.GetBundleObjectsRequest,
                               context: Context) -> pb.GetBundleObjectsResponse:
        await self._admin(context, "get bundle objects")
        limits.check_digest(request.digest, where="get bundle objects")
        data = await self._run(self._bundle_json, request.digest)
        return pb.GetBundleObjectsResponse(bundle_json=data)

    def _bundle_json(self, digest: str) -> bytes:
        with self.db.session(write=False) as session:
            row = store.get_bundle(session, digest)
            if row is None:
                raise grpc_errors.NotFound(f"bundle {digest} is not stored on this hub")
            compressed = row.data
        document = bundles.decode(bundles.decompress(compressed, max_size=MAX_INFLATE_BYTES),
                                  expected_digest=digest)
        return bundles.encode(redact_secrets(document))

    # -- rollouts -------------------------------------------------------------------------------
    def _controller(self, what: str) -> rollout_controller.RolloutController:
        if self.rollouts is None:
            raise grpc_errors.Unimplemented(f"{what}: progressive rollouts are not enabled on this hub")
        return self.rollouts

    @grpc_errors.unary
    async def RolloutStatus(self, request: pb.RolloutStatusRequest, context: Context) -> pb.RolloutStatusResponse:
        await self._admin(context, "rollout status")
        view = await self._run(self._controller("rollout status").view_blocking)
        if view is None:
            raise grpc_errors.NotFound("rollout status: no rollout has run on this hub yet (no commit with a "
                                  "rollout strategy changed a cluster that already had a bundle)")
        return _rollout_to_wire(view)

    @grpc_errors.unary
    async def RolloutControl(self, request: pb.RolloutControlRequest,
                             context: Context) -> pb.RolloutStatusResponse:
        await self._admin(context, "rollout control")
        controller = self._controller("rollout control")
        if request.action not in {"pause", "resume", "abort", "promote"}:
            raise limits.InvalidRequest(f"rollout: unknown action {request.action!r} (pause, resume, abort, promote)")
        try:
            _rollout, changed = await self._run(controller.control_blocking, request.action)
        except rollout_controller.RolloutError as exc:
            raise limits.InvalidRequest(str(exc)) from exc
        self.notifier.notify(changed)
        controller.poke()
        view = await self._run(controller.view_blocking)
        return _rollout_to_wire(view)

    @grpc_errors.unary
    async def RolloutApprove(self, request: pb.RolloutApproveRequest,
                             context: Context) -> pb.RolloutStatusResponse:
        caller = await self._admin(context, "rollout approve")
        controller = self._controller("rollout approve")
        limits.check_text(request.wave, field="wave", where="rollout approve", limit=63)
        limits.check_text(request.comment, field="comment", where="rollout approve", limit=1_000)
        try:
            _rollout, changed = await self._run(lambda: controller.approve_blocking(
                by=caller, wave=request.wave or None, comment=request.comment.strip()))
        except rollout_planning.ApprovalDenied as exc:
            raise grpc_errors.PermissionDenied(str(exc)) from exc
        except rollout_controller.RolloutError as exc:
            raise limits.InvalidRequest(str(exc)) from exc
        self.notifier.notify(changed)
        controller.poke()
        view = await self._run(controller.view_blocking)
        return _rollout_to_wire(view)

    # -- named admin credentials -----------------------------------------------------------------
    @grpc_errors.unary
    async def CreateAdminCredential(self, request: pb.CreateAdminCredentialRequest,
                                    context: Context) -> pb.CreateAdminCredentialResponse:
        caller = await self._admin(context, "credential create")
        if not _NAME.fullmatch(request.name or ""):
            raise limits.InvalidRequest(f"credential create: {request.name[:80]!r} is not a valid credential name "
                                        "(lowercase letters, digits and '-', at most 63 characters)")
        try:
            secret = await self._run(self._create_admin_credential, request.name, caller)
        except store_errors.StoreError as exc:
            raise limits.InvalidRequest(f"credential create: {exc}") from exc
        return pb.CreateAdminCredentialResponse(name=request.name, credential=secret)

    def _create_admin_credential(self, name: str, caller: str) -> str:
        with self.db.session() as session:
            _row, secret = store.create_admin_credential(session, name, created_by=caller, now=self.clock())
            return secret

    @grpc_errors.unary
    async def ListAdminCredentials(self, request: pb.ListAdminCredentialsRequest,
                                   context: Context) -> pb.ListAdminCredentialsResponse:
        await self._admin(context, "credential list")
        rows = await self._run(self._admin_credentials)
        response = pb.ListAdminCredentialsResponse(credentials=[pb.AdminCredentialInfo(
            name=store.BOOTSTRAP_ADMIN, bootstrap=True)])
        for row in rows:
            info = pb.AdminCredentialInfo(name=row.name, created_by=row.created_by, revoked=row.revoked_at is not None)
            info.created_at.CopyFrom(codec.timestamp(_aware(row.created_at)))
            if row.revoked_at is not None:
                info.revoked_at.CopyFrom(codec.timestamp(_aware(row.revoked_at)))
            response.credentials.append(info)
        return response

    def _admin_credentials(self) -> list[models.AdminCredential]:
        with self.db.session(write=False) as session:
            return store.list_admin_credentials(session)

    @grpc_errors.unary
    async def RevokeAdminCredential(self, request: pb.RevokeAdminCredentialRequest,
                                    context: Context) -> pb.RevokeAdminCredentialResponse:
        caller = await self._admin(context, "credential revoke")
        if request.name == store.BOOTSTRAP_ADMIN:
            raise limits.InvalidRequest("credential revoke: 'admin' is the hub's first-start credential, kept in "
                                        "its identity directory; replace that file and restart the hub to change it")
        revoked = await self._run(self._revoke_admin_credential, request.name, caller)
        return pb.RevokeAdminCredentialResponse(revoked=revoked)

    def _revoke_admin_credential(self, name: str, caller: str) -> bool:
        with self.db.session() as session:
            if name not in {row.name for row in store.list_admin_credentials(session)}:
                raise grpc_errors.NotFound(f"credential revoke: no admin credential named {name[:80]!r}")
            return store.revoke_admin_credential(session, name, by=caller, now=self.clock())

    @grpc_errors.unary
    async def Pin(self, request: pb.PinRequest, context: Context) -> pb.PinResponse:
        await self._admin(context, "pin")
        controller = self._controller("pin")
        if not request.clusters and not request.selector:
            raise limits.InvalidRequest("rollback: name clusters or give a selector")
        limits.check_text(request.to, field="to", where="rollback", limit=128)
        selector = _parse_selector(request.selector) if request.selector else None
        names = await self._run(self._choose, list(request.clusters), selector)
        if not names:
            raise grpc_errors.NotFound(f"rollback: no registered cluster matches selector {request.selector!r}")
        try:
            pinned, digest = await self._run(controller.pin_blocking, names, request.to)
        except rollout_controller.RolloutError as exc:
            raise limits.InvalidRequest(str(exc)) from exc
        self.notifier.notify(pinned)
        if not request.to and controller.rerender is not None:
            await controller.rerender(pinned)  # unpinned: back to the deployed commit's bundle
        return pb.PinResponse(clusters=pinned, digest=digest)

    def _choose(self, names: Sequence[str], selector: selectors.Selector | None) -> list[str]:
        chosen = dict.fromkeys(names)
        if selector is not None:
            with self.db.session(write=False) as session:
                chosen.update(dict.fromkeys(c.name for c in store.list_clusters(session)
                                            if selector.matches(dict(c.labels or {}))))
        return sorted(chosen)


# -- conversions ---------------------------------------------------------------------------------

def _parse_selector(text: str) -> selectors.Selector:
    try:
        return selectors.parse(text, where="selector") if text else selectors.EVERYTHING
    except selectors.SelectorError as exc:
        raise limits.InvalidRequest(str(exc)) from exc


def _aware(when: dt.datetime) -> dt.datetime:
    # SQLite hands datetimes back naive; everything the hub stores is UTC.
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def _phase_to_wire(phase: str | None) -> Any:
    for member, wire in codec.PHASE_TO_WIRE.items():
        if member.value == phase:
            return wire
    return pb.PHASE_UNSPECIFIED


def _ref_from_doc(doc: Mapping[str, Any]) -> pb.ObjectRef:
    return pb.ObjectRef(group=str(doc.get("group") or ""), kind=str(doc.get("kind") or ""),
                        namespace=str(doc.get("namespace") or ""), name=str(doc.get("name") or ""))


def _object_from_doc(doc: Mapping[str, Any]) -> pb.ObjectResult:
    return pb.ObjectResult(ref=_ref_from_doc(doc.get("ref") or {}), app=str(doc.get("app") or ""),
                           action=str(doc.get("action") or ""), health=str(doc.get("health") or ""),
                           reason=str(doc.get("reason") or ""), error=str(doc.get("error") or ""))


def _drift_from_doc(doc: Mapping[str, Any]) -> pb.DriftItem:
    item = pb.DriftItem(ref=_ref_from_doc(doc.get("ref") or {}), app=str(doc.get("app") or ""),
                        kind_of_drift=str(doc.get("kind_of_drift") or ""), corrected=bool(doc.get("corrected")))
    for field in doc.get("fields") or []:
        item.fields.append(pb.FieldDrift(path=str(field.get("path") or ""), desired=str(field.get("desired") or ""),
                                         live=str(field.get("live") or "")))
    item.managers.extend(str(m) for m in doc.get("managers") or [])
    if doc.get("detected_at"):
        item.detected_at.CopyFrom(codec.timestamp(dt.datetime.fromisoformat(str(doc["detected_at"]))))
    return item


def _event_to_wire(row: models.Event) -> pb.Event:
    event = pb.Event(id=row.id or 0, kind=str(row.kind), cluster=row.cluster or "", commit=row.commit or "",
                     digest=row.digest or "", message=row.message or "",
                     details_json=json.dumps(row.details, sort_keys=True) if row.details else "")
    event.at.CopyFrom(codec.timestamp(_aware(row.at)))
    return event


def _token_to_wire(row: models.BootstrapToken) -> pb.TokenInfo:
    info = pb.TokenInfo(id=row.id, uses_left=row.uses_left, labels=dict(row.labels or {}),
                        description=row.description or "", revoked=bool(row.revoked),
                        cluster=row.cluster_name or "", name_prefix=row.name_prefix or "",
                        any_name=row.name_prefix == "")
    info.expires_at.CopyFrom(codec.timestamp(_aware(row.expires_at)))
    return info


def _rollout_to_wire(view: rollout_controller.RolloutView | None) -> pb.RolloutStatusResponse:
    if view is None:
        return pb.RolloutStatusResponse()
    rollout = view.rollout
    response = pb.RolloutStatusResponse(id=rollout.id, commit=rollout.commit, state=rollout.state.value,
                                        reason=rollout.reason, failing_clusters=list(rollout.failing))
    if rollout.started_at is not None:
        response.started_at.CopyFrom(codec.timestamp(rollout.started_at))
    for wave in rollout.waves:
        counts: dict[str, int] = {}
        absent = {name: str(view.absent[name]) for name in wave.clusters if name in view.absent}
        for name in wave.clusters:
            state = "pinned" if name in view.pinned else str(rollout.cluster_state(name) or "")
            counts[state] = counts.get(state, 0) + 1
            seen = view.observed.get(name)
            if (name not in absent and seen is not None and seen.applied_digest == rollout.targets[name]
                    and seen.phase.value == "Ready"):
                counts["ready"] = counts.get("ready", 0) + 1  # an absent cluster's old report is no evidence
        if absent:
            counts["absent"] = len(absent)
        policy = wave.policy
        item = pb.WaveStatus(name=wave.name, state=wave.state.value, clusters=list(wave.clusters), counts=counts,
                             bake_seconds=policy.bake_time.total_seconds(),
                             progress_deadline_seconds=policy.progress_deadline.total_seconds(),
                             max_unavailable=str(policy.max_unavailable), on_failure=policy.on_failure,
                             absent=absent, min_ready="" if policy.min_ready is None else str(policy.min_ready),
                             empty_wave=policy.empty_wave, approval_required=policy.approval,
                             approvers=list(policy.approvers), approval_paths=list(policy.approval_paths),
                             approval_matched=list(policy.approval_matched[:100]),
                             approved_by=wave.approved_by or "", approval_comment=wave.approval_comment)
        if wave.approved_at is not None:
            item.approved_at.CopyFrom(codec.timestamp(wave.approved_at))
        if wave.ready_since is not None:
            item.ready_since.CopyFrom(codec.timestamp(wave.ready_since))
        if wave.started_at is not None:
            item.started_at.CopyFrom(codec.timestamp(wave.started_at))
        if wave.finished_at is not None:
            item.finished_at.CopyFrom(codec.timestamp(wave.finished_at))
        response.waves.append(item)
    return response


#: A cluster's row in ListClusters shows this many errors of at most this many characters, so a fleet's
#: listing stays far below gRPC's 4 MiB message limit whatever the errors say (describe shows them all).
SUMMARY_ERRORS = 3
SUMMARY_ERROR_CHARS = 300
#: Longest render error line returned (rows stored before the store bounded them may be longer).
ERROR_LINE_CHARS = 1_200


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _bound_summary_errors(summary: pb.ClusterSummary) -> None:
    for field in (summary.errors, summary.render_errors):
        errors = list(field)
        if len(errors) <= SUMMARY_ERRORS and all(len(e) <= SUMMARY_ERROR_CHARS for e in errors):
            continue
        kept = [_cut(e, SUMMARY_ERROR_CHARS) for e in errors[:SUMMARY_ERRORS]]
        if len(errors) > SUMMARY_ERRORS:
            kept.append(f"and {len(errors) - SUMMARY_ERRORS} more (convoy describe {summary.name})")
        del field[:]
        field.extend(kept)


def _render_error_lines(row: models.RenderError) -> Iterable[str]:
    for error in (row.errors or [])[:store.MAX_RENDER_ERRORS + 1]:
        # The message already starts with the file (and object) it is about: name only the app here.
        app = error.get("app")
        yield _cut(f"commit {row.commit[:12]}: " + (f"app {app}: " if app else "") + str(error.get("message")),
                   ERROR_LINE_CHARS)


#: Longest refusal reason ListClusters sends; the CLI shortens it further for its header.
MAX_REASON_CHARS = 1000


def _fleet_hold(session: Any) -> tuple[pb.RefusedCommit | None, str]:
    """A newer commit the fleet could not move to (refused or unrenderable), and the last fetch error."""
    fetch_error = _one_line(store.get_state(session, store.StateKey.LAST_FETCH_ERROR) or "")
    head = store.get_state(session, store.StateKey.FLEET_COMMIT) or ""
    deployed = store.get_state(session, store.StateKey.LAST_DEPLOYED_COMMIT) or ""
    if not head or head == deployed:
        return None, fetch_error
    seen = store.get_commit(session, head)
    if seen is not None and not seen.accepted:
        kind = (service.RefusalKind.HISTORY_REWRITE if seen.signature_verdict == "not-checked"
                else service.RefusalKind.SIGNATURE)
        reason = seen.refusal_reason or ""
    elif (store.get_state(session, service.STATE_FLEET_ERROR) or "") and \
            store.get_state(session, service.STATE_FLEET_ERROR_COMMIT) == head:
        kind = service.RefusalKind.RENDER_ERROR
        reason = (store.get_state(session, service.STATE_FLEET_ERROR) or "").removeprefix(f"commit {head[:12]}: ")
    else:
        return None, fetch_error  # fetched, still being rendered
    refused = pb.RefusedCommit(commit=head, kind=kind.value, reason=_one_line(reason))
    if seen is not None:
        refused.since.CopyFrom(codec.timestamp(_aware(seen.seen_at)))
    return refused, fetch_error


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON_CHARS else text[:MAX_REASON_CHARS - 1] + "…"


def redact_secrets(document: dict[str, Any]) -> dict[str, Any]:
    """The bundle with every Secret's ``data`` and ``stringData`` values replaced by a marker."""
    objects = []
    for obj in document.get("objects") or []:
        if isinstance(obj, dict) and obj.get("kind") == "Secret" and str(obj.get("apiVersion")) == "v1":
            obj = dict(obj)
            for key in ("data", "stringData"):
                if isinstance(obj.get(key), dict):
                    obj[key] = dict.fromkeys(obj[key], REDACTED)
        objects.append(obj)
    return {**document, "objects": objects}
