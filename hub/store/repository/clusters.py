"""Registered clusters: registration, credentials and their rotation, presence, pause and pin, removal."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy.dialects import postgresql
from sqlmodel import Session, col, select

from hub.security import secrets as hub_secrets
from hub.store import errors
from hub.store.models import (
    BootstrapToken,
    Cluster,
    ClusterStatus,
    DesiredState,
    Event,
    EventKind,
    RenderError,
)
from hub.store.repository._common import _now, _short, _table
from hub.store.repository.event_log import add_event


def register_cluster(s: Session, *, name: str, labels: Mapping[str, str], credential_hash: str,
                     token: BootstrapToken | None = None, now: dt.datetime | None = None,
                     age_recipient: str = "") -> Cluster:
    """Record a new cluster; the token's labels are stamped over the ones the spoke asked for.

    Raises :class:`~hub.store.errors.ClusterExists` when the name is taken (also when another hub
    process registers the same name at the same moment).
    """
    now = _now(now)
    if s.get(Cluster, name) is not None:
        raise errors.ClusterExists(name)
    merged = {**labels, **(token.labels if token is not None else {})}
    row = Cluster(name=name, labels=merged, registered_at=now, last_seen=now, credential_hash=credential_hash,
                  paused=False, token_id=token.id if token is not None else None,
                  age_recipient=age_recipient or None, age_recipient_at=now if age_recipient else None)
    try:
        with s.begin_nested():
            s.add(row)
    except sa_exc.IntegrityError as exc:
        raise errors.ClusterExists(name) from exc
    add_event(s, EventKind.REGISTRATION, cluster=name,
              message=f"cluster {name}: registered" + (f" with bootstrap token {token.id}" if token else ""),
              details={"labels": merged, "token": token.id if token else None,
                       "age_recipient": age_recipient or None}, now=now)
    return row


def set_age_recipient(s: Session, name: str, recipient: str, *, now: dt.datetime | None = None) -> bool:
    """Store the public age key a cluster's spoke sent; True when it is new or changed (an event records it)."""
    now = _now(now)
    row = s.get(Cluster, name)
    if row is None or row.age_recipient == recipient:
        return False
    previous = row.age_recipient
    rotated = row.age_rotation_requested_at is not None
    row.age_recipient, row.age_recipient_at = recipient, now
    # The key it replaces stays acceptable at render time (the spoke keeps it) until files are re-sealed.
    row.age_recipient_previous, row.age_rotation_requested_at = previous, None
    s.add(row)
    add_event(s, EventKind.AGE_KEY, cluster=name,
              message=(f"cluster {name}: age key {recipient[:16]}..."
                       + (" (rotated; files still sealed for the previous key open until re-sealed: "
                          "convoy seal --refresh)" if rotated and previous
                          else " (replaces the previous one)" if previous else "")),
              details={"recipient": recipient, "previous": previous}, now=now)
    return True


def request_age_rotation(s: Session, name: str, *, now: dt.datetime | None = None) -> Cluster:
    """Ask ``name``'s spoke for a new age key: the hub asks over the cluster's next Watch stream.

    Raises :class:`~hub.store.errors.UnknownCluster`. Asking again while one is pending keeps it pending.
    """
    now = _now(now)
    row = s.get(Cluster, name)
    if row is None:
        raise errors.UnknownCluster(name)
    if row.age_rotation_requested_at is None:
        row.age_rotation_requested_at = now
        s.add(row)
        s.flush()
    add_event(s, EventKind.AGE_KEY, cluster=name,
              message=f"cluster {name}: age key rotation requested; the spoke makes a new key when asked over "
                      "its Watch stream", now=now)
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


class RenderInputs(NamedTuple):
    """What a render needs of one registered cluster (no ORM object: 10,000 of those cost ~0.3 s)."""

    labels: dict[str, str]
    age_recipient: str | None
    age_recipient_previous: str | None


def render_inputs(s: Session) -> dict[str, RenderInputs]:
    """Every registered cluster's labels and age keys, by name."""
    table = _table(Cluster)
    rows = s.execute(sa.select(table.c.name, table.c.labels, table.c.age_recipient,
                               table.c.age_recipient_previous))
    return {row.name: RenderInputs(dict(row.labels or {}), row.age_recipient, row.age_recipient_previous)
            for row in rows}


def pinned_names(s: Session) -> frozenset[str]:
    """The clusters pinned to a bundle."""
    table = _table(Cluster)
    return frozenset(s.execute(sa.select(table.c.name).where(table.c.pinned_digest.is_not(None),
                                                           table.c.pinned_digest != "")).scalars())


def touch_cluster(s: Session, name: str, now: dt.datetime | None = None) -> None:
    touch_clusters(s, [name], now)


def touch_clusters(s: Session, names: Iterable[str], now: dt.datetime | None = None) -> None:
    """Set ``last_seen`` of several clusters to ``now``.

    One UPDATE per 1,000 names, in name order: the heartbeat refreshes every watching cluster at once
    (10,000 rows as one executemany cost the hub ~0.3 s of CPU per heartbeat), and every writer of many
    clusters takes their row locks in name order, or two of them deadlock on PostgreSQL (seen at 10,000
    spokes: a report batch against this refresh, and the whole batch failed).
    """
    now = _now(now)
    ordered = sorted(set(names))
    if not ordered:
        return
    table = _table(Cluster)
    if s.get_bind().dialect.name == "postgresql":
        # One statement, the names as one array parameter (1,000 bound parameters per statement cost more
        # Python than the update). An UPDATE ... WHERE name IN (...) would lock rows in the order its scan
        # meets them; the locking subquery sorted by name takes them in name order.
        wanted = table.c.name == sa.any_(sa.bindparam("b_names", ordered, type_=postgresql.ARRAY(sa.String)))
        locked = sa.select(table.c.name).where(wanted).order_by(table.c.name).with_for_update().subquery()
        s.execute(table.update().where(table.c.name == locked.c.name).values(last_seen=now))
        return
    for start in range(0, len(ordered), _TOUCH_CHUNK):
        s.execute(table.update().where(table.c.name.in_(ordered[start:start + _TOUCH_CHUNK])).values(last_seen=now))


_TOUCH_CHUNK = 1000


def mark_connected(s: Session, opened: Iterable[tuple[str, dt.datetime]]) -> None:
    """Watch streams opened at these times: the clusters are seen and connected (one executemany)."""
    # In name order, as every multi-row writer of clusters locks them (see ``touch_clusters``); the last
    # opening of a cluster listed wins, as it did in list order.
    latest = dict(opened)
    params = [{"b_name": name, "b_at": latest[name]} for name in sorted(latest)]
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
    """Hold a cluster at ``digest`` (None: follow the fleet again). Rollbacks use it."""
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

