"""The sync loop against real Git: per-cluster render errors, history-rewrite refusal, a broken fleet.yaml,
webhook triggers (and refusals), and a restart with state intact."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc import aio

from hub.source import webhooks
from hub.store import models
from hub.store import repository as store
from protos.codec import pb
from tests.integration.hub_harness import (
    BROKEN_LAYER,
    FleetRepo,
    Spoke,
    admin_of,
    channel,
    configmap,
    hub_settings,
    next_desired,
    registered_spoke,
    running_hub,
)
from tests.polling import poll


def desired_digest(hub: object, cluster: str) -> str | None:
    with hub.db.session() as session:  # type: ignore[attr-defined]
        row = store.get_desired(session, cluster)
    return row.digest if row is not None else None


async def test_render_error_keeps_that_clusters_bundle_and_others_move_on(
        tmp_path: Path, fleet_repo: FleetRepo, database_url: str | None) -> None:
    settings = hub_settings(tmp_path / "hub", fleet_repo, database_url=database_url)
    async with running_hub(settings) as hub, channel(hub) as ch:
        good = await registered_spoke(hub, ch, "good")
        bad = await registered_spoke(hub, ch, "bad")
        good_stream, bad_stream = good.watch(), bad.watch()
        good_before = await next_desired(good_stream)
        bad_before = await next_desired(bad_stream)

        broken = fleet_repo.commit({"apps/web/configmap.yaml": configmap("2"),
                                    "clusters/bad/web/kustomization.yaml": BROKEN_LAYER})
        admin = admin_of(hub, ch)
        reply = await admin.call("SyncNow", pb.SyncNowRequest())
        assert reply.commit == broken and reply.changed and "render errors" in reply.message

        good_after = await next_desired(good_stream)
        assert good_after.commit == broken and good_after.digest != good_before.digest
        assert desired_digest(hub, "bad") == bad_before.digest  # the last good bundle stays

        detail = await admin.call("GetCluster", pb.GetClusterRequest(name="bad"))
        assert detail.render_errors and "does-not-exist.yaml" in detail.render_errors[0]
        assert detail.summary.desired_digest == bad_before.digest
        assert any(e.kind == "render_error" for e in detail.recent_events)
        assert not (await admin.call("GetCluster", pb.GetClusterRequest(name="good"))).render_errors

        # Fixing the layer clears the errors and moves the cluster on.
        fleet_repo.commit({"clusters/bad/web/kustomization.yaml": None})
        await admin.call("SyncNow", pb.SyncNowRequest())
        fixed = await next_desired(bad_stream)
        assert fixed.commit == fleet_repo.head() and fixed.digest != bad_before.digest
        assert not (await admin.call("GetCluster", pb.GetClusterRequest(name="bad"))).render_errors
        good_stream.cancel()
        bad_stream.cancel()


async def test_broken_fleet_yaml_keeps_every_cluster_and_records_the_error(
        tmp_path: Path, fleet_repo: FleetRepo) -> None:
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub, channel(hub) as ch:
        await registered_spoke(hub, ch, "alpha")
        before = await poll(lambda: _async(desired_digest(hub, "alpha")), what="alpha's first bundle")
        deployed = fleet_repo.head()
        fleet_repo.commit({"fleet.yaml": "apps: [this is: not valid\n"})
        reply = await admin_of(hub, ch).call("SyncNow", pb.SyncNowRequest())
        assert "fleet" in reply.message and not reply.changed
        assert desired_digest(hub, "alpha") == before
        listing = await admin_of(hub, ch).call("ListClusters", pb.ListClustersRequest())
        assert listing.fleet_commit == deployed
        with hub.db.session() as session:
            kinds = [e.kind for e in store.events(session, kinds=[models.EventKind.RENDER_ERROR])]
        assert kinds


async def test_history_rewrite_is_refused_unless_allowed(tmp_path: Path, fleet_repo: FleetRepo,
                                                         database_url: str | None) -> None:
    settings = hub_settings(tmp_path / "hub", fleet_repo, database_url=database_url)
    async with running_hub(settings) as hub, channel(hub) as ch:
        spoke = await registered_spoke(hub, ch, "alpha")
        stream = spoke.watch()
        await next_desired(stream)
        admin = admin_of(hub, ch)
        deployed = fleet_repo.commit({"apps/web/configmap.yaml": configmap("2")})
        await admin.call("SyncNow", pb.SyncNowRequest())
        v2 = await next_desired(stream)
        assert v2.commit == deployed

        # A force-push: the branch now points at a commit that does not contain the deployed one.
        fleet_repo.git("reset", "-q", "--hard", "HEAD~1")
        rewritten = fleet_repo.commit({"apps/web/configmap.yaml": configmap("rewritten")})
        reply = await admin.call("SyncNow", pb.SyncNowRequest())
        assert reply.commit == rewritten and not reply.changed
        assert "refused" in reply.message and "does not descend" in reply.message
        assert desired_digest(hub, "alpha") == v2.digest  # still serving the last good commit
        history = await admin.call("History", pb.HistoryRequest(all=True, limit=50))
        refusals = [e for e in history.events if e.kind == "commit_refused"]
        assert refusals and refusals[-1].commit == rewritten
        with hub.db.session() as session:
            seen = store.get_commit(session, rewritten)
        assert seen is not None and not seen.accepted and "does not descend" in (seen.refusal_reason or "")
        stream.cancel()
    # The same data directory and database, started with --allow-history-rewrite, accepts it.
    allowed = hub_settings(tmp_path / "hub", fleet_repo, database_url=database_url, allow_history_rewrite=True)
    async with running_hub(allowed) as hub, channel(hub) as ch:
        watcher = Spoke(ch, name="alpha", credential=spoke.credential, signing_key=spoke.signing_key)
        stream = watcher.watch()
        moved = await next_desired(stream)
        if moved.commit != rewritten:  # the first poll may land just after the stream opened
            moved = await next_desired(stream)
        assert moved.commit == rewritten and moved.digest != v2.digest
        stream.cancel()


async def test_webhook_triggers_a_sync_and_a_bad_signature_does_not(tmp_path: Path, fleet_repo: FleetRepo) -> None:
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub, channel(hub) as ch:
        spoke = await registered_spoke(hub, ch, "alpha")
        stream = spoke.watch()
        first = await next_desired(stream)
        new = fleet_repo.commit({"apps/web/configmap.yaml": configmap("2")})
        body = json.dumps({"ref": "refs/heads/main", "after": new}).encode()
        url = f"http://127.0.0.1:{hub.http_port}/webhook"
        async with aiohttp.ClientSession() as http:
            forged = {"X-GitHub-Event": "push",
                      "X-Hub-Signature-256": "sha256=" + webhooks.sign_hmac(body, b"guessed")}
            async with http.post(url, data=body, headers=forged) as resp:
                assert resp.status == 401
            # Refused synchronously and nothing was scheduled: the deployed commit has not moved.
            assert not hub.service._wake.is_set()
            assert desired_digest(hub, "alpha") == first.digest

            signed = {"X-GitHub-Event": "push",
                      "X-Hub-Signature-256": "sha256=" + webhooks.sign_hmac(body, b"webhook-secret")}
            async with http.post(url, data=body, headers=signed) as resp:
                assert resp.status == 202
            moved = await next_desired(stream, timeout=5)
            assert moved.commit == new
            async with http.get(f"http://127.0.0.1:{hub.http_port}/metrics") as resp:
                text = await resp.text()
        assert 'convoy_hub_webhooks_total{outcome="rejected"} 1.0' in text
        assert 'convoy_hub_webhooks_total{outcome="accepted"} 1.0' in text
        assert "convoy_hub_connected_spokes 1.0" in text
        stream.cancel()


async def test_the_hub_bounds_webhook_bodies_and_refuses_replays(tmp_path: Path, fleet_repo: FleetRepo) -> None:
    settings = hub_settings(tmp_path / "hub", fleet_repo, webhook_max_bytes=4096)
    async with running_hub(settings) as hub:
        url = f"http://127.0.0.1:{hub.http_port}/webhook"
        big = json.dumps({"ref": "refs/heads/main", "padding": "x" * 8000}).encode()
        body = json.dumps({"ref": "refs/heads/main"}).encode()
        signed = {"X-GitHub-Event": "push", "X-GitHub-Delivery": "5a1e3c2e-0000-4000-8000-000000000001",
                  "X-Hub-Signature-256": "sha256=" + webhooks.sign_hmac(body, b"webhook-secret")}
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data=big, headers={
                    **signed, "X-Hub-Signature-256": "sha256=" + webhooks.sign_hmac(big, b"webhook-secret")}) as resp:
                assert resp.status == 413
            async with http.post(url, data=body, headers=signed) as resp:
                assert resp.status == 202
            async with http.post(url, data=body, headers=signed) as resp:
                assert resp.status == 409


async def test_restart_keeps_state(tmp_path: Path, fleet_repo: FleetRepo, database_url: str | None) -> None:
    settings = hub_settings(tmp_path / "hub", fleet_repo, database_url=database_url)
    async with running_hub(settings) as hub, channel(hub) as ch:
        spoke = await registered_spoke(hub, ch, "alpha", {"env": "prod"})
        desired = await next_desired(spoke.watch())
        fingerprint, admin_credential = hub.ca_fingerprint, hub.admin_credential_path.read_text()
        await spoke.report(phase=pb.PHASE_READY, applied_commit=desired.commit, applied_digest=desired.digest)
    async with running_hub(settings) as hub, channel(hub) as ch:
        assert hub.ca_fingerprint == fingerprint  # same CA: registered spokes still trust the hub
        assert hub.admin_credential_path.read_text() == admin_credential
        again = Spoke(ch, name="alpha", credential=spoke.credential, signing_key=spoke.signing_key)
        same = await next_desired(again.watch())
        assert (same.commit, same.digest, same.signature) == (desired.commit, desired.digest, desired.signature)
        await again.bundle(same.digest)
        listing = await admin_of(hub, ch).call("ListClusters", pb.ListClustersRequest(selector="env=prod"))
        [summary] = listing.clusters
        assert summary.name == "alpha" and summary.phase == pb.PHASE_READY
        assert summary.applied_digest == desired.digest
        # Re-registering the name with a fresh token is still refused.
        with pytest.raises(aio.AioRpcError) as caught:
            await Spoke(ch).register(await admin_of(hub, ch).token(), "alpha")
        assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def _async(value: object) -> object:
    return value


async def test_git_labels_win_over_registered_ones(tmp_path: Path, fleet_repo: FleetRepo) -> None:
    fleet_repo.commit({"clusters/alpha/cluster.yaml": "labels: {env: prod}\n"})
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub, channel(hub) as ch:
        # Declared in Git but not registered yet: its bundle is ready before the spoke arrives.
        declared = await poll(lambda: _async(desired_digest(hub, "alpha")), what="declared cluster's bundle")
        # Declared in Git: only a token bound to the name (or made for any name) may register it.
        bound = await admin_of(hub, ch).call("CreateToken", pb.CreateTokenRequest(ttl_seconds=600, uses=1,
                                                                                  cluster="alpha"))
        spoke = Spoke(ch)
        await spoke.register(bound.token, "alpha", {"env": "dev", "team": "web"})
        desired = await next_desired(spoke.watch())
        assert desired.digest == declared
        document, _ = await spoke.bundle(desired.digest)
        assert document["objects"][0]["data"]["env"] == "prod"
        registered = await registered_spoke(hub, ch, "beta", {"env": "dev"})
        beta, _ = await registered.bundle((await next_desired(registered.watch())).digest)
        assert beta["objects"][0]["data"]["env"] == "dev"
