"""Bearer metadata parsing, the credential cache, and the admin view's Secret redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.api import admin_servicer, auth, grpc_errors, limits
from hub.security import secrets
from hub.store import db as store_db
from hub.store import repository as store


@pytest.mark.parametrize(("metadata", "expected"), [
    ((("authorization", "Bearer abc"),), "abc"),
    ((("Authorization", "bearer  abc "),), "abc"),
    ((("x-other", "1"), ("authorization", b"Bearer bytes-ok")), "bytes-ok"),
    ((("authorization", "Basic abc"),), None),
    ((("authorization", "Bearer "),), None),
    ((), None),
    (None, None),
])
def test_bearer_token(metadata: object, expected: str | None) -> None:
    assert auth.bearer_token(metadata) == expected  # type: ignore[arg-type]


def test_secret_values_are_redacted_and_nothing_else() -> None:
    document = {"apiVersion": "convoy.dev/v1alpha1", "kind": "Bundle", "apps": [], "objects": [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
         "data": {"password": "aHVudGVyMg=="}, "stringData": {"token": "t0ps3cret"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"password": "visible"}},
    ]}
    shown = admin_servicer.redact_secrets(document)
    secret, config = shown["objects"]
    assert secret["data"] == {"password": "<redacted>"} and secret["stringData"] == {"token": "<redacted>"}
    assert config["data"] == {"password": "visible"}
    assert document["objects"][0]["data"] == {"password": "aHVudGVyMg=="}  # the input is not changed


async def test_recognised_credentials_are_remembered_for_a_while(tmp_path: Path) -> None:
    db = store_db.Database(store_db.default_sqlite_url(tmp_path))
    db.migrate()
    credential = secrets.new_credential()
    with db.session() as session:
        store.register_cluster(session, name="alpha", labels={}, credential_hash=secrets.hash_secret(credential))
    now = [0.0]
    authenticator = auth.Authenticator(db=db, admin_credential=secrets.new_credential(), cache_seconds=30,
                                       clock=lambda: now[0])
    lookups: list[str] = []
    real = authenticator._lookup
    authenticator._lookup = lambda c: lookups.append(c) or real(c)  # type: ignore[method-assign]
    metadata = (("authorization", f"Bearer {credential}"),)
    assert await authenticator.cluster(metadata, method="watch") == "alpha"
    assert await authenticator.cluster(metadata, method="watch") == "alpha"
    assert len(lookups) == 1
    now[0] = 31.0  # expired: asked again
    assert await authenticator.cluster(metadata, method="watch") == "alpha"
    assert len(lookups) == 2
    authenticator.forget("alpha")
    await authenticator.cluster(metadata, method="watch")
    assert len(lookups) == 3
    with pytest.raises(grpc_errors.Unauthenticated, match="watch: the cluster credential is not recognised"):
        await authenticator.cluster((("authorization", "Bearer nope"),), method="watch")
    db.dispose()


async def test_unknown_credentials_are_remembered_and_bounded_per_peer_before_the_database(tmp_path: Path) -> None:
    db = store_db.Database(store_db.default_sqlite_url(tmp_path))
    db.migrate()
    credential = secrets.new_credential()
    with db.session() as session:
        store.register_cluster(session, name="alpha", labels={}, credential_hash=secrets.hash_secret(credential))
    now = [0.0]
    authenticator = auth.Authenticator(db=db, admin_credential=secrets.new_credential(), clock=lambda: now[0],
                                       unknown_seconds=10, failure_rate=1.0, failure_burst=3)

    async def call(value: str, peer: str = "ipv4:10.0.0.1") -> str:
        return await authenticator.cluster((("authorization", f"Bearer {value}"),), method="watch", peer=peer)

    for _ in range(5):  # one unknown credential, asked again and again: one read
        with pytest.raises(grpc_errors.Unauthenticated):
            await call("stolen-guess")
    assert authenticator.lookups == 1
    now[0] = 11.0  # forgotten after unknown_seconds: read again (and the bucket refilled)
    with pytest.raises(grpc_errors.Unauthenticated):
        await call("stolen-guess")
    assert authenticator.lookups == 2
    for i in range(2):
        with pytest.raises(grpc_errors.Unauthenticated):
            await call(f"guess-{i}")
    with pytest.raises(limits.RateLimited, match=r"watch from ipv4:10\.0\.0\.1: too many unrecognised"):
        await call("guess-3")
    assert authenticator.lookups == 4  # refused before the database
    with pytest.raises(limits.RateLimited):
        await call(credential)  # an uncached valid credential waits too, from that peer
    assert await call(credential, peer="ipv4:10.0.0.2") == "alpha"  # other peers are not disturbed
    assert await call(credential) == "alpha"  # and now it is remembered, whatever the peer
    now[0] = 12.0
    with pytest.raises(grpc_errors.Unauthenticated):
        await call("guess-4")  # one token back after a second
    db.dispose()


async def test_admin_credentials_resolve_to_names_and_a_revocation_holds_at_the_next_call(tmp_path: Path) -> None:
    db = store_db.Database(store_db.default_sqlite_url(tmp_path))
    db.migrate()
    first_start = secrets.new_credential()
    with db.session() as session:
        _row, alice = store.create_admin_credential(session, "alice", created_by="admin")
    now = [0.0]
    authenticator = auth.Authenticator(db=db, admin_credential=first_start, clock=lambda: now[0],
                                       unknown_seconds=10, failure_rate=1.0, failure_burst=2)
    reads: list[str] = []
    real = authenticator._admin_lookup
    authenticator._admin_lookup = lambda c: reads.append(c) or real(c)  # type: ignore[method-assign]

    async def call(value: str, peer: str = "ipv4:10.0.0.1") -> str:
        return await authenticator.admin((("authorization", f"Bearer {value}"),), method="history", peer=peer)

    assert await call(first_start) == "admin" and reads == []     # the first-start one: from memory
    assert await call(alice) == "alice" and await call(alice) == "alice"
    assert len(reads) == 2                                         # a valid named one: read every time
    with db.session() as session:
        assert store.revoke_admin_credential(session, "alice", by="admin")
    with pytest.raises(grpc_errors.Unauthenticated, match="history: the admin credential is not recognised"):
        await call(alice)                                          # no cache outlives the revocation
    for _ in range(3):                                             # a guess: one read, then remembered
        with pytest.raises(grpc_errors.Unauthenticated):
            await call("guess")
    assert reads.count("guess") == 1
    with pytest.raises(limits.RateLimited, match=r"history from ipv4:10\.0\.0\.1: too many unrecognised"):
        await call("another-guess")                                # the peer's bucket (2) is spent
    assert "another-guess" not in reads
    assert await call(first_start) == "admin"
    db.dispose()
