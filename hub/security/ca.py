"""The hub's own certificate authority, made when no TLS material is given (DESIGN decision 8).

Files under ``<data_dir>/tls/`` (all owner-only)::

    ca.key  ca.crt          the CA (ECDSA P-256, 10 years), made once and reused
    server.key server.crt   the serving certificate (1 year), re-issued when it is missing, signed by
                            another CA, expiring within 30 days, or not covering the requested hosts

Spokes pin the CA by :func:`fingerprint_of` (``sha256:<hex of the DER certificate>``), the way
``kubeadm join --discovery-token-ca-cert-hash`` does, and receive the CA PEM at registration.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hub.security import files
from protos import jointoken

__all__ = [
    "CertificateAuthority",
    "CertificateError",
    "ServerCertificate",
    "ensure_ca",
    "ensure_server_cert",
    "fingerprint_of",
    "tls_dir",
]

CA_VALIDITY = dt.timedelta(days=3650)
SERVER_VALIDITY = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=30)
# Clocks of spokes may lag the hub's a little; a certificate valid from "now" would be refused there.
BACKDATE = dt.timedelta(minutes=5)


class CertificateError(Exception):
    """TLS material that cannot be made, read or used."""


def tls_dir(data_dir: Path) -> Path:
    return data_dir / "tls"


def fingerprint_of(cert_pem: bytes) -> str:
    """``sha256:<hex>`` of the certificate's DER encoding (the first certificate in the PEM)."""
    try:
        return jointoken.fingerprint_of(cert_pem)
    except ValueError as exc:
        raise CertificateError(str(exc)) from exc


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _san_entries(hosts: Sequence[str]) -> list[x509.GeneralName]:
    entries: list[x509.GeneralName] = []
    for host in dict.fromkeys(h.strip() for h in hosts if h.strip()):
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(host.strip("[]"))))
        except ValueError:
            entries.append(x509.DNSName(host))
    return entries


@dataclasses.dataclass(frozen=True)
class ServerCertificate:
    cert_pem: bytes
    key_pem: bytes = dataclasses.field(repr=False)
    cert_path: Path
    key_path: Path


@dataclasses.dataclass(frozen=True)
class CertificateAuthority:
    """A CA certificate and its private key (never shown by ``repr``)."""

    cert_pem: bytes
    key_pem: bytes = dataclasses.field(repr=False)
    cert_path: Path | None = None

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    def _private_key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CertificateError("the CA key is not an ECDSA key")
        return key

    def fingerprint(self) -> str:
        return fingerprint_of(self.cert_pem)

    def issue_server_cert(self, *, hosts: Sequence[str],
                          validity: dt.timedelta = SERVER_VALIDITY) -> tuple[bytes, bytes]:
        """A serving certificate for ``hosts`` (DNS names and IP addresses): ``(cert_pem, key_pem)``."""
        sans = _san_entries(hosts)
        if not sans:
            raise CertificateError("a server certificate needs at least one host name or address")
        key = _new_key()
        ca_cert = self.certificate
        now = _now()
        first = next((str(h) for h in hosts if h.strip()), "convoy-hub")
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, first[:64])]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + validity)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, content_commitment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._private_key().public_key()),
                           critical=False)
            .sign(self._private_key(), hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)

    def signed(self, cert_pem: bytes) -> bool:
        """Whether ``cert_pem`` was issued by this CA (signature checked)."""
        try:
            x509.load_pem_x509_certificate(cert_pem).verify_directly_issued_by(self.certificate)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True


def _make_ca_cert(key_pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Convoy"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "Convoy hub CA")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, content_commitment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def ensure_ca(data_dir: Path) -> CertificateAuthority:
    """The hub's CA: made at the first call (owner-only files), read back on every later one."""
    directory = tls_dir(data_dir)
    key_pem, _ = files.write_private_once(directory / "ca.key", lambda: _key_pem(_new_key()))
    cert_pem, _ = files.write_private_once(directory / "ca.crt", lambda: _make_ca_cert(key_pem))
    ca = CertificateAuthority(cert_pem=cert_pem, key_pem=key_pem, cert_path=directory / "ca.crt")
    try:
        public = ca._private_key().public_key()
        if ca.certificate.public_key() != public:
            raise CertificateError(f"{directory}: ca.crt does not belong to ca.key; remove both to make a new CA "
                                   "(registered spokes will then need to re-register)")
    except ValueError as exc:
        raise CertificateError(f"{directory}: ca.key or ca.crt is not valid PEM") from exc
    return ca


def _covers(cert: x509.Certificate, hosts: Sequence[str]) -> bool:
    try:
        present = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return False
    return all(entry in present for entry in _san_entries(hosts))


def ensure_server_cert(data_dir: Path, ca: CertificateAuthority, *, hosts: Sequence[str]) -> ServerCertificate:
    """The serving certificate in the data directory, issued again only when it no longer fits."""
    directory = tls_dir(data_dir)
    cert_path, key_path = directory / "server.crt", directory / "server.key"
    if cert_path.exists() and key_path.exists():
        cert_pem, key_pem = files.read_private(cert_path), files.read_private(key_path)
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
            key = serialization.load_pem_private_key(key_pem, password=None)
            usable = (ca.signed(cert_pem) and cert.public_key() == key.public_key()
                      and cert.not_valid_after_utc - RENEW_BEFORE > _now() and _covers(cert, hosts))
        except ValueError:
            usable = False
        if usable:
            return ServerCertificate(cert_pem=cert_pem, key_pem=key_pem, cert_path=cert_path, key_path=key_path)
    cert_pem, key_pem = ca.issue_server_cert(hosts=hosts)
    # Key first: a reader that sees the new certificate with the old key re-issues on its next start.
    files.write_private(key_path, key_pem)
    files.write_private(cert_path, cert_pem)
    return ServerCertificate(cert_pem=cert_pem, key_pem=key_pem, cert_path=cert_path, key_path=key_path)
