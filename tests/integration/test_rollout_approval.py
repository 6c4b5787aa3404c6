"""Approval gates on rollout waves against a real hub (issue 21 part 3): the rollout waits at a gated
wave whatever the clock says, a credential that is not an approver is refused naming who may approve,
the approver's name and comment reach history, and a gate bound to paths the commit range does not
touch lets the wave go. Named admin credentials: created once, named in history, revoked at once.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from grpc import aio

from hub.store import repository as store
from hub.store.db import Database, default_sqlite_url
from protos.codec import pb
from tests.integration.hub_harness import (
    FLEET_YAML,
    Admin,
    FleetRepo,
    Spoke,
    admin_of,
    channel,
    configmap,
    convoy,
    fresh_postgres,
    hub_settings,
    next_desired,
    running_hub,
    standard_fleet,
)
from tests.polling import poll


def rollout_yaml(approval: str) -> str:
    return f"""\
rollout:
  bakeTime: 0s
  progressDeadline: 3s
  waves:
    - name: canary
      selector: {{matchLabels: {{canary: "true"}}}}
    - name: prod
      selector: {{matchLabels: {{env: prod}}}}
      approval: {approval}
"""


LABELS = {"canary-1": {"canary": "true"}, "prod-1": {"env": "prod"}}


async def _spokes_at_first_commit(admin: Admin, ch: aio.Channel) -> dict[str, Spoke]:
    """Registered, at the first commit, Ready, and connected (their Watch streams stay open: online)."""
    spokes: dict[str, Spoke] = {}
    for name, labels in LABELS.items():
        spoke = Spoke(ch)
        await spoke.register(await admin.token(), name, labels)
        stream = spoke.watch()
        desired = await next_desired(stream, timeout=15)
        await spoke.report(phase=pb.PHASE_READY, applied_commit=desired.commit, applied_digest=desired.digest)
        spokes[name] = spoke
    return spokes


async def _release_canary(admin: Admin, canary: Spoke, newer: str) -> None:
    """The canary takes the new bundle and says Ready (its wave is not gated)."""
    async def desired_new() -> pb.ClusterDetail | None:
        detail = await admin.call("GetCluster", pb.GetClusterRequest(name=canary.name))
        return detail if detail.summary.desired_commit == newer else None
    detail = await poll(desired_new, timeout=15, what="the canary wave's release")
    await canary.report(phase=pb.PHASE_READY, applied_commit=newer, applied_digest=detail.summary.desired_digest)


async def _status(admin: Admin) -> pb.RolloutStatusResponse:
    return await admin.call("RolloutStatus", pb.RolloutStatusRequest())


async def test_a_gated_wave_waits_until_an_approver_approves(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path / "fleet")
    standard_fleet(repo)
    repo.commit({"fleet.yaml": FLEET_YAML + rollout_yaml(
        '{required: true, paths: ["apps/web/**"], approvers: [alice]}')})
    async with running_hub(hub_settings(tmp_path / "hub", repo)) as hub, channel(hub) as ch:
        admin = admin_of(hub, ch)
        spokes = await _spokes_at_first_commit(admin, ch)
        alice = Admin(ch, (await admin.call("CreateAdminCredential",
                                            pb.CreateAdminCredentialRequest(name="alice"))).credential)
        bob = Admin(ch, (await admin.call("CreateAdminCredential",
                                          pb.CreateAdminCredentialRequest(name="bob"))).credential)
        newer = repo.commit({"apps/web/configmap.yaml": configmap("2")})
        await admin.call("SyncNow", pb.SyncNowRequest())
        await _release_canary(admin, spokes["canary-1"], newer)

        async def waiting() -> pb.RolloutStatusResponse | None:
            status = await _status(admin)
            return status if status.waves[1].state == "waiting-approval" else None
        status = await poll(waiting, timeout=15, what="the prod wave to wait for approval")
        prod = status.waves[1]
        assert (prod.approval_required, list(prod.approvers), list(prod.approval_matched)) == (
            True, ["alice"], ["apps/web/configmap.yaml"])
        shown = await convoy(hub, tmp_path, "rollout", "status")
        assert "waiting for approval of wave prod (approvers: alice)" in shown.output, shown.output
        # Longer than the 3 s progress deadline: a waiting wave neither fails nor goes.
        await poll(_rollout_ticks_past_deadline(admin), timeout=10, what="the progress deadline to pass")
        status = await _status(admin)
        assert status.state == "progressing" and status.waves[1].state == "waiting-approval"
        detail = await admin.call("GetCluster", pb.GetClusterRequest(name="prod-1"))
        assert detail.summary.desired_commit != newer

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await bob.call("RolloutApprove", pb.RolloutApproveRequest(comment="lgtm"))
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "'bob' may not approve it; approvers: alice" in (refused.value.details() or "")

        approved = await alice.call("RolloutApprove", pb.RolloutApproveRequest(comment="canary looks good"))
        assert approved.waves[1].state == "progressing" and approved.waves[1].approved_by == "alice"
        detail = await admin.call("GetCluster", pb.GetClusterRequest(name="prod-1"))
        assert detail.summary.desired_commit == newer

        history = await admin.call("History", pb.HistoryRequest(all=True, limit=200))
        event = next(e for e in history.events if e.kind == "approved")
        assert json.loads(event.details_json) | {"at": None} == {
            "rollout": status.id, "wave": "prod", "by": "alice", "comment": "canary looks good", "at": None}
        assert event.message == f"wave prod of rollout {status.id} approved by alice: canary looks good"

        with pytest.raises(grpc.aio.AioRpcError) as again:
            await alice.call("RolloutApprove", pb.RolloutApproveRequest())
        assert again.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "no wave waits for approval" in (again.value.details() or "")


def _rollout_ticks_past_deadline(admin: Admin) -> Callable[[], Awaitable[bool]]:
    """A check true once 3.5 s have passed since the prod wave began to wait (its event says when)."""
    async def check() -> bool:
        history = await admin.call("History", pb.HistoryRequest(all=True, limit=200))
        waits = [e for e in history.events if e.kind == "wave_waiting_approval"]
        if not waits:
            return False
        return dt.datetime.now(dt.UTC) - waits[-1].at.ToDatetime(dt.UTC) > dt.timedelta(seconds=3.5)
    return check


async def test_a_path_bound_gate_lets_a_commit_that_does_not_touch_its_paths_through(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path / "fleet")
    standard_fleet(repo)
    repo.commit({"fleet.yaml": FLEET_YAML + rollout_yaml('{required: true, paths: ["fleet.yaml", "apps/db/**"]}')})
    async with running_hub(hub_settings(tmp_path / "hub", repo)) as hub, channel(hub) as ch:
        admin = admin_of(hub, ch)
        spokes = await _spokes_at_first_commit(admin, ch)
        newer = repo.commit({"apps/web/configmap.yaml": configmap("2")})
        await admin.call("SyncNow", pb.SyncNowRequest())
        await _release_canary(admin, spokes["canary-1"], newer)

        async def prod_released() -> bool:
            detail = await admin.call("GetCluster", pb.GetClusterRequest(name="prod-1"))
            return bool(detail.summary.desired_commit == newer)
        await poll(prod_released, timeout=15, what="the prod wave's release without approval")
        prod = (await _status(admin)).waves[1]
        assert (prod.approval_required, list(prod.approval_paths), prod.approved_by) == (
            False, ["fleet.yaml", "apps/db/**"], "")
        history = await admin.call("History", pb.HistoryRequest(all=True, limit=200))
        assert not [e for e in history.events if e.kind in {"wave_waiting_approval", "approved"}]


async def test_named_admin_credentials_are_shown_once_and_revoked_at_once(tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path / "fleet")
    standard_fleet(repo)
    async with running_hub(hub_settings(tmp_path / "hub", repo)) as hub, channel(hub) as ch:
        admin = admin_of(hub, ch)
        created = await admin.call("CreateAdminCredential", pb.CreateAdminCredentialRequest(name="ci"))
        ci = Admin(ch, created.credential)
        listing = await ci.call("ListAdminCredentials", pb.ListAdminCredentialsRequest())
        assert [(c.name, c.bootstrap, c.created_by, c.revoked) for c in listing.credentials] == [
            ("admin", True, "", False), ("ci", False, "admin", False)]
        assert created.credential not in str(listing)
        db = Database(default_sqlite_url(tmp_path / "hub"))
        try:
            with db.session(write=False) as s:
                rows = store.list_admin_credentials(s)
        finally:
            db.dispose()
        assert rows[0].secret_hash != created.credential and created.credential not in rows[0].secret_hash
        for bad, why in [("admin", "first-start credential"), ("ci", "exists"), ("Bad_Name", "not a valid")]:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await admin.call("CreateAdminCredential", pb.CreateAdminCredentialRequest(name=bad))
            assert why in (refused.value.details() or "")
        revoked = await admin.call("RevokeAdminCredential", pb.RevokeAdminCredentialRequest(name="ci"))
        assert revoked.revoked
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await ci.call("ListClusters", pb.ListClustersRequest())
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as reused:
            await admin.call("CreateAdminCredential", pb.CreateAdminCredentialRequest(name="ci"))
        assert "was revoked (names are not reused)" in (reused.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as bootstrap:
            await admin.call("RevokeAdminCredential", pb.RevokeAdminCredentialRequest(name="admin"))
        assert "first-start credential" in (bootstrap.value.details() or "")


async def test_a_named_credential_made_on_one_replica_works_on_another_and_its_revocation_holds_there_at_once(
        tmp_path: Path, fleet_repo: FleetRepo, postgres_url: str) -> None:
    identity = tmp_path / "identity"
    with fresh_postgres(postgres_url) as url:
        async with running_hub(hub_settings(tmp_path / "a", fleet_repo, database_url=url,
                                            identity_dir=identity)) as hub_a, channel(hub_a) as ch_a, \
                running_hub(hub_settings(tmp_path / "b", fleet_repo, database_url=url,
                                         identity_dir=identity)) as hub_b, channel(hub_b) as ch_b:
            created = await admin_of(hub_a, ch_a).call("CreateAdminCredential",
                                                       pb.CreateAdminCredentialRequest(name="ops"))
            on_b = Admin(ch_b, created.credential)
            assert (await on_b.call("ListClusters", pb.ListClustersRequest())) is not None
            await admin_of(hub_a, ch_a).call("RevokeAdminCredential", pb.RevokeAdminCredentialRequest(name="ops"))
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await on_b.call("ListClusters", pb.ListClustersRequest())
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_the_credential_commands_print_the_secret_once_and_never_list_it(tmp_path: Path,
                                                                               fleet_repo: FleetRepo) -> None:
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub:
        created = await convoy(hub, tmp_path, "credential", "create", "alice")
        assert created.exit_code == 0, created.output
        secret = created.output.split("admin credential alice: ", 1)[1].split()[0]
        assert len(secret) >= 32 and "shown once" in created.output
        listing = await convoy(hub, tmp_path, "credential", "list", "-o", "json")
        rows = json.loads(listing.output)
        assert [(r["name"], r["createdBy"], r["revoked"]) for r in rows] == [("admin", None, False),
                                                                          ("alice", "admin", False)]
        assert secret not in listing.output
        table = await convoy(hub, tmp_path, "credential", "list")
        assert "hub's first-start credential" in table.output and secret not in table.output
        revoked = await convoy(hub, tmp_path, "credential", "revoke", "alice")
        assert revoked.output.strip() == "admin credential alice revoked"
        again = await convoy(hub, tmp_path, "credential", "revoke", "alice")
        assert again.output.strip() == "admin credential alice was already revoked"
        unknown = await convoy(hub, tmp_path, "credential", "revoke", "nobody")
        assert unknown.exit_code != 0 and "no admin credential named 'nobody'" in unknown.output
