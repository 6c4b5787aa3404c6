"""Bundles: the immutable, content-addressed, signed desired state of one cluster.

A bundle is a plain mapping::

    {"apiVersion": "convoy.dev/v1alpha1", "kind": "Bundle",
     "apps": [{"name": "web", "namespace": "shop", "dependsOn": ["crds"],
               "driftPolicy": "correct" | None,
               "ignoreDifferences": [{"kind": ..., "jsonPointers": [...]}]},  # only when set (protos.ignoring)
              ...],                                        # in dependsOn order
     "objects": [<manifest>, ...]}                         # in apply order

Every object carries the ``convoy.dev/app`` label naming its app. The canonical
bytes are compact JSON with sorted keys; the digest is ``sha256:<hex>`` of those
bytes, so equal objects give equal digests across processes and hash seeds. The
hub signs :func:`signing_payload` of the digest with Ed25519; spokes verify with
the public key they received at registration.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

__all__ = [
    "ANNOTATION_FORCE",
    "ANNOTATION_PRUNE",
    "ANNOTATION_SEALED_MAC_WALK",
    "ANNOTATION_SEALED_SOURCE",
    "ANNOTATION_SSA",
    "API_VERSION",
    "LABEL_APP",
    "LABEL_CLUSTER",
    "LABEL_MANAGED_BY",
    "MANAGED_BY_VALUE",
    "BundleError",
    "BundleIntegrityError",
    "compress",
    "decode",
    "decompress",
    "digest_of",
    "encode",
    "sign",
    "signing_payload",
    "verify_signature",
]

API_VERSION = "convoy.dev/v1alpha1"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "convoy"
LABEL_APP = "convoy.dev/app"
#: Stamped by the spoke at apply time (not in the bundle, so clusters can share digests).
LABEL_CLUSTER = "convoy.dev/cluster"
ANNOTATION_SSA = "convoy.dev/ssa"          # IfNotPresent | Ignore
ANNOTATION_FORCE = "convoy.dev/force"      # "true": delete and recreate on an immutable-field change
ANNOTATION_PRUNE = "convoy.dev/prune"      # "disabled": never delete
#: Set by the hub on a sealed object: the repository file it was sealed in, so the spoke's refusal can name it.
ANNOTATION_SEALED_SOURCE = "convoy.dev/sealed-source"
#: Set by the hub on a sealed object: the order (and, for a file whose MAC covers every value, the unencrypted
#: values as written) in which the spoke recomputes the SOPS MAC; bundles are sorted JSON, the file was not.
ANNOTATION_SEALED_MAC_WALK = "convoy.dev/sealed-mac-walk"

_SIGNING_CONTEXT = b"convoy.dev/bundle-signature/v1\n"


class BundleError(Exception):
    """A bundle that cannot be used."""


class BundleIntegrityError(BundleError):
    """The bytes do not match the digest, or the signature does not verify."""


def encode(bundle: Mapping[str, Any]) -> bytes:
    """Canonical bytes of a bundle: compact, key-sorted, UTF-8 JSON."""
    return json.dumps(
        bundle, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def decode(data: bytes, *, expected_digest: str) -> dict[str, Any]:
    """Parse canonical bytes after checking them against the digest they were fetched by."""
    actual = digest_of(data)
    if actual != expected_digest:
        raise BundleIntegrityError(f"bundle digest mismatch: expected {expected_digest}, got {actual}")
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError) as exc:  # RecursionError: arrays nested ~1,000 deep
        raise BundleError(f"bundle {expected_digest} is not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict) or not isinstance(parsed.get("objects"), list):
        raise BundleError(f"bundle {expected_digest} has no objects list")
    return parsed


def compress(data: bytes) -> bytes:
    return zlib.compress(data, 6)


def decompress(data: bytes, *, max_size: int) -> bytes:
    """Inflate at most ``max_size`` bytes, so a crafted stream cannot exhaust memory."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, max_size + 1)
        if len(out) > max_size or inflater.unconsumed_tail:
            raise BundleError(f"bundle inflates past the {max_size}-byte limit")
        out += inflater.flush()
    except zlib.error as exc:
        raise BundleError(f"bundle bytes are not a valid zlib stream ({exc})") from exc
    if len(out) > max_size:
        raise BundleError(f"bundle inflates past the {max_size}-byte limit")
    return out


def signing_payload(digest: str) -> bytes:
    return _SIGNING_CONTEXT + digest.encode("ascii")


def sign(private_key: ed25519.Ed25519PrivateKey, digest: str) -> bytes:
    return private_key.sign(signing_payload(digest))


def verify_signature(public_key: bytes, digest: str, signature: bytes) -> None:
    """Raise :class:`BundleIntegrityError` unless ``signature`` is the hub's over ``digest``."""
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(public_key).verify(signature, signing_payload(digest))
    except (InvalidSignature, ValueError) as exc:
        raise BundleIntegrityError(f"bundle {digest}: signature does not verify with the hub's key") from exc
