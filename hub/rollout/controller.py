"""The hub-side rollout driver: the state machine of :mod:`hub.rollout.planning`, kept in the database.

Three entry points, all blocking (the hub runs them in a worker thread) and serialised by one lock,
so a sync, a tick and an operator's command never interleave their read-decide-write steps:

* :meth:`RolloutController.sync` — a context manager around the service's write of a fresh render.
  It says which clusters the service must *not* make desired now (rollout targets, pinned clusters)
  and, once the service has stored the bundles, starts the rollout (wave 1's desired states) and
  marks an older active rollout superseded.
* :meth:`RolloutController.tick_blocking` — observe the targets' reported status, ``planning.step``,
  apply releases/reverts as desired-state changes, save. :meth:`run` calls it every ``tick_seconds``
  and at once after :meth:`poke`.
* :meth:`control_blocking` (pause/resume/abort/promote), :meth:`approve_blocking` (approval gates) and
  :meth:`pin_blocking` (rollback pins).

Approval gates with ``paths``: when a rollout starts, the paths its commit range changes (from each
target's previous desired commit to the new one, through :attr:`RolloutController.changed_paths`) decide
once which waves need approval; the decision is stored in the rollout's document, so every replica
and every restart agrees. Paths that cannot be computed (a previous commit gone from the mirror, no
Git source) count as touching every path: the gate stays closed.

Which commits become rollouts: clusters whose rendered digest differs from their desired one *and*
that already had a desired one are the targets; new clusters get their bundle at once, unchanged
clusters are untouched. Pinned clusters the commit changes are targets that are never moved: they
sit in their waves as absent (``planning.Absence.PINNED``), so a wave of pinned clusters stops the
rollout instead of vanishing. The strategy is the fleet's ``rollout``; when apps override it, the
strategy of the first changed app (in dependsOn order) that has one, its own or the fleet's,
governs the whole commit (a commit is one rollout, so one set of waves). A commit that changes
only apps without a strategy reaches every changed cluster at once.

Everything is in the database (the ``rollouts`` table and the event log), so a restarted hub picks
up the active rollout where it stood: bake times and deadlines are measured from stored timestamps.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import threading
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Mapping
from typing import Any

from sqlmodel import Session

from hub import notify, presence
from hub.fleet import model as fleet_model
from hub.rollout import planning
from hub.store import db as store_db
from hub.store import models
from hub.store import repository as store
from protos import bundle as bundles
from protos.status import Phase

__all__ = [
    "ClusterRollout",
    "Rendered",
    "RolloutController",
    "RolloutError",
    "RolloutView",
    "SyncPlan",
    "changed_apps",
    "wave_policy",
]

log = logging.getLogger(__name__)

#: Largest bundle inflated to compare apps (per-app strategies only).
_MAX_INFLATE = 256 * 1024 * 1024
#: Changed paths kept per wave to show why its approval gate is closed.
_MAX_MATCHED_PATHS = 100
#: Shortest time between two ticks woken by :meth:`RolloutController.poke`.
_MIN_TICK_GAP = 0.2
#: Between ticks while no rollout is active. Whatever starts or resumes one pokes the controller, so
#: this only bounds how late a rollout begun by another hub process sharing the database is seen.
_IDLE_TICK_SECONDS = 10.0
#: States whose unreleased clusters stay where they are when the same commit is rendered again.
_STOPPED = {planning.RolloutState.ROLLED_BACK, planning.RolloutState.ABORTED}


class RolloutError(Exception):
    """An operator's rollout command or pin that does not apply; the message says why."""


@dataclasses.dataclass(frozen=True)
class Rendered:
    """One cluster's fresh render, as the controller needs it."""

    digest: str
    labels: Mapping[str, str]
    bundle: Mapping[str, Any] | None = None   #: the bundle document (compared per app for app strategies)


@dataclasses.dataclass
class SyncPlan:
    """What :meth:`RolloutController.sync` decided; ``changed`` is filled when the context exits."""

    hold: frozenset[str] = frozenset()        #: clusters the service must not make desired now
    start: planning.StepResult | None = None  #: computed on exit
    changed: list[str] = dataclasses.field(default_factory=list)   #: desired changes the controller made
    _new: dict[str, Any] | None = None
    _supersede: bool = False


@dataclasses.dataclass(frozen=True)
class ClusterRollout:
    """One cluster's place in the latest rollout, for ``convoy status``."""

    wave: str
    state: str          #: waiting, released, held, reverted, pinned


@dataclasses.dataclass(frozen=True)
class RolloutView:
    """The latest rollout plus what the clusters report, for RolloutStatus."""

    rollout: planning.Rollout
    observed: Mapping[str, planning.ClusterObservation]
    pinned: frozenset[str]
    #: target clusters that give no evidence now, and why (pinned, not registered, deregistered, offline)
    absent: Mapping[str, planning.Absence] = dataclasses.field(default_factory=dict)


def wave_policy(wave: fleet_model.Wave, changed_paths: Collection[str] | None = None) -> planning.WavePolicy:
    """The wave's policy for one rollout; ``changed_paths`` (None: unknown) decides a path-bound approval."""
    mu = wave.max_unavailable
    approval = wave.approval is not None
    matched: tuple[str, ...] = ()
    if wave.approval is not None:
        found = wave.approval.matching(changed_paths)
        # The matching paths are shown, not decided on again: a bounded few keep the rollout's row small.
        approval, matched = (True, ()) if found is None else (bool(found), found[:_MAX_MATCHED_PATHS])
    return planning.WavePolicy(
        name=wave.name, max_unavailable=f"{mu.percent}%" if mu.percent is not None else (mu.count or 0),
        bake_time=wave.bake_time, progress_deadline=wave.progress_deadline, on_failure=wave.on_failure.value,
        min_ready=None if wave.min_ready is None else str(wave.min_ready), empty_wave=wave.empty_wave.value,
        approval=approval, approvers=wave.approval.approvers if approval and wave.approval else (),
        approval_paths=wave.approval.paths if wave.approval else (), approval_matched=matched)


def changed_apps(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> set[str]:
    """The apps whose declaration or objects differ between two bundle documents."""
    def by_app(doc: Mapping[str, Any] | None) -> dict[str, list[str]]:
        apps: dict[str, list[str]] = {}
        if doc is None:
            return apps
        for app in doc.get("apps") or []:
            apps.setdefault(str(app.get("name")), []).append(json.dumps(app, sort_keys=True))
        for obj in doc.get("objects") or []:
            labels = (obj.get("metadata") or {}).get("labels") or {}
            apps.setdefault(str(labels.get(bundles.LABEL_APP, "")), []).append(json.dumps(obj, sort_keys=True))
        return apps

    before, after = by_app(old), by_app(new)
    return {name for name in set(before) | set(after) if before.get(name) != after.get(name)}


def _aware(when: dt.datetime) -> dt.datetime:
    # SQLite hands datetimes back naive; everything the hub stores is UTC.
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def _phase(value: str) -> Phase:
    try:
        return Phase(value)
    except ValueError:
        return Phase.UNKNOWN


class RolloutController:
    def __init__(self, *, db: store_db.Database, notifier: notify.Notifier,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
                 tick_seconds: float = 1.0, heartbeat_seconds: float = 30.0) -> None:
        self.db = db
        self.notifier = notifier
        self.clock = clock
        self.tick_seconds = tick_seconds
        #: The hub's Watch heartbeat: the presence rule (hub.presence) that decides who is offline needs it.
        self.heartbeat_seconds = heartbeat_seconds
        #: Renders clusters at the deployed commit (the hub service's); used after an unpin.
        self.rerender: Callable[[Iterable[str]], Awaitable[object]] | None = None
        #: The paths changed between two commits (the hub's Git source); decides path-bound approvals.
        self.changed_paths: Callable[[str, str], Collection[str]] | None = None
        #: Reports the hub received before this moment are no evidence (hub.rollout.planning: stale).
        self.started_at = clock()
        self._lock = threading.RLock()
        self._wake = asyncio.Event()
        self._active = True   #: the last tick saw an active rollout (until the first tick: assume so)

    # -- the loop -------------------------------------------------------------------------------
    def poke(self) -> None:
        """Tick as soon as possible (a sync or a report changed something). Call on the event loop."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                changed = await asyncio.to_thread(self.tick_blocking)
                self.notifier.notify(changed)
            except Exception:  # a database hiccup must not end rollouts for good
                log.exception("rollout tick failed; retrying")
            waiter = asyncio.ensure_future(self._wake.wait())
            stopper = asyncio.ensure_future(stop.wait())
            try:
                # Bake times and progress deadlines need the clock only while a rollout is active.
                timeout = self.tick_seconds if self._active else max(self.tick_seconds, _IDLE_TICK_SECONDS)
                await asyncio.wait({waiter, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if self._wake.is_set() and not stop.is_set():
                    # Reports arrive by the thousand in a big fleet: at most a few ticks a second.
                    await asyncio.wait({stopper}, timeout=_MIN_TICK_GAP)
            finally:
                waiter.cancel()
                stopper.cancel()
            self._wake.clear()

    # -- a sync's render -------------------------------------------------------------------------
    @contextlib.contextmanager
    def sync(self, *, commit: str, fleet: fleet_model.Fleet | None, rendered: Mapping[str, Rendered],
             full: bool, now: dt.datetime) -> Iterator[SyncPlan]:
        """Around the service's write of ``rendered`` at ``commit``; ``full``: a whole-fleet sync.

        Yields the plan (``hold``: do not make these desired); on a clean exit (bundles stored)
        starts the new rollout and fills ``plan.changed``.
        """
        with self._lock:
            with self.db.session(write=False) as session:
                plan = self._plan(session, commit, fleet, rendered, full)
            yield plan
            if plan._new is None and not plan._supersede:
                return
            with self.db.session() as session:
                plan.changed = self._begin(session, commit, plan, now)

    def _plan(self, s: Session, commit: str, fleet: fleet_model.Fleet | None, rendered: Mapping[str, Rendered],
              full: bool) -> SyncPlan:
        desired = store.desired_all(s)
        pinned = store.pinned_names(s)
        row = store.latest_rollout(s)
        latest = planning.Rollout.from_document(row.document) if row is not None else None
        active = latest if latest is not None and latest.state.active else None
        hold = {name for name in rendered if name in pinned}
        if not full or (latest is not None and latest.commit == commit):
            # A cluster rendered on registration, or the same commit again (SyncNow re-renders): the
            # rollout carries on as it stands; clusters it has not moved (or moved back) stay put.
            if latest is not None and (latest.state.active or latest.state in _STOPPED):
                hold |= {name for name, r in rendered.items() if name in latest.targets and name in desired
                         and desired[name].digest != r.digest
                         # A released cluster may take its target (it was pinned when its wave went).
                         and not (name in latest.released and name not in latest.reverted
                                  and r.digest == latest.targets[name])}
            return SyncPlan(hold=frozenset(hold))
        changed = {name: r for name, r in rendered.items()
                   if name not in hold and name in desired and desired[name].digest != r.digest}
        # Pinned clusters the commit changes are not moved, but they stay in their waves (absent): left
        # out, a canary wave of pinned clusters would vanish and the next wave go first, unproven.
        pinned_changed = {name: r for name, r in rendered.items()
                          if name in hold and name in desired and desired[name].digest != r.digest}
        spec = self._strategy(s, fleet, changed, desired) if changed else None
        plan = SyncPlan(hold=frozenset(hold), _supersede=active is not None)
        if spec is None:
            return plan  # no strategy: every changed cluster moves at once
        targets = {**changed, **pinned_changed}
        paths = (self._paths_changed({desired[n].commit for n in targets}, commit)
                 if any(w.approval is not None and w.approval.paths for w in spec.waves) else None)
        policies = [(wave_policy(w, paths), _matcher(w, targets)) for w in spec.waves]
        waves = planning.assign_waves(targets, policies, wave_policy(spec.implicit_wave()))
        plan.hold = frozenset(hold | set(changed))
        plan._new = {"targets": {n: r.digest for n, r in targets.items()},
                     "previous": {n: desired[n].digest for n in targets},
                     "previous_commits": {n: desired[n].commit for n in targets}, "waves": waves}
        return plan

    def _paths_changed(self, previous: Iterable[str], commit: str) -> set[str] | None:
        """Every path the commit range changes, from each previous commit; None when any is unknown."""
        if self.changed_paths is None:
            return None
        paths: set[str] = set()
        for old in sorted(set(previous)):
            if old == commit:
                continue
            try:
                paths |= set(self.changed_paths(old, commit))
            except Exception as exc:  # a gone commit, a git failure: the gate stays closed (safe side)
                log.warning("changed paths %s..%s unknown (%s): path-bound approvals count as needed",
                            old[:8], commit[:8], exc)
                return None
        return paths

    def _strategy(self, s: Session, fleet: fleet_model.Fleet | None, changed: Mapping[str, Rendered],
                  desired: Mapping[str, store.DesiredRow]) -> fleet_model.RolloutSpec | None:
        if fleet is None:
            return None
        if not any(app.rollout is not None for app in fleet.apps):
            return fleet.rollout
        # Apps differ in strategy: find which apps this commit changes (once per distinct pair of bundles).
        touched: set[str] = set()
        pairs: dict[tuple[str, str], Mapping[str, Any] | None] = {}
        for name, render in changed.items():
            pairs.setdefault((desired[name].digest, render.digest), render.bundle)
        for (old_digest, _new_digest), new_doc in pairs.items():
            touched |= changed_apps(self._bundle_doc(s, old_digest), new_doc)
        for app in fleet.apps:  # dependsOn order
            if app.name in touched and (spec := fleet.rollout_for(app.name)) is not None:
                return spec
        return None

    @staticmethod
    def _bundle_doc(s: Session, digest: str) -> dict[str, Any] | None:
        row = store.get_bundle(s, digest)
        if row is None:
            return None  # pruned: every app counts as changed
        return bundles.decode(bundles.decompress(row.data, max_size=_MAX_INFLATE), expected_digest=digest)

    def _begin(self, s: Session, commit: str, plan: SyncPlan, now: dt.datetime) -> list[str]:
        changed: list[str] = []
        row = store.latest_rollout(s)
        if plan._supersede and row is not None:
            old = planning.Rollout.from_document(row.document)
            if old.state.active:
                old, (kind, message) = planning.supersede(old, commit)
                self._save(s, row.seq or 0, old, [(kind, message)], now)
        if plan._new is None:
            return changed
        new = plan._new
        created = store.insert_rollout(s, commit=commit, state=planning.RolloutState.PROGRESSING.value,
                                       document={}, now=now)
        result = planning.start(rollout_id=f"r{created.seq}", commit=commit, targets=new["targets"],
                                previous=new["previous"], previous_commits=new["previous_commits"],
                                waves=new["waves"], now=now)
        plan.start = result
        return self._apply(s, created.seq or 0, result, now)

    # -- ticks -----------------------------------------------------------------------------------
    def tick_blocking(self, now: dt.datetime | None = None) -> list[str]:
        """Advance the active rollout; returns the clusters whose desired state changed."""
        now = now or self.clock()
        with self._lock:
            with self.db.session(write=False) as session:
                row = store.latest_rollout(session)
                self._active = row is not None and planning.RolloutState(row.state).active
                if row is None or not planning.RolloutState(row.state).active:
                    return []
                rollout = planning.Rollout.from_document(row.document)
                observed = self._observe(session, rollout, now)
            result = planning.step(rollout, observed, now)
            if result.rollout == rollout and not result.releases and not result.reverts:
                return []
            with self.db.session() as session:
                return self._apply(session, row.seq or 0, result, now)

    def _observe(self, s: Session, rollout: planning.Rollout,
                 now: dt.datetime) -> dict[str, planning.ClusterObservation]:
        """What each target reports, and which targets are absent (they give no evidence, never Ready)."""
        observed: dict[str, planning.ClusterObservation] = {}
        reported = store.applied_phases(s)
        received = store.report_times(s)
        absent = self._absent(s, rollout.targets, now)
        # Right after a start, a spoke is offline because the hub was away, not because it left: give it
        # the time a connected spoke needs to notice and reconnect before its absence counts.
        rejoining = now - self.started_at < presence.silent_after(self.heartbeat_seconds)
        for name in rollout.targets:
            seen = reported.get(name)
            if rejoining and absent.get(name) is planning.Absence.OFFLINE:
                observed[name] = planning.ClusterObservation(seen[0] if seen else "",
                                                             _phase(seen[1]) if seen else Phase.UNKNOWN, stale=True)
            elif name in absent:
                observed[name] = planning.ClusterObservation(seen[0] if seen else "",
                                                             _phase(seen[1]) if seen else Phase.UNKNOWN,
                                                             absent=absent[name])
            elif seen is not None:
                # Judged by the hub's clock (when the report arrived), never by the spoke's observed_at.
                at = received.get(name)
                stale = at is None or _aware(at) < self.started_at
                observed[name] = planning.ClusterObservation(seen[0], _phase(seen[1]), stale=stale)
        return observed

    def _absent(self, s: Session, names: Iterable[str], now: dt.datetime) -> dict[str, planning.Absence]:
        wanted = set(names)
        clusters = {c.name: c for c in store.list_clusters(s) if c.name in wanted}
        gone = store.deregistered(s, wanted - set(clusters))
        absent: dict[str, planning.Absence] = {}
        for name in sorted(wanted):
            cluster = clusters.get(name)
            if cluster is None:
                absent[name] = planning.Absence.DEREGISTERED if name in gone else planning.Absence.NOT_REGISTERED
            elif cluster.pinned_digest:
                absent[name] = planning.Absence.PINNED
            elif not presence.is_online(last_seen=cluster.last_seen, disconnected_at=cluster.disconnected_at,
                                        now=now, heartbeat_seconds=self.heartbeat_seconds):
                absent[name] = planning.Absence.OFFLINE
        return absent

    def _apply(self, s: Session, seq: int, result: planning.StepResult, now: dt.datetime) -> list[str]:
        rollout = result.rollout
        clusters = store.list_clusters(s)
        movable = {c.name for c in clusters if not c.pinned_digest}
        items = [(c, rollout.commit, d) for c, d in result.releases.items() if c in movable]
        items += [(c, rollout.previous_commits.get(c) or rollout.commit, d) for c, d in result.reverts.items()
                  if c in movable]
        changed = store.set_desired_many(s, items, now=now)
        self._save(s, seq, rollout, result.events, now)
        return changed

    @staticmethod
    def _save(s: Session, seq: int, rollout: planning.Rollout, events: Iterable[tuple[str, str]],
              now: dt.datetime) -> None:
        stored = store.get_rollout(s, seq)
        if stored is not None and stored.document:
            # An approval saved by another replica since this one read the rollout is not written over.
            rollout = planning.keep_approvals(rollout, planning.Rollout.from_document(stored.document))
        store.save_rollout(s, seq, state=rollout.state.value, document=rollout.to_document(), now=now)
        for kind, message in events:
            try:
                event_kind = models.EventKind(kind)
            except ValueError:
                event_kind = models.EventKind.ROLLOUT
            details: dict[str, Any] = {"rollout": rollout.id, "state": rollout.state.value}
            if rollout.failing and kind in {"rollout_failed", "rollout_rolled_back"}:
                details["failing"] = list(rollout.failing)
            store.add_event(s, event_kind, commit=rollout.commit, message=message, details=details, now=now)
            log.info("%s", message)

    # -- operators -------------------------------------------------------------------------------
    def control_blocking(self, action: str, now: dt.datetime | None = None) -> tuple[planning.Rollout, list[str]]:
        """pause, resume, abort or promote the latest rollout; promote releases the next wave at once."""
        now = now or self.clock()
        with self._lock:
            with self.db.session(write=False) as session:
                row = store.latest_rollout(session)
                if row is None:
                    raise RolloutError(f"rollout {action}: no rollout has run on this hub")
                rollout = planning.Rollout.from_document(row.document)
                observed = self._observe(session, rollout, now)
            try:
                controlled, event = planning.control(rollout, action, now)
            except ValueError as exc:
                raise RolloutError(str(exc)) from exc
            result = planning.step(controlled, observed, now)
            result = dataclasses.replace(result, events=(event, *result.events))
            with self.db.session() as session:
                changed = self._apply(session, row.seq or 0, result, now)
            return result.rollout, changed

    def approve_blocking(self, *, by: str, wave: str | None = None, comment: str = "",
                         now: dt.datetime | None = None) -> tuple[planning.Rollout, list[str]]:
        """``by`` (an admin credential's name) approves ``wave`` (default: the waiting one); released at once.

        Raises :class:`planning.ApprovalDenied` for a credential that is not an approver, RolloutError
        when nothing can be approved.
        """
        now = now or self.clock()
        with self._lock:
            with self.db.session(write=False) as session:
                row = store.latest_rollout(session)
                if row is None:
                    raise RolloutError("rollout approve: no rollout has run on this hub")
                rollout = planning.Rollout.from_document(row.document)
                observed = self._observe(session, rollout, now)
            try:
                approved, (_kind, message) = planning.approve(rollout, by=by, wave=wave, comment=comment, now=now)
            except ValueError as exc:
                raise RolloutError(str(exc)) from exc
            result = planning.step(approved, observed, now)
            name = wave or (rollout.waiting_wave() or rollout.waves[0]).name
            with self.db.session() as session:
                store.add_event(session, models.EventKind.APPROVED, commit=rollout.commit, message=message,
                                details={"rollout": rollout.id, "wave": name, "by": by, "comment": comment,
                                         "at": now.isoformat()}, now=now)
                log.info("%s", message)
                changed = self._apply(session, row.seq or 0, result, now)
            return result.rollout, changed

    def view_blocking(self) -> RolloutView | None:
        with self.db.session(write=False) as session:
            row = store.latest_rollout(session)
            if row is None:
                return None
            rollout = planning.Rollout.from_document(row.document)
            pinned = store.pinned_names(session)
            reported = store.applied_phases(session)
            absent = self._absent(session, rollout.targets, self.clock())
        observed = {name: planning.ClusterObservation(digest, _phase(phase))
                    for name, (digest, phase) in reported.items() if name in rollout.targets}
        return RolloutView(rollout=rollout, observed=observed, pinned=pinned, absent=absent)

    @staticmethod
    def pending_digests(s: Session) -> set[str]:
        """Target digests of the active rollout (bundle retention must keep them)."""
        row = store.latest_rollout(s)
        if row is None or not planning.RolloutState(row.state).active:
            return set()
        return set(planning.Rollout.from_document(row.document).targets.values())

    def cluster_states(self, s: Session) -> dict[str, ClusterRollout]:
        """Each cluster's wave and state in the latest rollout (none once it is done or superseded)."""
        row = store.latest_rollout(s)
        if row is None or row.state in {planning.RolloutState.DONE.value, planning.RolloutState.SUPERSEDED.value}:
            return {}
        if (planning.RolloutState(row.state) in _STOPPED
                and store.get_state(s, store.StateKey.LAST_DEPLOYED_COMMIT) != row.commit):
            return {}  # a later commit (without a strategy) moved the fleet on: nothing is held any more
        rollout = planning.Rollout.from_document(row.document)
        states: dict[str, ClusterRollout] = {}
        for name in rollout.targets:
            state = rollout.cluster_state(name)
            if state is not None:
                states[name] = ClusterRollout(wave=rollout.wave_of(name), state=state.value)
        return states

    def pin_blocking(self, names: Iterable[str], to: str, now: dt.datetime | None = None) -> tuple[list[str], str]:
        """Pin clusters to ``to`` (a digest, or a commit or commit prefix they ran), or unpin (``to`` "").

        Returns the clusters and the digest (the pinned one when all share it, else "various").
        A pinned cluster's desired state is set to the pin at once; rollouts do not move it until unpinned.
        """
        now = now or self.clock()
        chosen = sorted(set(names))
        with self._lock, self.db.session() as session:
            digests: dict[str, tuple[str, str]] = {}
            for name in chosen:
                if store.get_cluster(session, name) is None:
                    raise RolloutError(f"cluster {name} is not registered")
                if to:
                    digests[name] = self._pin_target(session, name, to)
            for name in chosen:
                if to:
                    digest, commit = digests[name]
                    store.set_pinned(session, name, digest, now=now)
                    store.set_desired(session, cluster=name, commit=commit, digest=digest, now=now)
                else:
                    store.set_pinned(session, name, None, now=now)
        distinct = {d for d, _ in digests.values()}
        return chosen, (distinct.pop() if len(distinct) == 1 else ("various" if distinct else ""))

    @staticmethod
    def _pin_target(s: Session, cluster: str, to: str) -> tuple[str, str]:
        if to.startswith("sha256:"):
            commit = store.commit_of_desired(s, cluster, to)
            if commit is None:
                raise RolloutError(f"cluster {cluster}: bundle {to[:19]} was never desired for it; "
                                   "pin it only to a bundle it had before")
            digest = to
        else:
            if len(to) < 7:
                raise RolloutError(f"cluster {cluster}: commit {to!r} is too short; give at least 7 characters")
            found = next(((row.digest, row.commit) for row in store.desired_history(s, cluster, limit=10_000)
                          if row.commit.startswith(to.lower())), None)
            if found is None:
                raise RolloutError(f"cluster {cluster}: no bundle of commit {to} was ever desired for it")
            digest, commit = found
        if store.bundle_meta(s, digest) is None:
            raise RolloutError(f"cluster {cluster}: bundle {digest[:19]} is no longer stored on this hub "
                               "(retention removed it)")
        return digest, commit


def _matcher(wave: fleet_model.Wave, rendered: Mapping[str, Rendered]) -> Callable[[str], bool]:
    return lambda name: wave.selector.matches(dict(rendered[name].labels))
