"""Bearer credentials for both services: a cluster's own credential, or the admin credential.

Every call but Register carries ``authorization: Bearer <credential>``. Cluster
credentials are looked up by hash in the store (constant-time comparison lives
there); the admin credential's hash is held in memory and compared in constant
time. Failures raise :class:`hub.api.status.Unauthenticated` without saying which
part was wrong beyond "missing" versus "not recognised", and never echo the value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from hub.api import status
from hub.security import secrets
from hub.store import db as store_db
from hub.store import models
from hub.store import repository as store

__all__ = ["Authenticator", "bearer_token"]

_SCHEME = "bearer "


def bearer_token(metadata: Iterable[Any] | None) -> str | None:
    """The credential of an ``authorization: Bearer ...`` metadata entry, if any."""
    for key, value in metadata or ():
        if str(key).lower() == "authorization":
            text = value.decode() if isinstance(value, bytes) else str(value)
            if text[: len(_SCHEME)].lower() == _SCHEME:
                return text[len(_SCHEME):].strip() or None
    return None


class Authenticator:
    """Checks callers of the spoke and admin services."""

    def __init__(self, *, db: store_db.Database, admin_credential: str) -> None:
        self.db = db
        self._admin_hash = secrets.hash_secret(admin_credential)

    async def cluster(self, metadata: Iterable[Any] | None, *, method: str) -> models.Cluster:
        """The cluster whose credential the call carries."""
        credential = bearer_token(metadata)
        if credential is None:
            raise status.Unauthenticated(f"{method}: no `authorization: Bearer <credential>` metadata; "
                                         "a spoke must register first")
        cluster = await asyncio.to_thread(self._lookup, credential)
        if cluster is None:
            raise status.Unauthenticated(f"{method}: the cluster credential is not recognised (revoked, or "
                                         "issued by another hub); re-register the spoke with a new token")
        return cluster

    def _lookup(self, credential: str) -> models.Cluster | None:
        with self.db.session() as session:
            return store.authenticate_cluster(session, credential)

    def admin(self, metadata: Iterable[Any] | None, *, method: str) -> None:
        """Pass only with the admin credential."""
        credential = bearer_token(metadata)
        if credential is None:
            raise status.Unauthenticated(f"{method}: no `authorization: Bearer <admin credential>` metadata")
        if not secrets.secrets_match(credential, self._admin_hash):
            raise status.Unauthenticated(f"{method}: the admin credential is not recognised")
