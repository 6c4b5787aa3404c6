"""Faults with several hub replicas on one PostgreSQL (issue 20), as real `convoy hub serve` processes
on a private PostgreSQL server (so other tests sharing 127.0.0.1:5432 are not disturbed).

* The leader SIGKILLed between two write batches of a sync: a follower takes the lease within
  seconds and redoes the sync idempotently: every desired digest is the render's, one desired-change
  event per cluster, one commit-seen event, the head deployed.
* PostgreSQL restarted under the replicas: one of them leads again and deploys the next commit.
* A replica cut off from its database ends its Watch streams (UNAVAILABLE, "lost its database") rather
  than serve what it remembers as current, and serves again once the database is back.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc import aio

from hub import service
from hub.commands import hubserve
from hub.security import secrets as hub_secrets
from hub.store import db as store_db
from hub.store import models, replicas
from hub.store import repository as store
from tests.integration.fault_harness import (
    _BATCHED_HUB,
    CLUSTERS,
    _deployed_or_none,
    _desired,
    _events,
    _fleet,
    _history,
    _render,
)
from tests.integration.hub_harness import (
    FleetRepo,
    channel,
    configmap,
    hub_settings,
    next_desired,
    registered_spoke,
    running_hub,
)
from tests.integration.private_pg import (
    PrivatePostgres,
    private_postgres_fixture,  # noqa: F401  (fixture)
)
from tests.polling import poll


class _Replica:
    """One `convoy hub serve` process: its own data directory, the shared database and identity."""

    def __init__(self, repo: FleetRepo, root: Path, name: str, url: str, *, crash_at: str = "") -> None:
        env = {**os.environ}
        env.pop(service.CRASH_AT_ENV, None)
        if crash_at:
            env[service.CRASH_AT_ENV] = crash_at
        self.log = open(root / f"replica-{name}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _BATCHED_HUB, "hub", "serve", "--repo", str(repo.path), "--data-dir",
             str(root / name), "--identity-dir", str(root / "identity"), "--database-url", url,
             "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
        "--registry-listen", "127.0.0.1:0", "--poll-interval", "0.3"],
            env=env, stdout=subprocess.DEVNULL, stderr=self.log)


@pytest.fixture
def replicas_started() -> Iterator[list[_Replica]]:
    started: list[_Replica] = []
    yield started
    for replica in started:
        if replica.proc.poll() is None:
            replica.proc.send_signal(signal.SIGTERM)
            try:
                replica.proc.wait(20)
            except subprocess.TimeoutExpired:
                replica.proc.kill()
                replica.proc.wait(10)
        replica.log.close()


def _until(what: str, check: object, *, timeout: float = 45.0) -> float:
    """Poll ``check()`` until truthy; returns the seconds it took."""
    start = time.monotonic()
    while not check():  # type: ignore[operator]
        assert time.monotonic() - start < timeout, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(0.05)
    return time.monotonic() - start


def _leader_pid(url: str) -> int | None:
    try:
        name = replicas.current_leader(store_db.normalize_url(url))
    except Exception:  # the server is restarting
        return None
    parts = name.split("-")
    # new_replica_id(): "<host>-<pid>-<random> (<address>)"; host names may contain dashes
    return int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else None


def test_the_leader_killed_mid_sync_a_follower_takes_over_and_redoes_it_without_duplicates(
        tmp_path: Path, private_postgres: PrivatePostgres, replicas_started: list[_Replica]) -> None:
    repo = _fleet(tmp_path, rollout=False)
    url = private_postgres.url
    db = store_db.Database(url)
    try:
        replicas_started.append(first := _Replica(repo, tmp_path, "r0", url))
        _until("the first commit deployed", lambda: _deployed_or_none(db) == repo.head())
        first.proc.send_signal(signal.SIGTERM)
        first.proc.wait(30)
        # Armed to SIGKILL itself between two write batches of its next real sync.
        replicas_started.append(doomed := _Replica(repo, tmp_path, "r1", url, crash_at="after-batch-1"))
        _until("the armed replica to lead", lambda: _leader_pid(url) == doomed.proc.pid)
        with db.session() as s:  # registered, as their spokes would be
            for name in CLUSTERS:
                store.register_cluster(s, name=name, labels={}, credential_hash=hub_secrets.hash_secret(
                    hub_secrets.new_credential()))
        before = _desired(db)
        replicas_started.append(r2 := _Replica(repo, tmp_path, "r2", url))
        replicas_started.append(r3 := _Replica(repo, tmp_path, "r3", url))
        _until("two followers to listen", lambda: _listeners(url) >= 3)

        head = repo.commit({"apps/web/configmap.yaml": configmap("2")}, message="web v2")
        rendered = _render(repo, head, tmp_path / "reference-mirror")
        assert doomed.proc.wait(45) == -signal.SIGKILL, "the leader was not killed mid-sync"
        killed_at = time.monotonic()
        assert _deployed_or_none(db) != head

        _until("a follower to deploy the commit", lambda: _deployed_or_none(db) == head)
        failover = time.monotonic() - killed_at
        assert failover < 10, f"failover took {failover:.1f}s"
        assert _leader_pid(url) in {r2.proc.pid, r3.proc.pid}
        desired = _desired(db)
        assert desired == {name: rendered[name] for name in CLUSTERS}, _history(db)
        assert all(desired[name] != before[name] for name in CLUSTERS)
        changes = _events(db, models.EventKind.DESIRED_CHANGED, head)
        assert sorted(e.cluster or "" for e in changes) == CLUSTERS  # one per cluster, none twice
        assert len(_events(db, models.EventKind.COMMIT_SEEN, head)) == 1
    finally:
        db.dispose()


def test_postgres_restarted_under_the_replicas_one_leads_again_and_deploys(
        tmp_path: Path, private_postgres: PrivatePostgres, replicas_started: list[_Replica]) -> None:
    repo = _fleet(tmp_path, rollout=False)
    url = private_postgres.url
    db = store_db.Database(url)
    try:
        replicas_started.append(r1 := _Replica(repo, tmp_path, "r1", url))
        _until("the first commit deployed", lambda: _deployed_or_none(db) == repo.head())
        replicas_started.append(r2 := _Replica(repo, tmp_path, "r2", url))
        _until("the follower to finish starting",
               lambda: b"HTTP listening" in (tmp_path / "replica-r2.log").read_bytes())

        private_postgres.stop()
        head = repo.commit({"apps/web/configmap.yaml": configmap("3")}, message="web v3")
        private_postgres.start()
        db.dispose()
        _until("a replica to deploy the commit made while the database was down",
               lambda: _deployed_or_none(db) == head)
        # The old lease died with the server's sessions; one replica takes it again.
        _until("a replica to lead again", lambda: _leader_pid(url) in {r1.proc.pid, r2.proc.pid})
        assert r1.proc.poll() is None and r2.proc.poll() is None  # neither gave up
        assert len(_events(db, models.EventKind.COMMIT_SEEN, head)) == 1
    finally:
        db.dispose()


def _listeners(url: str) -> int:
    """How many replicas LISTEN for the others (one dedicated connection each)."""
    import psycopg

    conninfo = store_db.normalize_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                               (replicas.LISTENER_APPLICATION,)).fetchone()
    except psycopg.Error:
        return 0
    return int(row[0]) if row else 0


async def test_a_replica_that_loses_its_database_ends_its_watch_streams_and_serves_again_when_back(
        tmp_path: Path, private_postgres: PrivatePostgres, fleet_repo: FleetRepo) -> None:
    url = private_postgres.url
    identity = tmp_path / "identity"
    async with running_hub(hub_settings(tmp_path / "a", fleet_repo, database_url=url,
                                        identity_dir=identity)) as hub_a:
        await poll(lambda: _synced_leader(hub_a), timeout=15, what="the first replica to lead")
        async with running_hub(hub_settings(tmp_path / "b", fleet_repo, database_url=url,
                                            identity_dir=identity)) as hub_b, channel(hub_b) as ch_b:
            spoke = await registered_spoke(hub_b, ch_b, "eu-1")
            stream = spoke.watch()
            first = await next_desired(stream, timeout=15)

            await asyncio.to_thread(private_postgres.stop)
            # Not stale state passed off as current: the stream ends, telling the spoke to go elsewhere.
            with pytest.raises(aio.AioRpcError) as ended:
                await next_desired(stream, timeout=15)
            assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "lost its database" in (ended.value.details() or "")

            await asyncio.to_thread(private_postgres.start)
            await poll(lambda: _attached(hub_b), timeout=20, what="the replica to hear the others again")

            async def served() -> str | None:
                again = spoke.watch()
                try:
                    return (await next_desired(again, timeout=5)).digest
                except (aio.AioRpcError, TimeoutError):
                    return None
                finally:
                    again.cancel()
            assert await poll(served, timeout=20, what="the replica to serve desired state again") == first.digest


async def _synced_leader(hub: hubserve.RunningHub) -> bool:
    return hub.replication is not None and hub.replication.is_leader and hub.service.first_sync_done


async def _attached(hub: hubserve.RunningHub) -> bool:
    return not hub.notifier.detached


def test_the_leader_killed_while_a_canary_wave_bakes_the_new_leader_neither_restarts_nor_skips_it(
        tmp_path: Path, private_postgres: PrivatePostgres, replicas_started: list[_Replica]) -> None:
    repo = _fleet(tmp_path, rollout=True)  # canary wave c1, bake 1 h, then everyone
    url = private_postgres.url
    db = store_db.Database(url)
    try:
        replicas_started.append(first := _Replica(repo, tmp_path, "r0", url))
        _until("the first commit deployed", lambda: _deployed_or_none(db) == repo.head())
        with db.session() as s:
            for name in CLUSTERS:
                store.register_cluster(s, name=name, labels={}, credential_hash=hub_secrets.hash_secret(
                    hub_secrets.new_credential()))
        before = _desired(db)
        replicas_started.append(r2 := _Replica(repo, tmp_path, "r2", url))
        _until("the follower to finish starting",
               lambda: b"HTTP listening" in (tmp_path / "replica-r2.log").read_bytes())

        head = repo.commit({"apps/web/configmap.yaml": configmap("2")}, message="web v2")
        _until("the canary wave released", lambda: _desired(db)["c1"] != before["c1"])
        with db.session(write=False) as s:
            rollout = store.latest_rollout(s)
        assert rollout is not None and rollout.commit == head

        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
        _until("the follower to lead", lambda: _leader_pid(url) == r2.proc.pid, timeout=15)
        _until("the new leader to start its sync loop and rollout controller",
               lambda: b"leading: this replica" in (tmp_path / "replica-r2.log").read_bytes())
        # Its first sync (at the deployed head) and rollout ticks every heartbeat: an observation
        # window in which a restarted or skipped wave would show; nothing is awaited here.
        time.sleep(3)

        with db.session(write=False) as s:
            after = store.latest_rollout(s)
        assert after is not None and after.seq == rollout.seq  # the same rollout, not a new one
        desired = _desired(db)
        moved = [name for name in CLUSTERS if desired[name] != before[name]]
        assert moved == ["c1"], _history(db)  # still baking: the second wave not released early
        assert len(_events(db, models.EventKind.ROLLOUT_STARTED, head)) == 1
        assert len(_events(db, models.EventKind.COMMIT_SEEN, head)) == 1
    finally:
        db.dispose()
