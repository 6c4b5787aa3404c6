"""Cluster status reports: what each spoke applied and how healthy it is, and the events a change makes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import orm
from sqlmodel import Session, select

from hub.store import drift_events
from hub.store.models import (
    ClusterStatus,
    Event,
    EventKind,
)
from hub.store.repository._common import _now, _short, _table, _upsert_statement
from hub.store.repository.clusters import touch_clusters
from hub.store.repository.event_log import _aggregate


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
    # than the SQL here, and ingestion is the hub's hottest write path.
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
    # Rows are locked in name order by every writer of many clusters at once (presence, reports, sync):
    # two batches taking the same rows in different orders deadlock on PostgreSQL (seen at 10,000 spokes:
    # a report batch against the heartbeat's last-seen refresh, and the whole batch failed).
    rows.sort(key=lambda row: str(row["cluster"]))
    conn.execute(_upsert_statement(conn.dialect.name, table, ("cluster",), _STATUS_COLUMNS), rows)
    if touch:
        touch_clusters(s, latest, now)
    _sealed_audit(conn, new_events)
    if new_events and aggregate is not None:
        _aggregate(s, new_events, aggregate)
    elif new_events:
        s.add_all(new_events)
        s.flush()
    return changes


#: Applied events whose sealed secret versions are looked up in one query.
_SEALED_AUDIT_CHUNK = 400


def _sealed_audit(conn: sa.Connection, events: Sequence[Event]) -> None:
    """An applied bundle's sealed secret versions (ciphertext digests), copied from when it became desired.

    Only new applied digests are looked up, one query per chunk of them (after a commit every cluster
    applies a new digest at once), so steady reports cost nothing.
    """
    table = _table(Event)
    applied = [event for event in events if event.kind == EventKind.APPLIED.value and event.digest]
    for start in range(0, len(applied), _SEALED_AUDIT_CHUNK):
        chunk = applied[start:start + _SEALED_AUDIT_CHUNK]
        wanted = {(event.cluster, event.digest) for event in chunk}
        # Oldest first: the newest desired_changed row of each (cluster, digest) is the one kept.
        found = conn.execute(sa.select(table.c.cluster, table.c.digest, table.c.details).where(
            table.c.kind == EventKind.DESIRED_CHANGED.value,
            table.c.cluster.in_(sorted({c for c, _ in wanted if c is not None})),
            table.c.digest.in_(sorted({d for _, d in wanted if d is not None}))).order_by(table.c.at, table.c.id))
        details = {(row.cluster, row.digest): row.details for row in found if (row.cluster, row.digest) in wanted}
        for event in chunk:
            sealed = (details.get((event.cluster, event.digest)) or {}).get("sealed")
            if sealed:
                event.details = {**(event.details or {}), "sealed": sealed}
                event.message += "; sealed secrets " + sealed_text(sealed)


def sealed_text(sealed: Mapping[str, str]) -> str:
    """``Secret/shop/db sha256:0123456789ab, ...``: which versions, never a value."""
    return ", ".join(f"{ref} {_short(digest)}" for ref, digest in sorted(sealed.items()))


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
    cluster's object list made one ListClusters of 1,000 clusters cost ~0.5 s of hub CPU.
    With ``summary``, touching ``objects`` or ``drift`` after the session closed raises.
    """
    query = select(ClusterStatus)
    if summary:
        query = query.options(orm.defer(ClusterStatus.objects), orm.defer(ClusterStatus.drift))  # type: ignore[arg-type]
    return {row.cluster: row for row in s.exec(query)}

