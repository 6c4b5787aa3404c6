"""Presence (issue 12): the hub knows which spokes are there, from their Watch streams, in the database.

Real hubs on port 0 (one or two sharing PostgreSQL), real gRPC, the stand-in spoke of the harness.
"""

from __future__ import annotations

from pathlib import Path

from hub import presence
from protos.codec import pb
from tests.integration.hub_harness import (
    FleetRepo,
    admin_of,
    channel,
    fresh_postgres,
    hub_settings,
    next_desired,
    registered_spoke,
    running_hub,
)
from tests.polling import poll


async def online(hub: object, ch: object) -> dict[str, bool]:
    listing = await admin_of(hub, ch).call("ListClusters", pb.ListClustersRequest())  # type: ignore[arg-type]
    return {c.name: c.online for c in listing.clusters}


async def test_hub_processes_sharing_a_database_agree_on_who_is_there(tmp_path: Path, fleet_repo: FleetRepo,
                                                                      postgres_url: str) -> None:
    with fresh_postgres(postgres_url) as url:
        async with running_hub(hub_settings(tmp_path / "a", fleet_repo, database_url=url)) as hub_a, \
                running_hub(hub_settings(tmp_path / "b", fleet_repo, database_url=url)) as hub_b, \
                channel(hub_a) as ch_a, channel(hub_b) as ch_b:
            spoke = await registered_spoke(hub_a, ch_a, "eu-1")
            stream = spoke.watch()
            await next_desired(stream)
            # The stream is on hub A; hub B answers from the database.
            assert (await online(hub_b, ch_b))["eu-1"] is True
            stream.cancel()

            async def gone() -> bool:
                return (await online(hub_b, ch_b))["eu-1"] is False
            await poll(gone, timeout=5, what="hub B to see the spoke leave hub A")

            spoke.channel = ch_b        # the spoke comes back, to the other hub
            again = spoke.watch()
            await next_desired(again)
            assert (await online(hub_a, ch_a))["eu-1"] is True
            again.cancel()


async def test_a_hub_restart_neither_drops_the_fleet_offline_nor_revives_a_spoke_that_left(
        tmp_path: Path, fleet_repo: FleetRepo, database_url: str | None) -> None:
    settings = hub_settings(tmp_path / "hub", fleet_repo, database_url=database_url)
    async with running_hub(settings) as hub, channel(hub) as ch:
        staying = await registered_spoke(hub, ch, "staying")
        leaving = await registered_spoke(hub, ch, "leaving")
        stays, leaves = staying.watch(), leaving.watch()
        await next_desired(stays)
        await next_desired(leaves)
        leaves.cancel()

        async def left() -> bool:
            return (await online(hub, ch)) == {"staying": True, "leaving": False}
        await poll(left, timeout=5, what="the leaving spoke to show offline")
    # The hub stopped cleanly (its streams ended because it went, not the spokes); a new one starts.
    async with running_hub(settings) as hub, channel(hub) as ch:
        assert await online(hub, ch) == {"staying": True, "leaving": False}
        # A spoke that does not come back is offline once it has been silent past the heartbeat grace.
        silent = presence.silent_after(settings.heartbeat_seconds).total_seconds()

        async def silent_gone() -> bool:
            return (await online(hub, ch))["staying"] is False
        await poll(silent_gone, timeout=silent + 5, what="the spoke that never reconnected to show offline")
