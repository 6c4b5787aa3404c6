"""`convoy rollout status` formatting and `convoy rollback` argument checks (no hub needed)."""

from __future__ import annotations

import datetime as dt

from click.testing import CliRunner

from hub.commands import rollout as commands
from protos import codec
from protos.convoy.v1 import convoy_pb2 as pb

NOW = dt.datetime(2026, 1, 1, 12, 0, 30, tzinfo=dt.UTC)


def response() -> pb.RolloutStatusResponse:
    baking = pb.WaveStatus(name="canary", state="baking", clusters=["prod-eu-1"], counts={"released": 1, "ready": 1},
                           bake_seconds=10, progress_deadline_seconds=300, max_unavailable="0", on_failure="rollback")
    baking.started_at.CopyFrom(codec.timestamp(NOW - dt.timedelta(seconds=20)))
    baking.ready_since.CopyFrom(codec.timestamp(NOW - dt.timedelta(seconds=4)))
    waiting = pb.WaveStatus(name="rest", state="pending", clusters=["prod-us-1", "prod-ap-1"],
                            counts={"waiting": 2}, bake_seconds=5, progress_deadline_seconds=300,
                            max_unavailable="50%", on_failure="pause")
    status = pb.RolloutStatusResponse(id="r3", commit="f" * 40, state="progressing", waves=[baking, waiting])
    status.started_at.CopyFrom(codec.timestamp(NOW - dt.timedelta(seconds=20)))
    return status


def test_status_shows_each_wave_with_counts_timings_and_policy() -> None:
    doc = commands.rollout_document(response(), now=NOW)
    assert doc["state"] == "progressing" and doc["started"] == "20s ago"
    canary = commands.wave_lines(doc["waves"][0], 1, now=NOW)
    assert canary[0].startswith("  1. canary") and "baking" in canary[0]
    assert "1 ready, 1 released" in canary[0] and "released 20s ago" in canary[0] and "baked 4s of 10s" in canary[0]
    assert "prod-eu-1" in canary[1] and "onFailure rollback" in canary[1]
    rest = commands.wave_lines(doc["waves"][1], 2, now=NOW)
    assert "2 waiting" in rest[0] and "released" not in rest[0] and "maxUnavailable 50%" in rest[1]


def test_status_names_absent_clusters_and_why_and_the_evidence_policy() -> None:
    status = response()
    status.waves[1].absent["prod-ap-1"] = "offline"
    status.waves[1].absent["prod-us-1"] = "pinned"
    status.waves[1].min_ready = "1"
    status.waves[1].empty_wave = "skip"
    doc = commands.rollout_document(status, now=NOW)
    assert doc["waves"][1]["absent"] == {"prod-ap-1": "offline", "prod-us-1": "pinned"}
    assert doc["waves"][0]["absent"] == {} and doc["waves"][0]["minReady"] is None
    rest = commands.wave_lines(doc["waves"][1], 2, now=NOW)
    assert "minReady 1" in rest[1] and "emptyWave skip" in rest[1]
    assert rest[2] == "     absent: prod-ap-1 (offline), prod-us-1 (pinned)"
    canary = commands.wave_lines(doc["waves"][0], 1, now=NOW)
    assert len(canary) == 2 and "minReady all present" in canary[1] and "emptyWave stop" in canary[1]


def test_status_says_which_wave_waits_for_approval_by_whom_and_who_approved_passed_waves() -> None:
    status = response()
    canary = status.waves[0]
    canary.approval_required, canary.approved_by, canary.approval_comment = True, "alice", "looks good"
    canary.approved_at.CopyFrom(codec.timestamp(NOW - dt.timedelta(seconds=25)))
    rest = status.waves[1]
    rest.state, rest.approval_required = "waiting-approval", True
    rest.approvers.extend(["alice", "bob"])
    rest.approval_paths.append("apps/web/**")
    rest.approval_matched.extend(["apps/web/a.yaml", "apps/web/b.yaml", "apps/web/c.yaml", "apps/web/d.yaml"])
    doc = commands.rollout_document(status, now=NOW)
    assert doc["waitingApproval"] == {"wave": "rest", "approvers": ["alice", "bob"]}
    assert doc["waves"][0]["approval"] == {"required": True, "approvers": [], "paths": [], "matched": [],
                                           "approvedBy": "alice", "approvedAt": "2026-01-01T12:00:05+00:00",
                                           "comment": "looks good"}
    assert commands.wave_lines(doc["waves"][0], 1, now=NOW)[-1] == "     approved by alice: looks good"
    assert commands.wave_lines(doc["waves"][1], 2, now=NOW)[-1] == (
        "     waiting for approval of wave rest (approvers: alice, bob); changes apps/web/a.yaml, apps/web/b.yaml, "
        "apps/web/c.yaml ...")
    # A path-bound gate the commit range does not touch says so; a wave without a gate says nothing.
    rest.ClearField("approvers")
    rest.ClearField("approval_matched")
    rest.state, rest.approval_required = "progressing", False
    doc = commands.rollout_document(status, now=NOW)
    assert doc["waitingApproval"] is None
    assert commands.wave_lines(doc["waves"][1], 2, now=NOW)[-1] == (
        "     approval: not needed (no change under apps/web/**)")
    assert commands.rollout_document(response(), now=NOW)["waves"][0]["approval"] is None


def test_rollback_needs_clusters_and_exactly_one_of_to_or_unpin() -> None:
    runner = CliRunner()
    for args, message in ((["--to", "abc1234"], "give CLUSTER names or --selector"),
                          (["prod-eu-1"], "give --to COMMIT|DIGEST, or --unpin"),
                          (["prod-eu-1", "--to", "abc1234", "--unpin"], "give --to COMMIT|DIGEST, or --unpin")):
        result = runner.invoke(commands.rollback, args)
        assert result.exit_code == 2 and message in result.output
