"""``convoy rollout status|pause|resume|abort|promote|approve`` and ``convoy rollback``.

Exit codes as for the other hub commands (:mod:`hub.commands.fleet`): 1 when the hub refuses
(no rollout, an action that does not apply, a bundle the cluster never had).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import click

from hub.commands import formatting
from hub.commands.fleet import _client, _emit, hub_command, output_option
from protos.convoy.v1 import convoy_pb2 as pb

__all__ = ["rollback", "rollout", "rollout_document", "wave_lines"]


def rollout_document(response: pb.RolloutStatusResponse, *, now: dt.datetime) -> dict[str, Any]:
    """The rollout as a plain document (``-o json|yaml``, and what the table prints)."""
    def stamp(value: Any) -> str | None:
        when = formatting._when(value)
        return when.isoformat() if when else None

    return {
        "id": response.id, "commit": response.commit, "state": response.state, "reason": response.reason,
        "failingClusters": list(response.failing_clusters), "startedAt": stamp(response.started_at),
        "started": formatting.ago(formatting._when(response.started_at), now),
        "waves": [{"name": w.name, "state": w.state, "clusters": list(w.clusters), "counts": dict(w.counts),
                   "startedAt": stamp(w.started_at), "readySince": stamp(w.ready_since),
                   "finishedAt": stamp(w.finished_at), "bakeSeconds": w.bake_seconds,
                   "progressDeadlineSeconds": w.progress_deadline_seconds, "maxUnavailable": w.max_unavailable,
                   "onFailure": w.on_failure, "minReady": w.min_ready or None, "emptyWave": w.empty_wave or "stop",
                   "absent": dict(sorted(w.absent.items())),
                   "approval": _approval_document(w, stamp)} for w in response.waves],
        "waitingApproval": next(({"wave": w.name, "approvers": list(w.approvers)}
                                 for w in response.waves if w.state == "waiting-approval"), None),
    }


def _approval_document(wave: pb.WaveStatus, stamp: Any) -> dict[str, Any] | None:
    if not wave.approval_required:
        if wave.approval_paths:  # gated on paths this rollout's commits do not touch
            return {"required": False, "paths": list(wave.approval_paths)}
        return None
    return {"required": True, "approvers": list(wave.approvers), "paths": list(wave.approval_paths),
            "matched": list(wave.approval_matched), "approvedBy": wave.approved_by or None,
            "approvedAt": stamp(wave.approved_at), "comment": wave.approval_comment or None}


def approval_line(wave: Mapping[str, Any]) -> str | None:
    """What a wave's approval gate says, or None when it has none."""
    approval = wave.get("approval")
    if approval is None:
        return None
    if not approval["required"]:
        return f"     approval: not needed (no change under {', '.join(approval['paths'])})"
    approvers = ", ".join(approval["approvers"]) or "any admin credential"
    if approval["approvedBy"]:
        return (f"     approved by {approval['approvedBy']}"
                + (f": {approval['comment']}" if approval["comment"] else ""))
    if wave["state"] == "waiting-approval":
        line = f"     waiting for approval of wave {wave['name']} (approvers: {approvers})"
    else:
        line = f"     needs approval (approvers: {approvers})"
    if approval["matched"]:
        line += f"; changes {', '.join(approval['matched'][:3])}" + (" ..." if len(approval["matched"]) > 3 else "")
    return line


def wave_lines(wave: Mapping[str, Any], index: int, *, now: dt.datetime) -> list[str]:
    """A wave of :func:`rollout_document` as two lines: state, counts and timings; then its clusters."""
    def ago(key: str) -> str:
        return formatting.ago(dt.datetime.fromisoformat(wave[key]), now)

    counts = ", ".join(f"{n} {state}" for state, n in sorted(wave["counts"].items()))
    timing = []
    if wave["startedAt"]:
        timing.append(f"released {ago('startedAt')}")
    if wave["state"] == "baking" and wave["readySince"]:
        baked = (now - dt.datetime.fromisoformat(wave["readySince"])).total_seconds()
        timing.append(f"baked {min(baked, wave['bakeSeconds']):.0f}s of {wave['bakeSeconds']:g}s")
    if wave["finishedAt"]:
        timing.append(f"finished {ago('finishedAt')}")
    policy = (f"maxUnavailable {wave['maxUnavailable']}, minReady {wave['minReady'] or 'all present'}, "
              f"bake {wave['bakeSeconds']:g}s, deadline {wave['progressDeadlineSeconds']:g}s, "
              f"onFailure {wave['onFailure']}, emptyWave {wave['emptyWave']}")
    lines = [f"  {index}. {wave['name']:<12} {wave['state']:<12} {len(wave['clusters'])} clusters ({counts})"
             + (f"; {', '.join(timing)}" if timing else ""),
             f"     {', '.join(wave['clusters'])}  [{policy}]"]
    if wave["absent"]:
        # Absent clusters give no evidence: say who and why, so a passed wave is never a mystery.
        lines.append("     absent: " + ", ".join(f"{name} ({why})" for name, why in wave["absent"].items()))
    if (approval := approval_line(wave)) is not None:
        lines.append(approval)
    return lines


def _print(response: pb.RolloutStatusResponse) -> None:
    now = dt.datetime.now(dt.UTC)
    doc = rollout_document(response, now=now)
    click.echo(f"rollout {doc['id']} of commit {doc['commit'][:12]}: {doc['state']} (started {doc['started']})")
    if doc["reason"]:
        click.echo(f"  reason: {doc['reason']}")
    if doc["failingClusters"]:
        click.echo(f"  failing clusters: {', '.join(doc['failingClusters'])}")
    if (waiting := doc["waitingApproval"]) is not None:
        click.echo(f"  waiting for approval of wave {waiting['wave']} (approvers: "
                   f"{', '.join(waiting['approvers']) or 'any admin credential'}): `convoy rollout approve`")
    for index, wave in enumerate(doc["waves"], start=1):
        for line in wave_lines(wave, index, now=now):
            click.echo(line)


@click.group()
def rollout() -> None:
    """Progressive rollouts: the latest rollout's waves, and operator controls."""


@rollout.command("status")
@output_option
@hub_command
def rollout_status(hub_name: str | None, output: str) -> None:
    """The latest rollout: waves, clusters per state, timings, and why it stopped.

    \b
    Examples:
      convoy rollout status
      convoy rollout status -o json
    """
    with _client(hub_name) as client:
        response = client.rollout_status()
    if output != "table":
        _emit(rollout_document(response, now=dt.datetime.now(dt.UTC)), output)
        return
    _print(response)


def _control(hub_name: str | None, action: str) -> None:
    with _client(hub_name) as client:
        response = client.rollout_control(action)
    _print(response)


@rollout.command("pause")
@hub_command
def rollout_pause(hub_name: str | None) -> None:
    """Release no further wave until resumed (clusters already released keep their bundle).

    \b
    Examples:
      convoy rollout pause
    """
    _control(hub_name, "pause")


@rollout.command("resume")
@hub_command
def rollout_resume(hub_name: str | None) -> None:
    """Carry on a paused rollout, or retry the failed wave of a stopped one (fresh progress deadline).

    \b
    Examples:
      convoy rollout resume
    """
    _control(hub_name, "resume")


@rollout.command("abort")
@hub_command
def rollout_abort(hub_name: str | None) -> None:
    """Stop for good: clusters not yet released keep their old bundle.

    \b
    Examples:
      convoy rollout abort
    """
    _control(hub_name, "abort")


@rollout.command("promote")
@hub_command
def rollout_promote(hub_name: str | None) -> None:
    """Count the current wave as done now (skip its wait and bake time) and release the next.

    \b
    Examples:
      convoy rollout promote
    """
    _control(hub_name, "promote")


@rollout.command("approve")
@click.option("--wave", default="", help="The wave to approve (default: the wave that waits for approval); "
                                         "a later wave may be approved ahead.")
@click.option("--comment", default="", help="Why, recorded in history with your admin credential's name.")
@hub_command
def rollout_approve(hub_name: str | None, wave: str, comment: str) -> None:
    """Approve the wave that waits for approval: it is released at once. History records the admin
    credential's name, the wave, the comment and the time. Only the wave's approvers may approve.

    \b
    Examples:
      convoy rollout approve --comment "canary looks good"
      convoy rollout approve --wave prod
    """
    with _client(hub_name) as client:
        response = client.rollout_approve(wave=wave, comment=comment)
    _print(response)


@click.command()
@click.argument("clusters", nargs=-1)
@click.option("-l", "--selector", default="", help="Every registered cluster matching this label selector.")
@click.option("--to", "to", default="", help="A commit (7+ characters) or bundle digest the clusters ran before.")
@click.option("--unpin", is_flag=True, help="Release the pin: the clusters follow the fleet again.")
@hub_command
def rollback(hub_name: str | None, clusters: tuple[str, ...], selector: str, to: str, unpin: bool) -> None:
    """Pin clusters to a previous bundle until --unpin; rollouts do not move pinned clusters (they count
    as absent in their wave, never as Ready).

    \b
    Examples:
      convoy rollback prod-eu-1 --to 3c1f9e2a
      convoy rollback -l env=prod --unpin
    """
    if not clusters and not selector:
        raise click.UsageError("give CLUSTER names or --selector")
    if bool(to) == unpin:
        raise click.UsageError("give --to COMMIT|DIGEST, or --unpin")
    with _client(hub_name) as client:
        response = client.pin(pb.PinRequest(clusters=list(clusters), selector=selector, to=to))
    for name in response.clusters:
        click.echo(f"{name} pinned to {response.digest[:19]}" if to else f"{name} unpinned; follows the fleet again")
