"""The join token and the CA fingerprint it pins: the one definition both the hub and the spoke use.

The hub mints the token (``convoy token create``); the spoke reads it (``convoy spoke install
--token``, ``convoy spoke run``). Both sides parse and check it here, so they cannot drift apart.

Bootstrap token: ``<id>.<secret>`` — ``id`` is 12 lowercase hex characters (public, used to find the
row, shown by ``convoy token list``); ``secret`` is 43 URL-safe base64 characters (never stored).

Join token::

    convoy-join.v1.<payload>

``payload`` is unpadded URL-safe base64 of compact UTF-8 JSON
``{"token": "<id>.<secret>", "ca": "sha256:<hex>" | "", "hub": "host:port" | null}``:
the bootstrap token, the SHA-256 fingerprint of the hub CA certificate (DER, :func:`fingerprint_of`)
that the spoke must see at first contact (empty when the hub runs ``--insecure``), and optionally the
hub's address. The format is versioned by the prefix.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import re
from typing import Any

__all__ = [
    "JOIN_PREFIX",
    "JoinToken",
    "JoinTokenError",
    "fingerprint_of",
    "is_join_token",
    "make_join_token",
    "parse_join_token",
    "split_bootstrap_token",
]

JOIN_PREFIX = "convoy-join.v1."
# Any version: a `convoy-join.v2.` token is a join token this build cannot read, not a bare token.
_ANY_JOIN_PREFIX = "convoy-join"
_TOKEN_RE = re.compile(r"([0-9a-f]{12})\.([A-Za-z0-9_-]{43})")
_FINGERPRINT_RE = re.compile(r"sha256:[0-9a-f]{64}")


class JoinTokenError(ValueError):
    """A join or bootstrap token that cannot be parsed; the message never repeats the secret."""


@dataclasses.dataclass(frozen=True)
class JoinToken:
    token: str = dataclasses.field(repr=False)
    ca_fingerprint: str                         #: "" when the hub is plaintext
    hub_address: str | None = None


def fingerprint_of(cert_pem: bytes) -> str:
    """``sha256:<hex>`` of the DER encoding of the first certificate in ``cert_pem``.

    :class:`ValueError` if ``cert_pem`` holds no PEM certificate.
    """
    # Imported here: x509 costs ~7 MiB, and a spoke needs it only at first contact.
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise ValueError("not a PEM certificate; cannot compute its fingerprint") from exc
    return "sha256:" + hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def split_bootstrap_token(token: str) -> tuple[str, str]:
    """``(id, secret)`` of a bootstrap token; :class:`JoinTokenError` if it is not of that shape."""
    match = _TOKEN_RE.fullmatch(token.strip())
    if match is None:
        raise JoinTokenError("bootstrap token is malformed (expected <12 hex id>.<43-character secret>)")
    return match.group(1), match.group(2)


def is_join_token(text: str) -> bool:
    """Whether ``text`` is meant as a join token (of any version) rather than a bare bootstrap token."""
    return text.strip().startswith(_ANY_JOIN_PREFIX)


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
        payload: Any = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
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
