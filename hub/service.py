"""The hub's sync loop: fleet repository -> per-cluster bundles -> desired state -> watchers.

:meth:`HubService.sync_once` reads top to bottom::

    fetch -> forward-only check -> signature check -> render every cluster
          -> store each new bundle (compressed, signed) -> set desired -> notify watchers

It runs on the poll interval (with jitter), at once on a webhook (:meth:`trigger`)
and on AdminService.SyncNow. Everything blocking (Git, rendering, SQL) runs in one
worker thread per run; only notifying watchers happens on the event loop. A
failure never stops the loop and never costs a cluster its last good bundle:

* fetch fails -> logged and counted, next poll tries again;
* the head does not descend from the last deployed commit -> refused, recorded, kept off;
* an unsigned or badly signed head (when signatures are required) -> refused likewise;
* a broken fleet.yaml -> every cluster keeps its state, the error is recorded;
* one cluster fails to render -> it keeps its bundle and gets render errors; the others move on.

With a rollout controller (:mod:`hub.rollout.controller`), a commit with a rollout strategy does not
set every changed cluster's desired state: the controller holds the targets back and releases them
wave by wave; pinned clusters are never moved by a sync.

A digest that does not change causes no notification and no work on the spoke. A
cluster that registers between commits is rendered at once at the deployed commit
(:meth:`HubService.render_clusters`). Bundles are compressed and signed outside any
transaction and a render is written in batches of clusters, so the database's write
lock is never held for a whole fleet.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import enum
import json
import logging
import os
import random
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from hub import metrics as metrics_mod
from hub import notify
from hub import settings as settings_mod
from hub.fleet import clusters as fleet_clusters
from hub.render import kustomize, pipeline, sealed
from hub.rollout import controller as rollout_controller
from hub.source import git as gitsource
from hub.store import db as store_db
from hub.store import models
from hub.store import repository as store
from hub.tree import errors as render_errors
from hub.tree import repofs
from protos import bundle as bundles

__all__ = ["STATE_DEPLOYED_AT", "STATE_FLEET_ERROR", "STATE_FLEET_ERROR_COMMIT", "HubService", "RefusalKind",
           "SyncOutcome", "render_limits"]

log = logging.getLogger(__name__)

#: hub_state keys this module adds to :class:`hub.store.repository.StateKey`.
STATE_FLEET_ERROR = "fleet_error"            #: why the last commit could not be rendered at all ("" if it could)
STATE_DEPLOYED_AT = "last_deployed_at"       #: ISO time the last deployed commit was deployed
STATE_FLEET_ERROR_COMMIT = "fleet_error_commit"  #: the commit STATE_FLEET_ERROR is about

#: Clusters named in a sync's message before "and N more".
_NAMES_SHOWN = 5

#: Clusters written per transaction when storing a render.
_WRITE_BATCH = 200

#: TEST ONLY (the fault suite, docs/reliability.md): a point of a sync at which the hub SIGKILLs itself, to prove
#: that a sync cut there is completed by the next start without duplicates. The points are
#: ``after-batch-N`` (N-th write batch committed), ``before-rollout`` (every batch written, the rollout
#: row not yet) and ``before-deployed-commit``. Read once at import; never set it outside tests.
CRASH_AT_ENV = "CONVOY_TEST_CRASH_AT"
_CRASH_AT = os.environ.get(CRASH_AT_ENV, "")


def _crash_point(name: str) -> None:
    if _CRASH_AT and name == _CRASH_AT:
        log.critical("%s=%s: killing the hub here (fault test)", CRASH_AT_ENV, name)
        os.kill(os.getpid(), signal.SIGKILL)


class RefusalKind(enum.StrEnum):
    """Why a fetched head is not the deployed commit (``convoy status`` shows it in its header)."""

    HISTORY_REWRITE = "history rewrite"  #: it does not descend from the deployed commit
    SIGNATURE = "signature"              #: unsigned or badly signed while signatures are required
    RENDER_ERROR = "render error"        #: the fleet as a whole cannot be rendered (fleet.yaml, clusters/)


@dataclasses.dataclass(frozen=True)
class SyncOutcome:
    """What one sync run did.

    ``changed`` is this run's work (whom to notify). ``desired``, ``held``, ``pinned`` and ``unchanged``
    say where the commit leaves each rendered cluster, whichever run did the work: a sync the poll loop
    ran a moment before SyncNow must not make SyncNow say that nothing changed.
    """

    commit: str | None = None                  #: the head looked at (None when the fetch failed)
    changed: tuple[str, ...] = ()              #: clusters whose desired digest changed in this run
    render_errors: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    refused: str | None = None                 #: why the head was refused (history rewrite, signature)
    error: str | None = None                   #: fetch or fleet-wide error
    skipped: bool = False                      #: the head was already processed
    desired: tuple[str, ...] = ()              #: now desire a bundle this commit changed
    held: tuple[str, ...] = ()                 #: the commit changes their bundle; the rollout holds it back
    pinned: tuple[str, ...] = ()               #: the commit changes their bundle; pinned to another one
    unchanged: int = 0                         #: the commit renders them to the bundle they already desire
    again: bool = False                        #: the commit was already deployed before this run

    @property
    def failed(self) -> bool:
        """The head was not deployed at all: the fetch failed, it was refused, or the fleet cannot render."""
        return bool(self.error or self.refused)

    @property
    def message(self) -> str:
        """One line: what the sync did, by count (and names when few)."""
        short = (self.commit or "")[:12]
        if self.error:
            return self.error
        if self.refused:
            return f"commit {short} refused: {self.refused}"
        if self.skipped:
            return f"commit {short} already deployed; nothing to do"
        parts = []
        if self.desired:
            count = len(self.desired)
            parts.append(f"{count} {'cluster desires' if count == 1 else 'clusters desire'} it now "
                         f"({_names(self.desired)})")
        if self.held:
            parts.append(f"{len(self.held)} held by the rollout ({_names(self.held)})")
        if self.pinned:
            parts.append(f"{len(self.pinned)} pinned to another bundle ({_names(self.pinned)})")
        if self.render_errors:
            parts.append(f"{len(self.render_errors)} refused by render errors ({_names(sorted(self.render_errors))}),"
                         " keeping their last good bundle")
        if not parts:
            parts.append("no cluster changed")
        if self.unchanged:
            parts.append(f"{self.unchanged} unchanged")
        return f"commit {short}" + (" (already deployed)" if self.again else "") + ": " + ", ".join(parts)

    @property
    def report(self) -> str:
        """:attr:`message`, then the first render error of the first few failed clusters, one per line."""
        lines = [self.message]
        for name, errors in sorted(self.render_errors.items())[:_NAMES_SHOWN]:
            lines.append(f"  {errors[0]}" if errors[0].startswith(f"cluster {name}:")
                         else f"  cluster {name}: {errors[0]}")
        return "\n".join(lines)


def _names(names: Iterable[str]) -> str:
    ordered = sorted(names)
    shown = ", ".join(ordered[:_NAMES_SHOWN])
    return shown + (f" and {len(ordered) - _NAMES_SHOWN} more" if len(ordered) > _NAMES_SHOWN else "")


@dataclasses.dataclass
class _RenderBatch:
    """Clusters waiting for one render at the deployed commit, and the outcome all their callers await."""

    done: asyncio.Future[SyncOutcome]
    names: set[str] = dataclasses.field(default_factory=set)


class HubService:
    """Follows the fleet repository and keeps every cluster's desired state up to date."""

    def __init__(self, *, settings: settings_mod.HubSettings, db: store_db.Database,
                 source: gitsource.GitSource, signing_key: ed25519.Ed25519PrivateKey,
                 notifier: notify.Notifier, metrics: metrics_mod.HubMetrics,
                 renderer: pipeline.Renderer | None = None,
                 signature_policy: gitsource.SignaturePolicy | None = None,
                 rollouts: rollout_controller.RolloutController | None = None,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.settings = settings
        self.db = db
        self.source = source
        self.signing_key = signing_key
        self.notifier = notifier
        self.metrics = metrics
        self.renderer = renderer or pipeline.Renderer(
            limits=render_limits(settings),
            build_options=kustomize.BuildOptions(allow_helm=settings.allow_helm,
                                                 allow_plugins=settings.allow_plugins))
        self.signature_policy = signature_policy
        self.rollouts = rollouts
        self.clock = clock
        self.first_sync_done = False
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._wake_reason = "poll"
        self._last_head: str | None = None
        self._render_batch: _RenderBatch | None = None
        self._downloading: asyncio.Future[None] | None = None
        self._background: set[asyncio.Future[None]] = set()
        # Set while a sync or render runs in its worker thread: wakes the watchers of each stored batch at
        # once, so the first spokes fetch while the rest of the fleet is still being written.
        self._announce: _Announcer | None = None
        # Clear while a sync renders and stores: status reports wait for it (sync_finished).
        self._not_syncing = asyncio.Event()
        self._not_syncing.set()
        self._declared_cache: tuple[str, dict[str, fleet_clusters.ClusterDecl]] | None = None
        self._declared_known = asyncio.Event()
        self._declared_shared: str | None = None

    async def declared_names(self, *, wait: float = 10.0) -> frozenset[str] | None:
        """The cluster names the deployed commit declares (``clusters/NAME/cluster.yaml``).

        Right after start, waits up to ``wait`` seconds for the first sync to read them; None if it
        has not (the repository is unreachable or the fleet cannot be read).
        """
        if self._declared_cache is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._declared_known.wait(), wait)
        cache = self._declared_cache
        return None if cache is None else frozenset(cache[1])

    # -- the loop -------------------------------------------------------------------------
    def trigger(self, reason: str) -> None:
        """Sync as soon as possible (webhook). Call on the event loop."""
        self._wake_reason = reason
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Sync now, then on every poll interval (with jitter) or trigger, until ``stop`` is set."""
        reason = "start"
        while not stop.is_set():
            try:
                outcome = await self.sync_once(reason=reason)
                self.metrics.syncs.labels(outcome=_outcome_label(outcome)).inc()
            except Exception:  # never let one bad run end the loop
                log.exception("sync (%s) failed unexpectedly; retrying on the next poll", reason)
                self.metrics.syncs.labels(outcome="crashed").inc()
            interval = self.settings.poll_interval * (1 + random.uniform(-1, 1) * self.settings.poll_jitter)
            waiter = asyncio.ensure_future(self._wake.wait())
            stopper = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({waiter, stopper}, timeout=max(0.05, interval),
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                stopper.cancel()
            reason = self._wake_reason if self._wake.is_set() else "poll"
            self._wake.clear()

    async def sync_once(self, *, reason: str = "manual", force: bool = False) -> SyncOutcome:
        """One run of fetch -> check -> render -> store -> notify. ``force`` re-renders an unchanged head."""
        # The network part runs outside the service lock, so a stalled remote (cut after
        # git_stall_seconds, at most git_timeout) never holds up registration renders; a SyncNow
        # arriving mid-fetch joins the fetch under way instead of queueing a second one behind it.
        fetch_error = await self._download()
        async with self._lock:
            announcer = self._announce = _Announcer(asyncio.get_running_loop(), self.notifier)
            self._not_syncing.clear()
            try:
                outcome = await asyncio.to_thread(self._sync_blocking, reason, force, fetch_error)
            finally:
                self._announce = None
                self._not_syncing.set()
            self.first_sync_done = self.first_sync_done or outcome.error is None or outcome.commit is not None
            if self._declared_cache is None and outcome.skipped and outcome.commit is not None:
                # Restarted on the deployed commit: nothing rendered, so read the declared names now.
                with contextlib.suppress(render_errors.RenderError, gitsource.GitSourceError):
                    await asyncio.to_thread(lambda: self._declared(self.source.fs_at(outcome.commit or "")))
            if self._declared_cache is not None:
                self._declared_known.set()
                await asyncio.to_thread(self._share_declared, self._declared_cache)
        self.notifier.notify(announcer.rest(outcome.changed))
        if self.rollouts is not None and outcome.changed:
            self.rollouts.poke()
        _log_outcome(reason, outcome)
        return outcome

    async def sync_finished(self, *, at_most: float) -> None:
        """Return once no sync is rendering or storing, or after ``at_most`` seconds.

        Status reports wait on this before they are stored: while a commit is written, its desired states
        go out first (the hub is one process: every report stored meanwhile slows the sync and with it the
        last spoke's notice; at 10,000 clusters the reports of the spokes already told took a third of it).
        """
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._not_syncing.wait(), at_most)

    async def render_clusters(self, names: Iterable[str]) -> SyncOutcome:
        """Render these clusters at the deployed commit now (a cluster just registered).

        Calls that arrive while a sync or another render holds the lock join one pending batch:
        each render reads every registered cluster and every declared ``cluster.yaml``, so one
        render per registration made a burst of N registrations cost O(N^2) (measured at 1,000 clusters: after
        1,000 spokes registered, the hub rendered for 6 minutes and a commit waited behind it).
        The outcome is the batch's.
        """
        batch = self._render_batch
        if batch is None:
            batch = self._render_batch = _RenderBatch(asyncio.get_running_loop().create_future())
            task = asyncio.ensure_future(self._render_batch_when_free(batch))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        batch.names.update(names)
        return await asyncio.shield(batch.done)

    async def _render_batch_when_free(self, batch: _RenderBatch) -> None:
        async with self._lock:
            self._render_batch = None  # closed: later registrations open the next batch
            wanted = frozenset(batch.names)
            announcer = self._announce = _Announcer(asyncio.get_running_loop(), self.notifier)
            try:
                outcome = await asyncio.to_thread(self._render_deployed_blocking, wanted)
            except Exception as exc:
                batch.done.set_exception(exc)
                batch.done.exception()  # retrieved: a batch nobody awaits any more must not warn
                return
            finally:
                self._announce = None
        self.notifier.notify(announcer.rest(outcome.changed))
        _log_outcome(f"render {len(wanted)} new cluster(s)" if len(wanted) > 3
                     else f"render {', '.join(sorted(wanted))}", outcome)
        batch.done.set_result(outcome)

    # -- blocking work (one worker thread at a time) -----------------------------------------
    async def _download(self) -> gitsource.GitSourceError | None:
        if self._downloading is None or self._downloading.done():
            self._downloading = asyncio.ensure_future(asyncio.to_thread(self.source.download))
        try:
            await asyncio.shield(self._downloading)
        except gitsource.GitSourceError as exc:
            return exc
        return None

    def _sync_blocking(self, reason: str, force: bool, fetch_error: gitsource.GitSourceError | None) -> SyncOutcome:
        try:
            if fetch_error is not None:
                raise fetch_error
            head = self.source.head()
        except gitsource.GitSourceError as exc:
            self.metrics.fetches.labels(outcome="error").inc()
            with self.db.session() as session:
                store.set_state(session, store.StateKey.LAST_FETCH_ERROR, str(exc), now=self.clock())
            return SyncOutcome(error=f"fetch failed: {exc}")
        self.metrics.fetches.labels(outcome="ok").inc()
        if head.sha == self._last_head and not force:
            return SyncOutcome(commit=head.sha, skipped=True)
        outcome = self._process(head, reason, force)
        # Remembered only once processed: a run that raised (database away) retries the same head.
        self._last_head = head.sha
        if outcome.error is None and outcome.refused is None:
            self.metrics.commit_deployed(head.authored_at.timestamp())
        return outcome

    def _process(self, head: gitsource.CommitInfo, reason: str, force: bool) -> SyncOutcome:
        now = self.clock()
        with self.db.session() as session:
            store.set_state(session, store.StateKey.LAST_FETCH_AT, now.isoformat(), now=now)
            store.set_state(session, store.StateKey.LAST_FETCH_ERROR, "", now=now)
            deployed = store.get_state(session, store.StateKey.LAST_DEPLOYED_COMMIT)
        if deployed == head.sha and not force:
            # Restarted on the commit already deployed (or the branch was put back on it after a refused
            # head): the desired states are in the store; the fleet's newest commit is the deployed one again.
            with self.db.session() as session:
                _seen(session, head.sha, now)
            return SyncOutcome(commit=head.sha, skipped=True)
        if deployed and not self.settings.allow_history_rewrite and not self._descends(head.sha, deployed):
            return self._refuse(head, f"it does not descend from the last deployed commit {deployed[:12]} "
                                      "(a force-push or history rewrite); start the hub with "
                                      "--allow-history-rewrite to accept it")
        check = self.source.verify_commit(head.sha, self.signature_policy)
        if not check.ok:
            return self._refuse(head, f"signature {check.verdict}: {check.detail}",
                                verdict=str(check.verdict), detail=check.detail)
        log.info("sync (%s): commit %s by %s: %s", reason, head.short, head.author, _first_line(head.message))
        with self.db.session() as session:
            store.record_commit(session, sha=head.sha, author=head.author, authored_at=head.authored_at,
                                message=head.message, signature_verdict=str(check.verdict),
                                signature_detail=check.detail, accepted=True, now=now)
            _seen(session, head.sha, now)
        return self._render_and_store(head.sha, only=None)

    def _descends(self, new: str, old: str) -> bool:
        try:
            return self.source.is_descendant(new, old)
        except gitsource.GitSourceError:
            return False

    def _refuse(self, head: gitsource.CommitInfo, why: str, *, verdict: str = "not-checked",
                detail: str = "") -> SyncOutcome:
        log.warning("commit %s refused: %s", head.short, why)
        with self.db.session() as session:
            store.record_commit(session, sha=head.sha, author=head.author, authored_at=head.authored_at,
                                message=head.message, signature_verdict=verdict, signature_detail=detail,
                                accepted=False, refusal_reason=why, now=self.clock())
            _seen(session, head.sha, self.clock())
        return SyncOutcome(commit=head.sha, refused=why)

    def _render_deployed_blocking(self, names: frozenset[str]) -> SyncOutcome:
        with self.db.session() as session:
            deployed = store.get_state(session, store.StateKey.LAST_DEPLOYED_COMMIT)
        if not deployed:
            return SyncOutcome(error="no commit deployed yet; the cluster is rendered on the first sync")
        return self._render_and_store(deployed, only=names)

    def _render_and_store(self, sha: str, *, only: frozenset[str] | None) -> SyncOutcome:
        """Render clusters at ``sha`` and make each good bundle desired; ``only`` limits which."""
        now = self.clock()
        fs = self.source.fs_at(sha)
        with self.db.session(write=False) as session:
            inputs = store.render_inputs(session)
        registered = {name: row.labels for name, row in inputs.items()}
        age_keys = {name: (row.age_recipient, row.age_recipient_previous) for name, row in inputs.items()}
        try:
            declared = self._declared(fs)
        except render_errors.RenderError as exc:
            return self._fleet_failed(sha, str(exc), now)
        infos = [fleet_clusters.cluster_info(name, registered_labels=registered.get(name), decl=declared.get(name))
                 for name in sorted(set(registered) | set(declared)) if only is None or name in only]
        started = time.perf_counter()
        fleet_render = self.renderer.render_fleet(fs, infos)
        self.metrics.render_seconds.observe(time.perf_counter() - started)
        if fleet_render.fleet_error is not None:
            return self._fleet_failed(sha, str(fleet_render.fleet_error), now)

        _refuse_unopenable_secrets(fleet_render, age_keys,
                                   sealed_only=(fleet_render.fleet is not None
                                                and fleet_render.fleet.secrets.sealed_only))
        failed = {name: tuple(str(e) for e in render.errors) or ("the render produced no bundle",)
                  for name, render in fleet_render.clusters.items()
                  if render.errors or render.digest is None or render.data is None}
        good = [(name, render) for name, render in sorted(fleet_render.clusters.items()) if name not in failed]
        new_bundles = self._new_bundles(render for _, render in good)
        with self.db.session(write=False) as session:
            had_errors = set(store.render_errors_all(session))
        # Desired states, their events and a rollout's start are stamped when they are stored, so
        # "since" and the history say when spokes could first see them, not when rendering began.
        now = self.clock()
        with self._rollout_gate(sha, fleet_render, good, only is None, now) as plan:
            changed = self._store_renders(sha, fleet_render, failed, good, new_bundles, had_errors, plan, now)
            _crash_point("before-rollout")
        changed += [name for name in plan.changed if name not in changed]
        again = False
        if only is None:
            _crash_point("before-deployed-commit")
            with self.db.session() as session:
                again = store.get_state(session, store.StateKey.LAST_DEPLOYED_COMMIT) == sha
                store.set_state(session, store.StateKey.LAST_DEPLOYED_COMMIT, sha, now=now)
                if not again:  # a re-render (SyncNow) of the deployed commit does not make it newer
                    store.set_state(session, STATE_DEPLOYED_AT, now.isoformat(), now=now)
                store.set_state(session, STATE_FLEET_ERROR, "", now=now)
                # Bundles an active rollout has yet to release are in no desired state yet: keep them.
                pending = self.rollouts.pending_digests(session) if self.rollouts is not None else set()
                store.prune_bundles(session, keep_last=self.settings.bundle_retention, now=now,
                                    min_age=dt.timedelta(seconds=self.settings.bundle_retention_age),
                                    also_keep=pending)
        return self._outcome(sha, changed, failed, good, again=again)

    def _outcome(self, sha: str, changed: list[str], failed: Mapping[str, tuple[str, ...]],
                 good: list[tuple[str, pipeline.ClusterRender]], *, again: bool) -> SyncOutcome:
        """Where ``sha`` leaves each rendered cluster, read back from the store after the write."""
        with self.db.session(write=False) as session:
            desired = store.desired_all(session)
            seen = store.get_commit(session, sha)
            # Cluster rows cost ~0.1 ms each: read them only when some cluster did not take its render.
            held_back = any(name not in desired or desired[name].digest != render.digest for name, render in good)
            pinned = store.pinned_names(session) if held_back else frozenset()
        # A desired state stamped after the hub first saw the commit was set by it (now or by an earlier
        # run of the same commit, or released since by the rollout); one stamped before it was not.
        first_seen = _aware(seen.seen_at) if seen is not None else None
        changed_now = set(changed)
        moved: list[str] = []
        held: list[str] = []
        pins: list[str] = []
        unchanged = 0
        for name, render in good:
            row = desired.get(name)
            if row is None or row.digest != render.digest:
                (pins if name in pinned else held).append(name)
            elif name in changed_now or (row.commit == sha and first_seen is not None
                                     and _aware(row.since) >= first_seen):
                moved.append(name)
            else:
                unchanged += 1
        return SyncOutcome(commit=sha, changed=tuple(changed), render_errors=failed, desired=tuple(moved),
                           held=tuple(held), pinned=tuple(pins), unchanged=unchanged, again=again)

    def _rollout_gate(self, sha: str, fleet_render: pipeline.FleetRender,
                      good: list[tuple[str, pipeline.ClusterRender]], full: bool,
                      now: dt.datetime) -> contextlib.AbstractContextManager[rollout_controller.SyncPlan]:
        if self.rollouts is None:
            return contextlib.nullcontext(rollout_controller.SyncPlan())
        rendered = {name: rollout_controller.Rendered(digest=render.digest or "", labels=render.labels,
                                                      bundle=render.bundle) for name, render in good}
        return self.rollouts.sync(commit=sha, fleet=fleet_render.fleet, rendered=rendered, full=full, now=now)

    def _store_renders(self, sha: str, fleet_render: pipeline.FleetRender, failed: Mapping[str, tuple[str, ...]],
                       good: list[tuple[str, pipeline.ClusterRender]],
                       new_bundles: dict[str, tuple[bytes, int, bytes]], had_errors: set[str],
                       plan: rollout_controller.SyncPlan, now: dt.datetime) -> list[str]:
        changed: list[str] = []
        # The audit trail: which sealed secret versions (ciphertext digests) each new bundle carries.
        audit: dict[str, dict[str, str]] = {}
        for _, render in good:
            if render.digest and render.bundle is not None and render.digest not in audit:
                audit[render.digest] = sealed.sealed_digests(render.bundle) if _may_hold(render, b'"sops"') else {}
        # Written in batches, so the write lock (SQLite) is never held for a whole fleet at once; a run
        # cut short is simply repeated: every step is idempotent and the deployed commit moves last.
        for number, batch in enumerate(_batches([*sorted(failed), *(name for name, _ in good)], _WRITE_BATCH), 1):
            if number > 1:
                _crash_point(f"after-batch-{number - 1}")
            with self.db.session() as session:
                to_store = []
                for name in batch:
                    if name in failed:
                        # The store records the event once per cluster and commit.
                        store.set_render_errors(session, cluster=name, commit=sha, now=now, errors=[
                            _app_error_doc(e) for e in fleet_render.clusters[name].errors])
                        continue
                    digest = fleet_render.clusters[name].digest or ""
                    bundle = new_bundles.pop(digest, None)
                    if bundle is not None:
                        to_store.append((digest, *bundle))
                    if name in had_errors:
                        store.clear_render_errors(session, name)
                # Before the desired states that refer to them (foreign key).
                store.put_bundles(session, to_store, now=now)
                # Rollout targets and pinned clusters (plan.hold) are the rollout controller's to move.
                stored = store.set_desired_many(
                    session, [(name, sha, fleet_render.clusters[name].digest or "") for name in batch
                              if name not in failed and name not in plan.hold], now=now, sealed=audit)
            # Committed: these spokes may fetch now (a run cut short after this is redone to the same digests).
            changed += stored
            if self._announce is not None:
                self._announce(stored)
        return changed

    def _new_bundles(self, renders: Iterable[pipeline.ClusterRender]) -> dict[str, tuple[bytes, int, bytes]]:
        """digest -> (compressed bytes, size, signature) of each rendered bundle not stored yet.

        Compressing and signing happen here, outside any transaction.
        """
        distinct = {r.digest: r.data for r in renders if r.digest is not None and r.data is not None}
        with self.db.session(write=False) as session:
            stored = store.existing_bundles(session, distinct)
        missing = [digest for digest in distinct if digest not in stored]
        return {digest: (bundles.compress(distinct[digest]), len(distinct[digest]),
                         bundles.sign(self.signing_key, digest)) for digest in missing}

    def _share_declared(self, cache: tuple[str, dict[str, fleet_clusters.ClusterDecl]]) -> None:
        """Store the declared names for follower replicas, which never read the repository."""
        if self._declared_shared == cache[0]:
            return
        with self.db.session() as session:
            store.set_state(session, store.StateKey.DECLARED_CLUSTERS, json.dumps(sorted(cache[1])))
        self._declared_shared = cache[0]

    def declared_names_stored(self) -> frozenset[str] | None:
        """The declared names the leader stored (what a follower replica uses); None before any."""
        with self.db.session(write=False) as session:
            value = store.get_state(session, store.StateKey.DECLARED_CLUSTERS)
        return None if value is None else frozenset(json.loads(value))

    def _declared(self, fs: repofs.RepoFS) -> dict[str, fleet_clusters.ClusterDecl]:
        """The declared clusters, reused while ``clusters/`` has the same Git tree id.

        Listing 1,000 cluster directories walks 1,000 Git trees (about a second); most commits
        leave them alone. Only the sync's worker thread calls this (under the service lock).
        """
        key = fs.tree_id(fleet_clusters.CLUSTERS_DIR) if fs.is_dir(fleet_clusters.CLUSTERS_DIR) else ""
        if self._declared_cache is None or self._declared_cache[0] != key:
            self._declared_cache = (key, fleet_clusters.declared_clusters(
                fs, max_bytes=self.renderer.limits.max_file_bytes))
        return dict(self._declared_cache[1])

    def _fleet_failed(self, sha: str, message: str, now: dt.datetime) -> SyncOutcome:
        text = f"commit {sha[:12]}: the fleet cannot be rendered; every cluster keeps its state: {message}"
        with self.db.session() as session:
            store.set_state(session, STATE_FLEET_ERROR, text, now=now)
            store.set_state(session, STATE_FLEET_ERROR_COMMIT, sha, now=now)
            store.add_event(session, models.EventKind.RENDER_ERROR, commit=sha, message=text, now=now)
        return SyncOutcome(commit=sha, error=text)


class _Announcer:
    """Wakes, from a worker thread, the watchers of clusters whose new desired state is committed."""

    def __init__(self, loop: asyncio.AbstractEventLoop, notifier: notify.Notifier) -> None:
        self._loop = loop
        self._notifier = notifier
        self._done: set[str] = set()

    def __call__(self, names: Iterable[str]) -> None:
        batch = [name for name in names if name not in self._done]
        if batch:
            self._done.update(batch)
            self._loop.call_soon_threadsafe(self._notifier.notify, batch)

    def rest(self, names: Iterable[str]) -> list[str]:
        """Of ``names``, those not woken yet."""
        return [name for name in names if name not in self._done]


def _may_hold(render: pipeline.ClusterRender, token: bytes) -> bool:
    """False when ``token`` (a JSON key or value, quoted) is nowhere in the bundle's encoded bytes, so no
    object can have it: one scan in C instead of walking every object of every cluster (10,000 of them)."""
    return render.data is None or token in render.data


def _refuse_unopenable_secrets(fleet_render: pipeline.FleetRender,
                               age_keys: Mapping[str, tuple[str | None, str | None]], *,
                               sealed_only: bool) -> None:
    """Turn a bundle carrying a sealed secret its cluster cannot open into that cluster's render error.

    The spoke would refuse it anyway; refused here, the cluster keeps its last good bundle and the
    reason shows in ``convoy status`` at once, naming the object and the app. Under ``secrets:
    sealedOnly`` a plaintext Secret is a render error too.
    """
    for name, render in list(fleet_render.clusters.items()):
        if render.bundle is None:
            continue
        recipient, previous = age_keys.get(name, (None, None))
        problems = (sealed.recipient_problems(render.bundle, cluster=name, recipient=recipient, previous=previous)
                    if _may_hold(render, b'"sops"') else [])
        if sealed_only and _may_hold(render, b'"Secret"'):
            problems += [(app, f"{ref}: plaintext Secret, but fleet.yaml says secrets: sealedOnly; seal it with "
                               "convoy seal") for app, ref in sealed.plaintext_secrets(render.bundle)]
        if problems:
            fleet_render.clusters[name] = dataclasses.replace(
                render, bundle=None, data=None, digest=None,
                errors=tuple(pipeline.AppError(cluster=name, app=app, file=None, message=message)
                             for app, message in problems))


def render_limits(settings: settings_mod.HubSettings) -> pipeline.RenderLimits:
    """The render bounds the hub's settings ask for."""
    return pipeline.RenderLimits(max_bundle_bytes=settings.max_bundle_bytes, max_file_bytes=settings.max_file_bytes,
                                 max_fleet_file_bytes=settings.max_fleet_file_bytes,
                                 max_build_bytes=settings.max_build_bytes,
                                 max_bundle_objects=settings.max_bundle_objects,
                                 max_render_seconds=settings.max_render_seconds,
                                 max_fleet_render_seconds=settings.max_fleet_render_seconds)


def _batches(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _seen(session: Any, sha: str, now: dt.datetime) -> None:
    if store.get_state(session, store.StateKey.FLEET_COMMIT) != sha:
        store.set_state(session, store.StateKey.FLEET_COMMIT, sha, now=now)
        store.set_state(session, store.StateKey.FLEET_COMMIT_SEEN_AT, now.isoformat(), now=now)


def _aware(when: dt.datetime) -> dt.datetime:
    # SQLite hands datetimes back naive; everything the hub stores is UTC.
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def _app_error_doc(error: pipeline.AppError) -> dict[str, Any]:
    return {"app": error.app, "file": error.file, "message": error.message}


def _outcome_label(outcome: SyncOutcome) -> str:
    if outcome.error:
        return "error"
    if outcome.refused:
        return "refused"
    if outcome.skipped:
        return "unchanged"
    return "partial" if outcome.render_errors else "ok"


def _log_outcome(reason: str, outcome: SyncOutcome) -> None:
    if outcome.error or outcome.refused:
        log.warning("sync (%s): %s", reason, outcome.message)
    elif not outcome.skipped:
        log.info("sync (%s): %s", reason, outcome.message)
    for name, errors in sorted(outcome.render_errors.items())[:10]:
        log.warning("cluster %s keeps its last good bundle: %s", name, errors[0])
