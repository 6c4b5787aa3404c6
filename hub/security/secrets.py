"""Cluster credentials, bootstrap tokens and join tokens.

Every secret the hub hands out is 256 bits from :mod:`secrets` and is stored only as
``sha256:<hex>`` of its text (:func:`hash_secret`). A fast hash is right here, unlike for passwords:
the secrets are random and high-entropy, so there is nothing for a slow KDF to protect against
(guessing a 256-bit value is hopeless at any hash rate), and a fast hash keeps authentication of
thousands of spokes cheap. Stored and presented hashes are compared with :func:`hmac.compare_digest`.

Bootstrap tokens (``<id>.<secret>``) and join tokens (``convoy-join.v1.<payload>``) are minted here;
their format is defined, parsed and checked in :mod:`protos.jointoken`, which the spoke uses too, and
its names are re-exported here for the hub's callers.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from protos.jointoken import (
    JOIN_PREFIX,
    JoinToken,
    JoinTokenError,
    make_join_token,
    parse_join_token,
    split_bootstrap_token,
)

__all__ = [
    "JOIN_PREFIX",
    "JoinToken",
    "JoinTokenError",
    "hash_secret",
    "make_join_token",
    "new_bootstrap_token",
    "new_credential",
    "parse_join_token",
    "secrets_match",
    "split_bootstrap_token",
]


def new_credential() -> str:
    """A cluster or admin credential: 256 random bits, URL-safe text."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """How a secret is stored: ``sha256:<hex>`` (see the module docstring for why not a slow KDF)."""
    return "sha256:" + hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secrets_match(secret: str, stored_hash: str) -> bool:
    """Whether ``secret`` hashes to ``stored_hash``, in time independent of where they differ."""
    return hmac.compare_digest(hash_secret(secret).encode("ascii"), stored_hash.encode("ascii", "replace"))


def new_bootstrap_token() -> tuple[str, str]:
    """``(id, token)`` where ``token`` is ``"<id>.<secret>"``; store ``hash_secret(secret)`` only."""
    token_id = secrets.token_hex(6)
    return token_id, f"{token_id}.{secrets.token_urlsafe(32)}"
