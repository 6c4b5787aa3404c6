"""OCI pushes: the bundle artifacts ``--oci-push`` put into a registry repository, per target."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence

import sqlalchemy as sa
from sqlmodel import Session

from hub.store.models import (
    OciPush,
)
from hub.store.repository._common import _now, _table, _upsert
from hub.store.repository.bundles import BundleRef, bundle_refs

#: (cluster, commit, bundle digest): one ``<cluster>-<short commit>`` artifact
PushKey = tuple[str, str, str]


@dataclasses.dataclass(frozen=True)
class PushRecord:
    """One artifact pushed: its manifest, whether ``<cluster>-latest`` names it, what goes with it."""

    cluster: str
    commit: str
    digest: str
    manifest_digest: str
    latest: bool = False
    companions: tuple[str, ...] = ()

    @property
    def key(self) -> PushKey:
        return (self.cluster, self.commit, self.digest)


def oci_pushes(s: Session, target: str) -> dict[PushKey, PushRecord]:
    """Everything recorded as pushed to ``target`` (``REGISTRY/REPOSITORY``)."""
    table = _table(OciPush)
    rows = s.execute(sa.select(table).where(table.c.target == target))
    return {(r.cluster, r.commit, r.digest): PushRecord(cluster=r.cluster, commit=r.commit, digest=r.digest,
                                                        manifest_digest=r.manifest_digest, latest=r.latest,
                                                        companions=tuple(r.companions.split()))
            for r in rows}


def oci_manifests(s: Session, target: str, keys: Iterable[PushKey]) -> dict[PushKey, str]:
    """The pushed manifest digest of each of ``keys`` that was pushed to ``target`` (Watch's announcement)."""
    wanted = set(keys)
    if not wanted:
        return {}
    table = _table(OciPush)
    rows = s.execute(sa.select(table.c.cluster, table.c.commit, table.c.digest, table.c.manifest_digest)
                     .where(table.c.target == target, table.c.cluster.in_({key[0] for key in wanted})))
    return {(r.cluster, r.commit, r.digest): r.manifest_digest for r in rows
            if (r.cluster, r.commit, r.digest) in wanted}


def record_oci_pushes(s: Session, target: str, records: Sequence[PushRecord], *,
                      now: dt.datetime | None = None) -> None:
    """Record pushes; a record with ``latest`` takes the cluster's ``-latest`` mark from its other rows."""
    if not records:
        return
    table = _table(OciPush)
    for record in records:
        if record.latest:
            s.execute(sa.update(table).where(table.c.target == target, table.c.cluster == record.cluster,
                                             table.c.latest.is_(True)).values(latest=False))
    at = _now(now)
    _upsert(s, OciPush, [{"target": target, "cluster": r.cluster, "commit": r.commit, "digest": r.digest,
                          "manifest_digest": r.manifest_digest, "latest": r.latest,
                          "companions": " ".join(r.companions), "pushed_at": at} for r in records],
            key=["target", "cluster", "commit", "digest"], update=["manifest_digest", "latest", "companions",
                                                                   "pushed_at"])


def forget_oci_pushes(s: Session, target: str, keys: Iterable[PushKey]) -> int:
    """Drop the records of ``keys`` (their manifests were deleted from the registry); returns how many."""
    table = _table(OciPush)
    deleted = 0
    for cluster, commit, digest in keys:
        result = s.execute(sa.delete(table).where(table.c.target == target, table.c.cluster == cluster,
                                                  table.c.commit == commit, table.c.digest == digest))
        deleted += int(getattr(result, "rowcount", 0) or 0)
    return deleted


@dataclasses.dataclass(frozen=True)
class PushBacklog:
    """What ``convoy status`` shows of ``--oci-push``: artifacts not pushed yet and the age of the oldest."""

    pending: int
    oldest_seconds: float


def needs_push(ref: BundleRef, record: PushRecord | None) -> bool:
    """Not pushed, or the cluster's desired bundle whose ``-latest`` tag does not name it yet."""
    return record is None or (ref.latest and not record.latest)


def push_backlog(refs: Iterable[BundleRef], pushed: Mapping[PushKey, PushRecord], now: dt.datetime) -> PushBacklog:
    since = [ref.since for ref in refs if needs_push(ref, pushed.get((ref.cluster, ref.commit, ref.digest)))]
    return PushBacklog(pending=len(since),
                       oldest_seconds=max(((now - at).total_seconds() for at in since), default=0.0))


def oci_push_backlog(s: Session, target: str, *, now: dt.datetime | None = None) -> PushBacklog:
    """The backlog of ``target`` from the store: every stored bundle ref against the push records."""
    return push_backlog(bundle_refs(s), oci_pushes(s, target), _now(now))
