"""The rollout state machine, as pure functions over plain data.

A rollout carries, for every cluster whose bundle a commit changed, the new
(target) digest and the digest it had before. Waves are released in order: a
wave's clusters get their target digest; the wave is *done* once at most
``maxUnavailable`` of its clusters are not Ready at the target and that has held
for ``bakeTime``; then the next wave is released. A wave *fails* when more than
``maxUnavailable`` of its clusters are Degraded/Failed at the target, or when
``progressDeadline`` passes without it becoming ready. Then the rollout stops;
with ``onFailure: rollback`` every released cluster is given back its previous
digest.

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
    "ClusterObservation",
    "ClusterRolloutState",
    "Rollout",
    "RolloutState",
    "StepResult",
    "Wave",
    "WavePolicy",
    "WaveState",
    "allowed_unavailable",
    "assign_waves",
    "control",
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


@dataclasses.dataclass(frozen=True)
class ClusterObservation:
    applied_digest: str
    phase: Phase


@dataclasses.dataclass(frozen=True)
class Wave:
    policy: WavePolicy
    clusters: tuple[str, ...]
    state: WaveState = WaveState.PENDING
    started_at: dt.datetime | None = None
    ready_since: dt.datetime | None = None
    finished_at: dt.datetime | None = None

    @property
    def name(self) -> str:
        return self.policy.name


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
                       "onFailure": w.policy.on_failure, "clusters": list(w.clusters), "state": w.state.value,
                       "startedAt": stamp(w.started_at), "readySince": stamp(w.ready_since),
                       "finishedAt": stamp(w.finished_at)} for w in self.waves],
        }

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Rollout:
        def when(value: str | None) -> dt.datetime | None:
            return dt.datetime.fromisoformat(value) if value else None

        waves = tuple(
            Wave(policy=WavePolicy(name=w["name"], max_unavailable=w["maxUnavailable"],
                                   bake_time=dt.timedelta(seconds=w["bakeTime"]),
                                   progress_deadline=dt.timedelta(seconds=w["progressDeadline"]),
                                   on_failure=w["onFailure"]),
                 clusters=tuple(w["clusters"]), state=WaveState(w["state"]), started_at=when(w["startedAt"]),
                 ready_since=when(w["readySince"]), finished_at=when(w["finishedAt"]))
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


def _release_wave(rollout: Rollout, index: int, now: dt.datetime) -> tuple[Rollout, dict[str, str], list[tuple[str, str]]]:
    waves = list(rollout.waves)
    wave = waves[index]
    waves[index] = dataclasses.replace(wave, state=WaveState.PROGRESSING, started_at=now, ready_since=None)
    releases = {c: rollout.targets[c] for c in wave.clusters}
    updated = dataclasses.replace(rollout, waves=tuple(waves), released=rollout.released | set(wave.clusters))
    return updated, releases, [("wave_released", f"wave {wave.name} released to {len(wave.clusters)} clusters: "
                                                 f"{', '.join(wave.clusters)}")]


def _wave_health(wave: Wave, rollout: Rollout, observed: Mapping[str, ClusterObservation]) -> tuple[list[str], list[str]]:
    """(clusters not Ready at the target, clusters Degraded/Failed at the target)."""
    not_ready: list[str] = []
    failed: list[str] = []
    for cluster in wave.clusters:
        seen = observed.get(cluster)
        target = rollout.targets[cluster]
        if seen is None or seen.applied_digest != target or seen.phase is not Phase.READY:
            not_ready.append(cluster)
        if seen is not None and seen.applied_digest == target and seen.phase in {Phase.DEGRADED, Phase.FAILED}:
            failed.append(cluster)
    return not_ready, failed


def step(rollout: Rollout, observed: Mapping[str, ClusterObservation], now: dt.datetime) -> StepResult:
    """Advance the rollout as far as the observed cluster states allow."""
    if rollout.state is not RolloutState.PROGRESSING:
        return StepResult(rollout, {}, {}, ())
    releases: dict[str, str] = {}
    events: list[tuple[str, str]] = []
    while True:
        index = rollout.current_wave()
        if index is None:
            pending = next((i for i, w in enumerate(rollout.waves) if w.state is WaveState.PENDING), None)
            if pending is None:
                rollout = dataclasses.replace(rollout, state=RolloutState.DONE, reason="every wave is done")
                events.append(("rollout_done", f"rollout {rollout.id} of {rollout.commit[:8]} is done"))
                return StepResult(rollout, releases, {}, tuple(events))
            rollout, released, more = _release_wave(rollout, pending, now)
            releases.update(released)
            events.extend(more)
            continue
        wave = rollout.waves[index]
        not_ready, failed = _wave_health(wave, rollout, observed)
        allowed = allowed_unavailable(wave.policy.max_unavailable, len(wave.clusters))
        started = wave.started_at or now
        overdue = now - started > wave.policy.progress_deadline
        if len(failed) > allowed or (overdue and len(not_ready) > allowed):
            why = (f"{len(failed)} of {len(wave.clusters)} clusters Degraded or Failed (maxUnavailable {allowed})"
                   if len(failed) > allowed else
                   f"progress deadline {wave.policy.progress_deadline} passed with {len(not_ready)} of "
                   f"{len(wave.clusters)} clusters not Ready (maxUnavailable {allowed})")
            return _fail(rollout, index, failed or not_ready, f"wave {wave.name} failed: {why}", now, releases,
                         events)
        waves = list(rollout.waves)
        if len(not_ready) > allowed:
            if wave.state is WaveState.BAKING:
                waves[index] = dataclasses.replace(wave, state=WaveState.PROGRESSING, ready_since=None)
                events.append(("wave_progressing", f"wave {wave.name} lost readiness: {', '.join(not_ready)}"))
                rollout = dataclasses.replace(rollout, waves=tuple(waves))
            return StepResult(rollout, releases, {}, tuple(events))
        ready_since = wave.ready_since or now
        if wave.state is not WaveState.BAKING:
            waves[index] = dataclasses.replace(wave, state=WaveState.BAKING, ready_since=ready_since)
            events.append(("wave_baking", f"wave {wave.name} is Ready; baking for {wave.policy.bake_time}"))
            wave = waves[index]
            rollout = dataclasses.replace(rollout, waves=tuple(waves))
        if now - ready_since < wave.policy.bake_time:
            return StepResult(rollout, releases, {}, tuple(events))
        waves[index] = dataclasses.replace(wave, state=WaveState.DONE, finished_at=now)
        events.append(("wave_done", f"wave {wave.name} done"))
        rollout = dataclasses.replace(rollout, waves=tuple(waves))


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
        if index is None or not rollout.state.active:
            raise ValueError(f"rollout {rollout.id} has no wave in progress to promote")
        waves = list(rollout.waves)
        name = waves[index].name
        waves[index] = dataclasses.replace(waves[index], state=WaveState.DONE, finished_at=now)
        return dataclasses.replace(rollout, waves=tuple(waves), state=RolloutState.PROGRESSING, reason="",
                                   failing=()), ("rollout_promoted", f"wave {name} promoted by an operator")
    raise ValueError(f"unknown rollout action {action!r} (pause, resume, abort, promote)")
