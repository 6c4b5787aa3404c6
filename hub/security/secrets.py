"""Cluster credentials, bootstrap tokens and join tokens.

Every secret the hub hands out is 256 bits from :mod:`secrets` and is stored only as
``sha256:<hex>`` of its text (:func:`hash_secret`). A fast hash is right here, unlike for passwords:
the secrets are random and high-entropy, so there is nothing for a slow KDF to protect against
(guessing a 256-bit value is hopeless at any hash rate), and a fast hash keeps authentication of
thousands of spokes cheap. Stored and presented hashes are compared with :func:`hmac.compare_digest`.

Bootstrap token: ``<id>.<secret>`` — ``id`` is 12 lowercase hex characters (public, used to find the
row, shown by ``convoy token list``); ``secret`` is 43 URL-safe base64 characters (never stored).

Join token (what ``convoy token create`` prints for ``convoy spoke install --token``)::

    convoy-join.v1.<payload>

``payload`` is unpadded URL-safe base64 of compact UTF-8 JSON
``{"token": "<id>.<secret>", "ca": "sha256:<hex>" | "", "hub": "host:port" | null}``:
the bootstrap token, the SHA-256 fingerprint of the hub CA certificate (DER) that the spoke must see
at first contact (empty when the hub runs ``--insecure``), and optionally the hub's address. The
spoke parses this format itself (it does not import the hub); the format is versioned by the prefix.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import re
import secrets

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

JOIN_PREFIX = "convoy-join.v1."
_TOKEN_RE = re.compile(r"([0-9a-f]{12})\.([A-Za-z0-9_-]{43})")
_FINGERPRINT_RE = re.compile(r"sha256:[0-9a-f]{64}")


class JoinTokenError(ValueError):
    """A join or bootstrap token that cannot be parsed; the message never repeats the secret."""


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


def split_bootstrap_token(token: str) -> tuple[str, str]:
    """``(id, secret)`` of a bootstrap token; :class:`JoinTokenError` if it is not of that shape."""
    match = _TOKEN_RE.fullmatch(token.strip())
    if match is None:
        raise JoinTokenError("bootstrap token is malformed (expected <12 hex id>.<43-character secret>)")
    return match.group(1), match.group(2)


@dataclasses.dataclass(frozen=True)
class JoinToken:
    token: str = dataclasses.field(repr=False)
    ca_fingerprint: str
    hub_address: str | None = None


def make_join_token(token: str, ca_fingerprint: str, hub_address: str | None = None) -> str:
    split_bootstrap_token(token)
    if ca_fingerprint and not _FINGERPRINT_RE.fullmatch(ca_fingerprint):
        raise JoinTokenError(f"CA fingerprint {ca_fingerprint!r} is not sha256:<64 hex>")
    payload = json.dumps({"token": token, "ca": ca_fingerprint, "hub": hub_address or None},
                         separators=(",", ":"), sort_keys=True).encode("utf-8")
    return JOIN_PREFIX + base64.urlsafe_b64encode(payload).decode("ascii").rstrip("=")


def parse_join_token(join: str) -> JoinToken:
    join = join.strip()
    if not join.startswith(JOIN_PREFIX):
        raise JoinTokenError(f"join token must start with {JOIN_PREFIX!r}")
    encoded = join[len(JOIN_PREFIX):]
    try:
        payload = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise JoinTokenError("join token payload is not base64url-encoded JSON") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("token"), str):
        raise JoinTokenError("join token payload has no bootstrap token")
    token, ca, hub = payload["token"], payload.get("ca") or "", payload.get("hub")
    split_bootstrap_token(token)
    if not isinstance(ca, str) or (ca and not _FINGERPRINT_RE.fullmatch(ca)):
        raise JoinTokenError("join token carries a malformed CA fingerprint (expected sha256:<64 hex>)")
    if hub is not None and (not isinstance(hub, str) or not hub):
        raise JoinTokenError("join token carries a malformed hub address")
    return JoinToken(token=token, ca_fingerprint=ca, hub_address=hub)
