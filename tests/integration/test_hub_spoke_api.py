"""SpokeService against a real hub (TLS, port 0, real Git, SQLite and PostgreSQL): registration and its
refusals, Watch, chunked GetBundle, cross-cluster denial, ReportStatus."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import threading
from pathlib import Path

import grpc
import pytest
from grpc import aio

from hub.commands import hubserve
from hub.security import secrets, signing
from hub.store import repository as store
from protos import bundle as bundles
from protos.codec import pb
from tests.integration.hub_harness import (
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


async def test_registration_and_its_refusals(tmp_path: Path, fleet_repo: FleetRepo,
                                             database_url: str | None) -> None:
    settings = hub_settings(tmp_path / "hub", fleet_repo, database_url=database_url)
    async with running_hub(settings) as hub, channel(hub) as ch:
        admin = admin_of(hub, ch)
        created = await admin.call("CreateToken", pb.CreateTokenRequest(ttl_seconds=600, uses=1,
                                                                        labels={"env": "prod"}))
        assert created.ca_fingerprint == hub.ca_fingerprint and created.ca_fingerprint.startswith("sha256:")
        join = secrets.parse_join_token(created.join_token)
        assert join.token == created.token and join.ca_fingerprint == hub.ca_fingerprint
        assert join.hub_address == hub.grpc_address

        spoke = Spoke(ch)
        response = await spoke.register(created.token, "alpha", {"env": "dev", "region": "eu"})
        assert response.cluster_name == "alpha" and len(response.credential) >= 40
        assert response.hub_ca_pem == hub.ca_pem
        assert len(response.bundle_signing_key) == 32
        # The token's labels are the operator's word: they win over what the spoke asked for.
        assert dict(response.labels) == {"env": "prod", "region": "eu"}

        async def refused(token: str, name: str) -> aio.AioRpcError:
            with pytest.raises(aio.AioRpcError) as caught:
                await Spoke(ch).register(token, name)
            return caught.value

        used_up = await refused(created.token, "beta")
        assert used_up.code() == grpc.StatusCode.UNAUTHENTICATED and "used up" in (used_up.details() or "")

        duplicate = await refused(await admin.token(), "alpha")
        assert duplicate.code() == grpc.StatusCode.ALREADY_EXISTS
        assert "cluster alpha" in (duplicate.details() or "")

        revocable = await admin.call("CreateToken", pb.CreateTokenRequest(ttl_seconds=600, uses=5))
        assert (await admin.call("RevokeToken", pb.RevokeTokenRequest(id=revocable.info.id))).revoked
        revoked = await refused(revocable.token, "gamma")
        assert revoked.code() == grpc.StatusCode.UNAUTHENTICATED and "revoked" in (revoked.details() or "")

        with hub.db.session() as session:  # a token that expired an hour ago
            _, old = store.create_token(session, ttl=dt.timedelta(seconds=60), uses=1,
                                        now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
        expired = await refused(old, "delta")
        assert expired.code() == grpc.StatusCode.UNAUTHENTICATED and "expired" in (expired.details() or "")

        unknown = await refused("0123456789ab.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "epsilon")
        assert unknown.code() == grpc.StatusCode.UNAUTHENTICATED

        bad_name = await refused(await admin.token(), "Not_A_DNS_Name")
        assert bad_name.code() == grpc.StatusCode.INVALID_ARGUMENT

        history = await admin.call("History", pb.HistoryRequest(all=True, limit=100))
        kinds = [e.kind for e in history.events]
        assert "registration" in kinds and kinds.count("registration_refused") >= 4
        tokens = await admin.call("ListTokens", pb.ListTokensRequest())
        assert {t.id: t.uses_left for t in tokens.tokens}[created.info.id] == 0


async def test_a_watch_says_its_heartbeat_interval_right_after_the_first_notice(
        tmp_path: Path, fleet_repo: FleetRepo) -> None:
    # Heartbeats every 30 s: the interval must not wait for the first of them. A spoke on its first
    # stream knows no interval, so until it hears one a frozen connection goes unnoticed.
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo, heartbeat_seconds=30)) as hub, \
            channel(hub) as ch:
        spoke = await registered_spoke(hub, ch, "alpha")
        for applied in ("", "sha256:" + "0" * 64):  # nothing rendered yet or rendered, the spoke up to date or not
            stream = spoke.watch(applied)
            kinds = []
            while "heartbeat" not in kinds or "desired" not in kinds:  # both, long before the first beat is due
                event = await asyncio.wait_for(stream.read(), 5)
                kinds.append(event.WhichOneof("event"))
                if kinds[-1] == "heartbeat":
                    assert event.heartbeat.interval_seconds == 30
            stream.cancel()


async def test_watch_gets_desired_state_at_once_and_heartbeats(tmp_path: Path, fleet_repo: FleetRepo) -> None:
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo, heartbeat_seconds=0.3)) as hub, \
            channel(hub) as ch:
        spoke = await registered_spoke(hub, ch, "alpha")
        stream = spoke.watch()
        desired = await next_desired(stream)  # rendered right after registration, no poll needed
        assert desired.cluster_name == "alpha" and desired.commit == fleet_repo.head()
        assert desired.digest.startswith("sha256:") and desired.size > 0 and not desired.paused
        bundles.verify_signature(spoke.signing_key, desired.digest, desired.signature)
        kinds = []
        for _ in range(2):
            event = await asyncio.wait_for(stream.read(), 5)
            kinds.append(event.WhichOneof("event"))
        assert kinds == ["heartbeat", "heartbeat"]

        # An open stream keeps the cluster's last-seen fresh in the store (other hub processes read it).
        with hub.db.session() as session:
            registered_at = store.get_cluster(session, "alpha").registered_at  # type: ignore[union-attr]

        async def refreshed() -> bool:
            with hub.db.session() as session:
                seen = store.get_cluster(session, "alpha").last_seen  # type: ignore[union-attr]
            return seen is not None and seen > registered_at
        await poll(refreshed, what="last-seen refreshed by the open Watch stream")

        # Pausing is a desired-state change too: the watcher hears of it at once.
        admin = admin_of(hub, ch)
        await admin.call("SetPaused", pb.SetPausedRequest(clusters=["alpha"], paused=True))
        paused = await next_desired(stream)
        assert paused.paused and paused.digest == desired.digest
        stream.cancel()

        bundle, _ = await spoke.bundle(desired.digest)
        [obj] = bundle["objects"]
        assert obj["kind"] == "ConfigMap" and obj["data"]["cluster"] == "alpha"
        assert obj["metadata"]["namespace"] == "shop"


async def test_new_commit_reaches_watchers_within_a_second(tmp_path: Path, fleet_repo: FleetRepo,
                                                           database_url: str | None) -> None:
    settings = hub_settings(tmp_path / "hub", fleet_repo, database_url=database_url)
    async with running_hub(settings) as hub, channel(hub) as ch:
        spokes = [await registered_spoke(hub, ch, name) for name in ("alpha", "beta")]
        streams = [spoke.watch() for spoke in spokes]
        first = [await next_desired(stream) for stream in streams]
        assert first[0].digest != first[1].digest  # ${cluster_name} differs

        fleet_repo.commit({"apps/web/configmap.yaml": configmap("2")})
        loop = asyncio.get_running_loop()
        started = loop.time()
        await admin_of(hub, ch).call("SyncNow", pb.SyncNowRequest())
        second = [await next_desired(stream, timeout=1.0) for stream in streams]
        elapsed = loop.time() - started
        assert elapsed < 1.0, f"watchers heard of the commit after {elapsed:.2f}s"
        assert all(d.commit == fleet_repo.head() for d in second)
        assert all(new.digest != old.digest for new, old in zip(second, first, strict=True))
        for stream in streams:
            stream.cancel()


async def test_unchanged_digest_sends_nothing_new(tmp_path: Path, fleet_repo: FleetRepo) -> None:
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo, heartbeat_seconds=0.2)) as hub, \
            channel(hub) as ch:
        spoke = await registered_spoke(hub, ch, "alpha")
        stream = spoke.watch()
        first = await next_desired(stream)
        fleet_repo.commit({"README.md": "docs only\n"})  # renders to the same objects
        reply = await admin_of(hub, ch).call("SyncNow", pb.SyncNowRequest())
        assert reply.commit == fleet_repo.head() and not reply.changed
        for _ in range(3):  # only heartbeats follow
            event = await asyncio.wait_for(stream.read(), 5)
            assert event.WhichOneof("event") == "heartbeat"
        stream.cancel()
        # The stored desired state follows the commit, the digest stays.
        with hub.db.session() as session:
            desired = store.get_desired(session, "alpha")
        assert desired is not None and desired.digest == first.digest and desired.commit == fleet_repo.head()


async def test_small_bundles_ride_inside_the_watch_notice(tmp_path: Path, fleet_repo: FleetRepo) -> None:
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub, channel(hub) as ch:
        spoke = await registered_spoke(hub, ch, "alpha")
        notice = await next_desired(spoke.watch())
        assert notice.inline_compression == "zlib" and notice.inline_bundle
        carried = bundles.decode(bundles.decompress(notice.inline_bundle, max_size=notice.size),
                                 expected_digest=notice.digest)
        bundles.verify_signature(spoke.signing_key, notice.digest, notice.signature)
        fetched, _ = await spoke.bundle(notice.digest)
        assert carried == fetched
        # A spoke that says it has applied this digest is not sent it again.
        again = await next_desired(spoke.watch(applied=notice.digest))
        assert again.digest == notice.digest and not again.inline_bundle
        # A paused spoke applies nothing, so it gets the bundle with the notice that unpauses it.
        admin = admin_of(hub, ch)
        await admin.call("SetPaused", pb.SetPausedRequest(clusters=["alpha"], paused=True))
        stream = spoke.watch()
        paused = await next_desired(stream)
        assert paused.paused and not paused.inline_bundle
        await admin.call("SetPaused", pb.SetPausedRequest(clusters=["alpha"], paused=False))
        resumed = await next_desired(stream)
        assert not resumed.paused and resumed.inline_bundle and resumed.digest == notice.digest
        stream.cancel()

    # Bigger than the limit (here 64 bytes), or inlining off: the notice names the digest only.
    for limit in (64, 0):
        settings = hub_settings(tmp_path / f"hub-{limit}", fleet_repo, inline_bundle_bytes=limit)
        async with running_hub(settings) as hub, channel(hub) as ch:
            spoke = await registered_spoke(hub, ch, "alpha")
            notice = await next_desired(spoke.watch())
            assert notice.size > limit and not notice.inline_bundle and not notice.inline_compression


async def test_a_cluster_reads_only_its_own_bundles(tmp_path: Path, fleet_repo: FleetRepo,
                                                    database_url: str | None) -> None:
    settings = hub_settings(tmp_path / "hub", fleet_repo, database_url=database_url)
    async with running_hub(settings) as hub, channel(hub) as ch:
        alpha = await registered_spoke(hub, ch, "alpha")
        beta = await registered_spoke(hub, ch, "beta")
        alpha_digest = (await next_desired(alpha.watch())).digest
        beta_digest = (await next_desired(beta.watch())).digest
        assert alpha_digest != beta_digest
        await alpha.bundle(alpha_digest)
        with pytest.raises(aio.AioRpcError) as caught:
            await alpha.bundle(beta_digest)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "cluster alpha" in (caught.value.details() or "")

        stranger = Spoke(ch, credential="not-a-credential")
        with pytest.raises(aio.AioRpcError) as caught:
            await stranger.bundle(alpha_digest)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(aio.AioRpcError) as caught:
            await next_desired(stranger.watch())
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # The admin credential is not a cluster credential either.
        admin_as_spoke = Spoke(ch, credential=hub.admin_credential_path.read_text().strip())
        with pytest.raises(aio.AioRpcError) as caught:
            await admin_as_spoke.report(phase=pb.PHASE_READY)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_fifty_mib_bundle_streams_in_chunks(tmp_path: Path, fleet_repo: FleetRepo) -> None:
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub, channel(hub) as ch:
        spoke = await registered_spoke(hub, ch, "alpha")
        # 50 MiB of canonical bytes that do not compress away: the compressed stream alone is far
        # over the 4 MiB message limit.
        blob = os.urandom(27 * 1024 * 1024).hex()
        objects = [{"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": f"blob-{i}", "namespace": "shop"},
                    "data": {"blob": blob[i * 5_000_000:(i + 1) * 5_000_000]}} for i in range(11)]
        document = {"apiVersion": bundles.API_VERSION, "kind": "Bundle", "apps": [], "objects": objects}
        data = bundles.encode(document)
        assert len(data) >= 50 * 1024 * 1024
        digest = bundles.digest_of(data)
        key = signing.load_or_create_signing_key(tmp_path / "hub")
        with hub.db.session() as session:
            store.put_bundle(session, digest=digest, compressed=bundles.compress(data), size=len(data),
                             signature=bundles.sign(key, digest))
            store.set_desired(session, cluster="alpha", commit=fleet_repo.head(), digest=digest)
        fetched, chunks = await spoke.bundle(digest)
        assert fetched == document
        assert len(chunks) > 4 and max(len(c.data) for c in chunks) <= 1024 * 1024
        assert sum(len(c.data) for c in chunks) > 4 * 1024 * 1024
        assert all(not c.digest for c in chunks[1:])  # metadata on the first chunk only


async def test_report_status_is_stored_validated_and_rate_limited(tmp_path: Path, fleet_repo: FleetRepo,
                                                                  database_url: str | None) -> None:
    settings = hub_settings(tmp_path / "hub", fleet_repo, database_url=database_url, report_burst=5,
                            report_rate=0.01)
    async with running_hub(settings) as hub, channel(hub) as ch:
        spoke = await registered_spoke(hub, ch, "alpha")
        desired = await next_desired(spoke.watch())
        ref = pb.ObjectRef(kind="ConfigMap", namespace="shop", name="web-config")
        accepted = await spoke.report(
            phase=pb.PHASE_DRIFTED, applied_commit=desired.commit, applied_digest=desired.digest,
            objects=[pb.ObjectResult(ref=ref, app="web", action="configured", health="Current")],
            drift=[pb.DriftItem(ref=ref, app="web", kind_of_drift="modified",
                                fields=[pb.FieldDrift(path=".data.version", desired='"1"', live='"9"')])],
            message="1 object drifted")
        assert accepted.accepted
        admin = admin_of(hub, ch)
        detail = await admin.call("GetCluster", pb.GetClusterRequest(name="alpha"))
        assert detail.summary.phase == pb.PHASE_DRIFTED
        assert detail.summary.applied_digest == desired.digest == detail.summary.desired_digest
        assert detail.summary.objects_total == 1 and detail.summary.objects_ready == 1
        assert detail.summary.drift_count == 1 and detail.drift[0].fields[0].live == '"9"'
        assert detail.summary.last_seen.seconds > 0
        kinds = {e.kind for e in detail.recent_events}
        assert {"applied", "drift", "status"} <= kinds

        with pytest.raises(aio.AioRpcError) as caught:
            await spoke.report(phase=pb.PHASE_READY, applied_digest="md5:nope")
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "cluster alpha" in (caught.value.details() or "")

        huge = [pb.ObjectResult(ref=ref, reason="x" * 1000) for _ in range(5000)]  # ~5 MiB
        with pytest.raises(aio.AioRpcError) as caught:
            await spoke.report(phase=pb.PHASE_READY, objects=huge)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

        codes = []
        for _ in range(6):
            try:
                await spoke.report(phase=pb.PHASE_READY)
                codes.append(grpc.StatusCode.OK)
            except aio.AioRpcError as exc:
                codes.append(exc.code())
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes


async def test_stream_status_stores_each_report_before_acknowledging_it(tmp_path: Path, fleet_repo: FleetRepo,
                                                                        database_url: str | None) -> None:
    settings = hub_settings(tmp_path / "hub", fleet_repo, database_url=database_url)
    async with running_hub(settings) as hub, channel(hub) as ch:
        spoke = await registered_spoke(hub, ch, "alpha")
        desired = await next_desired(spoke.watch())
        admin = admin_of(hub, ch)
        call = spoke.stub.StreamStatus(metadata=spoke.metadata)
        for phase in (pb.PHASE_APPLYING, pb.PHASE_READY):
            await call.write(pb.StatusReport(phase=phase, applied_commit=desired.commit,
                                             applied_digest=desired.digest, message=f"phase {phase}"))
            ack = await call.read()
            assert ack.accepted
            # Acknowledged means stored: the admin API shows it at once.
            detail = await admin.call("GetCluster", pb.GetClusterRequest(name="alpha"))
            assert detail.summary.phase == phase and detail.message == f"phase {phase}"
        # A bad report ends the stream with the same error a ReportStatus call would get.
        await call.write(pb.StatusReport(phase=pb.PHASE_READY, applied_digest="md5:nope"))
        with pytest.raises(aio.AioRpcError) as caught:
            await call.read()
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "cluster alpha" in (caught.value.details() or "")

        # Without a credential nothing is read, let alone stored.
        anonymous = spoke.stub.StreamStatus()
        await anonymous.write(pb.StatusReport(phase=pb.PHASE_FAILED))
        with pytest.raises(aio.AioRpcError) as caught:
            await anonymous.read()
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        detail = await admin.call("GetCluster", pb.GetClusterRequest(name="alpha"))
        assert detail.summary.phase == pb.PHASE_READY


async def test_a_report_sent_while_a_commit_is_written_is_stored_once_the_sync_ends(
        tmp_path: Path, fleet_repo: FleetRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    """Desired states go out before status reports are written: a report that arrives mid-sync is acknowledged
    (stored) after the sync, and never later than the bound (a spoke gives up on an acknowledgement after 30 s)."""
    monkeypatch.setattr(hubserve, "REPORT_WAIT_FOR_SYNC_SECONDS", 3.0)
    settings = hub_settings(tmp_path / "hub", fleet_repo, database_url=None)
    async with running_hub(settings) as hub, channel(hub) as ch:
        spoke = await registered_spoke(hub, ch, "alpha")
        desired = await next_desired(spoke.watch())
        admin = admin_of(hub, ch)
        release = threading.Event()
        original = hub.service._sync_blocking

        def held_sync(*args: object) -> object:
            release.wait(30)
            return original(*args)  # type: ignore[arg-type]
        monkeypatch.setattr(hub.service, "_sync_blocking", held_sync)
        syncing = asyncio.ensure_future(hub.service.sync_once(reason="test", force=True))
        await asyncio.sleep(0.3)  # the sync is under way (held)
        call = spoke.stub.StreamStatus(metadata=spoke.metadata)
        await call.write(pb.StatusReport(phase=pb.PHASE_READY, applied_commit=desired.commit,
                                         applied_digest=desired.digest, message="during the sync"))
        ack = asyncio.ensure_future(call.read())
        await asyncio.sleep(1.0)
        assert not ack.done(), "the report was stored while the sync ran"
        detail = await admin.call("GetCluster", pb.GetClusterRequest(name="alpha"))
        assert detail.message != "during the sync"
        release.set()
        await syncing
        assert (await asyncio.wait_for(ack, 10)).accepted
        detail = await admin.call("GetCluster", pb.GetClusterRequest(name="alpha"))
        assert detail.message == "during the sync"

        # A sync that runs on and on does not hold a report past the bound.
        release.clear()
        syncing = asyncio.ensure_future(hub.service.sync_once(reason="test", force=True))
        await asyncio.sleep(0.3)
        started = asyncio.get_running_loop().time()
        await call.write(pb.StatusReport(phase=pb.PHASE_READY, applied_commit=desired.commit,
                                         applied_digest=desired.digest, message="during a long sync"))
        assert (await asyncio.wait_for(call.read(), 10)).accepted
        assert asyncio.get_running_loop().time() - started < 8.0
        detail = await admin.call("GetCluster", pb.GetClusterRequest(name="alpha"))
        assert detail.message == "during a long sync"
        release.set()
        await syncing
