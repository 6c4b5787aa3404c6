"""The rollout state machine: waves in order, bake time, failure, rollback, operator controls."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from hub.rollout import planning
from hub.rollout.planning import ClusterObservation as Seen
from protos.status import Phase

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CANARY = planning.WavePolicy(name="canary", max_unavailable=0, bake_time=dt.timedelta(seconds=30),
                             progress_deadline=dt.timedelta(minutes=5), on_failure="rollback")
EU = planning.WavePolicy(name="eu", max_unavailable="50%", bake_time=dt.timedelta(seconds=10))
REGIONS = {"c1": "us", "c2": "eu", "c3": "eu", "c4": "ap", "c5": "ap"}


def fleet(canary: planning.WavePolicy = CANARY) -> planning.StepResult:
    waves = planning.assign_waves(
        REGIONS, [(canary, lambda c: c == "c1"), (EU, lambda c: REGIONS[c] == "eu")])
    targets = {c: f"new-{c}" for c in REGIONS}
    previous = {c: f"old-{c}" for c in REGIONS}
    return planning.start(rollout_id="r1", commit="a" * 40, targets=targets, previous=previous, waves=waves, now=T0)


def ready(*clusters: str, digest: str = "new", phase: Phase = Phase.READY) -> dict[str, Seen]:
    return {c: Seen(applied_digest=f"{digest}-{c}", phase=phase) for c in clusters}


def test_waves_assigned_in_order_with_an_implicit_final_wave() -> None:
    result = fleet()
    assert [(w.name, w.clusters) for w in result.rollout.waves] == [
        ("canary", ("c1",)), ("eu", ("c2", "c3")), ("rest", ("c4", "c5"))]
    assert result.releases == {"c1": "new-c1"}
    assert result.rollout.cluster_state("c4") is planning.ClusterRolloutState.WAITING


def test_next_wave_waits_for_ready_and_bake_time() -> None:
    rollout = fleet().rollout
    waiting = planning.step(rollout, {}, T0 + dt.timedelta(seconds=20))
    assert waiting.releases == {} and waiting.rollout.waves[0].state is planning.WaveState.PROGRESSING
    baking = planning.step(waiting.rollout, ready("c1"), T0 + dt.timedelta(seconds=40))
    assert baking.releases == {} and baking.rollout.waves[0].state is planning.WaveState.BAKING
    still = planning.step(baking.rollout, ready("c1"), T0 + dt.timedelta(seconds=69))
    assert still.releases == {}
    released = planning.step(still.rollout, ready("c1"), T0 + dt.timedelta(seconds=70))
    assert released.releases == {"c2": "new-c2", "c3": "new-c3"}
    assert released.rollout.waves[0].state is planning.WaveState.DONE


def test_max_unavailable_percent_lets_a_wave_finish_with_one_straggler() -> None:
    rollout = planning.step(fleet().rollout, ready("c1"), T0).rollout
    rollout = planning.step(rollout, ready("c1"), T0 + dt.timedelta(seconds=31)).rollout
    assert rollout.waves[1].state is planning.WaveState.PROGRESSING
    # eu: 50% of 2 = 1 may be unavailable
    seen = {**ready("c1", "c2"), "c3": Seen(applied_digest="old-c3", phase=Phase.READY)}
    rollout = planning.step(rollout, seen, T0 + dt.timedelta(seconds=32)).rollout
    result = planning.step(rollout, seen, T0 + dt.timedelta(seconds=43))
    assert result.releases == {"c4": "new-c4", "c5": "new-c5"}
    baking = planning.step(result.rollout, {**seen, **ready("c4", "c5")}, T0 + dt.timedelta(seconds=60))
    assert baking.rollout.state is planning.RolloutState.PROGRESSING  # the final wave bakes like the last named one
    final = planning.step(baking.rollout, {**seen, **ready("c4", "c5")}, T0 + dt.timedelta(seconds=70))
    assert final.rollout.state is planning.RolloutState.DONE


def test_failed_canary_rolls_back_and_holds_the_rest() -> None:
    rollout = fleet().rollout
    result = planning.step(rollout, ready("c1", phase=Phase.DEGRADED), T0 + dt.timedelta(seconds=5))
    assert result.rollout.state is planning.RolloutState.ROLLED_BACK
    assert result.reverts == {"c1": "old-c1"} and result.releases == {}
    assert result.rollout.failing == ("c1",)
    assert "wave canary failed" in result.rollout.reason
    assert result.rollout.cluster_state("c1") is planning.ClusterRolloutState.REVERTED
    assert result.rollout.cluster_state("c2") is planning.ClusterRolloutState.HELD
    assert planning.step(result.rollout, {}, T0 + dt.timedelta(hours=1)).releases == {}


def test_progress_deadline_fails_a_wave_under_pause_policy() -> None:
    pausing = planning.WavePolicy(name="canary", progress_deadline=dt.timedelta(minutes=1), on_failure="pause")
    rollout = fleet(pausing).rollout
    result = planning.step(rollout, {}, T0 + dt.timedelta(minutes=2))
    assert result.rollout.state is planning.RolloutState.FAILED and result.reverts == {}
    assert "progress deadline" in result.rollout.reason
    resumed, event = planning.control(result.rollout, "resume", T0 + dt.timedelta(minutes=3))
    assert event[0] == "rollout_resumed" and resumed.waves[0].state is planning.WaveState.PROGRESSING
    again = planning.step(resumed, ready("c1"), T0 + dt.timedelta(minutes=3))
    assert again.rollout.state is planning.RolloutState.PROGRESSING


def test_pause_resume_abort_and_promote() -> None:
    rollout = fleet().rollout
    paused, _ = planning.control(rollout, "pause", T0)
    assert planning.step(paused, ready("c1"), T0 + dt.timedelta(hours=1)).releases == {}
    with pytest.raises(ValueError, match="not progressing"):
        planning.control(paused, "pause", T0)
    resumed, _ = planning.control(paused, "resume", T0)
    promoted, event = planning.control(resumed, "promote", T0)
    assert event == ("rollout_promoted", "wave canary promoted by an operator")
    assert planning.step(promoted, {}, T0).releases == {"c2": "new-c2", "c3": "new-c3"}
    aborted, _ = planning.control(promoted, "abort", T0)
    assert aborted.state is planning.RolloutState.ABORTED
    with pytest.raises(ValueError, match="unknown rollout action"):
        planning.control(rollout, "yolo", T0)


def test_document_round_trip() -> None:
    rollout = planning.step(fleet().rollout, ready("c1"), T0 + dt.timedelta(seconds=1)).rollout
    assert planning.Rollout.from_document(rollout.to_document()) == rollout


@pytest.mark.parametrize(("spec", "size", "expected"), [(0, 5, 0), (2, 5, 2), ("50%", 5, 2), ("100%", 3, 3),
                                                        ("10%", 5, 0), ("3", 10, 3)])
def test_allowed_unavailable(spec: int | str, size: int, expected: int) -> None:
    assert planning.allowed_unavailable(spec, size) == expected


def test_supersede_stops_an_active_rollout_and_counts_its_waiting_clusters() -> None:
    rollout = fleet().rollout
    superseded, (kind, message) = planning.supersede(rollout, "b" * 40)
    assert superseded.state is planning.RolloutState.SUPERSEDED and kind == "rollout_superseded"
    assert "superseded by commit bbbbbbbb" in superseded.reason and "4 clusters it had not released" in message
    assert planning.step(superseded, ready("c1"), T0 + dt.timedelta(hours=1)).releases == {}
    with pytest.raises(ValueError, match="only an active rollout"):
        planning.supersede(superseded, "c" * 40)


def test_reverts_record_the_previous_commit_and_survive_storage() -> None:
    waves = planning.assign_waves(["c1"], [(CANARY, lambda c: True)])
    started = planning.start(rollout_id="r2", commit="a" * 40, targets={"c1": "new-c1"}, previous={"c1": "old-c1"},
                             previous_commits={"c1": "9" * 40}, waves=waves, now=T0)
    stored = planning.Rollout.from_document(started.rollout.to_document())
    assert stored.previous_commits == {"c1": "9" * 40}
    failed = planning.step(stored, ready("c1", phase=Phase.DEGRADED), T0 + dt.timedelta(seconds=1))
    assert failed.reverts == {"c1": "old-c1"} and failed.rollout.previous_commits["c1"] == "9" * 40


# -- evidence: absent clusters never pass a wave (issue 12) ------------------------------------------

def absent(cluster: str, why: planning.Absence) -> dict[str, Seen]:
    return {cluster: Seen(applied_digest="", phase=Phase.UNKNOWN, absent=why)}


@pytest.mark.parametrize("why", [planning.Absence.PINNED, planning.Absence.NOT_REGISTERED,
                                 planning.Absence.DEREGISTERED])
def test_a_canary_with_no_present_cluster_stops_the_rollout_and_releases_nothing(why: planning.Absence) -> None:
    result = planning.step(fleet().rollout, absent("c1", why), T0 + dt.timedelta(seconds=1))
    assert result.releases == {} and result.reverts == {}        # no rollback either: nothing failed
    assert result.rollout.state is planning.RolloutState.FAILED
    assert result.rollout.waves[0].state is planning.WaveState.FAILED
    assert result.rollout.waves[1].state is planning.WaveState.PENDING
    assert f"wave canary has no present cluster to prove the new bundle (absent: c1 ({why}))" in result.rollout.reason
    assert result.rollout.failing == ("c1",)
    assert [kind for kind, _ in result.events] == ["rollout_failed"]
    # Still nobody there an hour later: nothing is released.
    assert planning.step(result.rollout, absent("c1", why), T0 + dt.timedelta(hours=1)).releases == {}
    # Resume retries the wave (and stops again while it is empty); promote is the operator's way past it.
    resumed, _ = planning.control(result.rollout, "resume", T0 + dt.timedelta(minutes=2))
    again = planning.step(resumed, absent("c1", why), T0 + dt.timedelta(minutes=2))
    assert again.rollout.state is planning.RolloutState.FAILED and again.releases == {}


def test_an_offline_canary_waits_never_passes_and_stops_at_its_deadline() -> None:
    offline = absent("c1", planning.Absence.OFFLINE)
    waiting = planning.step(fleet().rollout, offline, T0 + dt.timedelta(minutes=1))
    assert waiting.releases == {} and waiting.rollout.state is planning.RolloutState.PROGRESSING
    assert waiting.rollout.waves[0].state is planning.WaveState.PROGRESSING       # never "Ready; baking"
    # It comes back within the deadline: the wave carries on as usual.
    back = planning.step(waiting.rollout, ready("c1"), T0 + dt.timedelta(minutes=2))
    assert back.rollout.waves[0].state is planning.WaveState.BAKING
    # It does not: the wave stops at the deadline, saying who was offline.
    stopped = planning.step(waiting.rollout, offline, T0 + dt.timedelta(minutes=6))
    assert stopped.rollout.state is planning.RolloutState.FAILED and stopped.releases == {}
    assert "c1 (offline)" in stopped.rollout.reason


def test_a_baking_wave_whose_cluster_goes_offline_stops_baking() -> None:
    baking = planning.step(fleet().rollout, ready("c1"), T0 + dt.timedelta(seconds=1)).rollout
    lost = planning.step(baking, absent("c1", planning.Absence.OFFLINE), T0 + dt.timedelta(seconds=40))
    assert lost.releases == {} and lost.rollout.waves[0].state is planning.WaveState.PROGRESSING
    assert ("wave_progressing", "wave canary lost readiness: c1 (absent: c1 (offline))") in lost.events


def test_absent_clusters_beside_present_ones_neither_pass_nor_hold_up_the_wave() -> None:
    rollout = planning.step(fleet().rollout, ready("c1"), T0).rollout
    rollout = planning.step(rollout, ready("c1"), T0 + dt.timedelta(seconds=31)).rollout   # eu released
    seen = {**ready("c2"), **absent("c3", planning.Absence.PINNED)}
    baking = planning.step(rollout, seen, T0 + dt.timedelta(seconds=32))
    assert baking.rollout.waves[1].state is planning.WaveState.BAKING
    message = dict(baking.events)["wave_baking"]
    assert "1 of 2 clusters, minReady 1; absent: c3 (pinned)" in message


def test_empty_wave_skip_moves_on_and_says_so() -> None:
    skipping = dataclasses.replace(CANARY, empty_wave="skip")
    result = planning.step(fleet(skipping).rollout, absent("c1", planning.Absence.NOT_REGISTERED),
                           T0 + dt.timedelta(seconds=1))
    assert result.rollout.state is planning.RolloutState.PROGRESSING
    assert result.rollout.waves[0].state is planning.WaveState.SKIPPED
    assert result.releases == {"c2": "new-c2", "c3": "new-c3"}
    assert ("wave_skipped", "wave canary skipped: no cluster of it is present (absent: c1 (not registered)); "
                            "emptyWave: skip") in result.events


def test_min_ready_asks_for_more_evidence_than_max_unavailable() -> None:
    # eu: maxUnavailable 50% of 2 lets one straggler through; minReady 2 does not.
    strict = dataclasses.replace(EU, min_ready=2)
    waves = planning.assign_waves(["c2", "c3"], [(strict, lambda c: True)])
    rollout = planning.start(rollout_id="r3", commit="a" * 40, targets={c: f"new-{c}" for c in ("c2", "c3")},
                             previous={}, waves=waves, now=T0).rollout
    one = planning.step(rollout, {**ready("c2"), "c3": Seen("old-c3", Phase.READY)}, T0 + dt.timedelta(seconds=1))
    assert one.rollout.waves[0].state is planning.WaveState.PROGRESSING
    both = planning.step(one.rollout, ready("c2", "c3"), T0 + dt.timedelta(seconds=2))
    assert both.rollout.waves[0].state is planning.WaveState.BAKING
    # A pinned cluster does not count towards minReady: the wave waits, then fails at its deadline.
    pinned = {**ready("c2"), **absent("c3", planning.Absence.PINNED)}
    short = planning.step(rollout, pinned, T0 + dt.timedelta(minutes=11))
    assert short.rollout.state is planning.RolloutState.FAILED
    assert "1 of 2 clusters Ready at the new bundle (minReady 2" in short.rollout.reason


@pytest.mark.parametrize(("spec", "size", "present", "allowed", "expected"),
                         [(None, 3, 3, 0, 3), (None, 3, 2, 1, 1), (None, 3, 1, 1, 1), (None, 1, 0, 0, 1),
                          (2, 5, 5, 0, 2), (9, 3, 3, 0, 3), ("50%", 5, 5, 0, 3), ("1%", 5, 5, 0, 1)])
def test_required_ready(spec: int | str | None, size: int, present: int, allowed: int, expected: int) -> None:
    assert planning.required_ready(spec, size, present=present, allowed=allowed) == expected


def test_old_documents_without_the_evidence_fields_load_with_the_defaults() -> None:
    doc = fleet().rollout.to_document()
    for wave in doc["waves"]:
        del wave["minReady"], wave["emptyWave"]
    loaded = planning.Rollout.from_document(doc)
    assert all(w.policy.min_ready is None and w.policy.empty_wave == "stop" for w in loaded.waves)


# -- approval gates -----------------------------------------------------------------------------

GATED_EU = dataclasses.replace(EU, approval=True, approvers=("alice", "bob"))


def gated() -> planning.StepResult:
    waves = planning.assign_waves(REGIONS, [(dataclasses.replace(CANARY, bake_time=dt.timedelta(0)),
                                             lambda c: c == "c1"),
                                            (GATED_EU, lambda c: REGIONS[c] == "eu")])
    return planning.start(rollout_id="r1", commit="a" * 40, targets={c: f"new-{c}" for c in REGIONS},
                          previous={c: f"old-{c}" for c in REGIONS}, waves=waves, now=T0)


def test_a_gated_wave_waits_for_approval_whatever_the_time() -> None:
    rollout = gated().rollout
    result = planning.step(rollout, ready("c1"), T0 + dt.timedelta(seconds=1))
    assert result.releases == {}
    eu = result.rollout.waves[1]
    assert eu.state is planning.WaveState.WAITING_APPROVAL and eu.started_at is None
    assert [kind for kind, _ in result.events][-1] == "wave_waiting_approval"
    assert "approvers: alice, bob" in result.events[-1][1]
    # Hours later (far past the 10 min progress deadline) it still waits, and says so only once.
    later = planning.step(result.rollout, ready("c1"), T0 + dt.timedelta(hours=5))
    assert later.releases == {} and later.events == () and later.rollout == result.rollout


def test_approval_by_an_approver_releases_the_wave_with_a_fresh_deadline() -> None:
    waiting = planning.step(gated().rollout, ready("c1"), T0 + dt.timedelta(seconds=1)).rollout
    at = T0 + dt.timedelta(hours=1)
    approved, (kind, message) = planning.approve(waiting, by="alice", comment="canary looks good", now=at)
    assert kind == "approved" and message == "wave eu of rollout r1 approved by alice: canary looks good"
    result = planning.step(approved, ready("c1"), at)
    assert result.releases == {"c2": "new-c2", "c3": "new-c3"}
    eu = result.rollout.waves[1]
    assert (eu.state, eu.started_at, eu.approved_by, eu.approval_comment) == (
        planning.WaveState.PROGRESSING, at, "alice", "canary looks good")
    assert planning.Rollout.from_document(result.rollout.to_document()) == result.rollout


def test_approval_refusals_say_why() -> None:
    rollout = gated().rollout
    with pytest.raises(ValueError, match="no wave waits for approval; approve a later wave ahead with --wave"):
        planning.approve(rollout, by="alice", now=T0)
    with pytest.raises(ValueError, match="needs no approval"):
        planning.approve(rollout, by="alice", wave="canary", now=T0)
    with pytest.raises(ValueError, match="has no wave 'us'"):
        planning.approve(rollout, by="alice", wave="us", now=T0)
    with pytest.raises(planning.ApprovalDenied, match="'carol' may not approve it; approvers: alice, bob"):
        planning.approve(rollout, by="carol", wave="eu", now=T0)
    with pytest.raises(ValueError, match="promote does not pass an approval gate"):
        waiting = planning.step(rollout, ready("c1"), T0).rollout
        planning.control(waiting, "promote", T0)


def test_a_wave_approved_ahead_is_released_when_its_turn_comes() -> None:
    rollout = gated().rollout
    approved, (_, message) = planning.approve(rollout, by="bob", wave="eu", now=T0)
    assert "approved ahead by bob" in message
    result = planning.step(approved, ready("c1"), T0 + dt.timedelta(seconds=1))
    assert set(result.releases) == {"c2", "c3"}
    with pytest.raises(ValueError, match="already approved by bob"):
        planning.approve(result.rollout, by="alice", wave="eu", now=T0)


def test_a_writer_that_read_the_rollout_before_an_approval_keeps_the_approval() -> None:
    read_before = gated().rollout                                      # another replica's tick read this
    approved, _ = planning.approve(read_before, by="alice", wave="eu", comment="ahead", now=T0)
    ticked = planning.step(read_before, ready("c1"), T0 + dt.timedelta(seconds=1)).rollout
    kept = planning.keep_approvals(ticked, approved)
    assert kept.waves[1].approved_by == "alice" and kept.waves[1].approval_comment == "ahead"
    assert kept.waves[0] == ticked.waves[0] and kept.state == ticked.state
    other = dataclasses.replace(approved, id="r2")                     # another rollout's approvals: not ours
    assert planning.keep_approvals(ticked, other) == ticked
