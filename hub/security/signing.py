"""The hub's Ed25519 bundle-signing key (``<data_dir>/signing.key``, PKCS#8 PEM, owner-only).

Made at first start and kept: spokes received its public half at registration, so replacing it
would make every spoke refuse every new bundle until it registers again.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from hub.security import files

__all__ = [
    "SigningKeyError",
    "load_or_create_signing_key",
    "load_public_key",
    "public_key_bytes",
    "public_key_path",
    "signing_key_path",
    "write_public_key",
]


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


def public_key_path(data_dir: Path) -> Path:
    return data_dir / "signing.pub"


def write_public_key(data_dir: Path, key: ed25519.Ed25519PrivateKey) -> Path:
    """Write the public half as PEM (``<data_dir>/signing.pub``), what ``convoy bundle verify --public-key``
    reads to check bundles offline; returns its path."""
    path = public_key_path(data_dir)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    if not path.exists() or path.read_bytes() != pem:
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pem)
        tmp.replace(path)
    return path


def load_public_key(path: Path) -> bytes:
    """The raw 32-byte Ed25519 public key in ``path``: PEM (``signing.pub``) or the 32 raw bytes
    (RegisterResponse.bundle_signing_key); :class:`SigningKeyError` naming the file otherwise."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot read the hub's public key ({exc.strerror})") from None
    if len(data) == 32:
        return data
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise SigningKeyError(f"{path}: neither a PEM public key nor 32 raw Ed25519 key bytes") from exc
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise SigningKeyError(f"{path}: the hub's bundle key must be Ed25519")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
