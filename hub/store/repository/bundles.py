"""Bundles: one compressed, signed row per digest however many clusters share it; pruning."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlmodel import Session

from hub.store.models import (
    Bundle,
    Cluster,
    ClusterStatus,
    DesiredState,
    DesiredStateHistory,
)
from hub.store.repository._common import _now, _table


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

    Kept: every currently desired, applied (what a spoke still runs) or pinned digest, and each
    cluster's last ``keep_last`` desired
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
    applied = sa.select(_table(ClusterStatus).c.applied_digest).where(_table(ClusterStatus).c.applied_digest != "")
    keep = sa.union(recent, desired, pinned, applied).subquery()
    bundles = _table(Bundle)
    stmt = bundles.delete().where(bundles.c.digest.not_in(sa.select(keep.c[0])),
                                  bundles.c.created_at <= _now(now) - min_age)
    extra = sorted(set(also_keep))
    if extra:
        stmt = stmt.where(bundles.c.digest.not_in(extra))
    return cast(sa.CursorResult[Any], s.execute(stmt)).rowcount



@dataclasses.dataclass(frozen=True)
class BundleRef:
    """One bundle a cluster was given at one commit: what an OCI tag (``<cluster>-<short commit>``) names."""

    cluster: str
    commit: str
    digest: str
    latest: bool    #: the cluster's current desired state (its ``<cluster>-latest`` tag)
    since: dt.datetime  #: when it became desired (push lag is measured from here)


def bundle_refs(s: Session, cluster: str | None = None) -> list[BundleRef]:
    """The stored bundles of one cluster (``None``: of every cluster), oldest first, from the desired-state
    history; entries whose bundle was pruned are left out."""
    history = _table(DesiredStateHistory)
    bundles = _table(Bundle)
    desired = _table(DesiredState)
    query = (sa.select(history.c.cluster, history.c.commit, history.c.digest, history.c.since,
                       desired.c.digest.label("current"),
                       desired.c.commit.label("current_commit"))
             .join(bundles, bundles.c.digest == history.c.digest)
             .outerjoin(desired, desired.c.cluster == history.c.cluster)
             .order_by(history.c.id))
    if cluster is not None:
        query = query.where(history.c.cluster == cluster)
    refs: dict[tuple[str, str, str], BundleRef] = {}
    for row in s.execute(query):
        key = (row.cluster, row.commit, row.digest)
        refs.pop(key, None)  # a later entry of the same (cluster, commit, digest) moves it to the end
        refs[key] = BundleRef(cluster=row.cluster, commit=row.commit, digest=row.digest, since=row.since,
                              latest=row.digest == row.current and row.commit == row.current_commit)
    return list(refs.values())
