"""Faults with several hub replicas on one PostgreSQL (issue 20), as real `convoy hub serve` processes
on a private PostgreSQL server (so other tests sharing 127.0.0.1:5432 are not disturbed).

* The leader SIGKILLed between two write batches of a sync: a follower takes the lease within
  seconds and redoes the sync idempotently: every desired digest is the render's, one desired-change
  event per cluster, one commit-seen event, the head deployed.
* PostgreSQL restarted under the replicas: one of them leads again and deploys the next commit.
* A follower SIGKILLed with a spoke on it: the spoke moves to the leader and applies the next commit,
  and `convoy status` shows the killed replica gone within three heartbeats.
* Fifty spokes spread over three replicas, the leader SIGKILLed while a rollout is between waves: the
  spokes on it move to the others, a follower takes the lease and continues the same rollout — every
  wave released once, in order — and every spoke ends at the new bundle.
* A replica cut off from its database ends its Watch streams (UNAVAILABLE, "lost its database") rather
  than serve what it remembers as current, and serves again once the database is back.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import kubernetes
import pytest
from click.testing import CliRunner
from grpc import aio

from hub import service
from hub.cli import cli
from hub.commands import hubserve
from hub.security import admin_credential as admin_sec
from hub.security import ca as ca_sec
from hub.security import secrets as hub_secrets
from hub.store import db as store_db
from hub.store import models, replicas
from hub.store import repository as store
from kubesim.testing import KubeSim
from protos.codec import pb
from protos.convoy.v1 import convoy_pb2_grpc as pb_grpc
from spoke.agent import Agent
from spoke.cluster import ClusterClient
from spoke.settings import SpokeSettings
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
    FLEET_YAML,
    FleetRepo,
    channel,
    configmap,
    hub_settings,
    next_desired,
    registered_spoke,
    running_hub,
    standard_fleet,
)
from tests.integration.private_pg import (
    PrivatePostgres,
    private_postgres_fixture,  # noqa: F401  (fixture)
)
from tests.polling import poll


class _Replica:
    """One `convoy hub serve` process: its own data directory, the shared database and identity."""

    def __init__(self, repo: FleetRepo, root: Path, name: str, url: str, *, crash_at: str = "",
                 extra: tuple[str, ...] = ()) -> None:
        env = {**os.environ}
        env.pop(service.CRASH_AT_ENV, None)
        if crash_at:
            env[service.CRASH_AT_ENV] = crash_at
        self.log = open(root / f"replica-{name}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _BATCHED_HUB, "hub", "serve", "--repo", str(repo.path), "--data-dir",
             str(root / name), "--identity-dir", str(root / "identity"), "--database-url", url,
             "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--poll-interval", "0.3", *extra],
            env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        self.log_path = root / f"replica-{name}.log"

    def address(self) -> str | None:
        """The gRPC address it serves on, once its log says so."""
        found = re.search(r"gRPC listening on (\S+) \(", self.log_path.read_text(errors="replace"))
        return found.group(1) if found else None


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


def _cli(root: Path, address: str, *args: str) -> str:
    """The real CLI against the replica at ``address`` (the shared identity's CA and admin credential)."""
    identity = root / "identity"
    env = {"CONVOY_CONFIG": str(root / "cli-config.yaml"), "CONVOY_HUB": address,
           "CONVOY_HUB_CA": str(ca_sec.tls_dir(identity) / "ca.crt"),
           "CONVOY_CREDENTIAL_FILE": str(admin_sec.admin_credential_path(identity))}
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _status(root: Path, address: str) -> dict[str, object]:
    document: dict[str, object] = json.loads(_cli(root, address, "status", "-o", "json"))
    return document


def _replica_view(root: Path, address: str) -> dict[str, tuple[bool, bool, int]]:
    """address -> (leader, gone, streams) as `convoy status` shows them."""
    replicas_shown = _status(root, address)["replicas"]
    assert isinstance(replicas_shown, list)
    return {r["address"]: (r["leader"], r["gone"], r["streams"]) for r in replicas_shown}


def test_a_follower_killed_with_a_spoke_on_it_the_spoke_moves_to_the_leader_and_status_shows_it_gone(
        tmp_path: Path, private_postgres: PrivatePostgres, replicas_started: list[_Replica],
        kubesim_server: KubeSim, kube_cluster: str) -> None:
    repo = _fleet(tmp_path, rollout=False)
    url = private_postgres.url
    db = store_db.Database(url)
    beat = ("--replica-heartbeat", "0.5")
    try:
        replicas_started.append(leader := _Replica(repo, tmp_path, "r0", url, extra=beat))
        _until("the first commit deployed", lambda: _deployed_or_none(db) == repo.head())
        replicas_started.append(follower := _Replica(repo, tmp_path, "r1", url, extra=beat))
        _until("both replicas to serve", lambda: leader.address() and follower.address())
        a, b = leader.address() or "", follower.address() or ""
        assert _leader_pid(url) == leader.proc.pid

        token = re.search(r"^token:\s+(\S+)", _cli(tmp_path, a, "token", "create"), re.MULTILINE)
        assert token is not None
        ca_file = ca_sec.tls_dir(tmp_path / "identity") / "ca.crt"
        agent = Agent(SpokeSettings(hub=f"{b},{a}", cluster=kube_cluster, token=token.group(1),
                                    hub_ca_file=str(ca_file), health_port=0, health_host="127.0.0.1",
                                    heartbeat=1.0, reconnect_cap=1.0),
                      cluster=ClusterClient.from_config_dict(kubesim_server.kubeconfig(kube_cluster)))
        api = kubesim_server.api_client(kube_cluster)
        core = kubernetes.client.CoreV1Api(api)

        def version() -> str | None:
            try:
                return str(core.read_namespaced_config_map("web-config", "shop").data["version"])
            except kubernetes.client.ApiException:
                return None

        core.create_namespace({"metadata": {"name": "shop"}})
        agent.start()
        try:
            _until("the first bundle applied", lambda: version() == "1")
            _until("status to show the spoke's stream on the follower",
                   lambda: _replica_view(tmp_path, a) == {a: (True, False, 0), b: (False, False, 1)}, timeout=15)

            follower.proc.send_signal(signal.SIGKILL)
            follower.proc.wait(10)
            killed = time.monotonic()
            _until("status to show the killed replica gone and the spoke on the leader",
                   lambda: _replica_view(tmp_path, a) == {a: (True, False, 1), b: (False, True, 1)}, timeout=15)
            # Three heartbeats of 0.5 s, read through the CLI: well within a few seconds.
            assert time.monotonic() - killed < 10
            assert "replicas: 1 live, 1 gone; leader" in _cli(tmp_path, a, "status")

            head = repo.commit({"apps/web/configmap.yaml": configmap("2")}, message="web v2")
            _until("the leader to deploy the next commit", lambda: _deployed_or_none(db) == head)
            _until("the spoke to apply it through the leader", lambda: version() == "2", timeout=30)

            def ready_at_head() -> bool:
                clusters = _status(tmp_path, a)["clusters"]
                assert isinstance(clusters, list)
                row = next(c for c in clusters if c["name"] == kube_cluster)
                return bool(row["phase"] == "Ready" and row["appliedDigest"] == row["desiredDigest"]
                            and row["appliedCommit"] == head)
            _until("the leader to hear the spoke report the commit applied", ready_at_head, timeout=30)
            assert _leader_pid(url) == leader.proc.pid  # the leader never changed
        finally:
            agent.stop()
            agent.client.close()
            api.close()
    finally:
        db.dispose()


ROLLOUT_50 = """\
rollout:
  bakeTime: 1s
  progressDeadline: 10m
  waves:
    - name: canary
      selector: {matchLabels: {canary: "true"}}
    - name: first
      selector: {matchLabels: {group: first}}
      bakeTime: 4s
"""


class _FailoverSpoke:
    """A stand-in spoke on the wire (no Kubernetes): registers, watches, reports each new desired bundle
    applied and Ready, and on a broken stream dials the next replica, as the real spoke does with
    ``--hub a,b,c``."""

    def __init__(self, name: str, labels: dict[str, str], addresses: list[str], ca: bytes, token: str) -> None:
        self.name, self.labels, self.addresses, self.ca, self.token = name, labels, addresses, ca, token
        self.credential = ""
        self.applied = ""
        self.on = ""

    async def run(self, stop: asyncio.Event) -> None:
        index = 0
        while not stop.is_set():
            self.on = self.addresses[index % len(self.addresses)]
            try:
                async with aio.secure_channel(self.on, grpc.ssl_channel_credentials(self.ca)) as ch:
                    await self._serve(pb_grpc.SpokeServiceStub(ch), stop)
            except aio.AioRpcError:
                pass
            index += 1
            await asyncio.sleep(0.2)

    async def _serve(self, stub: Any, stop: asyncio.Event) -> None:
        if not self.credential:
            response = await stub.Register(pb.RegisterRequest(bootstrap_token=self.token, cluster_name=self.name,
                                                              labels=self.labels, spoke_version="test"), timeout=20)
            self.credential = response.credential
        metadata = (("authorization", f"Bearer {self.credential}"),)
        watch = stub.Watch(pb.WatchRequest(applied_digest=self.applied), metadata=metadata)
        stopper = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                reading = asyncio.ensure_future(watch.read())
                await asyncio.wait({reading, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if not reading.done():
                    reading.cancel()
                    return
                event = reading.result()
                if event is aio.EOF:
                    return
                if event.WhichOneof("event") == "desired" and event.desired.digest != self.applied:
                    await stub.ReportStatus(pb.StatusReport(
                        phase=pb.PHASE_READY, applied_commit=event.desired.commit,
                        applied_digest=event.desired.digest), metadata=metadata, timeout=20)
                    self.applied = event.desired.digest
        finally:
            stopper.cancel()
            watch.cancel()


async def test_fifty_spokes_the_leader_killed_mid_rollout_every_spoke_converges_no_wave_skipped_or_restarted(
        tmp_path: Path, private_postgres: PrivatePostgres, replicas_started: list[_Replica]) -> None:
    repo = FleetRepo(tmp_path / "fleet")
    standard_fleet(repo)
    repo.commit({"fleet.yaml": FLEET_YAML + ROLLOUT_50}, message="a rollout in three waves")
    url = private_postgres.url
    db = store_db.Database(url)
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        replicas_started.append(leader := _Replica(repo, tmp_path, "r0", url))
        await _until_async("the first commit deployed", lambda: _deployed_or_none(db) == repo.head())
        replicas_started.extend([_Replica(repo, tmp_path, "r1", url), _Replica(repo, tmp_path, "r2", url)])
        await _until_async("three replicas serving", lambda: all(r.address() for r in replicas_started))
        addresses = [r.address() or "" for r in replicas_started]
        output = await asyncio.to_thread(_cli, tmp_path, addresses[0], "token", "create", "--uses", "50")
        token = re.search(r"^token:\s+(\S+)", output, re.MULTILINE)
        assert token is not None
        ca = (ca_sec.tls_dir(tmp_path / "identity") / "ca.crt").read_bytes()
        names = [f"s{n:02d}" for n in range(50)]
        # 5 canaries, 20 in the wave "first", 25 in the implicit last wave "rest"; each replica gets a third.
        spokes = [_FailoverSpoke(name, {"canary": "true"} if n < 5 else {"group": "first"} if n < 25 else {},
                                 addresses[n % 3:] + addresses[:n % 3], ca, token.group(1))
                  for n, name in enumerate(names)]
        tasks = [asyncio.create_task(spoke.run(stop)) for spoke in spokes]
        before = await _until_async("every spoke at the first bundle",
                                    lambda: _all_applied(db, names) and _desired(db))

        head = repo.commit({"apps/web/configmap.yaml": configmap("2")}, message="web v2")
        await _until_async("the wave 'first' released",
                           lambda: _waves_released(db, head)[-1:] == ["first"], timeout=90)
        leader.proc.send_signal(signal.SIGKILL)
        leader.proc.wait(10)
        # Killed between waves: "first" bakes for 4 s, so the last wave was not released yet.
        assert await asyncio.to_thread(_waves_released, db, head) == ["canary", "first"]

        await _until_async("every spoke at the new bundle, through the remaining replicas",
                           lambda: _all_applied(db, names) and all(
                               d != before[n] for n, d in _desired(db).items() if n in names), timeout=120)
        assert all(spoke.on != addresses[0] for spoke in spokes)  # those on the killed leader moved
        assert _waves_released(db, head) == ["canary", "first", "rest"], _history(db)
        assert len(_events(db, models.EventKind.ROLLOUT_STARTED, head)) == 1
        await _until_async("the rollout done, once", lambda: len(_events(db, models.EventKind.ROLLOUT_DONE,
                                                                          head)) == 1)
        assert _leader_pid(url) in {r.proc.pid for r in replicas_started[1:]}
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        db.dispose()


async def _until_async(what: str, check: Any, *, timeout: float = 45.0) -> Any:
    """Poll ``check()`` (blocking, so in a thread) until truthy; returns its value."""
    async def probe() -> Any:
        try:
            return await asyncio.to_thread(check)
        except Exception:  # the schema or a row not there yet
            return None
    return await poll(probe, timeout=timeout, what=what)


def _all_applied(db: store_db.Database, names: list[str]) -> bool:
    """Every named cluster reported Ready at its desired digest."""
    with db.session(write=False) as s:
        desired = {name: row.digest for name, row in store.desired_all(s).items()}
        reported = store.statuses(s, summary=True)
    return all(name in desired and name in reported and reported[name].applied_digest == desired[name]
               and reported[name].phase == "Ready" for name in names)


def _waves_released(db: store_db.Database, commit: str) -> list[str]:
    """The waves released for ``commit``, in the order the event log has them."""
    released = []
    for event in _events(db, models.EventKind.WAVE_RELEASED, commit):
        found = re.match(r"wave (\S+) released", event.message or "")
        if found:
            released.append(found.group(1))
    return released
