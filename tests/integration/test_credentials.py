"""Credentials that can be withdrawn (issue 13, items 12, 14, 15, 16), against a real hub on port 0:

* ``convoy cluster remove`` ends the cluster's open Watch and StreamStatus streams at once and its
  credential (cached or not) is refused from then on;
* ``convoy cluster rotate-credential`` hands a real spoke its new credential over its Watch stream;
  the spoke stores it in its Secret and reconnects, and the old one stops working; an offline spoke
  gets it when it connects, a lost hand-over is repeated, and an unused new credential retires the old
  one only after the grace period;
* bootstrap tokens bound to a name or a prefix, and names declared in Git kept from unbound tokens;
* the event log: no row per made-up token, repeats aggregated, retention by age and count;
* the data directory and the SQLite files are owner-only under umask 0022.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner
from grpc import aio

from hub.cli import cli
from hub.security import secrets as hub_secrets
from hub.store import models
from hub.store import repository as store
from protos.codec import pb
from spoke.agent import Agent
from spoke.cluster import ClusterClient
from spoke.credentials import CredentialStore
from spoke.settings import SpokeSettings
from tests.integration.hub_harness import (
    FleetRepo,
    Spoke,
    admin_of,
    channel,
    hub_settings,
    next_desired,
    registered_spoke,
    running_hub,
)
from tests.polling import poll


async def _code_of(awaitable: Any) -> grpc.StatusCode | None:
    try:
        await awaitable
    except aio.AioRpcError as exc:
        return exc.code()
    return None


async def _rotation(stream: Any, *, timeout: float = 10.0) -> pb.CredentialRotation:
    """The next credential rotation on a Watch stream, skipping desired states and heartbeats."""
    async def read() -> pb.CredentialRotation:
        while True:
            event = await stream.read()
            if event is aio.EOF:
                raise AssertionError("watch stream ended")
            if event.WhichOneof("event") == "rotation":
                return event.rotation
    return await asyncio.wait_for(read(), timeout)


async def _stream_end(stream: Any, *, timeout: float = 5.0) -> grpc.StatusCode:
    """Read a server stream until it ends; the status it ended with."""
    async def drain() -> grpc.StatusCode:
        try:
            while await stream.read() is not aio.EOF:
                pass
        except aio.AioRpcError as exc:
            return exc.code()
        return await stream.code()  # type: ignore[no-any-return]
    return await asyncio.wait_for(drain(), timeout)


def _events(hub: Any, kind: models.EventKind, cluster: str | None = None) -> list[models.Event]:
    with hub.db.session(write=False) as session:
        return [e for e in store.events(session, kinds=[kind], limit=10_000)
                if cluster is None or e.cluster == cluster]


# -- item 12: remove ---------------------------------------------------------------------------------

async def test_remove_ends_open_streams_and_refuses_the_credential_at_once(
        tmp_path: Path, fleet_repo: FleetRepo, database_url: str | None) -> None:
    # A long heartbeat: nothing but the removal can end the streams within the test's patience.
    settings = hub_settings(tmp_path / "hub", fleet_repo, database_url=database_url, heartbeat_seconds=60)
    async with running_hub(settings) as hub, channel(hub) as ch:
        admin = admin_of(hub, ch)
        spoke = await registered_spoke(hub, ch, "alpha")
        other = await registered_spoke(hub, ch, "beta")
        watch = spoke.watch()
        await next_desired(watch)
        other_watch = other.watch()
        await next_desired(other_watch)
        reports: asyncio.Queue[pb.StatusReport | None] = asyncio.Queue()

        async def outgoing() -> AsyncIterator[pb.StatusReport]:
            while (report := await reports.get()) is not None:
                yield report
        status_stream = spoke.stub.StreamStatus(outgoing(), metadata=spoke.metadata)
        await reports.put(pb.StatusReport(phase=pb.PHASE_READY))
        assert (await asyncio.wait_for(status_stream.read(), 5)).accepted
        assert (await spoke.report(phase=pb.PHASE_READY)).accepted  # the credential is now cached

        removed = await admin.call("RemoveCluster", pb.RemoveClusterRequest(name="alpha"))
        assert removed.removed and removed.streams_ended == 2
        assert await _stream_end(watch) == grpc.StatusCode.UNAUTHENTICATED
        assert await _stream_end(status_stream) == grpc.StatusCode.UNAUTHENTICATED
        assert await _code_of(spoke.report(phase=pb.PHASE_READY)) == grpc.StatusCode.UNAUTHENTICATED
        assert await _stream_end(spoke.watch()) == grpc.StatusCode.UNAUTHENTICATED  # a new stream too

        # The other cluster is untouched.
        assert (await other.report(phase=pb.PHASE_READY)).accepted
        assert hub.notifier.is_connected("beta")
        listing = await admin.call("ListClusters", pb.ListClustersRequest())
        assert [c.name for c in listing.clusters] == ["beta"]
        [event] = _events(hub, models.EventKind.DEREGISTERED, "alpha")
        assert "registration removed" in event.message

        missing = await _code_of(admin.call("RemoveCluster", pb.RemoveClusterRequest(name="alpha")))
        assert missing == grpc.StatusCode.NOT_FOUND
        # The name is free again for a new token.
        again = await registered_spoke(hub, ch, "alpha")
        assert again.credential != spoke.credential
        other_watch.cancel()
        await reports.put(None)


# -- item 12: rotate, with the real spoke ------------------------------------------------------------

@pytest.fixture
def kube(kubesim_server: Any, kube_cluster: str) -> Iterator[tuple[Any, str]]:
    yield kubesim_server, kube_cluster


async def test_rotation_reaches_the_real_spoke_which_stores_it_and_retires_the_old_one(
        tmp_path: Path, fleet_repo: FleetRepo, kube: tuple[Any, str]) -> None:
    kubesim_server, name = kube
    settings = hub_settings(tmp_path / "hub", fleet_repo, insecure=True, heartbeat_seconds=60)
    async with running_hub(settings) as hub, channel(hub) as ch:
        admin = admin_of(hub, ch)
        token = await admin.token()
        agent = Agent(SpokeSettings(hub=hub.grpc_address, cluster=name, token=token, insecure=True, health_port=0,
                                    health_host="127.0.0.1", heartbeat=1.0, reconnect_cap=1.0),
                      cluster=ClusterClient.from_config_dict(kubesim_server.kubeconfig(name)))
        agent.start()
        secret_client = ClusterClient.from_config_dict(kubesim_server.kubeconfig(name))
        secret = CredentialStore(secret_client, namespace=agent.settings.namespace, name=agent.settings.state_secret)
        try:
            await poll(lambda: _true(hub.notifier.is_connected(name)), what="the spoke's Watch stream")
            before = await asyncio.to_thread(secret.load)
            assert before is not None
            old = Spoke(ch, name=name, credential=before.credential)
            assert (await old.report(phase=pb.PHASE_READY)).accepted

            reply = await admin.call("RotateCredential", pb.RotateCredentialRequest(name=name))
            assert reply.online

            async def stored() -> str | None:
                now = await asyncio.to_thread(secret.load)
                return now.credential if now is not None and now.credential != before.credential else None
            new_credential = await poll(stored, what="the rotated credential in the spoke's Secret")

            async def retired() -> bool:
                return await _code_of(old.report(phase=pb.PHASE_READY)) == grpc.StatusCode.UNAUTHENTICATED
            await poll(retired, what="the old credential to be refused")
            assert (await Spoke(ch, name=name, credential=new_credential).report(phase=pb.PHASE_READY)).accepted
            # The spoke carries on with the new credential: connected, and its reports arrive.
            await poll(lambda: _true(hub.notifier.is_connected(name)), what="the spoke to reconnect")
            messages = [e.message for e in _events(hub, models.EventKind.CREDENTIAL_ROTATION, name)]
            assert any("requested" in m for m in messages) and any("credential rotated" in m for m in messages)
            assert new_credential not in str([(e.message, e.details) for e in _events(
                hub, models.EventKind.CREDENTIAL_ROTATION)])
        finally:
            await asyncio.to_thread(agent.stop)
            agent.client.close()
            secret_client.close()


async def _true(value: bool) -> bool:
    return value


async def test_an_offline_spoke_gets_its_new_credential_when_it_connects_and_a_lost_one_is_resent(
        tmp_path: Path, fleet_repo: FleetRepo, database_url: str | None) -> None:
    settings = hub_settings(tmp_path / "hub", fleet_repo, database_url=database_url, heartbeat_seconds=60)
    async with running_hub(settings) as hub, channel(hub) as ch:
        admin = admin_of(hub, ch)
        spoke = await registered_spoke(hub, ch, "alpha")
        reply = await admin.call("RotateCredential", pb.RotateCredentialRequest(name="alpha"))
        assert not reply.online  # handed over when it next connects
        assert (await spoke.report(phase=pb.PHASE_READY)).accepted  # meanwhile the old one works

        first_stream = spoke.watch()
        first = await _rotation(first_stream)
        assert first.credential and first.old_valid_seconds == 3600
        first_stream.cancel()  # the spoke never stored it: "lost"
        assert (await spoke.report(phase=pb.PHASE_READY)).accepted  # so the old one still works
        second_stream = spoke.watch()
        second = await _rotation(second_stream)  # and the next connection gets another one
        assert second.credential != first.credential

        renewed = Spoke(ch, name="alpha", credential=second.credential)
        watch = renewed.watch()
        await next_desired(watch)
        # Once the new one is used, the old one and its stream are done, and nothing is pending.
        assert await _stream_end(second_stream) == grpc.StatusCode.UNAUTHENTICATED
        assert await _code_of(spoke.report(phase=pb.PHASE_READY)) == grpc.StatusCode.UNAUTHENTICATED
        stale = Spoke(ch, name="alpha", credential=first.credential)
        assert await _code_of(stale.report(phase=pb.PHASE_READY)) == grpc.StatusCode.UNAUTHENTICATED
        assert (await renewed.report(phase=pb.PHASE_READY)).accepted
        with hub.db.session(write=False) as session:
            row = store.get_cluster(session, "alpha")
            assert row is not None and row.rotation_requested_at is None and row.next_credential_hash is None
            assert row.credential_hash == hub_secrets.hash_secret(second.credential)
        missing = await _code_of(admin.call("RotateCredential", pb.RotateCredentialRequest(name="ghost")))
        assert missing == grpc.StatusCode.NOT_FOUND
        watch.cancel()


async def test_an_unused_new_credential_retires_the_old_one_after_the_grace_period(
        tmp_path: Path, fleet_repo: FleetRepo) -> None:
    settings = hub_settings(tmp_path / "hub", fleet_repo, heartbeat_seconds=60, credential_rotation_grace=1.0)
    async with running_hub(settings) as hub, channel(hub) as ch:
        spoke = await registered_spoke(hub, ch, "alpha")
        assert (await spoke.report(phase=pb.PHASE_READY)).accepted  # cached from here on
        stream = spoke.watch()
        await next_desired(stream)
        await admin_of(hub, ch).call("RotateCredential", pb.RotateCredentialRequest(name="alpha"))
        rotation = await _rotation(stream)
        assert rotation.old_valid_seconds == 1
        assert (await spoke.report(phase=pb.PHASE_READY)).accepted  # within the grace period

        async def refused() -> bool:
            return await _code_of(spoke.report(phase=pb.PHASE_READY)) == grpc.StatusCode.UNAUTHENTICATED
        await poll(refused, what="the old credential to expire (1 s grace, not the 30 s auth cache)", timeout=8)
        # The new one still works when the spoke finally uses it.
        assert (await Spoke(ch, name="alpha", credential=rotation.credential).report(
            phase=pb.PHASE_READY)).accepted
        stream.cancel()


def test_cluster_commands_of_the_cli(tmp_path: Path, fleet_repo: FleetRepo,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub, channel(hub) as ch:
            await registered_spoke(hub, ch, "alpha")
            monkeypatch.setenv("CONVOY_CONFIG", str(hub.cli_config_path))
            runner = CliRunner()
            rotated = await asyncio.to_thread(runner.invoke, cli, ["cluster", "rotate-credential", "alpha"])
            assert rotated.exit_code == 0, rotated.output
            assert "when it next connects" in rotated.output
            removed = await asyncio.to_thread(runner.invoke, cli, ["cluster", "remove", "alpha"])
            assert removed.exit_code == 0 and "cluster alpha removed" in removed.output
            gone = await asyncio.to_thread(runner.invoke, cli, ["cluster", "remove", "alpha"])
            assert gone.exit_code == 1 and "cluster alpha is not registered" in gone.output
            made = await asyncio.to_thread(runner.invoke, cli, ["token", "create", "--name-prefix", "edge-"])
            assert made.exit_code == 0 and "names starting with edge-" in made.output
            both = await asyncio.to_thread(runner.invoke, cli, ["token", "create", "--cluster", "a", "--any-name"])
            assert both.exit_code == 2
    asyncio.run(scenario())


# -- item 14: bound tokens -----------------------------------------------------------------------------

async def test_tokens_bound_to_a_name_or_prefix_and_declared_names(
        tmp_path: Path, fleet_repo: FleetRepo, database_url: str | None) -> None:
    fleet_repo.commit({"clusters/prod-1/cluster.yaml": "labels: {env: prod}\n"})
    settings = hub_settings(tmp_path / "hub", fleet_repo, database_url=database_url)
    async with running_hub(settings) as hub, channel(hub) as ch:
        admin = admin_of(hub, ch)

        async def token(**binding: Any) -> pb.CreateTokenResponse:
            return await admin.call("CreateToken", pb.CreateTokenRequest(ttl_seconds=600, uses=1, **binding))

        async def refusal(secret: str, name: str) -> aio.AioRpcError:
            with pytest.raises(aio.AioRpcError) as caught:
                await Spoke(ch).register(secret, name)
            return caught.value

        only_alpha = await token(cluster="alpha")
        assert only_alpha.info.cluster == "alpha"
        denied = await refusal(only_alpha.token, "beta")
        assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "cluster beta" in (denied.details() or "") and "bound to cluster alpha" in (denied.details() or "")
        assert (await Spoke(ch).register(only_alpha.token, "alpha")).cluster_name == "alpha"  # use not spent

        edge = await token(name_prefix="edge-")
        denied = await refusal(edge.token, "core-1")
        assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "names starting with 'edge-'" in (denied.details() or "")
        assert (await Spoke(ch).register(edge.token, "edge-1")).cluster_name == "edge-1"

        # prod-1 is declared in Git: an unbound token may not claim it, but may take other names.
        unbound = await token()
        denied = await refusal(unbound.token, "prod-1")
        assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "clusters/prod-1/cluster.yaml" in (denied.details() or "")
        assert (await Spoke(ch).register(unbound.token, "dev-9")).cluster_name == "dev-9"
        anything = await token(any_name=True)
        assert anything.info.any_name
        assert (await Spoke(ch).register(anything.token, "prod-1")).cluster_name == "prod-1"

        listed = {t.id: t for t in (await admin.call("ListTokens", pb.ListTokensRequest())).tokens}
        assert listed[edge.info.id].name_prefix == "edge-" and listed[only_alpha.info.id].cluster == "alpha"
        for bad in ({"cluster": "a", "name_prefix": "b"}, {"cluster": "Not_A_Name"}, {"name_prefix": "-x"},
                    {"name_prefix": "a", "any_name": True}):
            assert await _code_of(token(**bad)) == grpc.StatusCode.INVALID_ARGUMENT, bad


# -- item 15: the event log ------------------------------------------------------------------------------

async def test_refusals_and_flapping_do_not_grow_the_event_log_without_bound(
        tmp_path: Path, fleet_repo: FleetRepo, database_url: str | None) -> None:
    settings = hub_settings(tmp_path / "hub", fleet_repo, database_url=database_url, register_burst=200)
    async with running_hub(settings) as hub, channel(hub) as ch:
        admin = admin_of(hub, ch)
        for i in range(40):  # made-up and malformed tokens: nothing to audit, and anyone can send them
            made_up = f"{i:012x}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" if i % 2 else "garbage"
            with pytest.raises(aio.AioRpcError):
                await Spoke(ch).register(made_up, f"c{i}")
        assert _events(hub, models.EventKind.REGISTRATION_REFUSED) == []

        bound = await admin.call("CreateToken", pb.CreateTokenRequest(ttl_seconds=600, uses=1, cluster="alpha"))
        for _ in range(5):  # a real token used for the wrong name: recorded, once, with a count
            with pytest.raises(aio.AioRpcError):
                await Spoke(ch).register(bound.token, "beta")
        [refused] = _events(hub, models.EventKind.REGISTRATION_REFUSED)
        assert refused.details is not None and refused.details["count"] == 5

        spoke = await registered_spoke(hub, ch, "alpha")
        long_message = "x" * 8000
        for i in range(30):  # a spoke flapping at the report rate, with an 8 KB message
            phase = pb.PHASE_READY if i % 2 else pb.PHASE_DEGRADED
            await spoke.report(phase=phase, message=long_message if phase == pb.PHASE_DEGRADED else "")
        flaps = _events(hub, models.EventKind.STATUS, "alpha")
        assert len(flaps) <= 3, [e.message[:60] for e in flaps]
        assert sum(int((e.details or {}).get("count") or 1) for e in flaps) == 30
        assert all(len(e.message) < 500 for e in flaps)


async def test_events_are_retained_by_age_and_count(tmp_path: Path, fleet_repo: FleetRepo,
                                                    database_url: str | None) -> None:
    settings = hub_settings(tmp_path / "hub", fleet_repo, database_url=database_url, event_max_count=100,
                            event_retention=7 * 86400, event_prune_interval=0.2)
    async with running_hub(settings) as hub:
        now = dt.datetime.now(dt.UTC)
        with hub.db.session() as session:
            for i in range(20):
                store.add_event(session, models.EventKind.HUB, message=f"ancient {i}", now=now - dt.timedelta(days=8))
            for i in range(300):
                store.add_event(session, models.EventKind.HUB, message=f"recent {i}", now=now)

        def remaining() -> list[str]:
            with hub.db.session(write=False) as session:
                return [e.message for e in store.events(session, limit=10_000)]

        async def pruned() -> list[str] | None:
            left = await asyncio.to_thread(remaining)
            return left if len(left) <= 100 else None
        left = await poll(pruned, what="the event log to be pruned to 100 events")
        assert not any(m.startswith("ancient") for m in left)
        assert "recent 299" in left and "recent 0" not in left


# -- item 16: file modes ----------------------------------------------------------------------------------

@pytest.fixture
def umask_0022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


async def test_data_directory_and_database_files_are_owner_only(tmp_path: Path, fleet_repo: FleetRepo,
                                                                umask_0022: None) -> None:
    data_dir = tmp_path / "hub"
    async with running_hub(hub_settings(data_dir, fleet_repo)) as hub, channel(hub) as ch:
        await registered_spoke(hub, ch, "alpha")  # some writes, so the WAL is in use
        files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in data_dir.iterdir() if p.name.startswith("convoy.db")}
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        assert {"convoy.db", "convoy.db-wal", "convoy.db-shm"} <= set(files)
        assert all(mode == 0o600 for mode in files.values()), {k: oct(v) for k, v in files.items()}


def test_an_existing_loose_data_directory_is_tightened(tmp_path: Path, fleet_repo: FleetRepo,
                                                       umask_0022: None, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path / "hub"
    data_dir.mkdir(mode=0o755)
    (data_dir / "convoy.db").touch(mode=0o644)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(cli, ["hub", "migrate", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((data_dir / "convoy.db").stat().st_mode) == 0o600
