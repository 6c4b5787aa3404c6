"""The hub's Ed25519 bundle-signing key (``<data_dir>/signing.key``, PKCS#8 PEM, owner-only).

Made at first start and kept: spokes received its public half at registration, so replacing it
would make every spoke refuse every new bundle until it registers again.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from hub.security import files

__all__ = ["SigningKeyError", "load_or_create_signing_key", "public_key_bytes", "signing_key_path"]


class SigningKeyError(Exception):
    """The signing key file exists but is not an Ed25519 private key."""


def signing_key_path(data_dir: Path) -> Path:
    return data_dir / "signing.key"


def _new_key_pem() -> bytes:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def load_or_create_signing_key(data_dir: Path) -> ed25519.Ed25519PrivateKey:
    path = signing_key_path(data_dir)
    pem, _ = files.write_private_once(path, _new_key_pem)
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except ValueError as exc:
        raise SigningKeyError(f"{path}: not a PEM private key") from exc
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise SigningKeyError(f"{path}: the bundle signing key must be Ed25519")
    return key


def public_key_bytes(key: ed25519.Ed25519PrivateKey) -> bytes:
    """The raw 32-byte public key, as ``protos.bundle.verify_signature`` and RegisterResponse expect."""
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
