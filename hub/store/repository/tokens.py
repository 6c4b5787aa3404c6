"""Bootstrap tokens: created hashed at rest, consumed once per registration, revoked."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Session, col, select

from hub.security import secrets as hub_secrets
from hub.store import errors
from hub.store.models import (
    BootstrapToken,
    EventKind,
)
from hub.store.repository._common import _now, _table
from hub.store.repository.event_log import add_event


def create_token(s: Session, *, ttl: dt.timedelta, uses: int = 1, labels: Mapping[str, str] | None = None,
                 description: str = "", now: dt.datetime | None = None, cluster_name: str | None = None,
                 name_prefix: str | None = None) -> tuple[BootstrapToken, str]:
    """A new bootstrap token: the row (secret hashed) and the ``<id>.<secret>`` text, shown once.

    ``cluster_name`` or ``name_prefix`` bind it: only that name, or names with that prefix, may register.
    ``name_prefix=""`` is the explicit "any name" binding (names declared in Git too); None leaves the
    token unbound (any name that is not declared in Git).
    """
    if cluster_name and name_prefix:
        raise ValueError("a bootstrap token is bound to a cluster name or to a name prefix, not both")
    if ttl <= dt.timedelta(0):
        raise ValueError(f"bootstrap token TTL must be positive, got {ttl}")
    if uses < 1:
        raise ValueError(f"bootstrap token uses must be at least 1, got {uses}")
    now = _now(now)
    token_id, token = hub_secrets.new_bootstrap_token()
    _, secret = hub_secrets.split_bootstrap_token(token)
    row = BootstrapToken(id=token_id, secret_hash=hub_secrets.hash_secret(secret), expires_at=now + ttl,
                         uses_left=uses, labels=dict(labels or {}), description=description, revoked=False,
                         created_at=now, cluster_name=cluster_name or None, name_prefix=name_prefix)
    s.add(row)
    s.flush()
    add_event(s, EventKind.TOKEN_CREATED, message=f"bootstrap token {token_id}: created ({uses} use(s), "
              f"expires {row.expires_at.isoformat(timespec='seconds')})",
              details={"token": token_id, "uses": uses, "labels": dict(labels or {}),
                       "description": description, "cluster": cluster_name or None,
                       "name_prefix": name_prefix}, now=now)
    return row, token


def consume_token(s: Session, token: str, *, now: dt.datetime | None = None, name: str | None = None,
                  declared: Collection[str] | None = frozenset()) -> BootstrapToken:
    """Spend one use of a bootstrap token, or raise :class:`~hub.store.errors.TokenRefused`.

    With ``name`` (the cluster registering), the token's binding is checked first and a name it does
    not cover raises :class:`~hub.store.errors.TokenNotForName` without spending a use: a bound token
    covers exactly its name or prefix; an unbound one covers any name not in ``declared`` (the names
    the fleet repository declares; None when the hub cannot tell yet, which refuses unbound tokens
    with :class:`~hub.store.errors.DeclaredNamesUnknown`).

    The decrement is a conditional UPDATE, so two registrations racing for the last use cannot both
    win, on either database. :func:`usable_token` and :func:`spend_token_use` are its two halves.
    """
    row = usable_token(s, token, now=now, name=name, declared=declared)
    return spend_token_use(s, row, now=now)


def usable_token(s: Session, token: str, *, now: dt.datetime | None = None, name: str | None = None,
                 declared: Collection[str] | None = frozenset()) -> BootstrapToken:
    """The token's row if it could be spent by ``name`` now (see :func:`consume_token`); spends nothing."""
    now = _now(now)
    try:
        token_id, secret = hub_secrets.split_bootstrap_token(token)
    except hub_secrets.JoinTokenError as exc:
        raise errors.TokenRefused(None, errors.TokenRefusal.MALFORMED) from exc
    row = s.get(BootstrapToken, token_id)
    if row is None or not hub_secrets.secrets_match(secret, row.secret_hash):
        raise errors.TokenRefused(token_id, errors.TokenRefusal.UNKNOWN)
    _check_usable(row, now)
    if name is not None:
        _check_binding(row, name, declared)
    return row


def spend_token_use(s: Session, row: BootstrapToken, *, now: dt.datetime | None = None) -> BootstrapToken:
    """Spend one use of a token :func:`usable_token` returned, or raise :class:`~hub.store.errors.TokenRefused`.

    The UPDATE locks the token's row until the transaction ends (on PostgreSQL): every registration
    with one token queues on that lock, so a registration spends the use last, just before it commits.
    """
    now = _now(now)
    table = _table(BootstrapToken)
    result = s.execute(
        table.update()
        .where(table.c.id == row.id, table.c.uses_left > 0, table.c.revoked.is_(False),
               table.c.expires_at > now)
        .values(uses_left=table.c.uses_left - 1))
    s.refresh(row)
    if cast(sa.CursorResult[Any], result).rowcount != 1:
        _check_usable(row, now)
        raise errors.TokenRefused(row.id, errors.TokenRefusal.USED_UP)
    add_event(s, EventKind.TOKEN_USED, message=f"bootstrap token {row.id}: used ({row.uses_left} left)",
              details={"token": row.id, "uses_left": row.uses_left}, now=now)
    return row


def _check_binding(row: BootstrapToken, name: str, declared: Collection[str] | None) -> None:
    if row.cluster_name:
        if name != row.cluster_name:
            raise errors.TokenNotForName(row.id, name, f"is bound to cluster {row.cluster_name}")
    elif row.name_prefix is not None:  # "" is the explicit any-name binding
        if not name.startswith(row.name_prefix):
            raise errors.TokenNotForName(row.id, name, f"is bound to names starting with {row.name_prefix!r}")
    elif declared is None:
        raise errors.DeclaredNamesUnknown(name)
    elif name in declared:
        raise errors.TokenNotForName(
            row.id, name, f"is not bound to it, and cluster {name} is declared in the fleet repository "
                          f"(clusters/{name}/cluster.yaml); register it with a token made by "
                          f"`convoy token create --cluster {name}` (or a matching --name-prefix)")


def _check_usable(row: BootstrapToken, now: dt.datetime) -> None:
    if row.revoked:
        raise errors.TokenRefused(row.id, errors.TokenRefusal.REVOKED)
    if row.expires_at <= now:
        raise errors.TokenRefused(row.id, errors.TokenRefusal.EXPIRED)
    if row.uses_left <= 0:
        raise errors.TokenRefused(row.id, errors.TokenRefusal.USED_UP)


def revoke_token(s: Session, token_id: str, *, now: dt.datetime | None = None) -> bool:
    """Revoke a token; False if there is no such token or it was already revoked."""
    row = s.get(BootstrapToken, token_id)
    if row is None or row.revoked:
        return False
    row.revoked = True
    s.add(row)
    s.flush()
    add_event(s, EventKind.TOKEN_REVOKED, message=f"bootstrap token {token_id}: revoked",
              details={"token": token_id}, now=now)
    return True


def get_token(s: Session, token_id: str) -> BootstrapToken | None:
    return s.get(BootstrapToken, token_id)


def list_tokens(s: Session) -> list[BootstrapToken]:
    return list(s.exec(select(BootstrapToken).order_by(col(BootstrapToken.created_at), col(BootstrapToken.id))))

