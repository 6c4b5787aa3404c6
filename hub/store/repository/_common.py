"""Helpers every record module shares: the clock default, Core table access, bulk upserts, bounded text."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlmodel import Session

from hub.store.models import (
    utcnow,
)


def _now(now: dt.datetime | None) -> dt.datetime:
    return utcnow() if now is None else now


def _short(digest: str | None) -> str:
    return (digest or "")[:19]


def _table(model: type[Any]) -> sa.Table:
    return cast(sa.Table, model.__table__)


def _upsert(s: Session, model: type[Any], rows: Sequence[Mapping[str, Any]], *, key: Sequence[str],
            update: Sequence[str]) -> None:
    """INSERT ... ON CONFLICT DO UPDATE for many rows in one statement execution."""
    if not rows:
        return
    stmt = _upsert_statement(s.get_bind().dialect.name, _table(model), tuple(key), tuple(update))
    s.execute(stmt, list(rows))


@functools.cache
def _upsert_statement(dialect: str, table: sa.Table, key: tuple[str, ...],
                      update: tuple[str, ...]) -> sa.Executable:
    # Built once per shape: constructing ``excluded`` costs more than executing the statement, and
    # status ingestion runs this thousands of times a second.
    insert = pg_dialect.insert if dialect == "postgresql" else sqlite_dialect.insert
    stmt = insert(table)
    return stmt.on_conflict_do_update(index_elements=list(key), set_={name: stmt.excluded[name] for name in update})


def _bounded(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    note = f" …[{len(text) - limit} more chars]"
    return text[:max(0, limit - len(note))] + note[:limit]

