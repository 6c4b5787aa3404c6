"""Progressive rollouts end to end: real hub, spokes, kubesim clusters and Git (issue 8).

One fleet (the 5 sample clusters) with three waves — canary (prod-eu-1), early (dev, staging),
rest (prod-us-1, prod-ap-1) — serves the tests in this module, in order. Every commit bumps a key of
the web ConfigMap's base, so it changes every cluster's bundle.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections.abc import Iterator

import pytest

from hub import localfleet
from protos.convoy.v1 import convoy_pb2 as pb
from tests.e2e.rollout_harness import at, bump, control, convoy, events, rollout, wait_state

CANARY = {"prod-eu-1"}
EARLY = {"dev-eu-1", "staging-eu-1"}
REST = {"prod-us-1", "prod-ap-1"}
ALL = CANARY | EARLY | REST
BAKE = 3.0
ROLLOUT = f"""rollout:
  maxUnavailable: 0
  bakeTime: {BAKE:g}s
  progressDeadline: 90s
  onFailure: rollback
  waves:
    - name: canary
      selector: {{matchLabels: {{env: prod, canary: "true"}}}}
    - name: early
      selector: {{matchExpressions: [{{key: env, operator: In, values: [dev, staging]}}]}}
"""
CANARY_LAYER = "clusters/prod-eu-1/web/kustomization.yaml"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[localfleet.LocalFleet]:
    base = tmp_path_factory.mktemp("rollouts")
    source = base / "sample"
    shutil.copytree(localfleet.sample_fleet_path(), source)
    text = (source / "fleet.yaml").read_text()
    (source / "fleet.yaml").write_text(re.split(r"(?m)^rollout:", text)[0] + ROLLOUT)
    clusters = localfleet.sandbox_clusters(source, 5)
    running = localfleet.LocalFleet(workdir=base / "fleet", clusters=clusters, fleet_source=source,
                                    poll_interval=30.0, heartbeat_seconds=1.0, spoke_heartbeat=1.0,
                                    health_timeout=4.0, workload_delay=0.2)
    try:
        running.start()
        running.wait_all_ready(timeout=120)
        yield running
    finally:
        running.stop()


def settled(fleet: localfleet.LocalFleet, commit: str) -> dict[str, pb.ClusterSummary]:
    def ready() -> dict[str, pb.ClusterSummary] | None:
        s = fleet.statuses()
        done = all(s[n].desired_commit == commit and s[n].applied_digest == s[n].desired_digest
                   and s[n].phase == pb.PHASE_READY for n in ALL)
        return s if done else None

    return localfleet.wait_until(ready, timeout=60, what=f"clusters Ready at {commit[:8]}", interval=0.3)


def released_clusters(fleet: localfleet.LocalFleet, commit: str) -> dict[str, dt.datetime]:
    """cluster -> when the hub made the commit's bundle desired for it."""
    return {e.cluster: at(e) for e in events(fleet, commit) if e.kind == "desired_changed"}


def test_clean_rollout_goes_wave_by_wave_with_bake_time(fleet: localfleet.LocalFleet) -> None:
    before = fleet.statuses()
    sha = bump(fleet, "2")
    status = rollout(fleet)
    assert status.commit == sha and [w.name for w in status.waves] == ["canary", "early", "rest"]
    assert [set(w.clusters) for w in status.waves] == [CANARY, EARLY, REST]
    table = fleet.statuses()
    assert table["prod-eu-1"].rollout_state == "released" and table["prod-eu-1"].wave == "canary"
    assert all(table[n].rollout_state == "waiting" and table[n].desired_digest == before[n].desired_digest
               for n in EARLY | REST)
    wait_state(fleet, sha, "done")
    after = settled(fleet, sha)
    assert all(after[n].desired_digest != before[n].desired_digest for n in ALL)
    released = released_clusters(fleet, sha)
    assert set(released) == ALL
    assert max(released[n] for n in CANARY) < min(released[n] for n in EARLY)
    assert max(released[n] for n in EARLY) < min(released[n] for n in REST)
    log = events(fleet, sha)
    baking = {e.message.split()[1]: at(e) for e in log if e.kind == "wave_baking"}
    waves_released = {e.message.split()[1]: at(e) for e in log if e.kind == "wave_released"}
    assert waves_released["early"] - baking["canary"] >= dt.timedelta(seconds=BAKE)
    assert waves_released["rest"] - baking["early"] >= dt.timedelta(seconds=BAKE)
    assert [e.kind for e in log if e.kind.startswith("rollout_")] == ["rollout_started", "rollout_done"]


def test_pause_holds_the_next_wave_until_resumed_and_promote_skips_the_bake(fleet: localfleet.LocalFleet) -> None:
    before = fleet.statuses()
    sha = bump(fleet, "3")
    assert control(fleet, "pause").state == "paused"
    # Canary applies and is Ready, and a whole bake time passes: nothing more is released.
    localfleet.wait_until(lambda: (s := fleet.statuses()["prod-eu-1"]).desired_commit == sha
                          and s.applied_digest == s.desired_digest and s.phase == pb.PHASE_READY,
                          timeout=60, what="canary Ready", interval=0.3)
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=BAKE + 1)
    localfleet.wait_until(lambda: dt.datetime.now(dt.UTC) >= deadline, timeout=BAKE + 5, what="a bake time")
    paused = fleet.statuses()
    assert rollout(fleet).state == "paused"
    assert all(paused[n].desired_digest == before[n].desired_digest and paused[n].rollout_state == "waiting"
               for n in EARLY | REST)
    resumed = control(fleet, "resume")
    assert resumed.state == "progressing" and resumed.waves[0].state == "baking"
    promoted = control(fleet, "promote")
    assert [w.state for w in promoted.waves][:2] == ["done", "progressing"]
    log = events(fleet, sha)
    baked = next(at(e) for e in log if e.kind == "wave_baking")
    early = next(at(e) for e in log if e.kind == "wave_released" and "wave early" in e.message)
    assert early - baked < dt.timedelta(seconds=BAKE)  # promoted: the bake time was skipped
    assert {"rollout_paused", "rollout_resumed", "rollout_promoted"} <= {e.kind for e in log}
    wait_state(fleet, sha, "done")
    settled(fleet, sha)


def test_newer_commit_supersedes_and_waiting_clusters_skip_straight_to_it(fleet: localfleet.LocalFleet) -> None:
    first = bump(fleet, "4")
    assert rollout(fleet).commit == first
    second = bump(fleet, "5")
    status = rollout(fleet)
    assert status.commit == second and status.state == "progressing"
    assert status.waves[0].state in {"progressing", "baking"} and status.waves[1].state == "pending"
    assert any(e.kind == "rollout_superseded" for e in events(fleet, first))
    wait_state(fleet, second, "done")
    settled(fleet, second)
    # Only the canary ever had the superseded commit's bundle; the others went straight to the newest.
    assert set(released_clusters(fleet, first)) == CANARY
    assert set(released_clusters(fleet, second)) == ALL


def test_hub_restart_mid_rollout_resumes_where_it_was(fleet: localfleet.LocalFleet) -> None:
    sha = bump(fleet, "6")
    started = rollout(fleet)
    assert control(fleet, "pause").state == "paused"  # hold it mid-way across the restart
    fleet.restart_hub()
    after = rollout(fleet)
    assert (after.id, after.commit, after.state) == (started.id, sha, "paused")
    assert all(fleet.statuses()[n].rollout_state == "waiting" for n in EARLY | REST)
    control(fleet, "resume")
    wait_state(fleet, sha, "done")
    settled(fleet, sha)
    assert [e.kind for e in events(fleet, sha)].count("rollout_started") == 1


def test_rollback_pins_a_cluster_that_rollouts_then_skip_until_unpinned(fleet: localfleet.LocalFleet) -> None:
    with fleet.admin() as admin:
        history = admin.history(pb.HistoryRequest(cluster="prod-us-1", limit=500)).events
    current = fleet.statuses()["prod-us-1"]
    older = [e for e in history if e.kind == "desired_changed" and e.digest != current.desired_digest]
    target = older[-1]
    pinned = convoy(fleet, "rollback", "prod-us-1", "--to", target.commit[:12])
    assert pinned.returncode == 0, pinned.stderr
    assert f"prod-us-1 pinned to {target.digest[:19]}" in pinned.stdout
    refused = convoy(fleet, "rollback", "prod-ap-1", "--to", "sha256:" + "0" * 64)
    assert refused.returncode == 1 and "never desired" in refused.stderr

    def at_pin() -> pb.ClusterSummary | None:
        s = fleet.statuses()["prod-us-1"]
        ok = s.applied_digest == target.digest == s.desired_digest and s.phase == pb.PHASE_READY
        return s if ok else None

    row = localfleet.wait_until(at_pin, timeout=60, what="prod-us-1 Ready at its pinned bundle", interval=0.3)
    assert row.rollout_state == "pinned" and row.pinned_digest == target.digest
    sha = bump(fleet, "8")
    # In its wave, but absent: it is not moved and proves nothing (prod-ap-1 carries the wave).
    rest = next(w for w in rollout(fleet).waves if w.name == "rest")
    assert "prod-us-1" in rest.clusters and dict(rest.absent) == {"prod-us-1": "pinned"}
    wait_state(fleet, sha, "done")
    assert fleet.statuses()["prod-us-1"].desired_digest == target.digest
    status = convoy(fleet, "rollout", "status")
    assert status.returncode == 0 and f"of commit {sha[:12]}: done" in status.stdout and "canary" in status.stdout
    unpinned = convoy(fleet, "rollback", "prod-us-1", "--unpin")
    assert unpinned.returncode == 0 and "unpinned" in unpinned.stdout, unpinned.stderr
    after = settled(fleet, sha)
    assert after["prod-us-1"].pinned_digest == "" and after["prod-us-1"].desired_digest != target.digest


def test_failing_canary_stops_the_rollout_and_rolls_back(fleet: localfleet.LocalFleet) -> None:
    before = fleet.statuses()
    layer = fleet.read(CANARY_LAYER)
    failing = layer.replace('demo.convoy.dev/capacity: "high"',
                            'demo.convoy.dev/capacity: "high", kubesim.convoy.dev/outcome: "fail"')
    assert failing != layer
    sha = bump(fleet, "7", {CANARY_LAYER: failing})
    stopped = wait_state(fleet, sha, "rolled_back")
    assert list(stopped.failing_clusters) == ["prod-eu-1"]
    assert "wave canary failed" in stopped.reason
    assert [w.state for w in stopped.waves] == ["failed", "pending", "pending"]
    # The canary is given its previous bundle back and is Ready there; the other waves never moved.
    def canary_back() -> dict[str, pb.ClusterSummary] | None:
        s = fleet.statuses()
        canary, previous = s["prod-eu-1"], before["prod-eu-1"].desired_digest
        done = canary.desired_digest == previous == canary.applied_digest and canary.phase == pb.PHASE_READY
        return s if done else None

    back = localfleet.wait_until(canary_back, timeout=60, what="canary Ready at its previous bundle", interval=0.3)
    for name in EARLY | REST:
        assert back[name].desired_digest == before[name].desired_digest
        assert back[name].rollout_state == "held"
    assert back["prod-eu-1"].rollout_state == "reverted"
    assert set(released_clusters(fleet, sha)) == CANARY
    log = [e for e in events(fleet, sha) if e.kind == "rollout_rolled_back"]
    assert len(log) == 1 and "prod-eu-1" in log[0].message
