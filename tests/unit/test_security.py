"""Security primitives: CA, serving certificate, signing key, secrets, join tokens, admin files."""

from __future__ import annotations

import datetime as dt
import hmac
import ipaddress
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from hub import cliconfig
from hub.security import admin_credential, ca, signing
from hub.security import secrets as hub_secrets
from protos import bundle


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -------------------------------------------------------------------------------------------- CA


def test_ca_is_made_once_with_private_files_and_reused(tmp_path: Path) -> None:
    first = ca.ensure_ca(tmp_path)
    key_file, cert_file = tmp_path / "tls" / "ca.key", tmp_path / "tls" / "ca.crt"
    assert mode(key_file) == 0o600 and mode(cert_file) == 0o600
    assert mode(tmp_path / "tls") == 0o700
    second = ca.ensure_ca(tmp_path)
    assert second.cert_pem == first.cert_pem and second.key_pem == first.key_pem
    certificate = first.certificate
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert "key_pem" not in repr(first) and "PRIVATE" not in repr(first)


def test_loosened_key_file_is_tightened(tmp_path: Path) -> None:
    ca.ensure_ca(tmp_path)
    key_file = tmp_path / "tls" / "ca.key"
    key_file.chmod(0o644)
    ca.ensure_ca(tmp_path)
    assert mode(key_file) == 0o600


def test_fingerprint_is_sha256_of_der(tmp_path: Path) -> None:
    authority = ca.ensure_ca(tmp_path)
    fingerprint = authority.fingerprint()
    expected = authority.certificate.fingerprint(hashes.SHA256()).hex()
    assert fingerprint == "sha256:" + expected == ca.fingerprint_of(authority.cert_pem)
    other = ca.ensure_ca(tmp_path / "other")
    assert other.fingerprint() != fingerprint
    with pytest.raises(ca.CertificateError):
        ca.fingerprint_of(b"garbage")


def test_server_cert_verifies_against_the_ca_and_covers_hosts(tmp_path: Path) -> None:
    authority = ca.ensure_ca(tmp_path)
    cert_pem, key_pem = authority.issue_server_cert(hosts=["localhost", "127.0.0.1", "::1", "hub.example"])
    cert = x509.load_pem_x509_certificate(cert_pem)
    cert.verify_directly_issued_by(authority.certificate)  # raises if the signature does not verify
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost", "hub.example"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"),
                                                        ipaddress.ip_address("::1")]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in cert.extensions.get_extension_for_class(
        x509.ExtendedKeyUsage).value
    assert cert.not_valid_before_utc < dt.datetime.now(dt.UTC) < cert.not_valid_after_utc
    assert b"PRIVATE KEY" in key_pem
    other = ca.ensure_ca(tmp_path / "other")
    assert authority.signed(cert_pem) and not other.signed(cert_pem)


def test_server_cert_is_reused_until_hosts_change(tmp_path: Path) -> None:
    authority = ca.ensure_ca(tmp_path)
    first = ca.ensure_server_cert(tmp_path, authority, hosts=["localhost", "127.0.0.1"])
    assert mode(first.key_path) == 0o600
    again = ca.ensure_server_cert(tmp_path, authority, hosts=["127.0.0.1"])
    assert again.cert_pem == first.cert_pem
    moved = ca.ensure_server_cert(tmp_path, authority, hosts=["localhost", "hub.internal"])
    assert moved.cert_pem != first.cert_pem
    assert authority.signed(moved.cert_pem)


def test_server_cert_serves_real_tls(tmp_path: Path) -> None:
    authority = ca.ensure_ca(tmp_path)
    server_cert = ca.ensure_server_cert(tmp_path, authority, hosts=["localhost", "127.0.0.1"])
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(server_cert.cert_path, server_cert.key_path)
    client_ctx = ssl.create_default_context(cadata=authority.cert_pem.decode())
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"hello")

        thread = threading.Thread(target=serve)
        thread.start()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.recv(5) == b"hello"
        thread.join(timeout=5)


# -------------------------------------------------------------------------------------------- signing


def test_signing_key_is_made_once_and_signs_verifiable_bundles(tmp_path: Path) -> None:
    key = signing.load_or_create_signing_key(tmp_path)
    path = signing.signing_key_path(tmp_path)
    assert mode(path) == 0o600
    again = signing.load_or_create_signing_key(tmp_path)
    public = signing.public_key_bytes(key)
    assert signing.public_key_bytes(again) == public and len(public) == 32
    digest = bundle.digest_of(b"{}")
    bundle.verify_signature(public, digest, bundle.sign(again, digest))
    other = signing.public_key_bytes(signing.load_or_create_signing_key(tmp_path / "other"))
    with pytest.raises(bundle.BundleIntegrityError):
        bundle.verify_signature(other, digest, bundle.sign(key, digest))


def test_signing_key_of_wrong_type_is_refused(tmp_path: Path) -> None:
    authority = ca.ensure_ca(tmp_path)
    path = signing.signing_key_path(tmp_path)
    path.write_bytes(authority.key_pem)
    path.chmod(0o600)
    with pytest.raises(signing.SigningKeyError, match="Ed25519"):
        signing.load_or_create_signing_key(tmp_path)


# -------------------------------------------------------------------------------------------- secrets


def test_credentials_are_long_random_and_url_safe() -> None:
    credentials = {hub_secrets.new_credential() for _ in range(100)}
    assert len(credentials) == 100
    for credential in credentials:
        assert len(credential) >= 43  # 32 bytes of entropy in base64url
        assert set(credential) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_hash_and_match(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = hub_secrets.new_credential()
    stored = hub_secrets.hash_secret(secret)
    assert stored.startswith("sha256:") and secret not in stored
    assert hub_secrets.secrets_match(secret, stored)
    assert not hub_secrets.secrets_match(secret + "x", stored)
    assert not hub_secrets.secrets_match(secret, "garbage-ünicode")
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert hub_secrets.secrets_match(secret, stored)
    assert calls == [(stored.encode(), stored.encode())]  # the comparison is the constant-time one


def test_bootstrap_token_shape() -> None:
    token_id, token = hub_secrets.new_bootstrap_token()
    assert token.startswith(token_id + ".")
    assert hub_secrets.split_bootstrap_token(token) == (token_id, token.split(".", 1)[1])
    for bad in ("", "abc", token_id + ".short", "ZZZZZZZZZZZZ." + "a" * 43):
        with pytest.raises(hub_secrets.JoinTokenError):
            hub_secrets.split_bootstrap_token(bad)


def test_join_token_round_trip() -> None:
    _, token = hub_secrets.new_bootstrap_token()
    fingerprint = "sha256:" + "ab" * 32
    join = hub_secrets.make_join_token(token, fingerprint, "hub.example:7443")
    assert join.startswith("convoy-join.v1.") and " " not in join and "=" not in join
    parsed = hub_secrets.parse_join_token(join)
    assert parsed == hub_secrets.JoinToken(token=token, ca_fingerprint=fingerprint, hub_address="hub.example:7443")
    assert token not in repr(parsed)
    insecure = hub_secrets.parse_join_token(hub_secrets.make_join_token(token, "", None))
    assert (insecure.ca_fingerprint, insecure.hub_address) == ("", None)


@pytest.mark.parametrize("bad", ["", "convoy-join.v2.abc", "convoy-join.v1.!!!", "convoy-join.v1.e30",
                                 "convoy-join.v1.eyJ0b2tlbiI6ICJ4In0"])
def test_join_token_garbage_is_refused(bad: str) -> None:
    with pytest.raises(hub_secrets.JoinTokenError):
        hub_secrets.parse_join_token(bad)


def test_join_token_refuses_bad_fingerprint() -> None:
    _, token = hub_secrets.new_bootstrap_token()
    with pytest.raises(hub_secrets.JoinTokenError, match="fingerprint"):
        hub_secrets.make_join_token(token, "md5:abc", None)


# -------------------------------------------------------------------------------------------- admin


def test_admin_credential_and_cli_config_are_usable_by_the_cli(tmp_path: Path) -> None:
    credential = admin_credential.ensure_admin_credential(tmp_path)
    assert admin_credential.ensure_admin_credential(tmp_path) == credential and len(credential) >= 43
    credential_path = admin_credential.admin_credential_path(tmp_path)
    assert mode(credential_path) == 0o600
    assert admin_credential.admin_credential_matches(credential, credential)
    assert not admin_credential.admin_credential_matches(credential[:-1], credential)
    authority = ca.ensure_ca(tmp_path)
    path = admin_credential.write_cli_config(tmp_path, hub_address="127.0.0.1:7443", ca_path=authority.cert_path,
                                  credential_path=credential_path)
    assert mode(path) == 0o600
    assert credential not in path.read_text()
    document = yaml.safe_load(path.read_text())
    assert document["current"] == "local"
    connection = cliconfig.resolve(config=cliconfig.load_config(path), env={})
    assert connection.address == "127.0.0.1:7443" and not connection.insecure
    assert connection.credential_value() == credential
    assert connection.ca_pem() == authority.cert_pem


def test_cli_config_for_an_insecure_hub(tmp_path: Path) -> None:
    credential_path = admin_credential.admin_credential_path(tmp_path)
    admin_credential.ensure_admin_credential(tmp_path)
    path = admin_credential.write_cli_config(tmp_path, hub_address="127.0.0.1:9000", ca_path=None,
                                  credential_path=credential_path, name="sandbox", insecure=True)
    connection = cliconfig.resolve(config=cliconfig.load_config(path), env={})
    assert (connection.name, connection.ca, connection.insecure) == ("sandbox", None, True)


def test_two_hubs_starting_together_end_with_one_ca_and_one_signing_key(tmp_path: Path) -> None:
    fingerprints: list[str] = []
    public_keys: list[bytes] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        fingerprints.append(ca.ensure_ca(tmp_path).fingerprint())
        public_keys.append(signing.public_key_bytes(signing.load_or_create_signing_key(tmp_path)))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fingerprints) == 8 and len(set(fingerprints)) == 1
    assert len(public_keys) == 8 and len(set(public_keys)) == 1
    assert sorted(p.name for p in (tmp_path / "tls").iterdir()) == ["ca.crt", "ca.key"]  # no temp files left
