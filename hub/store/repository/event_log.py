"""The event log: what happened to which cluster, commit and bundle (``convoy history``), bounded and pruned."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Session, col, select

from hub.store.models import (
    Event,
    EventKind,
)
from hub.store.repository._common import _bounded, _now, _table

#: Longest event message stored: an event is one line of ``convoy history``.
MAX_EVENT_MESSAGE_CHARS = 2_000


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


#: Events looked up together when folding a batch: keeps each IN list well under SQLite's bound parameters.
_AGGREGATE_CHUNK = 400


def _aggregate(s: Session, new: Sequence[Event], window: dt.timedelta) -> list[Event]:
    """Add events, folding each into a recent row with the same kind, cluster and message if there is one.

    A spoke flapping between two phases at the report rate, or one peer retrying a refused
    registration, would otherwise write a row per attempt; the audit log keeps one row per distinct
    event and window, with how often and until when it repeated.

    One read per chunk of events finds their candidates and one flush writes the batch: after a commit
    every cluster's first report brings two events, and a query plus an insert per event was most
    of the report writer's time at a few thousand clusters. Events of one batch fold into each
    other in order, as if added one by one.
    """
    if not new:
        return []
    earliest = min(event.at for event in new) - window
    #: (kind, cluster, message) -> candidate rows, oldest id first (rows added here come last)
    candidates: dict[tuple[str, str | None, str], list[Event]] = {}
    for start in range(0, len(new), _AGGREGATE_CHUNK):
        chunk = new[start:start + _AGGREGATE_CHUNK]
        query = select(Event).where(col(Event.at) >= earliest,
                                    col(Event.kind).in_(sorted({e.kind for e in chunk})),
                                    col(Event.message).in_(sorted({e.message for e in chunk})))
        named = sorted({e.cluster for e in chunk if e.cluster is not None})
        if any(e.cluster is None for e in chunk):
            query = query.where(sa.or_(col(Event.cluster).is_(None), col(Event.cluster).in_(named)))
        else:
            query = query.where(col(Event.cluster).in_(named))
        for row in s.exec(query.order_by(col(Event.id))):
            rows = candidates.setdefault((row.kind, row.cluster, row.message), [])
            if row not in rows:  # chunks can overlap in what they find
                rows.append(row)
    stored = []
    for event in new:
        rows = candidates.setdefault((event.kind, event.cluster, event.message), [])
        since = event.at - window
        earlier = next((row for row in reversed(rows) if row.at >= since), None)
        if earlier is None:
            s.add(event)
            rows.append(event)
            stored.append(event)
            continue
        details = dict(earlier.details or {})
        details["count"] = int(details.get("count") or 1) + 1
        details["last_at"] = event.at.isoformat()
        earlier.details = details
        s.add(earlier)
        stored.append(earlier)
    s.flush()
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


def _event_row(now: dt.datetime, kind: EventKind, *, cluster: str | None = None, commit: str | None = None,
               digest: str | None = None, message: str = "", details: Mapping[str, Any] | None = None
               ) -> dict[str, Any]:
    """An ``events`` row for a Core insert (hot paths; :func:`add_event` is the ORM way)."""
    return {"at": now, "kind": kind.value, "cluster": cluster, "commit": commit, "digest": digest,
            "message": _bounded(message, MAX_EVENT_MESSAGE_CHARS),
            "details": dict(details) if details is not None else None}

