"""Named admin credentials: created hashed at rest (the secret is shown once), listed, revoked.

The hub's first-start credential (``admin``) is not stored here: it lives in the hub's identity
directory. Every admin call looks its credential up here (no cache), so a revocation holds at once
on every replica sharing the database.
"""

from __future__ import annotations

import datetime as dt

from sqlmodel import Session, col, select

from hub.security import secrets as hub_secrets
from hub.store import errors
from hub.store.models import AdminCredential, EventKind
from hub.store.repository._common import _now
from hub.store.repository.event_log import add_event

#: The name of the hub's own first-start credential (kept in its identity directory, not in this table).
BOOTSTRAP_ADMIN = "admin"


def create_admin_credential(s: Session, name: str, *, created_by: str = "",
                            now: dt.datetime | None = None) -> tuple[AdminCredential, str]:
    """A new named admin credential: the row (secret hashed) and the secret, to show once.

    Raises :class:`~hub.store.errors.StoreError` when the name is taken (now or by a revoked credential).
    """
    if name == BOOTSTRAP_ADMIN:
        raise errors.StoreError(f"admin credential name {name!r} is the hub's own first-start credential; "
                                "choose another name")
    existing = s.get(AdminCredential, name)
    if existing is not None:
        state = "was revoked (names are not reused)" if existing.revoked_at else "exists"
        raise errors.StoreError(f"admin credential {name!r} {state}; choose another name")
    now = _now(now)
    secret = hub_secrets.new_credential()
    row = AdminCredential(name=name, secret_hash=hub_secrets.hash_secret(secret), created_at=now,
                          created_by=created_by, revoked_at=None)
    s.add(row)
    s.flush()
    add_event(s, EventKind.ADMIN_CREDENTIAL, message=f"admin credential {name}: created by {created_by or '?'}",
              details={"credential": name, "action": "created", "by": created_by}, now=now)
    return row, secret


def admin_credential_name(s: Session, credential: str) -> str | None:
    """The name of the valid (not revoked) admin credential ``credential`` is, else None."""
    row = s.exec(select(AdminCredential).where(AdminCredential.secret_hash == hub_secrets.hash_secret(credential))
                 ).first()
    if row is None or row.revoked_at is not None or not hub_secrets.secrets_match(credential, row.secret_hash):
        return None
    return row.name


def list_admin_credentials(s: Session) -> list[AdminCredential]:
    return list(s.exec(select(AdminCredential).order_by(col(AdminCredential.name))).all())


def revoke_admin_credential(s: Session, name: str, *, by: str = "", now: dt.datetime | None = None) -> bool:
    """Revoke ``name``; False when there is no such valid credential."""
    row = s.get(AdminCredential, name)
    if row is None or row.revoked_at is not None:
        return False
    now = _now(now)
    row.revoked_at = now
    s.add(row)
    s.flush()
    add_event(s, EventKind.ADMIN_CREDENTIAL, message=f"admin credential {name}: revoked by {by or '?'}",
              details={"credential": name, "action": "revoked", "by": by}, now=now)
    return True
