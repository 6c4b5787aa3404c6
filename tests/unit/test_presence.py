"""The presence rule (hub/presence.py) and how `convoy status` shows it: the hub decides, the CLI does not guess."""

from __future__ import annotations

import datetime as dt

import pytest

from hub import presence
from hub.commands import formatting
from protos import codec
from protos.convoy.v1 import convoy_pb2 as pb

NOW = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(("seen_ago", "disconnected", "heartbeat", "online"), [
    (0, False, 30, True),
    (69, False, 30, True),       # a watching cluster is refreshed once per heartbeat: two heartbeats + ping
    (71, False, 30, False),      # silent past the grace: the hub that had its stream is gone too
    (0, True, 30, False),        # it closed its stream (or the hub dropped it): offline at once
    (3, False, 1, True),
    (5, False, 1, False),        # a 1 s heartbeat: 2 s + the 2 s ping timeout floor
])
def test_online_rule(seen_ago: float, disconnected: bool, heartbeat: float, online: bool) -> None:
    last_seen = NOW - dt.timedelta(seconds=seen_ago)
    assert presence.is_online(last_seen=last_seen, disconnected_at=last_seen if disconnected else None, now=NOW,
                              heartbeat_seconds=heartbeat) is online


def test_never_seen_is_offline_and_the_ping_timeout_is_bounded() -> None:
    assert not presence.is_online(last_seen=None, disconnected_at=None, now=NOW, heartbeat_seconds=30)
    assert [presence.ping_timeout(h) for h in (0.5, 5, 30)] == [2.0, 5, 10.0]


def summary(*, online: bool, seen_ago: float) -> pb.ClusterSummary:
    row = pb.ClusterSummary(name="eu-1", phase=pb.PHASE_READY, online=online)
    row.last_seen.CopyFrom(codec.timestamp(NOW - dt.timedelta(seconds=seen_ago)))
    return row


def test_status_row_shows_offline_from_the_hub_and_keeps_the_reported_phase() -> None:
    gone = formatting.cluster_row(summary(online=False, seen_ago=2), now=NOW)
    assert (gone["phase"], gone["reportedPhase"], gone["online"]) == ("Offline", "Ready", False)
    # Seen long ago but online by the hub's rule (say, just after a hub restart): the CLI does not overrule it.
    here = formatting.cluster_row(summary(online=True, seen_ago=600), now=NOW)
    assert (here["phase"], here["online"]) == ("Ready", True)
    assert formatting.fleet_summary([gone, here]) == "2 clusters: 1 Offline, 1 Ready"
