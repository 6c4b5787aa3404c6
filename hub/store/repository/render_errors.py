"""Render errors: why a cluster's bundle could not be rendered at a commit (it keeps the last good one)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlmodel import Session, select

from hub.store.models import (
    EventKind,
    RenderError,
)
from hub.store.repository._common import _bounded, _now
from hub.store.repository.event_log import add_event

#: Render errors stored per cluster (then one line saying how many more), and the longest message of each.
#: With these, no one error can push ListClusters, GetCluster or History past gRPC's message limit.
MAX_RENDER_ERRORS = 20


MAX_RENDER_ERROR_CHARS = 1_000


_MAX_ERROR_FILE_CHARS = 300


#: Render errors copied into the details of a render_error event (the row holds them all).
_EVENT_ERRORS = 5


def _bounded_error(error: Mapping[str, Any]) -> dict[str, Any]:
    doc = dict(error)
    doc["message"] = _bounded(str(doc.get("message") or ""), MAX_RENDER_ERROR_CHARS)
    if doc.get("file"):
        doc["file"] = _bounded(str(doc["file"]), _MAX_ERROR_FILE_CHARS)
    return doc


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

