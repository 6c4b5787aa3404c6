"""The rollout state machine, as pure functions over plain data.

A rollout carries, for every cluster whose bundle a commit changed, the new
(target) digest and the digest it had before. Waves are released in order: a
wave's clusters get their target digest; the wave *passes* on evidence only:
at most ``maxUnavailable`` of its present clusters are not Ready at the target,
at least ``minReady`` are (default: every present cluster maxUnavailable does
not excuse, and never fewer than one), and that has held for ``bakeTime``; then
the next wave is released. A wave *fails* when more than ``maxUnavailable`` of
its clusters are Degraded/Failed at the target, or when ``progressDeadline``
passes without it passing. Then the rollout stops; with ``onFailure: rollback``
every released cluster is given back its previous digest.

*Absent* clusters (:class:`Absence`: pinned, not registered, deregistered,
offline) prove nothing: they are never counted Ready, and neither hold up nor
fail a wave by their state. A wave with no present cluster at all stops the
rollout at once (``emptyWave: stop``, the default; nothing is rolled back:
nothing failed) or is skipped (``emptyWave: skip``). Offline clusters may come
back, so a wave whose only clusters are offline waits for them until its
progress deadline before it stops or is skipped.

A wave whose policy needs *approval* is not released when its turn comes: it waits
(``waiting-approval``) until :func:`approve` records who approved it. No timer passes such a
wave; its progress deadline starts when it is released. A wave may also be approved ahead, while
it is still pending: it is then released as soon as its turn comes.

Nothing here reads a clock or a database: callers pass ``now`` and the
clusters' observed state, and get back the new rollout and the desired-state
changes to make.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from protos.status import Phase

__all__ = [
    "Absence",
    "ApprovalDenied",
    "ClusterObservation",
    "ClusterRolloutState",
    "Rollout",
    "RolloutState",
    "StepResult",
    "Wave",
    "WavePolicy",
    "WaveState",
    "allowed_unavailable",
    "approve",
    "assign_waves",
    "control",
    "keep_approvals",
    "required_ready",
    "start",
    "step",
    "supersede",
]

FINAL_WAVE = "rest"


class RolloutState(enum.StrEnum):
    PROGRESSING = "progressing"   #: a wave is being released or baked
    PAUSED = "paused"             #: an operator paused it; nothing more is released
    FAILED = "failed"             #: a wave failed with onFailure: pause; resume retries it
    DONE = "done"                 #: every wave is done
    ROLLED_BACK = "rolled_back"   #: a wave failed with onFailure: rollback; released clusters went back
    ABORTED = "aborted"           #: an operator aborted it; unreleased clusters keep their old bundle
    SUPERSEDED = "superseded"     #: a newer commit started a new rollout

    @property
    def active(self) -> bool:
        return self in {RolloutState.PROGRESSING, RolloutState.PAUSED, RolloutState.FAILED}


class WaveState(enum.StrEnum):
    PENDING = "pending"
    PROGRESSING = "progressing"
    BAKING = "baking"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"   #: no present cluster, under emptyWave: skip
    WAITING_APPROVAL = "waiting-approval"   #: its turn came; it is released once an admin approves it


class ApprovalDenied(Exception):
    """The caller's admin credential is not one of the wave's approvers; the message says who may approve."""


class Absence(enum.StrEnum):
    """Why a target cluster cannot give evidence for its wave."""

    PINNED = "pinned"                    #: an operator pinned it: the rollout does not move it
    NOT_REGISTERED = "not registered"    #: declared in Git, no spoke has registered it
    DEREGISTERED = "deregistered"        #: its registration was removed
    OFFLINE = "offline"                  #: registered, but its spoke is not connected (hub.presence)


class ClusterRolloutState(enum.StrEnum):
    """How one cluster stands in the active rollout (shown in `convoy status`)."""

    WAITING = "waiting"     #: its wave has not been released yet
    RELEASED = "released"   #: it has been given the target digest
    HELD = "held"           #: the rollout stopped before its wave: it keeps its old bundle
    REVERTED = "reverted"   #: rolled back to its previous digest


@dataclasses.dataclass(frozen=True)
class WavePolicy:
    name: str
    max_unavailable: int | str = 0            #: a count, or "N%" of the wave (rounded down)
    bake_time: dt.timedelta = dt.timedelta(0)
    progress_deadline: dt.timedelta = dt.timedelta(minutes=10)
    on_failure: str = "pause"                 #: "pause" | "rollback"
    min_ready: int | str | None = None        #: a count, or "N%" of the wave (rounded up); None: see module doc
    empty_wave: str = "stop"                  #: "stop" | "skip"
    approval: bool = False                    #: the wave waits for an admin's approval before release
    approvers: tuple[str, ...] = ()           #: admin credential names allowed to approve (empty: any)
    approval_paths: tuple[str, ...] = ()      #: the globs that made approval conditional (display)
    approval_matched: tuple[str, ...] = ()    #: the changed paths that matched them (display)

    def approvers_text(self) -> str:
        return ", ".join(self.approvers) if self.approvers else "any admin credential"


@dataclasses.dataclass(frozen=True)
class ClusterObservation:
    applied_digest: str
    phase: Phase
    absent: Absence | None = None             #: set: the cluster gives no evidence (its phase is ignored)
    #: the report predates this hub process (it was down), or the spoke has not had the time to
    #: reconnect since: no evidence either way until it reports again, so the wave neither passes,
    #: fails nor loses its bake start meanwhile
    stale: bool = False


@dataclasses.dataclass(frozen=True)
class Wave:
    policy: WavePolicy
    clusters: tuple[str, ...]
    state: WaveState = WaveState.PENDING
    started_at: dt.datetime | None = None
    ready_since: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    approved_by: str | None = None            #: the admin credential that approved it
    approved_at: dt.datetime | None = None
    approval_comment: str = ""

    @property
    def name(self) -> str:
        return self.policy.name

    @property
    def awaits_approval(self) -> bool:
        return self.policy.approval and self.approved_by is None


@dataclasses.dataclass(frozen=True)
class Rollout:
    id: str
    commit: str
    targets: Mapping[str, str]              #: cluster -> new digest
    previous: Mapping[str, str | None]      #: cluster -> digest before this rollout
    waves: tuple[Wave, ...]
    state: RolloutState = RolloutState.PROGRESSING
    reason: str = ""
    failing: tuple[str, ...] = ()
    started_at: dt.datetime | None = None
    released: frozenset[str] = frozenset()
    reverted: frozenset[str] = frozenset()
    #: cluster -> the commit that rendered its previous digest (what a revert records as desired commit)
    previous_commits: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def cluster_state(self, cluster: str) -> ClusterRolloutState | None:
        if cluster not in self.targets:
            return None
        if cluster in self.reverted:
            return ClusterRolloutState.REVERTED
        if cluster in self.released:
            return ClusterRolloutState.RELEASED
        if self.state in {RolloutState.ABORTED, RolloutState.ROLLED_BACK, RolloutState.FAILED}:
            return ClusterRolloutState.HELD
        return ClusterRolloutState.WAITING

    def wave_of(self, cluster: str) -> str:
        for wave in self.waves:
            if cluster in wave.clusters:
                return wave.name
        return ""

    def waiting_wave(self) -> Wave | None:
        """The wave whose turn came and that waits for approval, if any."""
        return next((w for w in self.waves if w.state is WaveState.WAITING_APPROVAL), None)

    def current_wave(self) -> int | None:
        for index, wave in enumerate(self.waves):
            if wave.state in {WaveState.PROGRESSING, WaveState.BAKING, WaveState.FAILED}:
                return index
        return None

    # -- persistence as a plain document (the controller stores it as JSON) -------------------
    def to_document(self) -> dict[str, Any]:
        def stamp(value: dt.datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id, "commit": self.commit, "targets": dict(self.targets), "previous": dict(self.previous),
            "state": self.state.value, "reason": self.reason, "failing": list(self.failing),
            "startedAt": stamp(self.started_at), "released": sorted(self.released),
            "reverted": sorted(self.reverted), "previousCommits": dict(self.previous_commits),
            "waves": [{"name": w.policy.name, "maxUnavailable": w.policy.max_unavailable,
                       "bakeTime": w.policy.bake_time.total_seconds(),
                       "progressDeadline": w.policy.progress_deadline.total_seconds(),
                       "onFailure": w.policy.on_failure, "minReady": w.policy.min_ready,
                       "emptyWave": w.policy.empty_wave, "clusters": list(w.clusters), "state": w.state.value,
                       "startedAt": stamp(w.started_at), "readySince": stamp(w.ready_since),
                       "finishedAt": stamp(w.finished_at), "approval": w.policy.approval,
                       "approvers": list(w.policy.approvers), "approvalPaths": list(w.policy.approval_paths),
                       "approvalMatched": list(w.policy.approval_matched), "approvedBy": w.approved_by,
                       "approvedAt": stamp(w.approved_at), "approvalComment": w.approval_comment}
                      for w in self.waves],
        }

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Rollout:
        def when(value: str | None) -> dt.datetime | None:
            return dt.datetime.fromisoformat(value) if value else None

        waves = tuple(
            Wave(policy=WavePolicy(name=w["name"], max_unavailable=w["maxUnavailable"],
                                   bake_time=dt.timedelta(seconds=w["bakeTime"]),
                                   progress_deadline=dt.timedelta(seconds=w["progressDeadline"]),
                                   on_failure=w["onFailure"], min_ready=w.get("minReady"),
                                   empty_wave=w.get("emptyWave", "stop"), approval=bool(w.get("approval")),
                                   approvers=tuple(w.get("approvers", ())),
                                   approval_paths=tuple(w.get("approvalPaths", ())),
                                   approval_matched=tuple(w.get("approvalMatched", ()))),
                 clusters=tuple(w["clusters"]), state=WaveState(w["state"]), started_at=when(w["startedAt"]),
                 ready_since=when(w["readySince"]), finished_at=when(w["finishedAt"]),
                 approved_by=w.get("approvedBy"), approved_at=when(w.get("approvedAt")),
                 approval_comment=w.get("approvalComment", ""))
            for w in doc["waves"])
        return cls(id=doc["id"], commit=doc["commit"], targets=dict(doc["targets"]), previous=dict(doc["previous"]),
                   waves=waves, state=RolloutState(doc["state"]), reason=doc.get("reason", ""),
                   failing=tuple(doc.get("failing", ())), started_at=when(doc.get("startedAt")),
                   released=frozenset(doc.get("released", ())), reverted=frozenset(doc.get("reverted", ())),
                   previous_commits=dict(doc.get("previousCommits", {})))


@dataclasses.dataclass(frozen=True)
class StepResult:
    rollout: Rollout
    releases: Mapping[str, str]             #: cluster -> digest to make desired now
    reverts: Mapping[str, str]              #: cluster -> previous digest to make desired again
    events: tuple[tuple[str, str], ...]     #: (event kind, message) for the event log


def allowed_unavailable(spec: int | str, wave_size: int) -> int:
    """``maxUnavailable`` as a count: ``2`` -> 2; ``"25%"`` of 10 -> 2 (rounded down, like Deployments)."""
    if isinstance(spec, int):
        return max(0, spec)
    text = str(spec).strip()
    if text.endswith("%"):
        return max(0, math.floor(wave_size * float(text[:-1]) / 100))
    return max(0, int(text))


def required_ready(spec: int | str | None, wave_size: int, *, present: int, allowed: int) -> int:
    """``minReady`` as a count for a wave of ``wave_size`` with ``present`` clusters present.

    ``None``: every present cluster that ``allowed`` (maxUnavailable) does not excuse, at least one.
    A count larger than the wave asks for all of it; ``"N%"`` rounds up. Never less than one: a wave
    passes only on evidence.
    """
    if spec is None:
        return max(1, present - allowed)
    text = str(spec).strip()
    if text.endswith("%"):
        return max(1, math.ceil(wave_size * float(text[:-1]) / 100))
    return max(1, min(int(text), wave_size))


def assign_waves(clusters: Iterable[str], wave_members: Sequence[tuple[WavePolicy, Callable[[str], bool]]],
                 final_policy: WavePolicy | None = None) -> tuple[Wave, ...]:
    """Each cluster goes to the first wave whose selector matches it; the rest form a final wave."""
    remaining = sorted(set(clusters))
    waves: list[Wave] = []
    for policy, matches in wave_members:
        members = tuple(c for c in remaining if matches(c))
        remaining = [c for c in remaining if c not in members]
        if members:
            waves.append(Wave(policy=policy, clusters=members))
    if remaining:
        last = final_policy or (waves[-1].policy if waves else WavePolicy(name=FINAL_WAVE))
        waves.append(Wave(policy=dataclasses.replace(last, name=FINAL_WAVE), clusters=tuple(remaining)))
    return tuple(waves)


def start(*, rollout_id: str, commit: str, targets: Mapping[str, str], previous: Mapping[str, str | None],
          waves: tuple[Wave, ...], now: dt.datetime,
          previous_commits: Mapping[str, str] | None = None) -> StepResult:
    """A new rollout: wave 1 is released at once."""
    rollout = Rollout(id=rollout_id, commit=commit, targets=dict(targets), previous=dict(previous), waves=waves,
                      started_at=now, previous_commits=dict(previous_commits or {}))
    first = step(rollout, {}, now)
    events = (("rollout_started", f"rollout {rollout_id} of {commit[:8]}: {len(targets)} clusters in "
                                  f"{len(waves)} waves ({', '.join(w.name for w in waves)})"), *first.events)
    return dataclasses.replace(first, events=events)


def _release_wave(rollout: Rollout, index: int,
                  now: dt.datetime) -> tuple[Rollout, dict[str, str], list[tuple[str, str]]]:
    waves = list(rollout.waves)
    wave = waves[index]
    waves[index] = dataclasses.replace(wave, state=WaveState.PROGRESSING, started_at=now, ready_since=None)
    releases = {c: rollout.targets[c] for c in wave.clusters}
    updated = dataclasses.replace(rollout, waves=tuple(waves), released=rollout.released | set(wave.clusters))
    return updated, releases, [("wave_released", f"wave {wave.name} released to {len(wave.clusters)} clusters: "
                                                 f"{', '.join(wave.clusters)}")]


@dataclasses.dataclass(frozen=True)
class _Health:
    """One wave's clusters as observed: who gives evidence, and what it says."""

    ready: tuple[str, ...]                 #: present, Ready at the target
    not_ready: tuple[str, ...]             #: present, not (yet) Ready at the target
    failed: tuple[str, ...]                #: present, Degraded/Failed at the target
    absent: Mapping[str, Absence]          #: give no evidence, and why
    stale: tuple[str, ...] = ()            #: present, but last reported before the hub restarted

    @property
    def present(self) -> int:
        return len(self.ready) + len(self.not_ready)

    def absent_note(self) -> str:
        """``absent: a (pinned), b (offline)``, or "" when every cluster is present."""
        if not self.absent:
            return ""
        return "absent: " + ", ".join(f"{name} ({why})" for name, why in sorted(self.absent.items()))


def _wave_health(wave: Wave, rollout: Rollout, observed: Mapping[str, ClusterObservation]) -> _Health:
    ready: list[str] = []
    not_ready: list[str] = []
    failed: list[str] = []
    absent: dict[str, Absence] = {}
    stale: list[str] = []
    for cluster in wave.clusters:
        seen = observed.get(cluster)
        target = rollout.targets[cluster]
        if seen is not None and seen.absent is not None:
            absent[cluster] = seen.absent
            continue
        if seen is not None and seen.stale:
            stale.append(cluster)
            continue
        if seen is None or seen.applied_digest != target or seen.phase is not Phase.READY:
            not_ready.append(cluster)
        else:
            ready.append(cluster)
        if seen is not None and seen.applied_digest == target and seen.phase in {Phase.DEGRADED, Phase.FAILED}:
            failed.append(cluster)
    return _Health(tuple(ready), tuple(not_ready), tuple(failed), absent, tuple(stale))


def step(rollout: Rollout, observed: Mapping[str, ClusterObservation], now: dt.datetime) -> StepResult:
    """Advance the rollout as far as the observed cluster states allow."""
    if rollout.state is not RolloutState.PROGRESSING:
        return StepResult(rollout, {}, {}, ())
    releases: dict[str, str] = {}
    events: list[tuple[str, str]] = []
    while True:
        index = rollout.current_wave()
        if index is None:
            pending = next((i for i, w in enumerate(rollout.waves)
                            if w.state in {WaveState.PENDING, WaveState.WAITING_APPROVAL}), None)
            if pending is None:
                rollout = dataclasses.replace(rollout, state=RolloutState.DONE, reason="every wave is done")
                events.append(("rollout_done", f"rollout {rollout.id} of {rollout.commit[:8]} is done"))
                return StepResult(rollout, releases, {}, tuple(events))
            if rollout.waves[pending].awaits_approval:
                # No timer passes an approval gate: the wave's progress deadline starts at its release.
                return StepResult(_wait_for_approval(rollout, pending, events), releases, {}, tuple(events))
            rollout, released, more = _release_wave(rollout, pending, now)
            releases.update(released)
            events.extend(more)
            continue
        wave = rollout.waves[index]
        health = _wave_health(wave, rollout, observed)
        if health.stale:
            # A Ready (or Degraded) report from before the hub went down says nothing about now: wait
            # for the spokes' next reports (one heartbeat) and then judge from the stored bake start.
            return StepResult(rollout, releases, {}, tuple(events))
        allowed = allowed_unavailable(wave.policy.max_unavailable, len(wave.clusters))
        required = required_ready(wave.policy.min_ready, len(wave.clusters), present=health.present,
                                  allowed=allowed)
        started = wave.started_at or now
        overdue = now - started > wave.policy.progress_deadline
        note = health.absent_note()
        if len(health.failed) > allowed:
            why = f"{len(health.failed)} of {len(wave.clusters)} clusters Degraded or Failed (maxUnavailable {allowed})"
            return _fail(rollout, index, health.failed, f"wave {wave.name} failed: {why}", now, releases, events)
        passing = len(health.not_ready) <= allowed and len(health.ready) >= required
        offline = any(why is Absence.OFFLINE for why in health.absent.values())
        if not health.present and (not offline or overdue):
            # Nobody can prove this wave: never let it pass as if it had.
            if wave.policy.empty_wave == "skip":
                rollout = _skip(rollout, index, now, events, note)
                continue
            return _stop_empty(rollout, index, health, now, releases, events)
        if overdue and not passing:
            why = (f"progress deadline {wave.policy.progress_deadline} passed with {len(health.ready)} of "
                   f"{len(wave.clusters)} clusters Ready at the new bundle (minReady {required}, "
                   f"maxUnavailable {allowed})" + (f"; {note}" if note else ""))
            return _fail(rollout, index, health.not_ready or tuple(sorted(health.absent)),
                         f"wave {wave.name} failed: {why}", now, releases, events)
        waves = list(rollout.waves)
        if not passing:
            if wave.state is WaveState.BAKING:
                waves[index] = dataclasses.replace(wave, state=WaveState.PROGRESSING, ready_since=None)
                lost = health.not_ready or tuple(sorted(health.absent))
                events.append(("wave_progressing", f"wave {wave.name} lost readiness: {', '.join(lost)}"
                                                   + (f" ({note})" if note else "")))
                rollout = dataclasses.replace(rollout, waves=tuple(waves))
            return StepResult(rollout, releases, {}, tuple(events))
        ready_since = wave.ready_since or now
        if wave.state is not WaveState.BAKING:
            waves[index] = dataclasses.replace(wave, state=WaveState.BAKING, ready_since=ready_since)
            events.append(("wave_baking", f"wave {wave.name} is Ready ({len(health.ready)} of "
                                          f"{len(wave.clusters)} clusters, minReady {required}"
                                          + (f"; {note}" if note else "")
                                          + f"); baking for {wave.policy.bake_time}"))
            wave = waves[index]
            rollout = dataclasses.replace(rollout, waves=tuple(waves))
        if now - ready_since < wave.policy.bake_time:
            return StepResult(rollout, releases, {}, tuple(events))
        waves[index] = dataclasses.replace(wave, state=WaveState.DONE, finished_at=now)
        events.append(("wave_done", f"wave {wave.name} done" + (f" ({note})" if note else "")))
        rollout = dataclasses.replace(rollout, waves=tuple(waves))


def _wait_for_approval(rollout: Rollout, index: int, events: list[tuple[str, str]]) -> Rollout:
    wave = rollout.waves[index]
    if wave.state is WaveState.WAITING_APPROVAL:
        return rollout
    waves = list(rollout.waves)
    waves[index] = dataclasses.replace(wave, state=WaveState.WAITING_APPROVAL)
    why = (f"; the commit range changes {', '.join(wave.policy.approval_matched[:5])}"
           + (" ..." if len(wave.policy.approval_matched) > 5 else "") if wave.policy.approval_matched else "")
    events.append(("wave_waiting_approval", f"wave {wave.name} waits for approval (approvers: "
                                            f"{wave.policy.approvers_text()}){why}: `convoy rollout approve`"))
    return dataclasses.replace(rollout, waves=tuple(waves))


def approve(rollout: Rollout, *, by: str, now: dt.datetime, wave: str | None = None,
            comment: str = "") -> tuple[Rollout, tuple[str, str]]:
    """``by`` (an admin credential's name) approves ``wave``, or the wave that waits for approval.

    A pending wave that needs approval may be approved ahead. Raises :class:`ApprovalDenied` when
    ``by`` is not one of the wave's approvers, ValueError when there is nothing to approve.
    """
    if not rollout.state.active:
        raise ValueError(f"rollout {rollout.id} is {rollout.state}; nothing of it waits for approval")
    waiting = rollout.waiting_wave()
    if wave is None:
        if waiting is None:
            gated = [w.name for w in rollout.waves if w.state is WaveState.PENDING and w.awaits_approval]
            hint = (f"; approve a later wave ahead with --wave ({', '.join(gated)})" if gated else "")
            raise ValueError(f"rollout {rollout.id}: no wave waits for approval{hint}")
        wave = waiting.name
    index = next((i for i, w in enumerate(rollout.waves) if w.name == wave), None)
    if index is None:
        raise ValueError(f"rollout {rollout.id} has no wave {wave!r} (waves: "
                         f"{', '.join(w.name for w in rollout.waves)})")
    target = rollout.waves[index]
    if not target.policy.approval:
        raise ValueError(f"wave {wave} of rollout {rollout.id} needs no approval")
    if target.approved_by is not None:
        raise ValueError(f"wave {wave} of rollout {rollout.id} was already approved by {target.approved_by}")
    if target.state not in {WaveState.PENDING, WaveState.WAITING_APPROVAL}:
        raise ValueError(f"wave {wave} of rollout {rollout.id} is {target.state}; only a wave that waits for "
                         "approval, or a pending one, can be approved")
    if target.policy.approvers and by not in target.policy.approvers:
        raise ApprovalDenied(f"wave {wave}: admin credential {by!r} may not approve it; approvers: "
                             f"{target.policy.approvers_text()}")
    waves = list(rollout.waves)
    waves[index] = dataclasses.replace(target, approved_by=by, approved_at=now, approval_comment=comment)
    ahead = "" if target.state is WaveState.WAITING_APPROVAL else " ahead"
    message = (f"wave {wave} of rollout {rollout.id} approved{ahead} by {by}"
               + (f": {comment}" if comment else ""))
    return dataclasses.replace(rollout, waves=tuple(waves)), ("approved", message)


def keep_approvals(rollout: Rollout, stored: Rollout) -> Rollout:
    """``rollout`` with the approvals ``stored`` (the same rollout as saved meanwhile) has and it lacks.

    Approvals only ever get added, so a writer that read the rollout before an approval was saved
    (another replica's tick) keeps it instead of writing over it.
    """
    given = {w.name: w for w in stored.waves if w.approved_by is not None}
    if stored.id != rollout.id or not given:
        return rollout
    waves = tuple(dataclasses.replace(w, approved_by=given[w.name].approved_by, approved_at=given[w.name].approved_at,
                                      approval_comment=given[w.name].approval_comment)
                  if w.approved_by is None and w.name in given else w for w in rollout.waves)
    return dataclasses.replace(rollout, waves=waves)


def _skip(rollout: Rollout, index: int, now: dt.datetime, events: list[tuple[str, str]], note: str) -> Rollout:
    waves = list(rollout.waves)
    wave = waves[index]
    waves[index] = dataclasses.replace(wave, state=WaveState.SKIPPED, finished_at=now)
    events.append(("wave_skipped", f"wave {wave.name} skipped: no cluster of it is present ({note}); "
                                   "emptyWave: skip"))
    return dataclasses.replace(rollout, waves=tuple(waves))


def _stop_empty(rollout: Rollout, index: int, health: _Health, now: dt.datetime, releases: dict[str, str],
                events: list[tuple[str, str]]) -> StepResult:
    """No cluster of the wave can give evidence: stop (whatever onFailure says, nothing failed to roll back)."""
    waves = list(rollout.waves)
    wave = waves[index]
    waves[index] = dataclasses.replace(wave, state=WaveState.FAILED, finished_at=now)
    reason = (f"wave {wave.name} has no present cluster to prove the new bundle ({health.absent_note()}); "
              "emptyWave: stop")
    stopped = dataclasses.replace(rollout, waves=tuple(waves), state=RolloutState.FAILED, reason=reason,
                                  failing=tuple(sorted(health.absent)))
    events.append(("rollout_failed", f"{reason}; rollout stopped: `convoy rollout resume` retries the wave, "
                                     "`convoy rollout promote` skips it"))
    return StepResult(stopped, releases, {}, tuple(events))


def _fail(rollout: Rollout, index: int, failing: Sequence[str], reason: str, now: dt.datetime,
          releases: dict[str, str], events: list[tuple[str, str]]) -> StepResult:
    waves = list(rollout.waves)
    waves[index] = dataclasses.replace(waves[index], state=WaveState.FAILED, finished_at=now)
    policy = waves[index].policy
    if policy.on_failure == "rollback":
        reverts = {c: prev for c in rollout.released if (prev := rollout.previous.get(c))}
        rolled = dataclasses.replace(rollout, waves=tuple(waves), state=RolloutState.ROLLED_BACK,
                                     reason=reason, failing=tuple(sorted(failing)),
                                     reverted=frozenset(reverts))
        events.append(("rollout_rolled_back", f"{reason}; {len(reverts)} clusters given back their previous "
                                              f"bundle: {', '.join(sorted(reverts))}"))
        return StepResult(rolled, {}, reverts, tuple(events))
    stopped = dataclasses.replace(rollout, waves=tuple(waves), state=RolloutState.FAILED, reason=reason,
                                  failing=tuple(sorted(failing)))
    events.append(("rollout_failed", f"{reason}; rollout stopped (onFailure: pause)"))
    return StepResult(stopped, releases, {}, tuple(events))


def supersede(rollout: Rollout, newer_commit: str) -> tuple[Rollout, tuple[str, str]]:
    """A newer commit replaces an active rollout: it stops here; clusters it has not released yet are
    the newer rollout's to move (straight to the newest digest)."""
    if not rollout.state.active:
        raise ValueError(f"rollout {rollout.id} is {rollout.state}; only an active rollout is superseded")
    waiting = sorted(c for c in rollout.targets if c not in rollout.released)
    reason = f"superseded by commit {newer_commit[:8]}"
    return dataclasses.replace(rollout, state=RolloutState.SUPERSEDED, reason=reason), (
        "rollout_superseded", f"rollout {rollout.id} of {rollout.commit[:8]} {reason}; "
                              f"{len(waiting)} clusters it had not released go straight to the newest bundle")


def control(rollout: Rollout, action: str, now: dt.datetime) -> tuple[Rollout, tuple[str, str]]:
    """An operator's pause, resume, abort or promote. Raises ValueError when it does not apply."""
    if action == "pause":
        if rollout.state is not RolloutState.PROGRESSING:
            raise ValueError(f"rollout {rollout.id} is {rollout.state}, not progressing")
        return dataclasses.replace(rollout, state=RolloutState.PAUSED, reason="paused by an operator"), (
            "rollout_paused", f"rollout {rollout.id} paused")
    if action == "resume":
        if rollout.state not in {RolloutState.PAUSED, RolloutState.FAILED}:
            raise ValueError(f"rollout {rollout.id} is {rollout.state}; only a paused or failed rollout resumes")
        waves = list(rollout.waves)
        index = rollout.current_wave()
        if index is not None and waves[index].state is WaveState.FAILED:
            # A retried wave gets a fresh progress deadline.
            waves[index] = dataclasses.replace(waves[index], state=WaveState.PROGRESSING, started_at=now,
                                               ready_since=None, finished_at=None)
        return dataclasses.replace(rollout, waves=tuple(waves), state=RolloutState.PROGRESSING, reason="",
                                   failing=()), ("rollout_resumed", f"rollout {rollout.id} resumed")
    if action == "abort":
        if not rollout.state.active:
            raise ValueError(f"rollout {rollout.id} is already {rollout.state}")
        return dataclasses.replace(rollout, state=RolloutState.ABORTED, reason="aborted by an operator"), (
            "rollout_aborted", f"rollout {rollout.id} aborted; clusters not yet released keep their bundle")
    if action == "promote":
        index = rollout.current_wave()
        waiting = rollout.waiting_wave()
        if index is None and waiting is not None and rollout.state.active:
            raise ValueError(f"wave {waiting.name} of rollout {rollout.id} waits for approval; promote does "
                             "not pass an approval gate: `convoy rollout approve`")
        if index is None or not rollout.state.active:
            raise ValueError(f"rollout {rollout.id} has no wave in progress to promote")
        waves = list(rollout.waves)
        name = waves[index].name
        waves[index] = dataclasses.replace(waves[index], state=WaveState.DONE, finished_at=now)
        return dataclasses.replace(rollout, waves=tuple(waves), state=RolloutState.PROGRESSING, reason="",
                                   failing=()), ("rollout_promoted", f"wave {name} promoted by an operator")
    raise ValueError(f"unknown rollout action {action!r} (pause, resume, abort, promote)")
