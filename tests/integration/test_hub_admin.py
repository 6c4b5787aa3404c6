"""AdminService against a real hub: credentials, listing with selectors, pause by selector, bundle objects
with Secret values redacted, rollout calls not served yet; plus readiness, metrics, polling, signed commits
and many idle watchers."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc import aio

from protos.codec import pb
from tests.integration.hub_harness import (
    Admin,
    FleetRepo,
    admin_of,
    channel,
    configmap,
    hub_settings,
    next_desired,
    registered_spoke,
    running_hub,
    standard_fleet,
)
from tests.polling import poll

SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: web-secret
stringData:
  password: hunter2
"""


async def test_admin_calls_need_the_admin_credential(tmp_path: Path, fleet_repo: FleetRepo) -> None:
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub, channel(hub) as ch:
        spoke = await registered_spoke(hub, ch, "alpha")
        for credential in ("", "wrong", spoke.credential):
            with pytest.raises(aio.AioRpcError) as caught:
                await Admin(ch, credential).call("ListClusters", pb.ListClustersRequest())
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(aio.AioRpcError) as caught:
            await admin_of(hub, ch).call("GetCluster", pb.GetClusterRequest(name="nope"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND and "cluster nope" in (caught.value.details() or "")
        # No rollout has run yet (rollouts themselves: tests/e2e/test_rollouts_e2e.py).
        for method, request, code in (
                ("RolloutStatus", pb.RolloutStatusRequest(), grpc.StatusCode.NOT_FOUND),
                ("RolloutControl", pb.RolloutControlRequest(action="pause"), grpc.StatusCode.INVALID_ARGUMENT),
                ("Pin", pb.PinRequest(clusters=["alpha"], to="sha256:" + "0" * 64), grpc.StatusCode.INVALID_ARGUMENT)):
            with pytest.raises(aio.AioRpcError) as caught:
                await admin_of(hub, ch).call(method, request)
            assert caught.value.code() == code, method


async def test_list_pause_and_bundle_objects(tmp_path: Path, fleet_repo: FleetRepo) -> None:
    fleet_repo.commit({"apps/web/secret.yaml": SECRET,
                       "apps/web/kustomization.yaml": "resources: [configmap.yaml, secret.yaml]\n"})
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub, channel(hub) as ch:
        admin = admin_of(hub, ch)
        prod = await registered_spoke(hub, ch, "prod-1", {"env": "prod"})
        await registered_spoke(hub, ch, "dev-1", {"env": "dev"})
        stream = prod.watch()
        desired = await next_desired(stream)

        listing = await admin.call("ListClusters", pb.ListClustersRequest(selector="env=prod"))
        assert [c.name for c in listing.clusters] == ["prod-1"]
        assert listing.fleet_commit == fleet_repo.head() and listing.heartbeat_seconds == 1
        [summary] = listing.clusters
        assert summary.online and summary.desired_digest == desired.digest
        assert summary.phase == pb.PHASE_UNSPECIFIED  # never reported
        everything = await admin.call("ListClusters", pb.ListClustersRequest())
        assert [c.name for c in everything.clusters] == ["dev-1", "prod-1"]
        with pytest.raises(aio.AioRpcError) as caught:
            await admin.call("ListClusters", pb.ListClustersRequest(selector="env in (prod"))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        paused = await admin.call("SetPaused", pb.SetPausedRequest(selector="env=prod", paused=True))
        assert list(paused.clusters) == ["prod-1"]
        assert (await next_desired(stream)).paused
        resumed = await admin.call("SetPaused", pb.SetPausedRequest(clusters=["prod-1"], paused=False))
        assert list(resumed.clusters) == ["prod-1"] and not (await next_desired(stream)).paused
        with pytest.raises(aio.AioRpcError) as caught:
            await admin.call("SetPaused", pb.SetPausedRequest(clusters=["ghost"], paused=True))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND

        shown = await admin.call("GetBundleObjects", pb.GetBundleObjectsRequest(digest=desired.digest))
        document = json.loads(shown.bundle_json)
        secret = next(o for o in document["objects"] if o["kind"] == "Secret")
        assert secret["stringData"] == {"password": "<redacted>"}
        assert b"hunter2" not in shown.bundle_json
        stream.cancel()

        history = await admin.call("History", pb.HistoryRequest(cluster="prod-1", limit=50))
        kinds = [e.kind for e in history.events]
        assert {"registration", "desired_changed", "paused", "resumed"} <= set(kinds)
        assert all(e.cluster == "prod-1" for e in history.events)


async def test_readiness_metrics_and_polling(tmp_path: Path, fleet_repo: FleetRepo) -> None:
    settings = hub_settings(tmp_path / "hub", fleet_repo, poll_interval=0.2)
    async with running_hub(settings) as hub, channel(hub) as ch, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{hub.http_port}"

        async def ready() -> bool:
            async with http.get(f"{base}/readyz") as resp:
                return resp.status == 200
        await poll(ready, what="/readyz")

        spoke = await registered_spoke(hub, ch, "alpha")
        stream = spoke.watch()
        first = await next_desired(stream)
        fleet_repo.commit({"apps/web/configmap.yaml": configmap("polled")})
        moved = await next_desired(stream, timeout=10)  # found by the poll loop alone
        assert moved.commit == fleet_repo.head() and moved.digest != first.digest
        await spoke.report(phase=pb.PHASE_READY, applied_commit=moved.commit, applied_digest=moved.digest)

        async with http.get(f"{base}/metrics") as resp:
            text = await resp.text()
        assert 'convoy_hub_fetches_total{outcome="ok"}' in text
        assert 'convoy_hub_clusters{phase="Ready"} 1.0' in text
        assert "convoy_hub_connected_spokes 1.0" in text
        count = next(line for line in text.splitlines() if line.startswith("convoy_hub_render_duration_seconds_count"))
        assert float(count.split()[-1]) >= 2
        age = next(line for line in text.splitlines() if line.startswith("convoy_hub_last_commit_age_seconds"))
        assert 0 <= float(age.split()[-1]) < 3600
        stream.cancel()


async def test_dead_streams_are_reaped_and_many_watchers_all_hear(tmp_path: Path, fleet_repo: FleetRepo) -> None:
    # 1,500 streams of one cluster stand for as many clusters: lift the per-cluster Watch bound.
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo, heartbeat_seconds=30,
                                        watch_burst=2000)) as hub, \
            channel(hub) as ch:
        spoke = await registered_spoke(hub, ch, "alpha")
        # More than gRPC core's default queue of 1,000 calls the server has not picked up yet: a
        # reconnect storm after a hub restart looks like this, and no stream may be lost to it.
        streams = [spoke.watch() for _ in range(1500)]
        firsts = await asyncio.gather(*(next_desired(s, timeout=30) for s in streams))
        assert hub.notifier.stream_count == 1500
        fleet_repo.commit({"apps/web/configmap.yaml": configmap("2")})
        await admin_of(hub, ch).call("SyncNow", pb.SyncNowRequest())
        seconds = await asyncio.gather(*(next_desired(s, timeout=10) for s in streams))
        assert all(b.digest != a.digest for a, b in zip(firsts, seconds, strict=True))
        for stream in streams:
            stream.cancel()

        async def reaped() -> bool:
            return hub.notifier.stream_count == 0
        await poll(reaped, what="cancelled Watch streams to be reaped")


def _ssh_signer(tmp_path: Path) -> tuple[Path, Path]:
    key = tmp_path / "signing_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dev", "-f", str(key)], check=True)
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"dev@example.test {(tmp_path / 'signing_key.pub').read_text()}")
    return key, allowed


async def test_unsigned_head_is_refused_and_the_last_signed_commit_kept(tmp_path: Path,
                                                                         fleet_repo: FleetRepo) -> None:
    key, allowed = _ssh_signer(tmp_path)
    sign = ("-c", "gpg.format=ssh", "-c", f"user.signingkey={key}")
    fleet_repo.write({"apps/web/configmap.yaml": configmap("signed")})
    fleet_repo.git("add", "-A")
    fleet_repo.git(*sign, "commit", "-q", "-S", "-m", "signed release")
    signed = fleet_repo.head()
    settings = hub_settings(tmp_path / "hub", fleet_repo, require_signed_commits=True,
                            allowed_signers_file=allowed)
    async with running_hub(settings) as hub, channel(hub) as ch:
        spoke = await registered_spoke(hub, ch, "alpha")
        stream = spoke.watch()
        desired = await next_desired(stream)
        assert desired.commit == signed
        unsigned = fleet_repo.commit({"apps/web/configmap.yaml": configmap("unsigned")})
        reply = await admin_of(hub, ch).call("SyncNow", pb.SyncNowRequest())
        assert reply.commit == unsigned and not reply.changed and "unsigned" in reply.message
        listing = await admin_of(hub, ch).call("ListClusters", pb.ListClustersRequest())
        assert listing.fleet_commit == signed and listing.clusters[0].desired_commit == signed
        history = await admin_of(hub, ch).call("History", pb.HistoryRequest(all=True, limit=50))
        assert any(e.kind == "commit_refused" and e.commit == unsigned for e in history.events)
        stream.cancel()


async def test_unreachable_repository_keeps_the_hub_up_until_it_appears(tmp_path: Path) -> None:
    later = tmp_path / "fleet-later"
    async with running_hub(hub_settings(tmp_path / "hub", later, poll_interval=0.2)) as hub, \
            aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{hub.http_port}"

        async def failed_twice() -> bool:
            async with http.get(f"{base}/metrics") as resp:
                return 'convoy_hub_fetches_total{outcome="error"} 2.0' in await resp.text()
        await poll(failed_twice, what="two failed fetches")
        async with http.get(f"{base}/readyz") as resp:
            assert resp.status == 503 and "first sync" in (await resp.json())["detail"]

        standard_fleet(FleetRepo(later))

        async def ready() -> bool:
            async with http.get(f"{base}/readyz") as resp:
                return resp.status == 200
        await poll(ready, what="/readyz once the repository exists")


async def test_history_since_out_of_range_is_invalid_argument(tmp_path: Path, fleet_repo: FleetRepo) -> None:
    # Was INTERNAL (a ValueError from the timestamp conversion, logged as a bug); the caller's own mistake.
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub, channel(hub) as ch:
        request = pb.HistoryRequest(all=True)
        request.since.seconds = 8574853690513424383
        with pytest.raises(aio.AioRpcError) as caught:
            await admin_of(hub, ch).call("History", request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "history: since is not a valid timestamp" in (caught.value.details() or "")
