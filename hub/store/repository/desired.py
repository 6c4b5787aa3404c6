"""Desired state: which bundle each cluster should run, with its history (one event per change)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlmodel import Session, col, select

from hub.render import sealed as sealed_audit
from hub.store.models import (
    Bundle,
    Cluster,
    DesiredState,
    DesiredStateHistory,
    Event,
    EventKind,
)
from hub.store.repository._common import _now, _short, _table, _upsert_statement
from hub.store.repository.event_log import _event_row
from protos import bundle as bundles

log = logging.getLogger(__name__)


def set_desired(s: Session, *, cluster: str, commit: str, digest: str, now: dt.datetime | None = None) -> bool:
    """Make ``digest`` the cluster's desired bundle; True if the digest changed (notify its watchers).

    A new commit with the same digest only moves the recorded commit: no history, no event, no
    work for the spoke. The bundle must have been stored first (foreign key).
    """
    return bool(set_desired_many(s, [(cluster, commit, digest)], now=now))


def _sealed_in_stored(conn: sa.Connection, digests: Iterable[str]) -> dict[str, dict[str, str]]:
    """Per stored bundle digest, its sealed secrets' ciphertext digests (what the sync path passes in)."""
    table = _table(Bundle)
    wanted = sorted(set(digests))
    out: dict[str, dict[str, str]] = {}
    for start in range(0, len(wanted), 100):
        rows = conn.execute(sa.select(table.c.digest, table.c.data, table.c.size)
                            .where(table.c.digest.in_(wanted[start:start + 100])))
        for row in rows:
            try:
                raw = bundles.decompress(row.data, max_size=row.size)
                # Most bundles carry no sealed secret: skip parsing those.
                out[row.digest] = sealed_audit.sealed_digests(json.loads(raw)) if b'"sops"' in raw else {}
            except (bundles.BundleError, ValueError) as exc:  # the desired change itself must still happen
                log.warning("bundle %s: cannot read its sealed secrets for the audit trail: %s", row.digest[:19], exc)
    return out


def set_desired_many(s: Session, items: Iterable[tuple[str, str, str]], *,
                     now: dt.datetime | None = None,
                     sealed: Mapping[str, Mapping[str, str]] | None = None) -> list[str]:
    """:func:`set_desired` for many ``(cluster, commit, digest)`` at once; returns the changed clusters.

    ``sealed``: per bundle digest, the sealed secrets it carries (``{"Secret/ns/name": ciphertext
    digest}``), recorded in each DESIRED_CHANGED event for the audit trail. A digest not in it (a
    rollout releasing or reverting a wave, a pin) is read from the stored bundle, so every desired
    change records its sealed versions whichever path made it.
    """
    now = _now(now)
    wanted = {cluster: (commit, digest) for cluster, commit, digest in items}
    if not wanted:
        return []
    # Core statements, a few executemany calls per batch: ORM objects per row cost ~1 ms per cluster,
    # which a commit changing 1,000 clusters pays before any spoke hears of it.
    s.flush()
    conn = s.connection()
    table = _table(DesiredState)
    current: dict[str, tuple[str, str]] = {}
    names = sorted(wanted)
    for start in range(0, len(names), 500):
        query = sa.select(table.c.cluster, table.c.commit, table.c.digest).where(
            table.c.cluster.in_(names[start:start + 500]))
        if conn.dialect.name == "postgresql":
            # Locked in name order, as every writer of many clusters' rows takes them (see touch_clusters).
            query = query.order_by(table.c.cluster).with_for_update()
        current.update((row.cluster, (row.commit, row.digest)) for row in conn.execute(query))
    changed: list[str] = []
    missing = {digest for cluster, (_, digest) in wanted.items()
               if (current.get(cluster) or ("", ""))[1] != digest and digest not in (sealed or {})}
    sealed = {**_sealed_in_stored(conn, missing), **(sealed or {})} if missing else sealed
    moved_by_commit: dict[str, list[str]] = {}   #: new commit -> clusters whose digest stays
    desired_rows: list[dict[str, Any]] = []
    history_rows: list[dict[str, Any]] = []
    event_rows: list[dict[str, Any]] = []
    for cluster, (commit, digest) in wanted.items():
        before = current.get(cluster)
        if before is not None and before[1] == digest:
            if before[0] != commit:
                moved_by_commit.setdefault(commit, []).append(cluster)
            continue
        desired_rows.append({"cluster": cluster, "commit": commit, "digest": digest, "since": now})
        history_rows.append({"cluster": cluster, "commit": commit, "digest": digest, "since": now})
        secrets_sent = dict((sealed or {}).get(digest) or {})
        event_rows.append(_event_row(now, EventKind.DESIRED_CHANGED, cluster=cluster, commit=commit, digest=digest,
                                     message=f"cluster {cluster}: desired bundle {_short(digest)} "
                                             f"(commit {commit[:8]})"
                                             + ("; sealed secrets " + ", ".join(
                                                 f"{ref} {_short(d)}" for ref, d in sorted(secrets_sent.items()))
                                                if secrets_sent else ""),
                                     details={"previous": before[1] if before is not None else None,
                                              **({"sealed": secrets_sent} if secrets_sent else {})}))
        changed.append(cluster)
    # A commit that leaves most bundles alone moves most rows' commit only: one UPDATE per commit (all of
    # them, in practice) instead of one per row, which cost ~0.2 ms a cluster on PostgreSQL.
    for commit, clusters in moved_by_commit.items():
        for start in range(0, len(clusters), 500):
            conn.execute(table.update().where(table.c.cluster.in_(clusters[start:start + 500]))
                         .values(commit=commit))
    if desired_rows:
        conn.execute(_upsert_statement(conn.dialect.name, table, ("cluster",), ("commit", "digest", "since")),
                     desired_rows)
        conn.execute(sa.insert(_table(DesiredStateHistory)), history_rows)
        conn.execute(sa.insert(_table(Event)), event_rows)
    return changed


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
    rotate_age_key: bool = False  #: an age key rotation is pending: ask the spoke for a new key


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
        query = (sa.select(clusters.c.name, clusters.c.paused, clusters.c.rotation_requested_at,
                           clusters.c.age_rotation_requested_at, desired.c.commit, desired.c.digest, desired.c.since)
                 .select_from(clusters.outerjoin(desired, desired.c.cluster == clusters.c.name))
                 .where(clusters.c.name.in_(wanted[start:start + 500])))
        for row in s.execute(query):
            state = (DesiredRow(row.name, row.commit, row.digest, row.since) if row.digest is not None else None)
            found[row.name] = WatchRow(paused=bool(row.paused), desired=state,
                                       rotate=row.rotation_requested_at is not None,
                                       rotate_age_key=row.age_rotation_requested_at is not None)
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

