"""Issue 13 items 3 and 4 on a running hub: a hostile commit fails only the clusters it reaches, the
others move on, later commits still deploy, and `convoy status` / `convoy history` keep working."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from click.testing import CliRunner, Result

from hub.cli import cli
from hub.store import models
from hub.store import repository as store
from protos.codec import pb
from tests.integration.hub_harness import (
    FleetRepo,
    admin_of,
    channel,
    configmap,
    exponential_kustomization,
    hub_settings,
    next_desired,
    registered_spoke,
    running_hub,
)

MiB = 1024 * 1024


async def convoy(config: Path, *args: str) -> Result:
    """The CLI as a user runs it, in a thread: the hub it talks to runs on this event loop."""
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env={"CONVOY_CONFIG": str(config)})


async def test_a_symlink_under_clusters_fails_only_that_cluster_on_the_hub(tmp_path: Path,
                                                                          fleet_repo: FleetRepo) -> None:
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub, channel(hub) as ch:
        spoke = await registered_spoke(hub, ch, "alpha")
        stream = spoke.watch()
        before = await next_desired(stream)
        (fleet_repo.path / "clusters").mkdir()
        os.symlink("/etc", fleet_repo.path / "clusters" / "evil")
        sha = fleet_repo.commit({"apps/web/configmap.yaml": configmap("2")}, "v2 and a symlink out of the repo")

        reply = await admin_of(hub, ch).call("SyncNow", pb.SyncNowRequest())
        assert reply.commit == sha and "cannot be rendered" not in reply.message, reply.message
        after = await next_desired(stream)
        assert after.commit == sha and after.digest != before.digest
        with hub.db.session() as session:
            errors = store.render_errors_all(session)
        assert set(errors) == {"evil"}
        [error] = errors["evil"].errors
        assert "clusters/evil" in error["message"] and "escapes the repository" in error["message"]
        stream.cancel()


async def test_a_huge_value_in_an_error_leaves_status_and_history_working(tmp_path: Path,
                                                                          fleet_repo: FleetRepo) -> None:
    # Files may be big on this hub, so the 20 MB value reaches the error instead of the size check.
    settings = hub_settings(tmp_path / "hub", fleet_repo, max_file_bytes=32 * MiB)
    async with running_hub(settings) as hub, channel(hub) as ch:
        await registered_spoke(hub, ch, "alpha")
        await registered_spoke(hub, ch, "beta")
        sha = fleet_repo.commit({"apps/web/kustomization.yaml": "resources: [configmap.yaml]\n"
                                 "commonLabels: {big: [" + "z" * (20 * MiB) + "]}\n"}, "a 20 MB label value")
        reply = await admin_of(hub, ch).call("SyncNow", pb.SyncNowRequest())
        assert reply.commit == sha and len(reply.message) < 2000

        status = await convoy(hub.cli_config_path, "status")
        assert status.exit_code == 0, status.output
        assert "alpha" in status.output and "beta" in status.output
        listing = json.loads((await convoy(hub.cli_config_path, "status", "-o", "json")).output)
        for row in listing["clusters"]:
            assert any("commonLabels.big must be a string" in error for error in row["renderErrors"])
            assert all(len(error) <= 300 for error in row["renderErrors"])
        history = await convoy(hub.cli_config_path, "history", "alpha")
        assert history.exit_code == 0, history.output
        assert "render failed" in history.output
        described = await convoy(hub.cli_config_path, "describe", "alpha")
        assert described.exit_code == 0, described.output

        with hub.db.session() as session:
            stored = store.render_errors_all(session)
            events = store.events(session, limit=50)
        assert set(stored) == {"alpha", "beta"}
        for errors in stored.values():
            assert all(len(error["message"]) <= store.MAX_RENDER_ERROR_CHARS for error in errors.errors)
            assert "commonLabels.big must be a string" in errors.errors[0]["message"]
        assert all(len(event.message) <= store.MAX_EVENT_MESSAGE_CHARS for event in events)


async def test_a_store_write_of_a_huge_error_is_bounded(tmp_path: Path, fleet_repo: FleetRepo) -> None:
    # The store bounds what it is given, whoever made it (older hubs, other writers).
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub:
        huge = "y" * MiB
        with hub.db.session() as session:
            store.set_render_errors(session, cluster="alpha", commit="a" * 40,
                                    errors=[{"app": "web", "file": huge, "message": huge}] * 25)
            store.add_event(session, models.EventKind.HUB, message=huge)
        with hub.db.session() as session:
            [error, *rest] = store.render_errors_all(session)["alpha"].errors
            events = store.events(session, limit=5)
        assert len(error["message"]) <= store.MAX_RENDER_ERROR_CHARS and len(error["file"]) <= 300
        assert len(rest) == store.MAX_RENDER_ERRORS and "5 more" in rest[-1]["message"]
        assert all(len(event.message) <= store.MAX_EVENT_MESSAGE_CHARS for event in events)
        assert all(len(str(event.details or "")) < 20_000 for event in events)


async def test_a_multiplying_kustomization_fails_its_clusters_and_the_next_commit_deploys(
        tmp_path: Path, fleet_repo: FleetRepo) -> None:
    settings = hub_settings(tmp_path / "hub", fleet_repo, max_bundle_objects=10**9, max_render_seconds=0.5)
    async with running_hub(settings) as hub, channel(hub) as ch:
        spoke = await registered_spoke(hub, ch, "alpha")
        stream = spoke.watch()
        before = await next_desired(stream)
        bomb = {name.replace("apps/bomb/", "apps/web/"): text for name, text in exponential_kustomization(18).items()}
        bombed = fleet_repo.commit(bomb, "2^18 objects")
        admin = admin_of(hub, ch)
        reply = await admin.call("SyncNow", pb.SyncNowRequest())
        assert reply.commit == bombed and "render errors" in reply.message
        detail = await admin.call("GetCluster", pb.GetClusterRequest(name="alpha"))
        assert detail.summary.desired_digest == before.digest
        assert any("max_render_seconds" in line for line in detail.render_errors), detail.render_errors

        fixed = fleet_repo.commit({"apps/web/kustomization.yaml": "resources: [configmap.yaml]\n",
                                   "apps/web/configmap.yaml": configmap("3")}, "back to one object")
        reply = await admin.call("SyncNow", pb.SyncNowRequest())
        assert reply.commit == fixed
        after = await next_desired(stream)
        assert after.commit == fixed and after.digest != before.digest
        stream.cancel()
