"""The store's query functions: what the hub service reads and writes.

Conventions:

* Every function takes a ``sqlmodel.Session`` first and runs inside the caller's unit of work
  (``with db.session() as s: ...``): it flushes, never commits, so several calls can form one
  transaction (``consume_token`` + ``register_cluster``: a refused registration spends no token use).
  Sessions are not shared between threads; the service runs each unit in a worker thread.
* ``now`` is an aware UTC datetime, defaulting to the current time; tests pass it explicitly.
* Functions that change state record their own event (token created/used/revoked, registration,
  paused/resumed, commit seen/refused, desired changed, render error, applied/status/drift from
  ``save_status``). The caller records only what the store cannot see: refusals
  (``registration_refused``) and hub lifecycle events, through :func:`add_event`.
* Rows are returned detached-safe (the session does not expire them on commit).

API (keyword arguments after the first positional ones):

tokens      create_token(s, *, ttl, uses, labels, description, cluster_name, name_prefix) -> (row, token)
            consume_token(s, token, *, name, declared) -> BootstrapToken
                        raises TokenRefused(reason), TokenNotForName (binding), DeclaredNamesUnknown
            revoke_token(s, token_id) -> bool; get_token(s, token_id); list_tokens(s)
clusters    register_cluster(s, *, name, labels, credential_hash, token=None) -> Cluster   ClusterExists
            authenticate_cluster(s, credential) -> Cluster | None
            find_credential(s, credential, *, grace) -> CredentialMatch | None   (current or rotated-to)
            request_rotation(s, name); issue_next_credential(s, name, hash) -> bool;
            promote_credential(s, name, hash) -> bool           (credential rotation)
            get_cluster(s, name); list_clusters(s); touch_cluster(s, name); touch_clusters(s, names)
            mark_connected(s, [(name, at)]); mark_disconnected(s, name, opened_at=...)   (hub.presence)
            deregistered(s, names) -> the names once registered and since removed
            remove_cluster(s, name) -> bool    (frees the name; history and events stay)
            set_paused(s, names, paused) -> changed names       raises UnknownCluster
            set_pinned(s, name, digest | None)                  (rollback pins, issue 8)
commits     record_commit(s, *, sha, author, authored_at, message, signature_verdict, signature_detail,
                          accepted, refusal_reason) -> SeenCommit
            get_commit(s, sha); recent_commits(s, limit)
bundles     put_bundle(s, *, digest, compressed, size, signature) -> bool created (one row per digest)
            get_bundle(s, digest) -> Bundle | None; bundle_meta(s, digest) -> BundleMeta | None
            prune_bundles(s, *, keep_last=20, min_age=0) -> number deleted
desired     set_desired(s, *, cluster, commit, digest) -> bool changed (+ history + event)
            set_desired_many(s, items) -> changed cluster names
            get_desired(s, cluster); desired_all(s) -> {cluster: DesiredState}
            desired_history(s, cluster, limit); was_desired_for(s, cluster, digest) -> bool
status      save_status(s, StatusInput) -> StatusChange; save_statuses(s, [StatusInput]) -> [StatusChange]
            get_status(s, cluster); statuses(s) -> {cluster: ClusterStatus}
            applied_phases(s) -> {cluster: (applied digest, phase)}
render      set_render_errors(s, *, cluster, commit, errors); clear_render_errors(s, cluster) -> bool
            render_errors_all(s) -> {cluster: RenderError}
events      add_event(s, kind, *, cluster, commit, digest, message, details, aggregate) -> Event
            events(s, *, cluster, since, after_id, kinds, limit=200) -> oldest-first list of the newest
            prune_events(s, *, before, keep) -> number deleted
hub state   get_state(s, key) -> str | None; set_state(s, key, value)   (keys: StateKey)
rollouts    insert_rollout(s, *, commit, state, document) -> RolloutRow (seq assigned)
            save_rollout(s, seq, *, state, document); get_rollout(s, seq); latest_rollout(s)
            commit_of_desired(s, cluster, digest) -> the commit that last made digest desired there
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy import orm
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlmodel import Session, col, select

from hub.security import secrets as hub_secrets
from hub.store import drift_events, errors
from hub.store.models import (
    BootstrapToken,
    Bundle,
    Cluster,
    ClusterStatus,
    DesiredState,
    DesiredStateHistory,
    Event,
    EventKind,
    HubState,
    RenderError,
    RolloutRow,
    SeenCommit,
    utcnow,
)

__all__ = [
    "MAX_EVENT_MESSAGE_CHARS",
    "MAX_RENDER_ERRORS",
    "MAX_RENDER_ERROR_CHARS",
    "BundleMeta",
    "CredentialMatch",
    "DesiredRow",
    "StateKey",
    "StatusChange",
    "StatusInput",
    "WatchRow",
    "add_event",
    "applied_phases",
    "authenticate_cluster",
    "bundle_meta",
    "bundle_metas",
    "clear_render_errors",
    "commit_of_desired",
    "consume_token",
    "create_token",
    "deregistered",
    "desired_all",
    "desired_history",
    "events",
    "existing_bundles",
    "find_credential",
    "get_bundle",
    "get_cluster",
    "get_commit",
    "get_desired",
    "get_rollout",
    "get_state",
    "get_status",
    "get_token",
    "insert_rollout",
    "issue_next_credential",
    "latest_rollout",
    "list_clusters",
    "list_tokens",
    "mark_connected",
    "mark_disconnected",
    "promote_credential",
    "prune_bundles",
    "prune_events",
    "put_bundle",
    "put_bundles",
    "recent_commits",
    "record_commit",
    "register_cluster",
    "remove_cluster",
    "render_errors_all",
    "report_times",
    "request_rotation",
    "revoke_token",
    "save_rollout",
    "save_status",
    "save_statuses",
    "set_desired",
    "set_desired_many",
    "set_paused",
    "set_pinned",
    "set_render_errors",
    "set_state",
    "statuses",
    "touch_cluster",
    "touch_clusters",
    "was_desired_for",
]


class StateKey(enum.StrEnum):
    """Keys of the ``hub_state`` table."""

    LAST_DEPLOYED_COMMIT = "last_deployed_commit"  #: the newest commit whose bundles were stored
    FLEET_COMMIT = "fleet_commit"                  #: the newest commit fetched (deployed or not)
    FLEET_COMMIT_SEEN_AT = "fleet_commit_seen_at"  #: ISO time it was first seen
    LAST_FETCH_AT = "last_fetch_at"                #: ISO time of the last successful fetch
    LAST_FETCH_ERROR = "last_fetch_error"          #: message of the last failed fetch, "" after a success


def _now(now: dt.datetime | None) -> dt.datetime:
    return utcnow() if now is None else now


def _short(digest: str | None) -> str:
    return (digest or "")[:19]


def _table(model: type[Any]) -> sa.Table:
    return cast(sa.Table, model.__table__)


def _upsert(s: Session, model: type[Any], rows: Sequence[Mapping[str, Any]], *, key: Sequence[str],
            update: Sequence[str]) -> None:
    """INSERT ... ON CONFLICT DO UPDATE for many rows in one statement execution."""
    if not rows:
        return
    stmt = _upsert_statement(s.get_bind().dialect.name, _table(model), tuple(key), tuple(update))
    s.execute(stmt, list(rows))


@functools.cache
def _upsert_statement(dialect: str, table: sa.Table, key: tuple[str, ...],
                      update: tuple[str, ...]) -> sa.Executable:
    # Built once per shape: constructing ``excluded`` costs more than executing the statement, and
    # status ingestion runs this thousands of times a second.
    insert = pg_dialect.insert if dialect == "postgresql" else sqlite_dialect.insert
    stmt = insert(table)
    return stmt.on_conflict_do_update(index_elements=list(key), set_={name: stmt.excluded[name] for name in update})


# --------------------------------------------------------------------------------------------- bounds

#: Longest event message stored: an event is one line of ``convoy history``.
MAX_EVENT_MESSAGE_CHARS = 2_000
#: Render errors stored per cluster (then one line saying how many more), and the longest message of each.
#: With these, no one error can push ListClusters, GetCluster or History past gRPC's message limit.
MAX_RENDER_ERRORS = 20
MAX_RENDER_ERROR_CHARS = 1_000
_MAX_ERROR_FILE_CHARS = 300
#: Render errors copied into the details of a render_error event (the row holds them all).
_EVENT_ERRORS = 5


def _bounded(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    note = f" …[{len(text) - limit} more chars]"
    return text[:max(0, limit - len(note))] + note[:limit]


def _bounded_error(error: Mapping[str, Any]) -> dict[str, Any]:
    doc = dict(error)
    doc["message"] = _bounded(str(doc.get("message") or ""), MAX_RENDER_ERROR_CHARS)
    if doc.get("file"):
        doc["file"] = _bounded(str(doc["file"]), _MAX_ERROR_FILE_CHARS)
    return doc


# --------------------------------------------------------------------------------------------- events


def add_event(s: Session, kind: EventKind, *, cluster: str | None = None, commit: str | None = None,
              digest: str | None = None, message: str = "", details: Mapping[str, Any] | None = None,
              now: dt.datetime | None = None, aggregate: dt.timedelta | None = None) -> Event:
    """Record an event; with ``aggregate``, a repeat of the same kind, cluster and message within that
    window only counts up the earlier row (``details["count"]``, ``details["last_at"]``)."""
    event = Event(at=_now(now), kind=kind.value, cluster=cluster, commit=commit, digest=digest,
                  message=_bounded(message, MAX_EVENT_MESSAGE_CHARS),
                  details=dict(details) if details is not None else None)
    if aggregate is not None:
        return _aggregate(s, [event], aggregate)[0]
    s.add(event)
    s.flush()
    return event


def _aggregate(s: Session, new: Sequence[Event], window: dt.timedelta) -> list[Event]:
    """Add events, folding each into a recent row with the same kind, cluster and message if there is one.

    A spoke flapping between two phases at the report rate, or one peer retrying a refused
    registration, would otherwise write a row per attempt; the audit log keeps one row per distinct
    event and window, with how often and until when it repeated.
    """
    stored = []
    for event in new:
        query = select(Event).where(Event.kind == event.kind, Event.message == event.message,
                                    col(Event.at) >= event.at - window)
        query = query.where(col(Event.cluster).is_(None) if event.cluster is None else Event.cluster == event.cluster)
        earlier = s.exec(query.order_by(col(Event.id).desc()).limit(1)).first()
        if earlier is None:
            s.add(event)
            s.flush()
            stored.append(event)
            continue
        details = dict(earlier.details or {})
        details["count"] = int(details.get("count") or 1) + 1
        details["last_at"] = event.at.isoformat()
        earlier.details = details
        s.add(earlier)
        s.flush()
        stored.append(earlier)
    return stored


def events(s: Session, *, cluster: str | None = None, since: dt.datetime | None = None,
           after_id: int | None = None, kinds: Iterable[EventKind] | None = None,
           limit: int = 200) -> list[Event]:
    """The newest ``limit`` matching events, oldest first."""
    query = select(Event)
    if cluster is not None:
        query = query.where(Event.cluster == cluster)
    if since is not None:
        query = query.where(col(Event.at) >= since)
    if after_id is not None:
        query = query.where(col(Event.id) > after_id)
    if kinds is not None:
        query = query.where(col(Event.kind).in_([k.value for k in kinds]))
    rows = list(s.exec(query.order_by(col(Event.id).desc()).limit(max(limit, 0))))
    rows.reverse()
    return rows


def prune_events(s: Session, *, before: dt.datetime | None = None, keep: int | None = None) -> int:
    """Delete events older than ``before`` and all but the newest ``keep``; returns how many.

    The audit log's retention (hub settings ``event_retention`` and ``event_max_count``).
    """
    table = _table(Event)
    deleted = 0
    if before is not None:
        deleted += cast(sa.CursorResult[Any], s.execute(table.delete().where(table.c.at < before))).rowcount
    if keep is not None:
        # The id of the oldest event to keep; everything older goes (one indexed delete).
        cutoff = s.execute(sa.select(table.c.id).order_by(table.c.id.desc()).offset(max(keep, 0) - 1).limit(1)
                           ).scalar() if keep > 0 else None
        if keep <= 0:
            deleted += cast(sa.CursorResult[Any], s.execute(table.delete())).rowcount
        elif cutoff is not None:
            deleted += cast(sa.CursorResult[Any], s.execute(table.delete().where(table.c.id < cutoff))).rowcount
    return deleted


# --------------------------------------------------------------------------------------------- tokens


def create_token(s: Session, *, ttl: dt.timedelta, uses: int = 1, labels: Mapping[str, str] | None = None,
                 description: str = "", now: dt.datetime | None = None, cluster_name: str | None = None,
                 name_prefix: str | None = None) -> tuple[BootstrapToken, str]:
    """A new bootstrap token: the row (secret hashed) and the ``<id>.<secret>`` text, shown once.

    ``cluster_name`` or ``name_prefix`` bind it: only that name, or names with that prefix, may register.
    ``name_prefix=""`` is the explicit "any name" binding (names declared in Git too); None leaves the
    token unbound (any name that is not declared in Git).
    """
    if cluster_name and name_prefix:
        raise ValueError("a bootstrap token is bound to a cluster name or to a name prefix, not both")
    if ttl <= dt.timedelta(0):
        raise ValueError(f"bootstrap token TTL must be positive, got {ttl}")
    if uses < 1:
        raise ValueError(f"bootstrap token uses must be at least 1, got {uses}")
    now = _now(now)
    token_id, token = hub_secrets.new_bootstrap_token()
    _, secret = hub_secrets.split_bootstrap_token(token)
    row = BootstrapToken(id=token_id, secret_hash=hub_secrets.hash_secret(secret), expires_at=now + ttl,
                         uses_left=uses, labels=dict(labels or {}), description=description, revoked=False,
                         created_at=now, cluster_name=cluster_name or None, name_prefix=name_prefix)
    s.add(row)
    s.flush()
    add_event(s, EventKind.TOKEN_CREATED, message=f"bootstrap token {token_id}: created ({uses} use(s), "
              f"expires {row.expires_at.isoformat(timespec='seconds')})",
              details={"token": token_id, "uses": uses, "labels": dict(labels or {}),
                       "description": description, "cluster": cluster_name or None,
                       "name_prefix": name_prefix}, now=now)
    return row, token


def consume_token(s: Session, token: str, *, now: dt.datetime | None = None, name: str | None = None,
                  declared: Collection[str] | None = frozenset()) -> BootstrapToken:
    """Spend one use of a bootstrap token, or raise :class:`~hub.store.errors.TokenRefused`.

    With ``name`` (the cluster registering), the token's binding is checked first and a name it does
    not cover raises :class:`~hub.store.errors.TokenNotForName` without spending a use: a bound token
    covers exactly its name or prefix; an unbound one covers any name not in ``declared`` (the names
    the fleet repository declares; None when the hub cannot tell yet, which refuses unbound tokens
    with :class:`~hub.store.errors.DeclaredNamesUnknown`).

    The decrement is a conditional UPDATE, so two registrations racing for the last use cannot both
    win, on either database.
    """
    now = _now(now)
    try:
        token_id, secret = hub_secrets.split_bootstrap_token(token)
    except hub_secrets.JoinTokenError as exc:
        raise errors.TokenRefused(None, errors.TokenRefusal.MALFORMED) from exc
    row = s.get(BootstrapToken, token_id)
    if row is None or not hub_secrets.secrets_match(secret, row.secret_hash):
        raise errors.TokenRefused(token_id, errors.TokenRefusal.UNKNOWN)
    _check_usable(row, now)
    if name is not None:
        _check_binding(row, name, declared)
    table = _table(BootstrapToken)
    result = s.execute(
        table.update()
        .where(table.c.id == token_id, table.c.uses_left > 0, table.c.revoked.is_(False),
               table.c.expires_at > now)
        .values(uses_left=table.c.uses_left - 1))
    s.refresh(row)
    if cast(sa.CursorResult[Any], result).rowcount != 1:
        _check_usable(row, now)
        raise errors.TokenRefused(token_id, errors.TokenRefusal.USED_UP)
    add_event(s, EventKind.TOKEN_USED, message=f"bootstrap token {token_id}: used ({row.uses_left} left)",
              details={"token": token_id, "uses_left": row.uses_left}, now=now)
    return row


def _check_binding(row: BootstrapToken, name: str, declared: Collection[str] | None) -> None:
    if row.cluster_name:
        if name != row.cluster_name:
            raise errors.TokenNotForName(row.id, name, f"is bound to cluster {row.cluster_name}")
    elif row.name_prefix is not None:  # "" is the explicit any-name binding
        if not name.startswith(row.name_prefix):
            raise errors.TokenNotForName(row.id, name, f"is bound to names starting with {row.name_prefix!r}")
    elif declared is None:
        raise errors.DeclaredNamesUnknown(name)
    elif name in declared:
        raise errors.TokenNotForName(
            row.id, name, f"is not bound to it, and cluster {name} is declared in the fleet repository "
                          f"(clusters/{name}/cluster.yaml); register it with a token made by "
                          f"`convoy token create --cluster {name}` (or a matching --name-prefix)")


def _check_usable(row: BootstrapToken, now: dt.datetime) -> None:
    if row.revoked:
        raise errors.TokenRefused(row.id, errors.TokenRefusal.REVOKED)
    if row.expires_at <= now:
        raise errors.TokenRefused(row.id, errors.TokenRefusal.EXPIRED)
    if row.uses_left <= 0:
        raise errors.TokenRefused(row.id, errors.TokenRefusal.USED_UP)


def revoke_token(s: Session, token_id: str, *, now: dt.datetime | None = None) -> bool:
    """Revoke a token; False if there is no such token or it was already revoked."""
    row = s.get(BootstrapToken, token_id)
    if row is None or row.revoked:
        return False
    row.revoked = True
    s.add(row)
    s.flush()
    add_event(s, EventKind.TOKEN_REVOKED, message=f"bootstrap token {token_id}: revoked",
              details={"token": token_id}, now=now)
    return True


def get_token(s: Session, token_id: str) -> BootstrapToken | None:
    return s.get(BootstrapToken, token_id)


def list_tokens(s: Session) -> list[BootstrapToken]:
    return list(s.exec(select(BootstrapToken).order_by(col(BootstrapToken.created_at), col(BootstrapToken.id))))


# --------------------------------------------------------------------------------------------- clusters


def register_cluster(s: Session, *, name: str, labels: Mapping[str, str], credential_hash: str,
                     token: BootstrapToken | None = None, now: dt.datetime | None = None) -> Cluster:
    """Record a new cluster; the token's labels are stamped over the ones the spoke asked for.

    Raises :class:`~hub.store.errors.ClusterExists` when the name is taken (also when another hub
    process registers the same name at the same moment).
    """
    now = _now(now)
    if s.get(Cluster, name) is not None:
        raise errors.ClusterExists(name)
    merged = {**labels, **(token.labels if token is not None else {})}
    row = Cluster(name=name, labels=merged, registered_at=now, last_seen=now, credential_hash=credential_hash,
                  paused=False, token_id=token.id if token is not None else None)
    try:
        with s.begin_nested():
            s.add(row)
    except sa_exc.IntegrityError as exc:
        raise errors.ClusterExists(name) from exc
    add_event(s, EventKind.REGISTRATION, cluster=name,
              message=f"cluster {name}: registered" + (f" with bootstrap token {token.id}" if token else ""),
              details={"labels": merged, "token": token.id if token else None}, now=now)
    return row


def authenticate_cluster(s: Session, credential: str, *, now: dt.datetime | None = None,
                         grace: dt.timedelta | None = None) -> Cluster | None:
    """The cluster whose credential this is (its current one, or the one a rotation handed it), or None."""
    match = find_credential(s, credential, now=now, grace=grace)
    return None if match is None else match.cluster


class CredentialMatch(NamedTuple):
    """Whose credential a caller presented, and whether it is the new one of a pending rotation."""

    cluster: Cluster
    rotated: bool      #: the new credential, first used: :func:`promote_credential` makes it the only one
    expires: dt.datetime | None = None   #: when this (old) credential stops working, if it was superseded


#: How long an old credential keeps working after a rotation handed its successor to the spoke, when
#: the spoke never uses the new one (hub setting ``credential_rotation_grace``).
DEFAULT_ROTATION_GRACE = dt.timedelta(hours=1)


def find_credential(s: Session, credential: str, *, now: dt.datetime | None = None,
                    grace: dt.timedelta | None = None) -> CredentialMatch | None:
    """Look a cluster credential up: the current one, or the new one a rotation handed over.

    The row is found by the hash (an index lookup reveals nothing useful: the attacker would need a
    preimage), then the hashes are compared in constant time. The old credential of a rotation whose
    new one was handed over more than ``grace`` ago no longer matches.
    """
    if not credential:
        return None
    now = _now(now)
    grace = DEFAULT_ROTATION_GRACE if grace is None else grace
    stored = hub_secrets.hash_secret(credential)
    row = s.exec(select(Cluster).where(Cluster.credential_hash == stored)).first()
    if row is not None and hub_secrets.secrets_match(credential, row.credential_hash):
        if row.next_credential_hash and row.next_credential_at is not None:
            expires = row.next_credential_at + grace
            if expires <= now:
                return None  # superseded: the spoke was given its successor and the grace period is over
            return CredentialMatch(row, rotated=False, expires=expires)
        return CredentialMatch(row, rotated=False)
    row = s.exec(select(Cluster).where(Cluster.next_credential_hash == stored)).first()
    if row is not None and row.next_credential_hash and hub_secrets.secrets_match(credential, row.next_credential_hash):
        return CredentialMatch(row, rotated=True)
    return None


def request_rotation(s: Session, name: str, *, now: dt.datetime | None = None) -> Cluster:
    """Ask for a new credential for ``name``: the hub hands it over on the cluster's next Watch stream.

    Raises :class:`~hub.store.errors.UnknownCluster`. Asking again while one is pending keeps it pending.
    """
    now = _now(now)
    row = s.get(Cluster, name)
    if row is None:
        raise errors.UnknownCluster(name)
    if row.rotation_requested_at is None:
        row.rotation_requested_at = now
        s.add(row)
        s.flush()
    add_event(s, EventKind.CREDENTIAL_ROTATION, cluster=name,
              message=f"cluster {name}: credential rotation requested; the new credential is handed to the "
                      "spoke over its Watch stream", now=now)
    return row


def issue_next_credential(s: Session, name: str, credential_hash: str, *, now: dt.datetime | None = None) -> bool:
    """Record the new credential handed to the spoke (replacing one handed over earlier and never used).

    False when no rotation is pending any more (it completed, or the cluster was removed).
    """
    table = _table(Cluster)
    result = s.execute(table.update().where(table.c.name == name, table.c.rotation_requested_at.is_not(None))
                       .values(next_credential_hash=credential_hash, next_credential_at=_now(now)))
    return cast(sa.CursorResult[Any], result).rowcount == 1


def promote_credential(s: Session, name: str, credential_hash: str, *, now: dt.datetime | None = None) -> bool:
    """The spoke used its new credential: it becomes the only one, and the old one stops working.

    A conditional UPDATE, so two first calls racing with the new credential promote it once.
    """
    now = _now(now)
    table = _table(Cluster)
    result = s.execute(table.update().where(table.c.name == name, table.c.next_credential_hash == credential_hash)
                       .values(credential_hash=credential_hash, next_credential_hash=None, next_credential_at=None,
                               rotation_requested_at=None))
    if cast(sa.CursorResult[Any], result).rowcount != 1:
        return False
    add_event(s, EventKind.CREDENTIAL_ROTATION, cluster=name,
              message=f"cluster {name}: credential rotated; the old credential no longer works", now=now)
    return True


def get_cluster(s: Session, name: str) -> Cluster | None:
    return s.get(Cluster, name)


def list_clusters(s: Session) -> list[Cluster]:
    return list(s.exec(select(Cluster).order_by(col(Cluster.name))))


def touch_cluster(s: Session, name: str, now: dt.datetime | None = None) -> None:
    touch_clusters(s, [name], now)


def touch_clusters(s: Session, names: Iterable[str], now: dt.datetime | None = None) -> None:
    """Set ``last_seen`` of several clusters in one executemany."""
    now = _now(now)
    params = [{"b_name": name, "b_seen": now} for name in dict.fromkeys(names)]
    if not params:
        return
    s.execute(_touch_statement(), params)


@functools.cache
def _touch_statement() -> sa.Executable:
    table = _table(Cluster)
    return (table.update().where(table.c.name == sa.bindparam("b_name"))
            .values(last_seen=sa.bindparam("b_seen", type_=table.c.last_seen.type)))


def mark_connected(s: Session, opened: Iterable[tuple[str, dt.datetime]]) -> None:
    """Watch streams opened at these times: the clusters are seen and connected (one executemany)."""
    params = [{"b_name": name, "b_at": at} for name, at in opened]
    if not params:
        return
    table = _table(Cluster)
    stamp = sa.bindparam("b_at", type_=table.c.last_seen.type)
    s.execute(table.update().where(table.c.name == sa.bindparam("b_name"))
              .values(connected_at=stamp, last_seen=stamp, disconnected_at=None), params)


def mark_disconnected(s: Session, name: str, *, opened_at: dt.datetime, now: dt.datetime | None = None) -> bool:
    """The last Watch stream of ``name`` on this hub process (opened at ``opened_at``) ended.

    Recorded only when no Watch opened since, on this or another hub process sharing the database:
    a spoke that reconnected before its old stream was reaped stays connected. True if recorded.
    """
    now = _now(now)
    table = _table(Cluster)
    result = s.execute(table.update().where(table.c.name == name)
                       .where(sa.or_(table.c.connected_at.is_(None), table.c.connected_at <= opened_at))
                       .values(disconnected_at=now, last_seen=now))
    return bool(getattr(result, "rowcount", 0))


def deregistered(s: Session, names: Iterable[str]) -> set[str]:
    """Those of ``names`` that are not registered now but were once (an administrator removed them)."""
    wanted = set(names)
    if not wanted:
        return set()
    rows = s.exec(select(Event.cluster).where(Event.kind == EventKind.DEREGISTERED.value)
                  .where(col(Event.cluster).in_(sorted(wanted))).distinct())
    gone = {name for name in rows if name}
    registered = set(s.exec(select(Cluster.name).where(col(Cluster.name).in_(sorted(gone))))) if gone else set()
    return gone - registered


def remove_cluster(s: Session, name: str, *, now: dt.datetime | None = None) -> bool:
    """Forget a registration so the name can register again (a spoke that lost its credential).

    The credential stops working at once; desired state, status and render errors go with it, while
    desired-state history and events stay for the audit trail. False if there was no such cluster.
    """
    row = s.get(Cluster, name)
    if row is None:
        return False
    for model in (DesiredState, ClusterStatus, RenderError):
        found = s.get(model, name)
        if found is not None:
            s.delete(found)
    s.delete(row)
    s.flush()
    add_event(s, EventKind.DEREGISTERED, cluster=name, message=f"cluster {name}: registration removed",
              now=now)
    return True


def set_paused(s: Session, names: Iterable[str], paused: bool, *, now: dt.datetime | None = None) -> list[str]:
    """Pause or resume clusters; returns the ones whose flag changed. Unknown names change nothing."""
    now = _now(now)
    rows = []
    for name in dict.fromkeys(names):
        row = s.get(Cluster, name)
        if row is None:
            raise errors.UnknownCluster(name)
        rows.append(row)
    changed = []
    for row in rows:
        if row.paused == paused:
            continue
        row.paused = paused
        s.add(row)
        changed.append(row.name)
        add_event(s, EventKind.PAUSED if paused else EventKind.RESUMED, cluster=row.name,
                  message=f"cluster {row.name}: {'paused' if paused else 'resumed'}", now=now)
    s.flush()
    return changed


def set_pinned(s: Session, name: str, digest: str | None, *, now: dt.datetime | None = None) -> None:
    """Hold a cluster at ``digest`` (None: follow the fleet again). Room for rollbacks (issue 8)."""
    row = s.get(Cluster, name)
    if row is None:
        raise errors.UnknownCluster(name)
    if row.pinned_digest == digest:
        return
    row.pinned_digest = digest
    s.add(row)
    s.flush()
    add_event(s, EventKind.PINNED if digest else EventKind.UNPINNED, cluster=name, digest=digest,
              message=f"cluster {name}: " + (f"pinned to {_short(digest)}" if digest else "unpinned"), now=now)


# --------------------------------------------------------------------------------------------- commits


def record_commit(s: Session, *, sha: str, author: str = "", authored_at: dt.datetime | None = None,
                  message: str = "", signature_verdict: str = "not-checked", signature_detail: str = "",
                  accepted: bool, refusal_reason: str | None = None,
                  now: dt.datetime | None = None) -> SeenCommit:
    """Record a fetched commit and whether it was accepted; an event only when the verdict is new."""
    now = _now(now)
    row = s.get(SeenCommit, sha)
    if row is not None and row.accepted == accepted and row.refusal_reason == refusal_reason:
        return row
    if row is None:
        row = SeenCommit(sha=sha, author=author, authored_at=authored_at, message=message,
                         signature_verdict=str(signature_verdict), signature_detail=signature_detail,
                         seen_at=now, accepted=accepted, refusal_reason=refusal_reason)
    else:
        row.accepted, row.refusal_reason = accepted, refusal_reason
        row.signature_verdict, row.signature_detail = str(signature_verdict), signature_detail
    s.add(row)
    s.flush()
    title = message.strip().splitlines()[0] if message.strip() else ""
    if accepted:
        add_event(s, EventKind.COMMIT_SEEN, commit=sha, message=f"commit {sha[:8]}: {title}".rstrip(": "),
                  details={"author": author, "signature": str(signature_verdict)}, now=now)
    else:
        add_event(s, EventKind.COMMIT_REFUSED, commit=sha,
                  message=f"commit {sha[:8]}: refused: {refusal_reason or 'no reason given'}",
                  details={"author": author, "signature": str(signature_verdict),
                           "signature_detail": signature_detail}, now=now)
    return row


def get_commit(s: Session, sha: str) -> SeenCommit | None:
    return s.get(SeenCommit, sha)


def recent_commits(s: Session, limit: int = 50) -> list[SeenCommit]:
    return list(s.exec(select(SeenCommit).order_by(col(SeenCommit.seen_at).desc()).limit(limit)))


# --------------------------------------------------------------------------------------------- bundles


@dataclasses.dataclass(frozen=True)
class BundleMeta:
    """A bundle without its bytes: what a Watch message needs."""

    digest: str
    size: int
    compressed_size: int
    signature: bytes
    created_at: dt.datetime


def put_bundle(s: Session, *, digest: str, compressed: bytes, size: int, signature: bytes,
               now: dt.datetime | None = None) -> bool:
    """Store a bundle once per digest; True if this call created the row.

    Content addressing makes a second write of the same digest a no-op (ON CONFLICT DO NOTHING), so
    two hub processes rendering the same commit never conflict.
    """
    table = _table(Bundle)
    insert = pg_dialect.insert if s.get_bind().dialect.name == "postgresql" else sqlite_dialect.insert
    stmt = insert(table).values(digest=digest, data=compressed, size=size, compressed_size=len(compressed),
                                signature=signature, created_at=_now(now)).on_conflict_do_nothing()
    return s.execute(stmt.returning(table.c.digest)).first() is not None


def put_bundles(s: Session, bundles: Iterable[tuple[str, bytes, int, bytes]], *,
                now: dt.datetime | None = None) -> None:
    """:func:`put_bundle` for many ``(digest, compressed, size, signature)`` in one executemany."""
    rows = [{"digest": digest, "data": compressed, "size": size, "compressed_size": len(compressed),
             "signature": signature, "created_at": _now(now)} for digest, compressed, size, signature in bundles]
    if not rows:
        return
    s.flush()
    conn = s.connection()
    insert = pg_dialect.insert if conn.dialect.name == "postgresql" else sqlite_dialect.insert
    conn.execute(insert(_table(Bundle)).on_conflict_do_nothing(), rows)


def existing_bundles(s: Session, digests: Iterable[str]) -> set[str]:
    """Which of ``digests`` are stored."""
    table = _table(Bundle)
    wanted = sorted(set(digests))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        found.update(s.execute(sa.select(table.c.digest).where(table.c.digest.in_(wanted[start:start + 500])))
                     .scalars())
    return found


def get_bundle(s: Session, digest: str) -> Bundle | None:
    return s.get(Bundle, digest)


def bundle_meta(s: Session, digest: str) -> BundleMeta | None:
    table = _table(Bundle)
    row = s.execute(sa.select(table.c.digest, table.c.size, table.c.compressed_size, table.c.signature,
                              table.c.created_at).where(table.c.digest == digest)).first()
    return None if row is None else BundleMeta(digest=row.digest, size=row.size,
                                               compressed_size=row.compressed_size,
                                               signature=row.signature, created_at=row.created_at)


def bundle_metas(s: Session, digests: Iterable[str], *, inline_up_to: int = 0
                 ) -> dict[str, tuple[BundleMeta, bytes | None]]:
    """Metadata of many bundles in few queries, with the compressed bytes of those at most
    ``inline_up_to`` bytes compressed (None for the others): what a woken batch of Watch streams sends."""
    table = _table(Bundle)
    small = sa.case((table.c.compressed_size <= inline_up_to, table.c.data), else_=sa.null())
    wanted = sorted(set(digests))
    found: dict[str, tuple[BundleMeta, bytes | None]] = {}
    # Bounded IN lists: SQLite allows 32,766 parameters, and long lists plan badly elsewhere.
    for start in range(0, len(wanted), 500):
        rows = s.execute(sa.select(table.c.digest, table.c.size, table.c.compressed_size, table.c.signature,
                                   table.c.created_at, small.label("inline"))
                         .where(table.c.digest.in_(wanted[start:start + 500])))
        for row in rows:
            meta = BundleMeta(digest=row.digest, size=row.size, compressed_size=row.compressed_size,
                              signature=row.signature, created_at=row.created_at)
            found[row.digest] = (meta, None if row.inline is None else bytes(row.inline))
    return found


def prune_bundles(s: Session, *, keep_last: int = 20, min_age: dt.timedelta = dt.timedelta(0),
                  now: dt.datetime | None = None, also_keep: Iterable[str] = ()) -> int:
    """Delete bundles no cluster needed in its last ``keep_last`` desired states; returns how many.

    Kept: every currently desired or pinned digest, and each cluster's last ``keep_last`` desired
    digests (so a rollback to a recent bundle never needs a re-render). Bundles younger than
    ``min_age`` are kept too, so a render stored but not yet made desired is safe from a
    concurrent prune. ``also_keep``: digests still to be released (an active rollout's targets).
    """
    if keep_last < 1:
        raise ValueError(f"bundle retention must keep at least 1 desired state per cluster, got {keep_last}")
    history = _table(DesiredStateHistory)
    ranked = sa.select(history.c.digest, sa.func.row_number().over(
        partition_by=history.c.cluster, order_by=history.c.id.desc()).label("rank")).subquery()
    recent = sa.select(ranked.c.digest).where(ranked.c.rank <= keep_last)
    desired = sa.select(_table(DesiredState).c.digest)
    clusters = _table(Cluster)
    pinned = sa.select(clusters.c.pinned_digest).where(clusters.c.pinned_digest.is_not(None))
    keep = sa.union(recent, desired, pinned).subquery()
    bundles = _table(Bundle)
    stmt = bundles.delete().where(bundles.c.digest.not_in(sa.select(keep.c[0])),
                                  bundles.c.created_at <= _now(now) - min_age)
    extra = sorted(set(also_keep))
    if extra:
        stmt = stmt.where(bundles.c.digest.not_in(extra))
    return cast(sa.CursorResult[Any], s.execute(stmt)).rowcount


# --------------------------------------------------------------------------------------------- desired


def set_desired(s: Session, *, cluster: str, commit: str, digest: str, now: dt.datetime | None = None) -> bool:
    """Make ``digest`` the cluster's desired bundle; True if the digest changed (notify its watchers).

    A new commit with the same digest only moves the recorded commit: no history, no event, no
    work for the spoke. The bundle must have been stored first (foreign key).
    """
    return bool(set_desired_many(s, [(cluster, commit, digest)], now=now))


def set_desired_many(s: Session, items: Iterable[tuple[str, str, str]], *,
                     now: dt.datetime | None = None) -> list[str]:
    """:func:`set_desired` for many ``(cluster, commit, digest)`` at once; returns the changed clusters."""
    now = _now(now)
    wanted = {cluster: (commit, digest) for cluster, commit, digest in items}
    if not wanted:
        return []
    # Core statements, a few executemany calls per batch: ORM objects per row cost ~1 ms per cluster,
    # which a commit changing 1,000 clusters pays before any spoke hears of it (issue 7).
    s.flush()
    conn = s.connection()
    table = _table(DesiredState)
    current: dict[str, tuple[str, str]] = {}
    names = sorted(wanted)
    for start in range(0, len(names), 500):
        query = sa.select(table.c.cluster, table.c.commit, table.c.digest).where(
            table.c.cluster.in_(names[start:start + 500]))
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        current.update((row.cluster, (row.commit, row.digest)) for row in conn.execute(query))
    changed: list[str] = []
    moved_commit: list[dict[str, Any]] = []
    desired_rows: list[dict[str, Any]] = []
    history_rows: list[dict[str, Any]] = []
    event_rows: list[dict[str, Any]] = []
    for cluster, (commit, digest) in wanted.items():
        before = current.get(cluster)
        if before is not None and before[1] == digest:
            if before[0] != commit:
                moved_commit.append({"b_cluster": cluster, "b_commit": commit})
            continue
        desired_rows.append({"cluster": cluster, "commit": commit, "digest": digest, "since": now})
        history_rows.append({"cluster": cluster, "commit": commit, "digest": digest, "since": now})
        event_rows.append(_event_row(now, EventKind.DESIRED_CHANGED, cluster=cluster, commit=commit, digest=digest,
                                     message=f"cluster {cluster}: desired bundle {_short(digest)} "
                                             f"(commit {commit[:8]})",
                                     details={"previous": before[1] if before is not None else None}))
        changed.append(cluster)
    if moved_commit:
        conn.execute(table.update().where(table.c.cluster == sa.bindparam("b_cluster"))
                     .values(commit=sa.bindparam("b_commit")), moved_commit)
    if desired_rows:
        conn.execute(_upsert_statement(conn.dialect.name, table, ("cluster",), ("commit", "digest", "since")),
                     desired_rows)
        conn.execute(sa.insert(_table(DesiredStateHistory)), history_rows)
        conn.execute(sa.insert(_table(Event)), event_rows)
    return changed


def _event_row(now: dt.datetime, kind: EventKind, *, cluster: str | None = None, commit: str | None = None,
               digest: str | None = None, message: str = "", details: Mapping[str, Any] | None = None
               ) -> dict[str, Any]:
    """An ``events`` row for a Core insert (hot paths; :func:`add_event` is the ORM way)."""
    return {"at": now, "kind": kind.value, "cluster": cluster, "commit": commit, "digest": digest,
            "message": _bounded(message, MAX_EVENT_MESSAGE_CHARS),
            "details": dict(details) if details is not None else None}


def get_desired(s: Session, cluster: str) -> DesiredState | None:
    return s.get(DesiredState, cluster)


class DesiredRow(NamedTuple):
    """A desired state as read by the hot paths (no ORM object: building 1,000 of those costs ~0.1 s)."""

    cluster: str
    commit: str
    digest: str
    since: dt.datetime


class WatchRow(NamedTuple):
    """What a Watch notice needs of one cluster: its paused flag and desired state (None: nothing yet)."""

    paused: bool
    desired: DesiredRow | None
    rotate: bool = False    #: a credential rotation is pending: hand the spoke a new credential


def desired_all(s: Session) -> dict[str, DesiredRow]:
    table = _table(DesiredState)
    rows = s.execute(sa.select(table.c.cluster, table.c.commit, table.c.digest, table.c.since))
    return {row.cluster: DesiredRow(row.cluster, row.commit, row.digest, row.since) for row in rows}


def watch_rows(s: Session, names: Iterable[str]) -> dict[str, WatchRow]:
    """Paused flag and desired state of these clusters (unknown names left out), in few queries."""
    clusters, desired = _table(Cluster), _table(DesiredState)
    wanted = sorted(set(names))
    found: dict[str, WatchRow] = {}
    for start in range(0, len(wanted), 500):
        query = (sa.select(clusters.c.name, clusters.c.paused, clusters.c.rotation_requested_at, desired.c.commit,
                           desired.c.digest, desired.c.since)
                 .select_from(clusters.outerjoin(desired, desired.c.cluster == clusters.c.name))
                 .where(clusters.c.name.in_(wanted[start:start + 500])))
        for row in s.execute(query):
            state = (DesiredRow(row.name, row.commit, row.digest, row.since) if row.digest is not None else None)
            found[row.name] = WatchRow(paused=bool(row.paused), desired=state,
                                       rotate=row.rotation_requested_at is not None)
    return found


def desired_history(s: Session, cluster: str, limit: int = 50) -> list[DesiredStateHistory]:
    """The cluster's desired states, newest first."""
    return list(s.exec(select(DesiredStateHistory).where(DesiredStateHistory.cluster == cluster)
                       .order_by(col(DesiredStateHistory.id).desc()).limit(limit)))


def was_desired_for(s: Session, cluster: str, digest: str) -> bool:
    """Whether ``digest`` is or was ever desired for ``cluster`` (GetBundle authorisation)."""
    history = _table(DesiredStateHistory)
    query = sa.select(sa.literal(1)).select_from(history).where(
        history.c.cluster == cluster, history.c.digest == digest).limit(1)
    return s.execute(query).first() is not None


# --------------------------------------------------------------------------------------------- status


@dataclasses.dataclass(frozen=True)
class StatusInput:
    """One spoke's report, already validated and converted from the wire message by the service."""

    cluster: str
    phase: str                                    #: a protos.status.Phase value
    applied_commit: str = ""
    applied_digest: str = ""
    objects: Sequence[Mapping[str, Any]] = ()     #: ObjectResult as dicts; "health" == "Current" counts ready
    drift: Sequence[Mapping[str, Any]] = ()      #: the current drift set; replaces the stored one
    errors: Sequence[str] = ()
    message: str = ""
    observed_at: dt.datetime | None = None
    spoke_version: str = ""
    backlog: int = 0
    #: drift detections and corrections since the spoke's last report: one history event each
    drift_events: Sequence[Mapping[str, Any]] = ()


@dataclasses.dataclass(frozen=True)
class StatusChange:
    """What a saved report changed, so the service can update metrics and notify."""

    cluster: str
    previous_phase: str | None
    phase: str
    previous_digest: str | None
    applied_digest: str
    previous_drift: int
    drift: int

    @property
    def first(self) -> bool:
        return self.previous_phase is None

    @property
    def phase_changed(self) -> bool:
        return self.previous_phase != self.phase

    @property
    def applied_changed(self) -> bool:
        return bool(self.applied_digest) and self.previous_digest != self.applied_digest

    @property
    def drift_appeared(self) -> bool:
        return self.previous_drift == 0 and self.drift > 0


_STATUS_COLUMNS = ("applied_commit", "applied_digest", "phase", "objects", "drift", "errors", "message",
                   "objects_total", "objects_ready", "drift_count", "observed_at", "spoke_version", "backlog",
                   "updated_at")


def save_status(s: Session, report: StatusInput, *, now: dt.datetime | None = None,
                touch: bool = True, aggregate: dt.timedelta | None = None) -> StatusChange:
    """Upsert one cluster's status (and its ``last_seen`` unless ``touch=False``)."""
    return save_statuses(s, [report], now=now, touch=touch, aggregate=aggregate)[0]


def save_statuses(s: Session, reports: Sequence[StatusInput], *, now: dt.datetime | None = None,
                  touch: bool = True, aggregate: dt.timedelta | None = None) -> list[StatusChange]:
    """Upsert many reports in one statement; events for applied digest, phase and each drift event.

    A cluster reported twice in one batch keeps its last report. With ``aggregate``, an event that
    repeats one recorded within that window counts up the earlier row instead (see :func:`add_event`).
    """
    now = _now(now)
    latest = {report.cluster: report for report in reports}
    if not latest:
        return []
    # Core statements on the session's connection: the ORM's per-statement bookkeeping costs more
    # than the SQL here, and ingestion is the hub's hottest write path (issue 7).
    s.flush()
    conn = s.connection()
    table = _table(ClusterStatus)
    if len(latest) == 1:
        found = conn.execute(_previous_status_statement(), {"b_cluster": next(iter(latest))})
    else:
        found = conn.execute(sa.select(table.c.cluster, table.c.phase, table.c.applied_digest, table.c.drift_count)
                             .where(table.c.cluster.in_(list(latest))))
    previous = {row.cluster: row for row in found}
    rows = []
    changes = []
    new_events = []
    for cluster, report in latest.items():
        objects = [dict(o) for o in report.objects]
        rows.append({
            "cluster": cluster, "applied_commit": report.applied_commit, "applied_digest": report.applied_digest,
            "phase": report.phase, "objects": objects, "drift": [dict(d) for d in report.drift],
            "errors": list(report.errors), "message": report.message, "objects_total": len(objects),
            "objects_ready": sum(1 for o in objects if o.get("health") == "Current"),
            "drift_count": len(report.drift), "observed_at": report.observed_at,
            "spoke_version": report.spoke_version, "backlog": report.backlog, "updated_at": now,
        })
        before = previous.get(cluster)
        change = StatusChange(cluster=cluster, previous_phase=before.phase if before else None,
                              phase=report.phase, previous_digest=before.applied_digest if before else None,
                              applied_digest=report.applied_digest,
                              previous_drift=before.drift_count if before else 0, drift=len(report.drift))
        changes.append(change)
        new_events.extend(_status_events(change, report, now))
    conn.execute(_upsert_statement(conn.dialect.name, table, ("cluster",), _STATUS_COLUMNS), rows)
    if touch:
        conn.execute(_touch_statement(), [{"b_name": name, "b_seen": now} for name in latest])
    if new_events and aggregate is not None:
        _aggregate(s, new_events, aggregate)
    elif new_events:
        s.add_all(new_events)
        s.flush()
    return changes


@functools.cache
def _previous_status_statement() -> sa.Executable:
    table = _table(ClusterStatus)
    return sa.select(table.c.cluster, table.c.phase, table.c.applied_digest, table.c.drift_count).where(
        table.c.cluster == sa.bindparam("b_cluster"))


def _status_events(change: StatusChange, report: StatusInput, now: dt.datetime) -> list[Event]:
    found = []
    name = change.cluster
    if change.applied_changed:
        found.append(Event(at=now, kind=EventKind.APPLIED.value, cluster=name, commit=report.applied_commit or None,
                           digest=change.applied_digest,
                           message=f"cluster {name}: applied {_short(change.applied_digest)} ({change.phase})",
                           details={"previous": change.previous_digest}))
    if change.phase_changed:
        found.append(Event(at=now, kind=EventKind.STATUS.value, cluster=name, digest=change.applied_digest or None,
                           message=f"cluster {name}: {change.previous_phase or 'Unknown'} -> {change.phase}"
                           + (f": {_excerpt(report.message)}" if report.message else ""),
                           details={"previous": change.previous_phase, "errors": list(report.errors)[:10]}))
    found.extend(drift_events.events_for(name, report.drift_events, digest=change.applied_digest or None, now=now))
    if change.drift_appeared and not report.drift_events:  # drift without its events: a spoke from before them
        found.append(Event(at=now, kind=EventKind.DRIFT.value, cluster=name, digest=change.applied_digest or None,
                           message=f"cluster {name}: {change.drift} object(s) drifted: "
                           + drift_events.objects_text(report.drift),
                           details={"objects": [d.get("ref") for d in list(report.drift)[:20]]}))
    return found


#: Characters of a spoke's message quoted in a status event (the full message is in the status row).
EVENT_MESSAGE_EXCERPT = 300


def _excerpt(text: str) -> str:
    return text if len(text) <= EVENT_MESSAGE_EXCERPT else text[:EVENT_MESSAGE_EXCERPT] + "..."


def applied_phases(s: Session) -> dict[str, tuple[str, str]]:
    """cluster -> (applied digest, phase) of every report, without the JSON columns (rollout ticks)."""
    table = _table(ClusterStatus)
    rows = s.execute(sa.select(table.c.cluster, table.c.applied_digest, table.c.phase))
    return {cluster: (digest or "", phase or "") for cluster, digest, phase in rows}


def report_times(s: Session) -> dict[str, dt.datetime]:
    """cluster -> when the hub received its last report (the hub's clock; rollout ticks judge freshness by it)."""
    table = _table(ClusterStatus)
    return {cluster: at for cluster, at in s.execute(sa.select(table.c.cluster, table.c.updated_at))}


def get_status(s: Session, cluster: str) -> ClusterStatus | None:
    return s.get(ClusterStatus, cluster)


def statuses(s: Session, *, summary: bool = False) -> dict[str, ClusterStatus]:
    """Every cluster's last report; ``summary`` leaves out the per-object results and drift items.

    A fleet overview (``convoy status``, the phase gauge) reads only counts; decoding every
    cluster's object list made one ListClusters of 1,000 clusters cost ~0.5 s of hub CPU (issue 7).
    With ``summary``, touching ``objects`` or ``drift`` after the session closed raises.
    """
    query = select(ClusterStatus)
    if summary:
        query = query.options(orm.defer(ClusterStatus.objects), orm.defer(ClusterStatus.drift))  # type: ignore[arg-type]
    return {row.cluster: row for row in s.exec(query)}


# --------------------------------------------------------------------------------------------- render errors


def set_render_errors(s: Session, *, cluster: str, commit: str, errors: Sequence[Mapping[str, Any]],
                      now: dt.datetime | None = None) -> None:
    """Record that the cluster's bundle could not be rendered at ``commit`` (it keeps its last good one).

    An event is recorded the first time a commit fails for the cluster, not on every retry.
    """
    now = _now(now)
    payload = [_bounded_error(e) for e in errors[:MAX_RENDER_ERRORS]]
    if len(errors) > MAX_RENDER_ERRORS:
        payload.append({"app": "", "file": None,
                        "message": f"and {len(errors) - MAX_RENDER_ERRORS} more errors (convoy validate shows all)"})
    row = s.get(RenderError, cluster)
    first = row is None or row.commit != commit
    if row is None:
        row = RenderError(cluster=cluster, commit=commit, errors=payload, at=now)
    else:
        row.commit, row.errors, row.at = commit, payload, now
    s.add(row)
    s.flush()
    if first:
        summary = str(payload[0].get("message", payload[0])) if payload else "unknown error"
        add_event(s, EventKind.RENDER_ERROR, cluster=cluster, commit=commit,
                  message=f"cluster {cluster}: render failed at commit {commit[:8]}: {summary}"
                  + (f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""),
                  details={"errors": payload[:_EVENT_ERRORS]}, now=now)


def clear_render_errors(s: Session, cluster: str) -> bool:
    row = s.get(RenderError, cluster)
    if row is None:
        return False
    s.delete(row)
    s.flush()
    return True


def render_errors_all(s: Session) -> dict[str, RenderError]:
    return {row.cluster: row for row in s.exec(select(RenderError))}


# --------------------------------------------------------------------------------------------- hub state


def get_state(s: Session, key: str) -> str | None:
    row = s.get(HubState, str(key))
    return None if row is None else row.value


def set_state(s: Session, key: str, value: str, *, now: dt.datetime | None = None) -> None:
    _upsert(s, HubState, [{"key": str(key), "value": value, "updated_at": _now(now)}], key=["key"],
            update=["value", "updated_at"])


# --------------------------------------------------------------------------------------------- rollouts


def insert_rollout(s: Session, *, commit: str, state: str, document: Mapping[str, Any],
                   now: dt.datetime | None = None) -> RolloutRow:
    """A new rollout row; its ``seq`` (increasing) is assigned on flush."""
    now = _now(now)
    row = RolloutRow(commit=commit, state=state, document=dict(document), started_at=now, updated_at=now)
    s.add(row)
    s.flush()
    return row


def save_rollout(s: Session, seq: int, *, state: str, document: Mapping[str, Any],
                 now: dt.datetime | None = None) -> None:
    row = s.get(RolloutRow, seq)
    if row is None:
        raise errors.StoreError(f"rollout {seq} does not exist")
    row.state, row.document, row.updated_at = state, dict(document), _now(now)
    s.add(row)
    s.flush()


def get_rollout(s: Session, seq: int) -> RolloutRow | None:
    return s.get(RolloutRow, seq)


def latest_rollout(s: Session) -> RolloutRow | None:
    """The newest rollout (at most one is active: a newer one supersedes the older)."""
    return s.exec(select(RolloutRow).order_by(col(RolloutRow.seq).desc()).limit(1)).first()


def commit_of_desired(s: Session, cluster: str, digest: str) -> str | None:
    """The commit whose render last made ``digest`` desired for ``cluster`` (None if it never was)."""
    row = s.exec(select(DesiredStateHistory).where(DesiredStateHistory.cluster == cluster,
                                                   DesiredStateHistory.digest == digest)
                 .order_by(col(DesiredStateHistory.id).desc()).limit(1)).first()
    return None if row is None else row.commit
