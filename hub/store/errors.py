"""Typed store exceptions. SQLAlchemy errors never leave :mod:`hub.store`; they become these.

::

    StoreError                      the database failed or refused (cause chained)
    ├── StoreUnavailable            cannot connect / connection lost / locked too long
    ├── MigrationError              the schema could not be brought up to date
    ├── TokenRefused                a bootstrap token that cannot be used (reason: TokenRefusal)
    ├── TokenNotForName             a valid bootstrap token whose binding does not cover the name
    ├── DeclaredNamesUnknown        an unbound token, before the hub knows which names Git declares
    ├── ClusterExists               a cluster name already registered
    └── UnknownCluster              no cluster of that name
"""

from __future__ import annotations

import enum

__all__ = [
    "ClusterExists",
    "DeclaredNamesUnknown",
    "MigrationError",
    "StoreError",
    "StoreUnavailable",
    "TokenNotForName",
    "TokenRefusal",
    "TokenRefused",
    "UnknownCluster",
]


class StoreError(Exception):
    """The hub's database failed or refused an operation."""


class StoreUnavailable(StoreError):
    """The database cannot be reached, or stayed locked past the busy timeout."""


class MigrationError(StoreError):
    """The schema could not be migrated to the version this hub needs."""


class TokenRefusal(enum.StrEnum):
    """Why a bootstrap token was refused (the order is the order of the checks)."""

    MALFORMED = "malformed"    #: not of the form <id>.<secret>
    UNKNOWN = "unknown"        #: no token with this id, or the secret does not match
    REVOKED = "revoked"        #: an administrator revoked it
    EXPIRED = "expired"        #: past its expiry time
    USED_UP = "used up"        #: every use has been spent


class TokenRefused(StoreError):
    def __init__(self, token_id: str | None, reason: TokenRefusal) -> None:
        who = f"bootstrap token {token_id}" if token_id else "bootstrap token"
        advice = ("" if reason is TokenRefusal.MALFORMED
                  else "; ask an administrator for a new one (convoy token create)")
        super().__init__(f"{who}: refused ({reason.value}){advice}")
        self.token_id = token_id
        self.reason = reason


class TokenNotForName(StoreError):
    """A valid bootstrap token that may not register this name (its binding, or a name declared in Git)."""

    def __init__(self, token_id: str, name: str, why: str) -> None:
        super().__init__(f"cluster {name}: bootstrap token {token_id} {why}")
        self.token_id = token_id
        self.name = name


class DeclaredNamesUnknown(StoreUnavailable):
    """An unbound token cannot be checked yet: the hub has not read the fleet repository."""

    def __init__(self, name: str) -> None:
        super().__init__(f"cluster {name}: the hub has not read the fleet repository yet, so it cannot tell "
                         "whether the name is declared there; retry shortly (or use a token bound to the name)")
        self.name = name


class ClusterExists(StoreError):
    def __init__(self, name: str) -> None:
        super().__init__(f"cluster {name}: the name is already registered with another credential; "
                         "choose another name or remove the old registration")
        self.name = name


class UnknownCluster(StoreError):
    def __init__(self, name: str) -> None:
        super().__init__(f"cluster {name}: not registered")
        self.name = name
