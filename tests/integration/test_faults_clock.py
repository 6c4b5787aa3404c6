"""Clock skew (issue 22, item 10): spokes whose clocks are an hour off. The hub judges freshness by its
own clock (when a report arrived), and `convoy describe` / `convoy status -o json` show the skew."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from google.protobuf import timestamp_pb2

from protos.codec import pb
from tests.integration.hub_harness import (
    FleetRepo,
    channel,
    convoy,
    hub_settings,
    next_desired,
    registered_spoke,
    row,
    running_hub,
)


def _stamp(when: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    return stamp


async def test_a_spoke_an_hour_off_is_judged_by_the_hubs_clock_and_its_skew_shown(
        tmp_path: Path, fleet_repo: FleetRepo) -> None:
    settings = hub_settings(tmp_path / "hub", fleet_repo)
    async with running_hub(settings) as hub, channel(hub) as ch:
        skewed = {"ahead": dt.timedelta(hours=1), "behind": -dt.timedelta(hours=1), "exact": dt.timedelta(0)}
        streams = []  # kept open: the clusters stay connected
        for name, offset in skewed.items():
            spoke = await registered_spoke(hub, ch, name)
            stream = spoke.watch()
            streams.append(stream)
            desired = await next_desired(stream)
            await spoke.report(phase=pb.PHASE_READY, applied_commit=desired.commit, applied_digest=desired.digest,
                               observed_at=_stamp(dt.datetime.now(dt.UTC) + offset))
        hub_now = dt.datetime.now(dt.UTC)

        status = json.loads((await convoy(hub, tmp_path, "status", "-o", "json")).output)
        for name, offset in skewed.items():
            cluster = row(status, name)
            # Freshness is the hub's: a report an hour "old" or "from the future" by the spoke's clock is
            # the report the hub just received, and the cluster is Ready (not Offline, not stale).
            assert cluster["phase"] == "Ready", cluster
            received = dt.datetime.fromisoformat(str(cluster["lastReport"]))
            assert abs(hub_now - received) < dt.timedelta(minutes=1), cluster
            skew = cluster["clockSkewSeconds"]
            assert isinstance(skew, int) and abs(skew - offset.total_seconds()) < 60, cluster

        ahead = await convoy(hub, tmp_path, "describe", "ahead")
        assert "spoke clock 1h0m ahead of the hub's" in ahead.output, ahead.output
        behind = await convoy(hub, tmp_path, "describe", "behind")
        assert "spoke clock 1h0m behind the hub's" in behind.output, behind.output
        exact = await convoy(hub, tmp_path, "describe", "exact")
        assert "Clock" not in exact.output, exact.output
        described = json.loads((await convoy(hub, tmp_path, "describe", "ahead", "-o", "json")).output)
        assert abs(described["clockSkewSeconds"] - 3600) < 60
