"""Rollouts: one row per rollout of a commit through the fleet, and where a digest came from."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlmodel import Session, col, select

from hub.store import errors
from hub.store.models import (
    DesiredStateHistory,
    RolloutRow,
)
from hub.store.repository._common import _now


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

