"""Approval gates end to end (issue 21 part 3): real hub, spokes, kubesim clusters and Git.

Three sample clusters: the canary (prod-eu-1), a ``prod`` wave (prod-ap-1) that needs alice's approval
when the commit range changes ``apps/web/**``, and the rest (dev-eu-1). A web bump is released to the
canary, then the prod wave waits, across a hub restart, until ``convoy rollout approve`` run with
alice's named credential releases it; history names her.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator

import pytest

from hub import localfleet
from protos.convoy.v1 import convoy_pb2 as pb
from tests.e2e.rollout_harness import bump, convoy, events, rollout, wait_state

ROLLOUT = """rollout:
  maxUnavailable: 0
  bakeTime: 1s
  progressDeadline: 90s
  waves:
    - name: canary
      selector: {matchLabels: {env: prod, canary: "true"}}
    - name: prod
      selector: {matchLabels: {env: prod}}
      approval: {required: true, paths: ["apps/web/**"], approvers: [alice]}
"""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[localfleet.LocalFleet]:
    base = tmp_path_factory.mktemp("approval")
    source = base / "sample"
    shutil.copytree(localfleet.sample_fleet_path(), source)
    text = (source / "fleet.yaml").read_text()
    (source / "fleet.yaml").write_text(re.split(r"(?m)^rollout:", text)[0] + ROLLOUT)
    clusters = localfleet.sandbox_clusters(source, 3)
    assert {c.name for c in clusters} == {"dev-eu-1", "prod-ap-1", "prod-eu-1"}
    running = localfleet.LocalFleet(workdir=base / "fleet", clusters=clusters, fleet_source=source,
                                    poll_interval=30.0, heartbeat_seconds=1.0, spoke_heartbeat=1.0,
                                    health_timeout=4.0, workload_delay=0.2)
    try:
        running.start()
        running.wait_all_ready(timeout=120)
        yield running
    finally:
        running.stop()


def test_a_gated_wave_waits_across_a_restart_until_the_approver_approves(
        fleet: localfleet.LocalFleet, tmp_path_factory: pytest.TempPathFactory) -> None:
    alice = tmp_path_factory.mktemp("alice") / "alice.credential"
    created = convoy(fleet, "credential", "create", "alice", "--out", str(alice))
    assert created.returncode == 0, created.stderr
    assert alice.read_text().strip() and alice.read_text().strip() not in created.stdout
    before = fleet.statuses()
    sha = bump(fleet, "approval-1")

    def waiting() -> pb.RolloutStatusResponse | None:
        fleet.check_alive()
        status = rollout(fleet)
        return status if status.commit == sha and status.waves[1].state == "waiting-approval" else None
    status = localfleet.wait_until(waiting, timeout=90, what="the prod wave to wait for approval", interval=0.3)
    assert [w.state for w in status.waves] == ["done", "waiting-approval", "pending"]
    assert list(status.waves[1].approval_matched) == ["apps/web/base/configmap.yaml"]

    fleet.restart_hub()  # the gate is in the database: a restarted hub keeps it closed
    table = convoy(fleet, "rollout", "status")
    assert table.returncode == 0, table.stderr
    assert "waiting for approval of wave prod (approvers: alice)" in table.stdout
    document = json.loads(convoy(fleet, "rollout", "status", "-o", "json").stdout)
    assert document["waitingApproval"] == {"wave": "prod", "approvers": ["alice"]}
    now = fleet.statuses()
    assert now["prod-ap-1"].desired_digest == before["prod-ap-1"].desired_digest
    assert now["dev-eu-1"].desired_digest == before["dev-eu-1"].desired_digest

    refused = convoy(fleet, "rollout", "approve", "--comment", "ok")  # the hub's own `admin` is no approver
    assert refused.returncode == 4  # the CLI exit code for a request the hub denies
    assert "'admin' may not approve it; approvers: alice" in refused.stderr

    approved = convoy(fleet, "rollout", "approve", "--comment", "ok", credential=alice)
    assert approved.returncode == 0, approved.stderr
    assert "approved by alice: ok" in approved.stdout
    wait_state(fleet, sha, "done")
    localfleet.wait_until(lambda: all((s := fleet.statuses()[n]).desired_commit == sha and s.phase == pb.PHASE_READY
                                      and s.applied_digest == s.desired_digest for n in before),
                          timeout=60, what="every cluster Ready at the new commit", interval=0.3)
    approval = [e for e in events(fleet, sha) if e.kind == "approved"]
    assert [(json.loads(e.details_json)["by"], json.loads(e.details_json)["comment"]) for e in approval] == [
        ("alice", "ok")]
    history = convoy(fleet, "history", "--all")
    assert history.returncode == 0, history.stderr
    assert re.search(r"approved .*wave prod of rollout \S+ approved by alice: ok", history.stdout), history.stdout
