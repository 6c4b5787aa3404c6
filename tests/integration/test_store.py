"""The hub store on SQLite and PostgreSQL: the same tests against both databases."""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from hub.security import secrets as hub_secrets
from hub.store import errors
from hub.store import repository as repo
from hub.store.db import Database, default_sqlite_url
from hub.store.models import EventKind

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


def digest(n: int) -> str:
    return "sha256:" + f"{n:064x}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield default_sqlite_url(tmp_path)
        return
    server_url: str = request.getfixturevalue("postgres_url")
    base = sa.make_url(server_url)
    name = f"convoy_test_{secrets.token_hex(6)}"
    admin = f"postgresql://{base.username}@{base.host}:{base.port}/{base.database}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    database.migrate()
    yield database
    database.dispose()


def add_bundle(db: Database, n: int, *, now: dt.datetime = T0) -> str:
    with db.session() as s:
        repo.put_bundle(s, digest=digest(n), compressed=b"x" * n, size=10 * n, signature=b"sig%d" % n, now=now)
    return digest(n)


def register(db: Database, name: str, labels: dict[str, str] | None = None) -> str:
    credential = hub_secrets.new_credential()
    with db.session() as s:
        repo.register_cluster(s, name=name, labels=labels or {}, credential_hash=hub_secrets.hash_secret(credential),
                              now=T0)
    return credential


# -------------------------------------------------------------------------------------------- schema


def test_migrations_apply_from_empty_and_match_the_models(db_url: str) -> None:
    database = Database(db_url)
    try:
        assert database.current_revision() is None
        database.migrate()
        database.migrate()  # idempotent: a restarted hub migrates again
        assert database.current_revision() == "0008_admincreds"
        with database.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
        assert diff == [], f"models and migrations disagree; add an Alembic version: {diff}"
    finally:
        database.dispose()


def test_sqlite_is_tuned_for_concurrent_writers(tmp_path: Path) -> None:
    database = Database(default_sqlite_url(tmp_path))
    database.migrate()
    with database.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert (conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0) >= 5000
    database.dispose()


def test_bad_urls_are_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(errors.StoreError, match="in-memory"):
        Database("sqlite://")
    with pytest.raises(errors.StoreError, match="only SQLite and PostgreSQL"):
        Database("mysql://root@localhost/x")
    assert Database("postgresql://u:secret@127.0.0.1/db").url.drivername == "postgresql+psycopg"
    assert "secret" not in repr(Database("postgresql://u:secret@127.0.0.1/db"))


def test_unreachable_database_raises_store_unavailable() -> None:
    database = Database("postgresql://postgres@127.0.0.1:1/none")
    with pytest.raises(errors.StoreUnavailable, match=r"127\.0\.0\.1:1"):
        database.ping()
    with pytest.raises(errors.StoreUnavailable), database.session() as s:
        repo.list_clusters(s)


# -------------------------------------------------------------------------------------------- tokens


def test_token_is_stored_hashed_and_consumed_until_used_up(db: Database) -> None:
    with db.session() as s:
        row, token = repo.create_token(s, ttl=dt.timedelta(hours=1), uses=2, labels={"env": "prod"},
                                       description="two clusters", now=T0)
    token_id, secret = hub_secrets.split_bootstrap_token(token)
    assert row.id == token_id
    with db.session() as s:
        stored = repo.get_token(s, token_id)
        assert stored is not None and secret not in stored.secret_hash and stored.labels == {"env": "prod"}
    for left in (1, 0):
        with db.session() as s:
            assert repo.consume_token(s, token, now=T0 + dt.timedelta(minutes=1)).uses_left == left
    with pytest.raises(errors.TokenRefused) as refused, db.session() as s:
        repo.consume_token(s, token, now=T0 + dt.timedelta(minutes=2))
    assert refused.value.reason is errors.TokenRefusal.USED_UP
    assert token_id in str(refused.value) and secret not in str(refused.value)
    with db.session() as s:
        kinds = [e.kind for e in repo.events(s)]
    assert kinds == ["token_created", "token_used", "token_used"]


@pytest.mark.parametrize(("case", "reason"), [
    ("expired", errors.TokenRefusal.EXPIRED),
    ("revoked", errors.TokenRefusal.REVOKED),
    ("wrong-secret", errors.TokenRefusal.UNKNOWN),
    ("unknown-id", errors.TokenRefusal.UNKNOWN),
    ("malformed", errors.TokenRefusal.MALFORMED),
])
def test_token_refusals(db: Database, case: str, reason: errors.TokenRefusal) -> None:
    with db.session() as s:
        row, token = repo.create_token(s, ttl=dt.timedelta(minutes=30), uses=5, now=T0)
    when = T0 + dt.timedelta(minutes=5)
    if case == "expired":
        when = T0 + dt.timedelta(minutes=30)
    elif case == "revoked":
        with db.session() as s:
            assert repo.revoke_token(s, row.id)
            assert not repo.revoke_token(s, row.id)
    elif case == "wrong-secret":
        token = row.id + "." + hub_secrets.new_bootstrap_token()[1].split(".")[1]
    elif case == "unknown-id":
        token = hub_secrets.new_bootstrap_token()[1]
    elif case == "malformed":
        token = "not-a-token"
    with pytest.raises(errors.TokenRefused) as refused, db.session() as s:
        repo.consume_token(s, token, now=when)
    assert refused.value.reason is reason
    with db.session() as s:
        stored = repo.get_token(s, row.id)
        assert stored is not None and stored.uses_left == 5


def test_last_token_use_cannot_be_spent_twice_concurrently(db: Database) -> None:
    with db.session() as s:
        _, token = repo.create_token(s, ttl=dt.timedelta(hours=1), uses=3)
    outcomes: list[str] = []
    lock = threading.Lock()

    def spend() -> None:
        try:
            with db.session() as s:
                repo.consume_token(s, token)
            result = "ok"
        except errors.TokenRefused as exc:
            result = exc.reason.value
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=spend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ok"] * 3 + ["used up"] * 5


# -------------------------------------------------------------------------------------------- clusters


def test_register_stamps_token_labels_and_refuses_a_taken_name(db: Database) -> None:
    with db.session() as s:
        _, token = repo.create_token(s, ttl=dt.timedelta(hours=1), uses=2, labels={"env": "prod"}, now=T0)
    credential = hub_secrets.new_credential()
    with db.session() as s:
        row = repo.consume_token(s, token, now=T0)
        cluster = repo.register_cluster(s, name="eu-1", labels={"env": "dev", "region": "eu"},
                                        credential_hash=hub_secrets.hash_secret(credential), token=row, now=T0)
    assert cluster.labels == {"env": "prod", "region": "eu"}
    with pytest.raises(errors.ClusterExists, match="cluster eu-1"), db.session() as s:
        row = repo.consume_token(s, token, now=T0)
        repo.register_cluster(s, name="eu-1", labels={}, credential_hash=hub_secrets.hash_secret("other" * 10),
                              token=row, now=T0)
    with db.session() as s:
        # The refused registration rolled back with its unit of work: the token use was not spent.
        token_row = repo.get_token(s, hub_secrets.split_bootstrap_token(token)[0])
        assert token_row is not None and token_row.uses_left == 1
        assert [c.name for c in repo.list_clusters(s)] == ["eu-1"]
        assert [e.kind for e in repo.events(s, cluster="eu-1")] == ["registration"]


def test_authenticate_cluster(db: Database) -> None:
    a = register(db, "a")
    b = register(db, "b")
    with db.session(write=False) as s:
        found_a, found_b = repo.authenticate_cluster(s, a), repo.authenticate_cluster(s, b)
        assert found_a is not None and found_a.name == "a"
        assert found_b is not None and found_b.name == "b"
        assert repo.authenticate_cluster(s, a[:-1] + ("x" if a[-1] != "x" else "y")) is None
        assert repo.authenticate_cluster(s, "") is None


def test_pause_resume_touch_and_pin(db: Database) -> None:
    register(db, "a")
    register(db, "b")
    with db.session() as s:
        assert repo.set_paused(s, ["a", "b"], True, now=T0) == ["a", "b"]
        assert repo.set_paused(s, ["a"], True, now=T0) == []
        assert repo.set_paused(s, ["b"], False, now=T0) == ["b"]
        repo.touch_cluster(s, "a", T0 + dt.timedelta(hours=1))
    with pytest.raises(errors.UnknownCluster, match="cluster nope"), db.session() as s:
        repo.set_paused(s, ["a", "nope"], False)
    with db.session() as s:
        a, b = repo.list_clusters(s)
        assert (a.paused, b.paused) == (True, False)
        assert a.last_seen == T0 + dt.timedelta(hours=1)
        assert [e.kind for e in repo.events(s, kinds=[EventKind.PAUSED, EventKind.RESUMED])] == [
            "paused", "paused", "resumed"]
        repo.set_pinned(s, "a", digest(7))
    with db.session() as s:
        pinned = repo.get_cluster(s, "a")
        assert pinned is not None and pinned.pinned_digest == digest(7)


# -------------------------------------------------------------------------------------------- bundles


def test_one_bundle_row_per_digest(db: Database) -> None:
    with db.session() as s:
        assert repo.put_bundle(s, digest=digest(1), compressed=b"abc", size=10, signature=b"s1", now=T0)
        assert not repo.put_bundle(s, digest=digest(1), compressed=b"abc", size=10, signature=b"s1", now=T0)
    with db.session() as s:
        assert not repo.put_bundle(s, digest=digest(1), compressed=b"abc", size=10, signature=b"s1", now=T0)
        assert s.execute(sa.text("SELECT count(*) FROM bundles")).scalar() == 1
        bundle = repo.get_bundle(s, digest(1))
        assert bundle is not None and bundle.data == b"abc" and bundle.compressed_size == 3
        meta = repo.bundle_meta(s, digest(1))
        assert meta is not None and (meta.size, meta.signature, meta.created_at) == (10, b"s1", T0)
        assert repo.get_bundle(s, digest(2)) is None


def test_large_bundle_round_trips(db: Database) -> None:
    data = secrets.token_bytes(6 * 1024 * 1024)
    with db.session() as s:
        repo.put_bundle(s, digest=digest(9), compressed=data, size=len(data), signature=b"s")
    with db.session(write=False) as s:
        bundle = repo.get_bundle(s, digest(9))
        assert bundle is not None and bundle.data == data


# -------------------------------------------------------------------------------------------- desired state


def test_desired_change_appends_history_and_event(db: Database) -> None:
    d1, d2 = add_bundle(db, 1), add_bundle(db, 2)
    with db.session() as s:
        assert repo.set_desired(s, cluster="a", commit=COMMIT_A, digest=d1, now=T0)
    with db.session() as s:
        # Same digest from a newer commit: the commit moves, nothing else happens.
        assert not repo.set_desired(s, cluster="a", commit=COMMIT_B, digest=d1, now=T0 + dt.timedelta(minutes=1))
    with db.session() as s:
        assert repo.set_desired(s, cluster="a", commit=COMMIT_B, digest=d2, now=T0 + dt.timedelta(minutes=2))
    with db.session() as s:
        current = repo.get_desired(s, "a")
        assert current is not None
        assert (current.commit, current.digest, current.since) == (COMMIT_B, d2, T0 + dt.timedelta(minutes=2))
        assert [(h.commit, h.digest) for h in repo.desired_history(s, "a")] == [(COMMIT_B, d2), (COMMIT_A, d1)]
        changes = repo.events(s, cluster="a", kinds=[EventKind.DESIRED_CHANGED])
        assert [(e.digest, (e.details or {}).get("previous")) for e in changes] == [(d1, None), (d2, d1)]
        assert set(repo.desired_all(s)) == {"a"}


def test_desired_needs_a_stored_bundle(db: Database) -> None:
    with pytest.raises(errors.StoreError), db.session() as s:
        repo.set_desired(s, cluster="a", commit=COMMIT_A, digest=digest(404))


def test_set_desired_many_reports_only_changed_clusters(db: Database) -> None:
    d1, d2 = add_bundle(db, 1), add_bundle(db, 2)
    with db.session() as s:
        assert repo.set_desired_many(s, [(f"c{i}", COMMIT_A, d1) for i in range(50)]) == [f"c{i}" for i in range(50)]
    with db.session() as s:
        items = [(f"c{i}", COMMIT_B, d2 if i % 5 == 0 else d1) for i in range(50)]
        assert repo.set_desired_many(s, items) == [f"c{i}" for i in range(0, 50, 5)]
        assert len(repo.desired_all(s)) == 50
    with db.session(write=False) as s:
        # Every cluster now records the new commit, with or without a new bundle; only a new bundle makes history.
        assert {row.commit for row in repo.desired_all(s).values()} == {COMMIT_B}
        assert [h.commit for h in repo.desired_history(s, "c1")] == [COMMIT_A]
        assert [h.commit for h in repo.desired_history(s, "c5")] == [COMMIT_B, COMMIT_A]
    with db.session() as s:  # a batch larger than one statement's share (500 names), as a 10,000-cluster fleet makes
        many = [(f"m{i:04d}", COMMIT_A, d1) for i in range(1203)]
        assert len(repo.set_desired_many(s, many)) == 1203
        assert repo.set_desired_many(s, [(name, COMMIT_B, bundle) for name, _, bundle in many]) == []
    with db.session(write=False) as s:
        assert {row.commit for name, row in repo.desired_all(s).items() if name.startswith("m")} == {COMMIT_B}


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_postgres_sessions_keep_no_server_side_prepared_statements(db: Database) -> None:
    """A plan prepared while a table was empty stays for the connection (a sequential scan per lookup at
    10,000 clusters), and prepared statements break behind pgbouncer in transaction mode: the hub makes none."""
    d1 = add_bundle(db, 1)
    with db.session() as s:
        for n in range(10):  # psycopg's default would prepare from the fifth run on
            repo.set_desired_many(s, [("a", COMMIT_A if n % 2 else COMMIT_B, d1)])
            repo.desired_all(s)
        prepared = s.execute(sa.text("SELECT count(*) FROM pg_prepared_statements")).scalar_one()
    assert prepared == 0


def test_was_desired_for_is_per_cluster(db: Database) -> None:
    d1, d2, d3 = add_bundle(db, 1), add_bundle(db, 2), add_bundle(db, 3)
    with db.session() as s:
        repo.set_desired(s, cluster="a", commit=COMMIT_A, digest=d1)
        repo.set_desired(s, cluster="a", commit=COMMIT_B, digest=d2)
        repo.set_desired(s, cluster="b", commit=COMMIT_B, digest=d3)
    with db.session(write=False) as s:
        assert repo.was_desired_for(s, "a", d1) and repo.was_desired_for(s, "a", d2)
        assert not repo.was_desired_for(s, "a", d3)
        assert not repo.was_desired_for(s, "b", d1)
        assert repo.was_desired_for(s, "b", d3)


def test_retention_prunes_bundles_no_cluster_needed_recently(db: Database) -> None:
    digests = [add_bundle(db, n) for n in range(1, 8)]
    orphan = add_bundle(db, 99)
    with db.session() as s:
        for d in digests:  # cluster a walks through 7 bundles
            repo.set_desired(s, cluster="a", commit=COMMIT_A, digest=d)
        repo.set_desired(s, cluster="b", commit=COMMIT_A, digest=digests[0])  # b still runs the first
    register(db, "c")
    with db.session() as s:
        repo.set_pinned(s, "c", digests[1])
    with db.session() as s:
        # Young bundles survive a prune with a grace period.
        assert repo.prune_bundles(s, keep_last=3, min_age=dt.timedelta(hours=1), now=T0) == 0
        removed = repo.prune_bundles(s, keep_last=3, now=T0 + dt.timedelta(days=1))
    with db.session() as s:
        left = {row[0] for row in s.execute(sa.text("SELECT digest FROM bundles"))}
    assert left == {digests[0], digests[1], digests[4], digests[5], digests[6]}
    assert orphan not in left and removed == 3
    with db.session() as s:
        assert repo.was_desired_for(s, "a", digests[2])  # history stays for the audit trail


# -------------------------------------------------------------------------------------------- status


def report(cluster: str, phase: str, applied: str = "", *, drift: int = 0, ready: int = 2) -> repo.StatusInput:
    objects = [{"ref": {"kind": "ConfigMap", "name": f"o{i}"}, "health": "Current" if i < ready else "InProgress"}
               for i in range(3)]
    return repo.StatusInput(cluster=cluster, phase=phase, applied_commit=COMMIT_A if applied else "",
                            applied_digest=applied, objects=objects,
                            drift=[{"ref": {"kind": "ConfigMap", "name": "o0"}}] * drift,
                            errors=["boom"] if phase == "Failed" else [], message="m", spoke_version="0.1.0")


def test_status_upsert_and_change_events(db: Database) -> None:
    register(db, "a")
    with db.session() as s:
        first = repo.save_status(s, report("a", "Applying"), now=T0)
    assert first.first and first.phase_changed and not first.applied_changed
    with db.session() as s:
        second = repo.save_status(s, report("a", "Ready", digest(1), ready=3), now=T0 + dt.timedelta(seconds=5))
        again = repo.save_status(s, report("a", "Ready", digest(1), ready=3), now=T0 + dt.timedelta(seconds=9))
        drifted = repo.save_status(s, report("a", "Drifted", digest(1), drift=2), now=T0 + dt.timedelta(seconds=20))
    assert second.applied_changed and second.previous_phase == "Applying"
    assert not again.phase_changed and not again.applied_changed
    assert drifted.drift_appeared
    with db.session() as s:
        status = repo.get_status(s, "a")
        assert status is not None
        assert (status.phase, status.applied_digest, status.objects_total, status.objects_ready,
                status.drift_count) == ("Drifted", digest(1), 3, 2, 2)
        assert status.updated_at == T0 + dt.timedelta(seconds=20)
        assert s.execute(sa.text("SELECT count(*) FROM cluster_status")).scalar() == 1
        cluster = repo.get_cluster(s, "a")
        assert cluster is not None and cluster.last_seen == T0 + dt.timedelta(seconds=20)
        kinds = [e.kind for e in repo.events(s, cluster="a") if e.kind != "registration"]
    assert kinds == ["status", "applied", "status", "status", "drift"]


def test_batched_status_writes(db: Database) -> None:
    for name in ("a", "b", "c"):
        register(db, name)
    with db.session() as s:
        changes = repo.save_statuses(s, [report("a", "Ready", digest(1)), report("b", "Failed"),
                                         report("a", "Degraded", digest(1)), report("c", "Ready", digest(2))],
                                     now=T0)
    assert [c.cluster for c in changes] == ["a", "b", "c"]
    with db.session() as s:
        assert {k: v.phase for k, v in repo.statuses(s).items()} == {"a": "Degraded", "b": "Failed", "c": "Ready"}
        assert all(c.last_seen == T0 for c in repo.list_clusters(s))


def test_batched_reports_fold_repeated_events_per_cluster_within_the_window(db: Database) -> None:
    """Flapping clusters reported in batches: each distinct event once per window, with its repeat count."""
    window = dt.timedelta(minutes=10)
    for name in ("a", "b"):
        register(db, name)
    phases = ["Ready", "Failed", "Ready", "Failed", "Ready"]
    for step, phase in enumerate(phases):
        with db.session() as s:
            repo.save_statuses(s, [report("a", phase, digest(1)), report("b", phase, digest(1))],
                               now=T0 + dt.timedelta(seconds=step), aggregate=window)
    later = T0 + window + dt.timedelta(minutes=1)  # past the window of the rows above: a new row
    with db.session() as s:
        repo.save_statuses(s, [report("a", "Failed", digest(1))], now=later, aggregate=window)
        repo.add_event(s, EventKind.HUB, message="sync failed", now=T0, aggregate=window)
        repo.add_event(s, EventKind.HUB, message="sync failed", now=T0 + dt.timedelta(seconds=1), aggregate=window)
    with db.session() as s:
        for name in ("a", "b"):
            rows = [(e.message, (e.details or {}).get("count", 1))
                    for e in repo.events(s, cluster=name, kinds=[EventKind.STATUS])]
            folded = [(f"cluster {name}: Unknown -> Ready: m", 1), (f"cluster {name}: Ready -> Failed: m", 2),
                      (f"cluster {name}: Failed -> Ready: m", 2)]
            assert rows == ([*folded, ("cluster a: Ready -> Failed: m", 1)] if name == "a" else folded)
        assert [(e.message, (e.details or {}).get("count", 1)) for e in repo.events(s, kinds=[EventKind.HUB])] == [
            ("sync failed", 2)]


def test_render_errors(db: Database) -> None:
    with db.session() as s:
        repo.set_render_errors(s, cluster="a", commit=COMMIT_A, errors=[{"message": "missing base", "path": "x"}])
        repo.set_render_errors(s, cluster="a", commit=COMMIT_A, errors=[{"message": "missing base", "path": "x"}])
        repo.set_render_errors(s, cluster="a", commit=COMMIT_B, errors=[{"message": "bad yaml"}])
    with db.session() as s:
        current = repo.render_errors_all(s)["a"]
        assert (current.commit, current.errors) == (COMMIT_B, [{"message": "bad yaml"}])
        assert len(repo.events(s, kinds=[EventKind.RENDER_ERROR])) == 2
        assert repo.clear_render_errors(s, "a") and not repo.clear_render_errors(s, "a")
        assert repo.render_errors_all(s) == {}


# -------------------------------------------------------------------------------------------- events, state


def test_events_since_cluster_and_limit(db: Database) -> None:
    with db.session() as s:
        for i in range(10):
            repo.add_event(s, EventKind.HUB, cluster="a" if i % 2 else None, message=f"e{i}",
                           details={"i": i}, now=T0 + dt.timedelta(minutes=i))
    with db.session() as s:
        assert [e.message for e in repo.events(s, since=T0 + dt.timedelta(minutes=7))] == ["e7", "e8", "e9"]
        assert [e.message for e in repo.events(s, cluster="a")] == ["e1", "e3", "e5", "e7", "e9"]
        assert [e.message for e in repo.events(s, limit=2)] == ["e8", "e9"]
        newest = repo.events(s, limit=1)[0]
        assert newest.at == T0 + dt.timedelta(minutes=9) and newest.details == {"i": 9}
        assert newest.id is not None and repo.events(s, after_id=newest.id) == []


def test_hub_state(db: Database) -> None:
    with db.session() as s:
        assert repo.get_state(s, repo.StateKey.LAST_DEPLOYED_COMMIT) is None
        repo.set_state(s, repo.StateKey.LAST_DEPLOYED_COMMIT, COMMIT_A)
        repo.set_state(s, repo.StateKey.LAST_DEPLOYED_COMMIT, COMMIT_B)
    with db.session() as s:
        assert repo.get_state(s, repo.StateKey.LAST_DEPLOYED_COMMIT) == COMMIT_B


def test_commits_record_verdicts(db: Database) -> None:
    with db.session() as s:
        repo.record_commit(s, sha=COMMIT_A, author="Ann", authored_at=T0, message="add web\n\nbody",
                           signature_verdict="good", accepted=True, now=T0)
        repo.record_commit(s, sha=COMMIT_A, author="Ann", authored_at=T0, message="add web",
                           signature_verdict="good", accepted=True, now=T0)
        repo.record_commit(s, sha=COMMIT_B, author="Eve", message="rewrite", signature_verdict="unsigned",
                           accepted=False, refusal_reason="does not descend from aaaaaaaa",
                           now=T0 + dt.timedelta(minutes=1))
    with db.session() as s:
        refused = repo.get_commit(s, COMMIT_B)
        assert refused is not None and not refused.accepted and refused.signature_verdict == "unsigned"
        assert [c.sha for c in repo.recent_commits(s)] == [COMMIT_B, COMMIT_A]
        assert [(e.kind, e.message) for e in repo.events(s)] == [
            ("commit_seen", "commit aaaaaaaa: add web"),
            ("commit_refused", "commit bbbbbbbb: refused: does not descend from aaaaaaaa")]


# -------------------------------------------------------------------------------------------- takeover


def test_a_second_database_object_sees_everything(db: Database, db_url: str) -> None:
    credential = register(db, "a", {"env": "prod"})
    d1 = add_bundle(db, 1)
    with db.session() as s:
        repo.set_desired(s, cluster="a", commit=COMMIT_A, digest=d1)
        repo.save_status(s, report("a", "Ready", d1))
        repo.set_state(s, repo.StateKey.LAST_DEPLOYED_COMMIT, COMMIT_A)
        _, token = repo.create_token(s, ttl=dt.timedelta(hours=1), uses=1)
    db.dispose()
    other = Database(db_url)
    try:
        other.migrate()
        with other.session() as s:
            cluster = repo.authenticate_cluster(s, credential)
            assert cluster is not None and cluster.labels == {"env": "prod"}
            desired = repo.get_desired(s, "a")
            assert desired is not None and desired.digest == d1
            assert repo.was_desired_for(s, "a", d1)
            status = repo.get_status(s, "a")
            assert status is not None and status.phase == "Ready"
            assert repo.get_state(s, repo.StateKey.LAST_DEPLOYED_COMMIT) == COMMIT_A
            assert repo.consume_token(s, token).uses_left == 0
            assert {e.kind for e in repo.events(s)} >= {"registration", "desired_changed", "applied", "token_created"}
    finally:
        other.dispose()


def test_concurrent_writers_queue_instead_of_failing(db: Database) -> None:
    """Status ingestion from many threads while desired state moves: no 'database is locked'."""
    names = [f"c{i}" for i in range(20)]
    for name in names:
        register(db, name)
    d1 = add_bundle(db, 1)
    failures: list[BaseException] = []

    def ingest(worker: int) -> None:
        try:
            for k in range(40):
                with db.session() as s:
                    repo.save_status(s, report(names[(worker + k) % len(names)], "Ready" if k % 2 else "Applying", d1))
        except BaseException as exc:  # collected and asserted below
            failures.append(exc)

    def move() -> None:
        try:
            for k in range(20):
                with db.session() as s:
                    repo.set_desired_many(s, [(name, f"{k:040x}", d1) for name in names])
                with db.session(write=False) as s:
                    repo.desired_all(s)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=ingest, args=(i,)) for i in range(8)] + [threading.Thread(target=move)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with db.session() as s:
        assert len(repo.statuses(s)) == len(names)
        assert all(d.commit == f"{19:040x}" for d in repo.desired_all(s).values())


def test_removed_cluster_frees_its_name_and_credential(db: Database) -> None:
    old_credential = register(db, "a")
    d1 = add_bundle(db, 1)
    with db.session() as s:
        repo.set_desired(s, cluster="a", commit=COMMIT_A, digest=d1)
        repo.save_status(s, report("a", "Ready", d1))
        assert repo.remove_cluster(s, "a", now=T0)
        assert not repo.remove_cluster(s, "a")
    with db.session() as s:
        assert repo.authenticate_cluster(s, old_credential) is None
        assert repo.get_desired(s, "a") is None and repo.get_status(s, "a") is None
        assert repo.was_desired_for(s, "a", d1)  # history stays
        assert repo.events(s, cluster="a")[-1].kind == "deregistered"
    new_credential = register(db, "a")
    with db.session() as s:
        found = repo.authenticate_cluster(s, new_credential)
        assert found is not None and found.name == "a"


def test_prune_events(db: Database) -> None:
    with db.session() as s:
        for i in range(5):
            repo.add_event(s, EventKind.HUB, message=f"e{i}", now=T0 + dt.timedelta(days=i))
        assert repo.prune_events(s, before=T0 + dt.timedelta(days=3)) == 3
        assert [e.message for e in repo.events(s)] == ["e3", "e4"]


def test_retention_keeps_what_a_cluster_still_runs(db: Database) -> None:
    """A cluster that has not yet applied its new bundles still runs an old one: that one is kept (issue 19)."""
    digests = [add_bundle(db, n) for n in range(1, 6)]
    register(db, "a")
    with db.session() as s:
        repo.set_desired(s, cluster="a", commit=COMMIT_A, digest=digests[0])
        repo.save_status(s, report("a", "Ready", digests[0]), now=T0)
        for d in digests[1:]:
            repo.set_desired(s, cluster="a", commit=COMMIT_B, digest=d)
    with db.session() as s:
        repo.prune_bundles(s, keep_last=2, now=T0 + dt.timedelta(days=1))
    with db.session() as s:
        left = {row[0] for row in s.execute(sa.text("SELECT digest FROM bundles"))}
    assert left == {digests[0], digests[3], digests[4]}


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_report_batches_and_presence_refreshes_in_any_order_never_deadlock(db: Database) -> None:
    """Both lock many cluster rows at once; in the order each received them, a report batch and the heartbeat's
    last-seen refresh deadlocked at 10,000 spokes and PostgreSQL failed the whole batch."""
    names = [f"c{i:03d}" for i in range(300)]
    with db.session() as s:
        for name in names:
            repo.register_cluster(s, name=name, labels={}, credential_hash=hub_secrets.hash_secret(name), now=T0)
    failures: list[BaseException] = []

    def reports(order: list[str]) -> None:
        try:
            for _ in range(15):
                with db.session() as s:
                    repo.save_statuses(s, [repo.StatusInput(cluster=name, phase="Ready") for name in order])
        except BaseException as exc:
            failures.append(exc)

    def presence(order: list[str]) -> None:
        try:
            for _ in range(15):
                with db.session() as s:
                    repo.touch_clusters(s, order)
                    repo.mark_connected(s, [(name, T0) for name in order])
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=reports, args=(names,)),
               threading.Thread(target=presence, args=(names[::-1],)),
               threading.Thread(target=reports, args=(names[::-1],)),
               threading.Thread(target=presence, args=(names,))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
