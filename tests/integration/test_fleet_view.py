"""What `convoy status`, `describe` and `sync` tell an operator when the fleet cannot move (issue 12, items 3, 6
and 9): a real hub on port 0, real Git, stand-in spokes that report, and the real CLI talking gRPC to the hub.

The CLI is synchronous, so it runs in a worker thread while the hub serves on the test's event loop.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from grpc import aio

from hub.commands import hubserve
from protos.codec import pb
from tests.integration.hub_harness import (
    BROKEN_LAYER,
    FLEET_YAML,
    FleetRepo,
    Spoke,
    admin_of,
    channel,
    configmap,
    convoy,
    hub_settings,
    next_desired,
    registered_spoke,
    row,
    running_hub,
)
from tests.polling import poll

ROLLOUT = """\
rollout:
  maxUnavailable: 0
  bakeTime: 1h
  progressDeadline: 1h
  waves:
    - name: canary
      selector: {matchLabels: {canary: "true"}}
"""


async def report_ready(spoke: Spoke, stream: object) -> pb.DesiredState:
    """The spoke applies its next desired bundle and says it is Ready."""
    desired = await next_desired(stream)
    await spoke.report(phase=pb.PHASE_READY, applied_commit=desired.commit, applied_digest=desired.digest)
    return desired


# -- item 3: a render error is not Ready ------------------------------------------------------------------

async def test_a_cluster_that_cannot_render_the_fleet_commit_is_not_shown_ready(
        tmp_path: Path, fleet_repo: FleetRepo) -> None:
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub, channel(hub) as ch:
        good = await registered_spoke(hub, ch, "good")
        bad = await registered_spoke(hub, ch, "bad")
        good_stream, bad_stream = good.watch(), bad.watch()
        await report_ready(good, good_stream)
        await report_ready(bad, bad_stream)
        assert (await convoy(hub, tmp_path, "status", "--exit-code")).exit_code == 0

        fleet_repo.commit({"apps/web/configmap.yaml": configmap("2"),
                           "clusters/bad/web/kustomization.yaml": BROKEN_LAYER})
        await admin_of(hub, ch).call("SyncNow", pb.SyncNowRequest())
        await report_ready(good, good_stream)  # good moves on; bad keeps its last good bundle and stays Ready

        table = await convoy(hub, tmp_path, "status")
        assert table.exit_code == 0, table.output
        bad_line = next(line for line in table.output.splitlines() if line.startswith("bad "))
        assert "Ready (render error)" in bad_line
        assert "2 clusters: 1 Ready, 1 Ready (render error)" in table.output

        gate = await convoy(hub, tmp_path, "status", "--exit-code")
        assert gate.exit_code == 1, gate.output

        document = json.loads((await convoy(hub, tmp_path, "status", "-o", "json")).output)
        assert row(document, "good")["phase"] == "Ready"
        broken = row(document, "bad")
        assert broken["phase"] == "Ready (render error)" and broken["reportedPhase"] == "Ready"
        assert isinstance(broken["renderErrors"], list) and len(broken["renderErrors"]) == 1
        assert "does-not-exist.yaml" in broken["renderErrors"][0]
        assert document["summary"] == {"total": 2, "phases": {"Ready": 1, "Ready (render error)": 1}}

        describe = await convoy(hub, tmp_path, "describe", "bad")
        assert describe.exit_code == 0, describe.output
        assert "Phase    Ready (render error)" in describe.output
        errors = [line for line in describe.output.splitlines() if line.startswith("Error")]
        assert len(errors) == 1, describe.output
        assert "does-not-exist.yaml" in errors[0]
        assert errors[0].count("clusters/bad/web/kustomization.yaml") == 1, errors[0]
        described = json.loads((await convoy(hub, tmp_path, "describe", "bad", "-o", "json")).output)
        assert described["phase"] == "Ready (render error)" and len(described["renderErrors"]) == 1

        # Fixed: the cluster takes the fleet commit and is plain Ready again.
        fleet_repo.commit({"clusters/bad/web/kustomization.yaml": None})
        await admin_of(hub, ch).call("SyncNow", pb.SyncNowRequest())
        await report_ready(bad, bad_stream)  # good's bundle is the same: nothing new for it
        fixed = await convoy(hub, tmp_path, "status", "--exit-code")
        assert fixed.exit_code == 0 and "2 clusters: 2 Ready" in fixed.output, fixed.output
        good_stream.cancel()
        bad_stream.cancel()


# -- item 6: convoy sync says what changed ----------------------------------------------------------------

async def test_sync_counts_changed_clusters_and_is_the_same_when_run_again(
        tmp_path: Path, fleet_repo: FleetRepo, database_url: str | None) -> None:
    settings = hub_settings(tmp_path / "hub", fleet_repo, database_url=database_url)
    async with running_hub(settings) as hub, channel(hub) as ch:
        names = ["alpha", "bravo", "charlie"]
        spokes = [await registered_spoke(hub, ch, name) for name in names]
        streams = [spoke.watch() for spoke in spokes]
        for spoke, stream in zip(spokes, streams, strict=True):
            await report_ready(spoke, stream)

        head = fleet_repo.commit({"apps/web/configmap.yaml": configmap("2")})
        synced = await convoy(hub, tmp_path, "sync")
        assert synced.exit_code == 0, synced.output
        assert synced.output.startswith(f"commit {head[:12]}: ")
        assert "3 clusters desire it now (alpha, bravo, charlie)" in synced.output
        # Run again (or after the poll got there first): the same commit, the same truth, not "0 changed".
        again = await convoy(hub, tmp_path, "sync")
        assert again.exit_code == 0 and "3 clusters desire it now" in again.output, again.output

        # A commit that changes nothing for anyone.
        fleet_repo.commit({"README.md": "docs only\n"})
        quiet = await convoy(hub, tmp_path, "sync")
        assert quiet.exit_code == 0 and "no cluster changed" in quiet.output, quiet.output
        for stream in streams:
            stream.cancel()


async def test_sync_names_clusters_held_by_a_rollout(tmp_path: Path, fleet_repo: FleetRepo) -> None:
    fleet_repo.commit({"fleet.yaml": FLEET_YAML + ROLLOUT})
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub, channel(hub) as ch:
        admin = admin_of(hub, ch)
        spokes = []
        for name, labels in (("canary-1", {"canary": "true"}), ("rest-1", {}), ("rest-2", {})):
            spoke = Spoke(ch)
            await spoke.register(await admin.token(labels=labels), name, labels)
            spokes.append(spoke)
        streams = [spoke.watch() for spoke in spokes]
        for spoke, stream in zip(spokes, streams, strict=True):
            await report_ready(spoke, stream)

        fleet_repo.commit({"apps/web/configmap.yaml": configmap("2")})
        synced = await convoy(hub, tmp_path, "sync")
        assert synced.exit_code == 0, synced.output
        assert "1 cluster desires it now (canary-1)" in synced.output
        assert "2 held by the rollout (rest-1, rest-2)" in synced.output

        reply = await admin.call("SyncNow", pb.SyncNowRequest())
        assert list(reply.desired_clusters) == ["canary-1"]
        assert list(reply.held_clusters) == ["rest-1", "rest-2"]
        assert not reply.render_error_clusters and not reply.failed
        for stream in streams:
            stream.cancel()


async def test_sync_fails_on_render_errors_and_on_a_repository_it_cannot_fetch(
        tmp_path: Path, fleet_repo: FleetRepo) -> None:
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub, channel(hub) as ch:
        good = await registered_spoke(hub, ch, "good")
        bad = await registered_spoke(hub, ch, "bad")
        streams = [good.watch(), bad.watch()]
        await report_ready(good, streams[0])
        await report_ready(bad, streams[1])

        fleet_repo.commit({"apps/web/configmap.yaml": configmap("2"),
                           "clusters/bad/web/kustomization.yaml": BROKEN_LAYER})
        synced = await convoy(hub, tmp_path, "sync")
        assert synced.exit_code == 1, synced.output
        assert "1 cluster desires it now (good)" in synced.output
        assert "1 refused by render errors (bad)" in synced.output
        assert "does-not-exist.yaml" in synced.output  # the first error, so the operator knows where to look

        fleet_repo.commit({"fleet.yaml": "apps: [this is: not valid\n"})
        whole = await convoy(hub, tmp_path, "sync")
        assert whole.exit_code == 1 and "the fleet cannot be rendered" in whole.output, whole.output

        shutil.move(fleet_repo.path, tmp_path / "moved-away")
        unreachable = await convoy(hub, tmp_path, "sync")
        assert unreachable.exit_code == 1, unreachable.output
        assert "fetch failed" in unreachable.output and "no change" not in unreachable.output
        for stream in streams:
            stream.cancel()


# -- item 9: refusals show in the fleet view ------------------------------------------------------------

async def test_a_refused_head_shows_in_the_status_header_and_fails_the_exit_code(
        tmp_path: Path, fleet_repo: FleetRepo) -> None:
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub, channel(hub) as ch:
        spoke = await registered_spoke(hub, ch, "alpha")
        stream = spoke.watch()
        await report_ready(spoke, stream)
        deployed = fleet_repo.commit({"apps/web/configmap.yaml": configmap("2")})
        await admin_of(hub, ch).call("SyncNow", pb.SyncNowRequest())
        await report_ready(spoke, stream)
        clean = await convoy(hub, tmp_path, "status", "--exit-code")
        assert clean.exit_code == 0 and "refused" not in clean.output, clean.output

        # A force-push that rewrites history.
        fleet_repo.git("reset", "-q", "--hard", "HEAD~1")
        rewritten = fleet_repo.commit({"apps/web/configmap.yaml": configmap("rewritten")})
        synced = await convoy(hub, tmp_path, "sync")
        assert synced.exit_code == 1 and f"commit {rewritten[:12]} refused" in synced.output, synced.output
        table = await convoy(hub, tmp_path, "status")
        header = table.output.splitlines()[:3]
        assert header[0].startswith(f"fleet commit {deployed[:12]}"), table.output
        refusal = header[1]  # one line, cut short rather than wrapped
        assert refusal.startswith(f"newer commit {rewritten[:12]} refused (history rewrite")
        assert "does not descend" in refusal and len(refusal) <= 160
        assert header[2].startswith("CLUSTER"), table.output
        assert (await convoy(hub, tmp_path, "status", "--exit-code")).exit_code == 1
        document = json.loads((await convoy(hub, tmp_path, "status", "-o", "json")).output)
        assert document["fleetCommit"] == deployed
        assert document["refusedCommit"]["commit"] == rewritten
        assert document["refusedCommit"]["kind"] == "history rewrite"
        assert "does not descend" in document["refusedCommit"]["reason"]

        # The branch is put back on the deployed commit: nothing is refused any more.
        fleet_repo.git("reset", "-q", "--hard", deployed)
        await admin_of(hub, ch).call("SyncNow", pb.SyncNowRequest())
        back = await convoy(hub, tmp_path, "status", "--exit-code")
        assert back.exit_code == 0 and "refused" not in back.output, back.output
        assert json.loads((await convoy(hub, tmp_path, "status", "-o", "json")).output)["refusedCommit"] is None
        stream.cancel()


async def test_a_fleet_wide_render_failure_shows_in_the_status_header(tmp_path: Path, fleet_repo: FleetRepo) -> None:
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub, channel(hub) as ch:
        spoke = await registered_spoke(hub, ch, "alpha")
        stream = spoke.watch()
        await report_ready(spoke, stream)
        deployed = fleet_repo.head()
        broken = fleet_repo.commit({"fleet.yaml": "apps: [this is: not valid\n"})
        await admin_of(hub, ch).call("SyncNow", pb.SyncNowRequest())

        table = await convoy(hub, tmp_path, "status")
        assert table.output.startswith(f"fleet commit {deployed[:12]}"), table.output
        line = table.output.splitlines()[1]
        assert line.startswith(f"newer commit {broken[:12]} not deployed (render error")
        assert "cannot be rendered" in line and "fleet.yaml" in line
        assert table.output.splitlines()[2].startswith("CLUSTER"), table.output
        assert (await convoy(hub, tmp_path, "status", "--exit-code")).exit_code == 1
        document = json.loads((await convoy(hub, tmp_path, "status", "-o", "json")).output)
        assert document["refusedCommit"]["commit"] == broken
        assert document["refusedCommit"]["kind"] == "render error"

        fixed = fleet_repo.commit({"fleet.yaml": FLEET_YAML})
        await admin_of(hub, ch).call("SyncNow", pb.SyncNowRequest())
        await poll(lambda: _listed_commit(hub, ch, fixed), what="the fixed commit deployed")
        ok = await convoy(hub, tmp_path, "status", "--exit-code")
        assert ok.exit_code == 0 and "cannot be rendered" not in ok.output, ok.output
        stream.cancel()


async def _listed_commit(hub: hubserve.RunningHub, ch: aio.Channel, commit: str) -> bool:
    listing = await admin_of(hub, ch).call("ListClusters", pb.ListClustersRequest())
    return bool(listing.fleet_commit == commit)
