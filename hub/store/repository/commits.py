"""Commits the hub has seen: who wrote them, whether their signature held, accepted or refused."""

from __future__ import annotations

import datetime as dt

from sqlmodel import Session, col, select

from hub.store.models import (
    EventKind,
    SeenCommit,
)
from hub.store.repository._common import _now
from hub.store.repository.event_log import add_event


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

