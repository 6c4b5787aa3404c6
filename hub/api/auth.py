"""Bearer credentials for both services: a cluster's own credential, or an admin credential.

Every call but Register carries ``authorization: Bearer <credential>``. Cluster
credentials are looked up by hash in the store (constant-time comparison lives
there). Admin credentials are named: the hub's first-start credential (``admin``) has its hash held
in memory and compared in constant time; named ones (``convoy credential create``) are looked up by
hash in the store on every admin call, never cached, so a revocation holds at once on every replica.
Failures raise :class:`hub.api.grpc_errors.Unauthenticated` without saying which
part was wrong beyond "missing" versus "not recognised", and never echo the value.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from hub.api import grpc_errors, limits
from hub.security import secrets
from hub.store import db as store_db
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
    """Checks callers of the spoke and admin services.

    A recognised cluster credential is remembered (by its hash) for ``cache_seconds``, so a
    spoke's steady stream of calls costs no database read each; whatever revokes a cluster
    credential (``convoy cluster remove``, a completed rotation) calls :meth:`forget`.

    The first call with the new credential of a rotation makes it the cluster's only credential and
    calls ``on_rotated(cluster)``, which ends the streams opened with the old one.

    Unknown credentials cost no database read either, beyond a few: an unrecognised one is
    remembered (by its hash) for ``unknown_seconds``, and a peer whose lookups keep failing has
    its further lookups refused before the database (a token bucket per peer of
    ``failure_burst`` failures, refilled at ``failure_rate`` per second). Spokes with valid
    credentials never fail a lookup, so the bucket never bites them, however many share an address.
    """

    def __init__(self, *, db: store_db.Database, admin_credential: str, cache_seconds: float = 30.0,
                 cache_size: int = 100_000, clock: Callable[[], float] = time.monotonic,
                 rotation_grace: dt.timedelta = store.DEFAULT_ROTATION_GRACE,
                 on_rotated: Callable[[str], object] | None = None,
                 unknown_seconds: float = 10.0, unknown_size: int = 10_000, failure_rate: float = 1.0,
                 failure_burst: int = 20) -> None:
        self.db = db
        self._admin_hash = secrets.hash_secret(admin_credential)
        self.cache_seconds = cache_seconds
        self.cache_size = cache_size
        self._clock = clock
        self._known: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self.rotation_grace = rotation_grace
        self.on_rotated = on_rotated
        self.unknown_seconds = unknown_seconds
        self.unknown_size = unknown_size
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._admin_unknown: OrderedDict[str, float] = OrderedDict()   #: credentials that are no admin's
        self._failures = limits.RateLimiter(rate=failure_rate, burst=failure_burst, clock=clock)
        self.lookups = 0   #: database lookups of cluster credentials (tests and metrics read it)

    async def cluster(self, metadata: Iterable[Any] | None, *, method: str, peer: str | None = None) -> str:
        """The name of the cluster whose credential the call carries (``peer``: the caller's host, for
        the per-peer bound on failed lookups)."""
        credential = bearer_token(metadata)
        if credential is None:
            raise grpc_errors.Unauthenticated(f"{method}: no `authorization: Bearer <credential>` metadata; "
                                         "a spoke must register first")
        key = secrets.hash_secret(credential)
        known = self._known.get(key)
        now = self._clock()
        if known is not None and known[1] > now:
            return known[0]
        unknown_until = self._unknown.get(key)
        if unknown_until is not None and unknown_until > now:
            raise _unrecognised(method)
        if peer is not None and not self._failures.peek(peer):
            raise limits.RateLimited(f"{method} from {peer}: too many unrecognised credentials "
                                     f"(more than {self._failures.burst}, {self._failures.rate:g}/s sustained); "
                                     "retry later")
        self.lookups += 1
        match = await asyncio.to_thread(self._lookup, credential)
        if match is None:
            self._remember_unknown(self._unknown, key)
            if peer is not None:
                self._failures.allow(peer)
            raise _unrecognised(method)
        cluster = match.cluster
        if match.rotated:
            # The spoke has its new credential: from now on the old one is refused, cached or not.
            promoted = await asyncio.to_thread(self._promote, cluster.name, key)
            if promoted:
                self.forget(cluster.name)
                if self.on_rotated is not None:
                    self.on_rotated(cluster.name)
        ttl = self.cache_seconds
        if match.expires is not None:  # superseded by a rotation: never remembered past its grace period
            ttl = min(ttl, (match.expires - dt.datetime.now(dt.UTC)).total_seconds())
        self._known[key] = (cluster.name, self._clock() + ttl)
        self._known.move_to_end(key)
        while len(self._known) > self.cache_size:
            self._known.popitem(last=False)
        return cluster.name

    def forget(self, cluster: str) -> None:
        """Drop what is remembered about ``cluster``'s credential (for when credentials get revoked)."""
        for key in [k for k, (name, _) in self._known.items() if name == cluster]:
            del self._known[key]

    def _lookup(self, credential: str) -> store.CredentialMatch | None:
        # Read-only: on SQLite a write session would queue behind every writer.
        with self.db.session(write=False) as session:
            return store.find_credential(session, credential, grace=self.rotation_grace)

    def _promote(self, cluster: str, credential_hash: str) -> bool:
        with self.db.session() as session:
            return store.promote_credential(session, cluster, credential_hash)

    async def admin(self, metadata: Iterable[Any] | None, *, method: str, peer: str | None = None,
                    charge: bool = True) -> str:
        """The name of the admin credential the call carries; anything else is refused.

        A credential that is neither the first-start one nor a named one costs one database read at
        most: it is remembered as no admin credential for ``unknown_seconds``, and ``peer``'s failed
        lookups drain the same per-peer bucket as cluster credentials (not with ``charge=False``: the
        caller tries the credential as a cluster's next, which charges a failure). Valid named
        credentials are never cached, so a revocation holds at once.
        """
        credential = bearer_token(metadata)
        if credential is None:
            raise grpc_errors.Unauthenticated(f"{method}: no `authorization: Bearer <admin credential>` metadata")
        if secrets.secrets_match(credential, self._admin_hash):
            return store.BOOTSTRAP_ADMIN
        key = secrets.hash_secret(credential)
        unknown_until = self._admin_unknown.get(key)
        if unknown_until is not None and unknown_until > self._clock():
            raise _admin_unrecognised(method)
        if peer is not None and not self._failures.peek(peer):
            raise limits.RateLimited(f"{method} from {peer}: too many unrecognised credentials "
                                     f"(more than {self._failures.burst}, {self._failures.rate:g}/s sustained); "
                                     "retry later")
        name = await asyncio.to_thread(self._admin_lookup, credential)
        if name is None:
            self._remember_unknown(self._admin_unknown, key)
            if peer is not None and charge:
                self._failures.allow(peer)
            raise _admin_unrecognised(method)
        return name

    def _remember_unknown(self, unknown: OrderedDict[str, float], key: str) -> None:
        unknown[key] = self._clock() + self.unknown_seconds
        unknown.move_to_end(key)
        while len(unknown) > self.unknown_size:
            unknown.popitem(last=False)

    def _admin_lookup(self, credential: str) -> str | None:
        with self.db.session(write=False) as session:
            return store.admin_credential_name(session, credential)


def _admin_unrecognised(method: str) -> grpc_errors.Unauthenticated:
    return grpc_errors.Unauthenticated(f"{method}: the admin credential is not recognised (revoked, or issued by "
                                       "another hub)")


def _unrecognised(method: str) -> grpc_errors.Unauthenticated:
    return grpc_errors.Unauthenticated(f"{method}: the cluster credential is not recognised (revoked, rotated, "
                                  "or issued by another hub); re-register the spoke with a new token")
