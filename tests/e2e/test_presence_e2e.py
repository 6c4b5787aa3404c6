"""Presence end to end (issue 12): real hub, spokes, kubesim clusters and Git, with the default 30 s heartbeat.

A spoke stopped cleanly (SIGTERM) closes its streams, and the hub shows it Offline at once, not after
missed heartbeats; a canary that goes away mid-rollout gives no evidence, so the next wave waits for it.
Three of the sample's five declared clusters run; the other two are declared in Git and never register.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from hub import localfleet
from protos.convoy.v1 import convoy_pb2 as pb
from tests.e2e.rollout_harness import at, bump, control, convoy, events, rollout, wait_state

RUNNING = ["dev-eu-1", "prod-ap-1", "prod-eu-1"]
CANARY = "prod-eu-1"
BAKE = 3.0
ROLLOUT = f"""rollout:
  bakeTime: {BAKE:g}s
  progressDeadline: 120s
  waves:
    - name: canary
      selector: {{matchLabels: {{canary: "true"}}}}
"""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[localfleet.LocalFleet]:
    base = tmp_path_factory.mktemp("presence")
    source = base / "sample"
    shutil.copytree(localfleet.sample_fleet_path(), source)
    text = (source / "fleet.yaml").read_text()
    (source / "fleet.yaml").write_text(re.split(r"(?m)^rollout:", text)[0] + ROLLOUT)
    clusters = [c for c in localfleet.declared_sample_clusters(source) if c.name in RUNNING]
    # The default heartbeat: before issue 12, `convoy status` showed a stopped spoke Ready for 90 s.
    running = localfleet.LocalFleet(workdir=base / "fleet", clusters=clusters, fleet_source=source,
                                    poll_interval=30.0, heartbeat_seconds=30.0, spoke_heartbeat=2.0,
                                    health_timeout=10.0, workload_delay=0.2)
    try:
        running.start()
        running.wait_all_ready(timeout=120)
        yield running
    finally:
        running.stop()


def status_rows(fleet: localfleet.LocalFleet) -> dict[str, dict[str, Any]]:
    result = convoy(fleet, "status", "-o", "json")
    assert result.returncode == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)["clusters"]}


def wait_online(fleet: localfleet.LocalFleet, cluster: str, online: bool) -> pb.ClusterSummary:
    def reached() -> pb.ClusterSummary | None:
        row = fleet.statuses()[cluster]
        return row if row.online is online else None

    return localfleet.wait_until(reached, timeout=20, what=f"{cluster} online={online}", interval=0.2)


def test_a_spoke_stopped_cleanly_shows_offline_at_once(fleet: localfleet.LocalFleet) -> None:
    fleet.stop_spoke("dev-eu-1")

    def offline() -> dict[str, dict[str, Any]] | None:
        rows = status_rows(fleet)
        return rows if rows["dev-eu-1"]["phase"] == "Offline" else None

    # Far less than the 70 s a silent spoke may take at this heartbeat: the hub saw the stream close.
    rows = localfleet.wait_until(offline, timeout=15, what="dev-eu-1 Offline in convoy status", interval=0.5)
    assert rows["dev-eu-1"]["online"] is False and rows["dev-eu-1"]["reportedPhase"] == "Ready"
    assert rows["dev-eu-1"]["lastSeen"] is not None
    assert all(rows[name]["phase"] == "Ready" and rows[name]["online"] for name in ("prod-ap-1", "prod-eu-1"))
    table = convoy(fleet, "status", "--exit-code")
    assert table.returncode == 1
    line = next(line for line in table.stdout.splitlines() if line.startswith("dev-eu-1"))
    assert "Offline" in line and "Ready" not in line
    assert "1 Offline" in table.stdout

    fleet.start_spoke("dev-eu-1")
    wait_online(fleet, "dev-eu-1", True)
    fleet.wait_all_ready(timeout=60)


def test_a_canary_that_goes_away_mid_rollout_does_not_release_the_next_wave(fleet: localfleet.LocalFleet) -> None:
    before = fleet.statuses()
    sha = bump(fleet, "presence-1")
    assert control(fleet, "pause").state == "paused"  # hold the canary wave while its spoke goes away
    localfleet.wait_until(lambda: (s := fleet.statuses()[CANARY]).desired_commit == sha
                          and s.applied_digest == s.desired_digest and s.phase == pb.PHASE_READY,
                          timeout=60, what="canary Ready at the new bundle", interval=0.3)
    fleet.stop_spoke(CANARY)
    wait_online(fleet, CANARY, False)
    # Its last report still says Ready at the new bundle; that is not evidence while it is gone.
    resumed = control(fleet, "resume")
    assert resumed.state == "progressing"
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=BAKE + 2)
    localfleet.wait_until(lambda: dt.datetime.now(dt.UTC) >= deadline, timeout=BAKE + 10, what="a bake time")
    held = rollout(fleet)
    assert held.state == "progressing" and [w.state for w in held.waves] == ["progressing", "pending"]
    assert dict(held.waves[0].absent) == {CANARY: "offline"} and "ready" not in held.waves[0].counts
    assert dict(held.waves[1].absent) == {"prod-us-1": "not registered", "staging-eu-1": "not registered"}
    now = fleet.statuses()
    assert all(now[n].desired_digest == before[n].desired_digest for n in ("dev-eu-1", "prod-ap-1"))
    shown = convoy(fleet, "rollout", "status")
    assert shown.returncode == 0 and f"absent: {CANARY} (offline)" in shown.stdout, shown.stdout

    back = dt.datetime.now(dt.UTC)
    fleet.start_spoke(CANARY)
    wait_state(fleet, sha, "done")
    fleet.wait_all_ready(timeout=60)
    # The canary wave baked only once its spoke was back; the rest wave names the clusters it lacked.
    log = events(fleet, sha)
    assert all(at(e) >= back for e in log if e.kind == "wave_baking" and "wave canary" in e.message)
    rest = next(e for e in log if e.kind == "wave_done" and "wave rest" in e.message)
    assert "absent: prod-us-1 (not registered), staging-eu-1 (not registered)" in rest.message
