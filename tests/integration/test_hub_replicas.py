"""Several hub replicas on one PostgreSQL (issue 20): one leader, wake-ups across replicas, shared
identity, revocation everywhere, takeover, and SQLite's refusal of a second replica.

Real hubs on port 0 sharing a fresh PostgreSQL database, real Git, real gRPC; the harness's
stand-in spoke.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import kubernetes
import pytest
from grpc import aio

from hub.commands import hubserve
from hub.store import errors as store_errors
from hub.store import replicas
from hub.store.db import Database, normalize_url
from protos import oci
from protos.codec import pb
from spoke.agent import Agent
from spoke.cluster import ClusterClient
from spoke.settings import SpokeSettings
from tests.integration.hub_harness import (
    FleetRepo,
    admin_of,
    channel,
    configmap,
    convoy,
    docker_registry,
    fresh_postgres,
    hub_settings,
    next_desired,
    registered_spoke,
    running_hub,
)
from tests.polling import poll


async def _leads(hub: hubserve.RunningHub) -> bool:
    """This replica holds the lease and has synced the fleet once (followers serve what it stored)."""
    return hub.replication is not None and hub.replication.is_leader and hub.service.first_sync_done


async def _stream_ends(stream: object) -> bool:
    async def drain() -> None:
        while await stream.read() is not aio.EOF:  # type: ignore[attr-defined]
            pass
    try:
        await asyncio.wait_for(drain(), 10)
    except aio.AioRpcError:
        return True
    return True


async def test_a_spoke_on_a_follower_gets_its_bundle_and_every_commit_and_one_replica_leads(
        tmp_path: Path, fleet_repo: FleetRepo, postgres_url: str) -> None:
    identity = tmp_path / "identity"
    with fresh_postgres(postgres_url) as url:
        async with running_hub(hub_settings(tmp_path / "a", fleet_repo, database_url=url,
                                            identity_dir=identity)) as hub_a:
            await poll(lambda: _leads(hub_a), timeout=10, what="the first replica to lead")
            async with running_hub(hub_settings(tmp_path / "b", fleet_repo, database_url=url,
                                                identity_dir=identity)) as hub_b, \
                    channel(hub_b) as ch_b:
                # Shared identity: the same CA (one fingerprint in join tokens) and admin credential.
                assert hub_a.ca_fingerprint == hub_b.ca_fingerprint
                assert hub_a.admin_credential_path.read_text() == hub_b.admin_credential_path.read_text()
                assert hub_b.replication is not None and not hub_b.replication.is_leader
                assert replicas.current_leader(normalize_url(url)) == hub_a.replication.replica  # type: ignore[union-attr]

                # Registered on the follower: the leader renders it; the follower's stream gets it.
                spoke = await registered_spoke(hub_b, ch_b, "eu-1")
                stream = spoke.watch()
                first = await next_desired(stream, timeout=15)
                assert first.digest
                bundle, _ = await spoke.bundle(first.digest)
                assert bundle["objects"]

                # A commit, announced by a webhook at the follower: the leader syncs, the follower's
                # Watch stream (which the leader does not hold) wakes with the new digest.
                fleet_repo.commit({"apps/web/configmap.yaml": configmap("2")}, "v2")
                assert hub_b.replication is not None
                hub_b.replication.trigger("webhook at replica b")
                second = await next_desired(stream, timeout=15)
                assert second.digest != first.digest
                stream.cancel()


async def test_removing_a_cluster_on_one_replica_ends_its_stream_on_another(
        tmp_path: Path, fleet_repo: FleetRepo, postgres_url: str) -> None:
    identity = tmp_path / "identity"
    with fresh_postgres(postgres_url) as url:
        async with running_hub(hub_settings(tmp_path / "a", fleet_repo, database_url=url,
                                            identity_dir=identity)) as hub_a:
            await poll(lambda: _leads(hub_a), timeout=10, what="the first replica to lead")
            async with running_hub(hub_settings(tmp_path / "b", fleet_repo, database_url=url,
                                                identity_dir=identity)) as hub_b, \
                    channel(hub_a) as ch_a, channel(hub_b) as ch_b:
                spoke = await registered_spoke(hub_a, ch_a, "eu-1")
                spoke.channel = ch_b
                stream = spoke.watch()
                await next_desired(stream, timeout=15)
                assert (await spoke.report(phase=pb.PHASE_READY)).accepted  # B now caches the credential
                await admin_of(hub_a, ch_a).call("RemoveCluster", pb.RemoveClusterRequest(name="eu-1"))
                assert await _stream_ends(stream)
                # No cache on B outlives the removal on A.
                with pytest.raises(aio.AioRpcError) as refused:
                    await spoke.report(phase=pb.PHASE_READY)
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_an_age_key_rotation_asked_at_one_replica_reaches_the_stream_on_another(
        tmp_path: Path, fleet_repo: FleetRepo, postgres_url: str) -> None:
    identity = tmp_path / "identity"
    with fresh_postgres(postgres_url) as url:
        async with running_hub(hub_settings(tmp_path / "a", fleet_repo, database_url=url,
                                            identity_dir=identity)) as hub_a:
            await poll(lambda: _leads(hub_a), timeout=10, what="the first replica to lead")
            async with running_hub(hub_settings(tmp_path / "b", fleet_repo, database_url=url,
                                                identity_dir=identity)) as hub_b, \
                    channel(hub_a) as ch_a, channel(hub_b) as ch_b:
                spoke = await registered_spoke(hub_a, ch_a, "eu-1")
                spoke.channel = ch_b
                stream = spoke.watch()
                await next_desired(stream, timeout=15)
                # Asked at replica a; the spoke's only stream is on replica b.
                await admin_of(hub_a, ch_a).call("RotateAgeKey", pb.RotateAgeKeyRequest(name="eu-1"))

                async def asked() -> bool:
                    while True:
                        event = await stream.read()
                        assert event is not aio.EOF, "the stream ended instead"
                        if event.HasField("age_key_rotation"):
                            return True
                assert await asyncio.wait_for(asked(), 15), "replica b's stream passes the rotation on"
                stream.cancel()


async def test_when_the_leader_goes_another_replica_takes_over_and_syncs(
        tmp_path: Path, fleet_repo: FleetRepo, postgres_url: str) -> None:
    identity = tmp_path / "identity"
    with fresh_postgres(postgres_url) as url:
        hub_a = await hubserve.start_hub(hub_settings(tmp_path / "a", fleet_repo, database_url=url,
                                                      identity_dir=identity))
        stopped = False
        try:
            await poll(lambda: _leads(hub_a), timeout=10, what="the first replica to lead")
            async with running_hub(hub_settings(tmp_path / "b", fleet_repo, database_url=url,
                                                identity_dir=identity)) as hub_b, channel(hub_b) as ch_b:
                spoke = await registered_spoke(hub_b, ch_b, "eu-1")
                stream = spoke.watch()
                first = await next_desired(stream, timeout=15)
                await hub_a.stop(grace=2.0)
                stopped = True
                await poll(lambda: _leads(hub_b), timeout=10, what="the second replica to take over")
                fleet_repo.commit({"apps/web/configmap.yaml": configmap("3")}, "v3")
                assert hub_b.replication is not None
                hub_b.replication.trigger("webhook")
                second = await next_desired(stream, timeout=15)
                assert second.digest != first.digest
                stream.cancel()
        finally:
            if not stopped:
                await hub_a.stop(grace=2.0)


async def test_a_second_replica_on_the_same_sqlite_file_refuses_to_start(tmp_path: Path,
                                                                          fleet_repo: FleetRepo) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    async with running_hub(hub_settings(tmp_path / "a", fleet_repo, database_url=url)):
        with pytest.raises(store_errors.StoreError, match=r"already used by another hub replica.*PostgreSQL"):
            await hubserve.start_hub(hub_settings(tmp_path / "b", fleet_repo, database_url=url))
    # Once the first replica stopped, the file is free again.
    async with running_hub(hub_settings(tmp_path / "b", fleet_repo, database_url=url)):
        pass


async def test_a_real_spoke_given_two_replicas_moves_to_the_other_when_its_replica_goes(
        tmp_path: Path, fleet_repo: FleetRepo, postgres_url: str, kubesim_server: Any, kube_cluster: str) -> None:
    identity = tmp_path / "identity"
    with fresh_postgres(postgres_url) as url:
        hub_a = await hubserve.start_hub(hub_settings(tmp_path / "a", fleet_repo, database_url=url,
                                                      identity_dir=identity))
        stopped = False
        try:
            await poll(lambda: _leads(hub_a), timeout=10, what="the first replica to lead")
            async with running_hub(hub_settings(tmp_path / "b", fleet_repo, database_url=url,
                                                identity_dir=identity)) as hub_b, channel(hub_b) as ch_b:
                ca_file = tmp_path / "hub-ca.pem"
                ca_file.write_bytes(hub_b.ca_pem)
                token = await admin_of(hub_b, ch_b).token()
                agent = Agent(SpokeSettings(hub=f"{hub_a.grpc_address},{hub_b.grpc_address}", cluster=kube_cluster,
                                            token=token, hub_ca_file=str(ca_file), health_port=0,
                                            health_host="127.0.0.1", heartbeat=1.0, reconnect_cap=1.0),
                              cluster=ClusterClient.from_config_dict(kubesim_server.kubeconfig(kube_cluster)))
                api = kubesim_server.api_client(kube_cluster)
                core = kubernetes.client.CoreV1Api(api)

                async def version() -> str | None:
                    try:
                        cm = await asyncio.to_thread(core.read_namespaced_config_map, "web-config", "shop")
                    except kubernetes.client.ApiException:
                        return None
                    return str(cm.data["version"])

                # The fleet's app namespace; the standard fleet does not create it.
                await asyncio.to_thread(core.create_namespace, {"metadata": {"name": "shop"}})
                agent.start()
                try:
                    assert await poll(version, timeout=20, what="the first bundle applied") == "1"
                    assert hub_a.notifier.is_connected(kube_cluster)  # the first address given
                    await hub_a.stop(grace=2.0)
                    stopped = True
                    await poll(lambda: _leads(hub_b), timeout=10, what="the second replica to take over")
                    await poll(lambda: _true(hub_b.notifier.is_connected(kube_cluster)), timeout=20,
                               what="the spoke to reconnect to the other replica")
                    fleet_repo.commit({"apps/web/configmap.yaml": configmap("2")}, "v2")
                    assert hub_b.replication is not None
                    hub_b.replication.trigger("webhook")

                    async def updated() -> bool:
                        return await version() == "2"
                    await poll(updated, timeout=20, what="the spoke to apply the commit made after failover")
                finally:
                    await asyncio.to_thread(agent.stop)
                    agent.client.close()
                    api.close()
        finally:
            if not stopped:
                await hub_a.stop(grace=2.0)


async def _true(value: bool) -> bool:
    return value


async def _replicas_shown(hub: hubserve.RunningHub, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """``convoy status -o json``'s replicas, by address."""
    result = await convoy(hub, tmp_path, "status", "-o", "json")
    assert result.exit_code == 0, result.output
    return {r["address"]: r for r in json.loads(result.output)["replicas"]}


async def test_status_shows_each_replica_its_streams_and_the_leader_and_a_stopped_one_as_gone(
        tmp_path: Path, fleet_repo: FleetRepo, postgres_url: str) -> None:
    identity = tmp_path / "identity"
    with fresh_postgres(postgres_url) as url:
        async with running_hub(hub_settings(tmp_path / "a", fleet_repo, database_url=url, identity_dir=identity,
                                            replica_heartbeat=0.3)) as hub_a, channel(hub_a) as ch_a:
            await poll(lambda: _leads(hub_a), timeout=10, what="the first replica to lead")
            hub_b = await hubserve.start_hub(hub_settings(tmp_path / "b", fleet_repo, database_url=url,
                                                          identity_dir=identity, replica_heartbeat=0.3))
            stopped = False
            try:
                async with channel(hub_b) as ch_b:
                    streams = []
                    for hub, ch, name in ((hub_a, ch_a, "eu-1"), (hub_a, ch_a, "eu-2"), (hub_b, ch_b, "us-1")):
                        spoke = await registered_spoke(hub, ch, name)
                        streams.append(stream := spoke.watch())
                        await next_desired(stream, timeout=15)
                    a, b = hub_a.grpc_address, hub_b.grpc_address

                    async def counted() -> dict[str, dict[str, Any]] | None:
                        shown = await _replicas_shown(hub_a, tmp_path)
                        ok = {k: (v["streams"], v["leader"], v["gone"]) for k, v in shown.items()} == {
                            a: (2, True, False), b: (1, False, False)}
                        return shown if ok else None
                    shown = await poll(counted, timeout=10, what="status to show both replicas and their streams")
                    assert shown[a]["name"] in hub_a.replication.replica  # type: ignore[union-attr]
                    assert shown[a]["started"] and shown[a]["lastHeartbeat"]

                    table = (await convoy(hub_b, tmp_path, "status")).output
                    assert "replicas: 2 live; leader " in table, table
                    assert f"{b}: follower, 1 Watch stream, started" in table, table
                    assert f"{a}: leader, 2 Watch streams, started" in table, table

                    for stream in streams:
                        stream.cancel()
                await hub_b.stop(grace=2.0)
                stopped = True

                async def b_gone() -> bool:
                    shown = await _replicas_shown(hub_a, tmp_path)
                    return shown[b]["gone"] and not shown[a]["gone"] and shown[a]["leader"]
                await poll(b_gone, timeout=10, what="the stopped replica to be shown gone")
                assert "replicas: 1 live, 1 gone; leader " in (await convoy(hub_a, tmp_path, "status")).output
            finally:
                if not stopped:
                    await hub_b.stop(grace=2.0)


async def test_convoy_sync_at_a_follower_is_run_by_the_leader_and_reports_where_the_commit_leaves_clusters(
        tmp_path: Path, fleet_repo: FleetRepo, postgres_url: str) -> None:
    identity = tmp_path / "identity"
    with fresh_postgres(postgres_url) as url:
        async with running_hub(hub_settings(tmp_path / "a", fleet_repo, database_url=url,
                                            identity_dir=identity)) as hub_a:
            await poll(lambda: _leads(hub_a), timeout=10, what="the first replica to lead")
            async with running_hub(hub_settings(tmp_path / "b", fleet_repo, database_url=url,
                                                identity_dir=identity)) as hub_b, channel(hub_b) as ch_b:
                spoke = await registered_spoke(hub_b, ch_b, "eu-1")
                stream = spoke.watch()
                first = await next_desired(stream, timeout=15)
                head = fleet_repo.commit({"apps/web/configmap.yaml": configmap("2")}, "v2")

                result = await convoy(hub_b, tmp_path, "sync")
                assert result.exit_code == 0, result.output
                assert result.output.strip() == f"commit {head[:12]}: 1 cluster desires it now (eu-1)"
                # The follower never touched the repository: the leader ran the sync.
                assert not hub_b.service.first_sync_done
                assert (await next_desired(stream, timeout=15)).digest != first.digest

                # Again at the same head: the leader's answer still says where the commit leaves eu-1.
                again = await convoy(hub_b, tmp_path, "sync")
                assert again.output.strip() == f"commit {head[:12]} (already deployed): 1 cluster desires it now " \
                                               "(eu-1)", again.output
                stream.cancel()


async def test_convoy_sync_at_a_follower_without_an_answering_leader_fails_clearly_after_the_timeout(
        tmp_path: Path, fleet_repo: FleetRepo, postgres_url: str) -> None:
    import psycopg

    with fresh_postgres(postgres_url) as url:
        conninfo = normalize_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        # The lease held by something that is no hub: the replica stays a follower and nobody answers.
        with psycopg.connect(conninfo, autocommit=True, application_name="convoy-leader elsewhere") as squatter:
            db = Database(url)
            await asyncio.to_thread(db.migrate)
            db.dispose()
            squatter.execute("SELECT pg_advisory_lock(%s)", (replicas.LEADER_LOCK_KEY,))
            async with running_hub(hub_settings(tmp_path / "b", fleet_repo, database_url=url,
                                                sync_handoff_timeout=1.0)) as hub_b:
                assert hub_b.replication is not None and not hub_b.replication.is_leader
                result = await asyncio.wait_for(convoy(hub_b, tmp_path, "sync"), 20)
                assert result.exit_code != 0
                assert "is not the leader and handed the sync over, but the leader replica elsewhere did not " \
                       "answer within 1s" in result.output, result.output


def _registry_manifest(registry: str, tag: str) -> dict[str, Any] | None:
    request = urllib.request.Request(f"http://{registry}/v2/fleet/bundles/manifests/{tag}",
                                     headers={"Accept": oci.MANIFEST_MEDIA_TYPE})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError:
        return None


def _pushed(hub: hubserve.RunningHub) -> float:
    return float(hub.metrics.oci_pushes.labels(outcome="pushed")._value.get())


async def _counted(hub: hubserve.RunningHub) -> bool:
    """The push is recorded (the registry has the tag a moment before the pusher counts it)."""
    return _pushed(hub) >= 1


async def test_only_the_leader_pushes_to_the_registry_and_a_new_leader_pushes_only_what_is_left(
        tmp_path: Path, fleet_repo: FleetRepo, postgres_url: str) -> None:
    identity = tmp_path / "identity"
    with fresh_postgres(postgres_url) as url, docker_registry(tmp_path / "registry") as registry:
        def settings(name: str) -> Any:
            return hub_settings(tmp_path / name, fleet_repo, database_url=url, identity_dir=identity,
                                oci_push=f"{registry}/fleet/bundles", oci_push_insecure=True, oci_push_interval=0.2)
        hub_a = await hubserve.start_hub(settings("a"))
        stopped = False
        try:
            await poll(lambda: _leads(hub_a), timeout=10, what="the first replica to lead")
            async with running_hub(settings("b")) as hub_b, channel(hub_b) as ch_b:
                spoke = await registered_spoke(hub_b, ch_b, "eu-1")
                first = await next_desired(spoke.watch(), timeout=15)
                tag = f"eu-1-{first.commit[:7]}"
                pushed = await poll(lambda: asyncio.to_thread(_registry_manifest, registry, tag), timeout=20,
                                    what=f"{tag} pushed by the leader")
                assert pushed["annotations"][oci.ANNOTATION_BUNDLE_DIGEST] == first.digest
                await poll(lambda: _counted(hub_a), timeout=10, what="the leader's push counted")
                assert _pushed(hub_a) == 1 and _pushed(hub_b) == 0  # the follower pushed nothing
                # The follower's Watch names the manifest the leader pushed (the ledger is in the database).
                stream = spoke.watch()
                again = await next_desired(stream, timeout=15)
                assert again.oci_reference.startswith(f"{registry}/fleet/bundles@sha256:")

                await hub_a.stop(grace=2.0)
                stopped = True
                await poll(lambda: _leads(hub_b), timeout=10, what="the second replica to take over")
                fleet_repo.commit({"apps/web/configmap.yaml": configmap("3")}, "v3")
                assert hub_b.replication is not None
                hub_b.replication.trigger("webhook")
                second = await next_desired(stream, timeout=15)
                assert second.digest != first.digest
                stream.cancel()
                new_tag = f"eu-1-{second.commit[:7]}"
                await poll(lambda: asyncio.to_thread(_registry_manifest, registry, new_tag), timeout=20,
                           what=f"{new_tag} pushed by the new leader")
                # The new leader pushed the new bundle only: the first one was in the ledger already.
                await poll(lambda: _counted(hub_b), timeout=10, what="the new leader's push counted")
                assert _pushed(hub_b) == 1
                latest = await asyncio.to_thread(_registry_manifest, registry, "eu-1-latest")
                assert latest is not None and latest["annotations"][oci.ANNOTATION_BUNDLE_DIGEST] == second.digest
        finally:
            if not stopped:
                await hub_a.stop(grace=2.0)
