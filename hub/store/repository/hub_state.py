"""The hub's own key/value state (last deployed commit, last fetch) in the ``hub_state`` table."""

from __future__ import annotations

import datetime as dt
import enum

from sqlmodel import Session, col, delete, select

from hub.store.models import (
    HubState,
)
from hub.store.repository._common import _now, _upsert


class StateKey(enum.StrEnum):
    """Keys of the ``hub_state`` table."""

    LAST_DEPLOYED_COMMIT = "last_deployed_commit"  #: the newest commit whose bundles were stored
    FLEET_COMMIT = "fleet_commit"                  #: the newest commit fetched (deployed or not)
    FLEET_COMMIT_SEEN_AT = "fleet_commit_seen_at"  #: ISO time it was first seen
    LAST_FETCH_AT = "last_fetch_at"                #: ISO time of the last successful fetch
    LAST_FETCH_ERROR = "last_fetch_error"          #: message of the last failed fetch, "" after a success
    DECLARED_CLUSTERS = "declared_clusters"        #: JSON list of the deployed commit's declared names


def get_state(s: Session, key: str) -> str | None:
    row = s.get(HubState, str(key))
    return None if row is None else row.value


def set_state(s: Session, key: str, value: str, *, now: dt.datetime | None = None) -> None:
    _upsert(s, HubState, [{"key": str(key), "value": value, "updated_at": _now(now)}], key=["key"],
            update=["value", "updated_at"])



def states_with_prefix(s: Session, prefix: str) -> list[HubState]:
    """Every row whose key starts with ``prefix`` (replica heartbeats, handed-over sync results)."""
    return list(s.exec(select(HubState).where(col(HubState.key).startswith(prefix, autoescape=True))))


def delete_states(s: Session, keys: list[str]) -> None:
    if keys:
        s.exec(delete(HubState).where(col(HubState.key).in_(keys)))  # type: ignore[call-overload]
