"""The spoke agent: ``reconcile_once`` and the loop around it.

``Agent.reconcile_once`` reads top to bottom: fetch (from the hub, or the in-cluster copy) → verify
(digest and the hub's signature) → apply (staged SSA) → prune (inventory) → save the inventory →
assess health → report. Everything else in this module feeds it or follows up on it:

* a hub thread keeps one ``Watch`` stream open (registering first if no credential is stored) and
  reconnects with full-jitter exponential backoff, putting desired states on the agent's queue; a
  credential the hub rotates to arrives on that stream, is stored in the state Secret, and the
  thread reconnects with it at once;
* the drift watch (``watching.DriftWatch``) puts live changes on the same queue; the loop compares
  them with the applied manifests (``drift.diff``) and corrects or reports them by policy. The
  status carries the current drift set only (what differs now and is left so); every detection and
  correction is also a ``report.DriftEvent`` handed to the reporter for the hub's history;
* a ``report.Reporter`` sends the latest status, coalesced, with heartbeats and a backlog count;
* a tiny HTTP server answers ``/healthz`` for the Deployment's probes.

One thread (the loop) owns the state; the others only enqueue. A bundle that fails verification is
refused and reported; the last good one stays in force.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import http.server
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from protos import bundle as bundles
from protos.objects import ObjectRef
from protos.status import Action, DriftAction, DriftPolicy, HealthStatus, Phase
from spoke import backoff, credentials, drift, health, hubclient, inventory, report, watching
from spoke.apply import applying, engine, ordering, pruning, waiting
from spoke.apply.changeset import ChangeSet, ChangeSetEntry
from spoke.cluster import ClusterClient, errors
from spoke.settings import SpokeSettings

__all__ = ["Agent", "AgentError"]

log = logging.getLogger(__name__)

#: how often the loop wakes when nothing happens (health timeouts, resync)
TICK = 0.5
#: seconds between re-applies while objects failed or wait for their dependencies
RETRY_INTERVAL = 15.0


class AgentError(Exception):
    """The agent cannot start (e.g. no credential and no token)."""


@dataclasses.dataclass(frozen=True)
class _Stop:
    pass


@dataclasses.dataclass(frozen=True)
class _Source:
    """A bundle to enforce: where it came from and its integrity data."""

    digest: str
    commit: str
    signature: bytes
    data: bytes | None = None        #: canonical bytes when already at hand (the in-cluster copy)
    inline: hubclient.Desired | None = None   #: the notice, when the hub sent the bundle inside it


@dataclasses.dataclass
class _State:
    """What the loop knows; only the loop thread touches it."""

    bundle: dict[str, Any] | None = None
    digest: str = ""
    commit: str = ""
    signature: bytes = b""
    desired: dict[ObjectRef, engine.Desired] = dataclasses.field(default_factory=dict)
    policies: dict[str, DriftPolicy] = dataclasses.field(default_factory=dict)
    actions: dict[ObjectRef, ChangeSetEntry] = dataclasses.field(default_factory=dict)
    live: dict[ObjectRef, dict[str, Any]] = dataclasses.field(default_factory=dict)
    #: the current drift set: objects that differ now and are left so (policy, pause, failed correction)
    drift: dict[ObjectRef, report.DriftRecord] = dataclasses.field(default_factory=dict)
    errors: list[str] = dataclasses.field(default_factory=list)
    refused: str = ""                  #: why the newest desired bundle was refused, if it was
    applied_at: float = 0.0
    paused: bool = False
    pending: hubclient.Desired | None = None
    inventory: inventory.Inventory | None = None
    last_resync: float = 0.0
    last_phase: Phase = Phase.UNKNOWN
    retry: _Source | None = None        #: a bundle to try again (hub or API away last time)


class Agent:
    """One spoke. ``run()`` blocks until ``stop()``; ``start()`` runs it in a thread."""

    def __init__(self, settings: SpokeSettings, *, cluster: ClusterClient,
                 hub_factory: Callable[..., hubclient.HubClient] = hubclient.HubClient) -> None:
        self.settings = settings
        self.client = cluster
        self._hub_factory = hub_factory
        self._queue: queue.Queue[Any] = queue.Queue()
        self._stop = threading.Event()
        self._state = _State()
        self._creds_store = credentials.CredentialStore(cluster, namespace=settings.namespace,
                                                        name=settings.state_secret)
        self._inventory_store = inventory.InventoryStore(cluster, namespace=settings.namespace,
                                                         name=settings.inventory_name,
                                                         max_bundle_bytes=settings.max_bundle_bytes)
        self._creds: credentials.Credentials | None = None
        self._hub: hubclient.HubClient | None = None
        self._hub_lock = threading.Lock()
        self.reporter = report.Reporter(self._send_report, heartbeat=settings.heartbeat,
                                        retry_cap=settings.reconnect_cap)
        self._watch = watching.DriftWatch(cluster, cluster=settings.cluster, sink=self._queue.put,
                                          backoff_cap=settings.reconnect_cap)
        self._threads: list[threading.Thread] = []
        self._http: http.server.ThreadingHTTPServer | None = None
        self.health_port = 0
        self.last_loop = time.monotonic()
        self.hub_connected = threading.Event()
        self.ready = threading.Event()   #: set once the in-cluster state is loaded and enforced

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> Agent:
        thread = threading.Thread(target=self.run, name="convoy-agent", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._queue.put(_Stop())
        with self._hub_lock:
            if self._hub is not None:
                self._hub.cancel_watch()
        for thread in self._threads:
            thread.join(timeout)

    def run(self) -> None:
        try:
            self._serve_health()
            self._startup()
            self.reporter.start()
            hub_thread = threading.Thread(target=self._hub_loop, name="convoy-hub", daemon=True)
            hub_thread.start()
            self._threads.append(hub_thread)
            self._loop()
        finally:
            self._watch.stop()
            self.reporter.stop(flush=True, timeout=2.0)
            with self._hub_lock:
                if self._hub is not None:
                    self._hub.close()
            if self._http is not None:
                self._http.shutdown()
                self._http.server_close()

    @property
    def status(self) -> report.Status:
        """The status as last built (the one the reporter will send)."""
        return self.reporter.latest or report.Status(phase=Phase.UNKNOWN)

    # -- startup: credentials and the in-cluster copy -------------------------------------------

    def _startup(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                self._load_and_enforce()
                return
            except errors.ClusterError as exc:  # the API server may come up after the spoke
                log.warning("cannot read the spoke's state from the cluster: %s; retrying", exc)
                self._stop.wait(backoff.full_jitter(attempt, base=0.5, cap=self.settings.reconnect_cap))
                attempt += 1

    def _load_and_enforce(self) -> None:
        self._ensure_namespace()
        self._creds = self._creds_store.load()
        try:
            stored = self._inventory_store.load()
        except ValueError as exc:
            log.error("%s", exc)
            stored = None
        self._state.inventory = stored
        if stored is not None and stored.bundle_bytes and self._creds is not None:
            # A restart (maybe during a hub outage): keep enforcing what was applied last.
            log.info("enforcing the in-cluster copy of bundle %s", stored.digest)
            self.reconcile_once(_Source(digest=stored.digest, commit=stored.commit, signature=stored.signature,
                                        data=stored.bundle_bytes))
        self.ready.set()

    def _ensure_namespace(self) -> None:
        try:
            if self.client.get("v1", "Namespace", "", self.settings.namespace) is None:
                self.client.apply({"apiVersion": "v1", "kind": "Namespace",
                                   "metadata": {"name": self.settings.namespace}}, manager="convoy-spoke")
        except errors.ClusterError as exc:
            log.warning("cannot make sure namespace %s exists: %s", self.settings.namespace, exc)

    # -- the hub side ---------------------------------------------------------------------------------

    def _connect(self) -> hubclient.HubClient:
        s = self.settings
        creds = self._creds
        if creds is not None:
            return self._hub_factory(s.hub, ca_pem=creds.hub_ca_pem or None, credential=creds.credential,
                                     insecure=s.insecure)
        if not s.token:
            raise AgentError(f"{self._creds_store.ref}: no stored credential and no bootstrap token; give --token "
                             f"or CONVOY_SPOKE_TOKEN")
        ca_pem: bytes | None = None
        pinned = False
        if not s.insecure:
            if s.hub_ca_file:
                ca_pem = Path(s.hub_ca_file).read_bytes()
            elif s.ca_fingerprint:
                # The pinned CA is found in the hub's chain before anything is sent; the channel that
                # carries the bootstrap token trusts that CA alone.
                ca_pem = hubclient.first_contact(s.hub, s.ca_fingerprint).root_pem
                pinned = True
            else:
                raise hubclient.HubTrustError(s.hub, "no way to trust the hub: give a join token (it carries the "
                                                     "CA fingerprint), --hub-ca, or --insecure")
        hub = self._hub_factory(s.hub, ca_pem=ca_pem, insecure=s.insecure)
        try:
            reg = hub.register(token=s.token, cluster=s.cluster, labels=s.labels)
            if len(reg.signing_key) != 32:
                raise hubclient.HubRefused(s.hub, "Register returned no usable bundle signing key")
        finally:
            hub.close()
        # Pinned: keep trusting exactly the CA the join token named, whatever Register says.
        hub_ca = ca_pem if pinned and ca_pem else reg.hub_ca_pem or ca_pem or b""
        creds = credentials.Credentials(cluster=reg.cluster or s.cluster, hub=s.hub, credential=reg.credential,
                                        hub_ca_pem=hub_ca, signing_key=reg.signing_key)
        self._creds_store.save(creds)
        self._creds = creds
        log.info("registered as cluster %s; credential stored in %s", creds.cluster, self._creds_store.ref)
        return self._hub_factory(s.hub, ca_pem=creds.hub_ca_pem or None, credential=creds.credential,
                                 insecure=s.insecure)

    def _hub_loop(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                with self._hub_lock:
                    if self._hub is None:
                        self._hub = self._connect()
                    hub = self._hub
                rotated = False
                for event in hub.watch(applied_digest=self._state.digest):
                    if not self.hub_connected.is_set():
                        log.info("connected to hub %s", self.settings.hub)
                    self.hub_connected.set()
                    attempt = 0
                    if isinstance(event, hubclient.Desired):
                        self._queue.put(event)
                    elif isinstance(event, hubclient.CredentialRotation):
                        # Either way this stream (opened with the old credential) ends: stored, the
                        # spoke reconnects at once with the new one, which retires the old one; not
                        # stored, it reconnects with the old one after the backoff and gets another.
                        rotated = self._rotate_credential(hub, event)
                        hub.cancel_watch()
                        break
                if rotated:
                    self.hub_connected.clear()
                    continue
            except hubclient.HubTrustError as exc:
                log.error("%s", exc)
            except (hubclient.HubError, errors.ClusterError, AgentError, OSError) as exc:
                if not self._stop.is_set():
                    log.warning("%s; reconnecting", exc)
            self.hub_connected.clear()
            if self._stop.is_set():
                return
            self._stop.wait(backoff.full_jitter(attempt, base=0.5, cap=self.settings.reconnect_cap))
            attempt += 1

    def _rotate_credential(self, hub: hubclient.HubClient, rotation: hubclient.CredentialRotation) -> bool:
        """Store the credential the hub rotated to, then use it; False if it could not be stored.

        Stored first: a spoke that switched without storing would lose its identity at the next
        restart. When the Secret cannot be written, the spoke keeps the old credential and reconnects
        with it; the hub then hands over another new one (the old one stays valid meanwhile).
        """
        creds = self._creds
        if creds is None:
            return False
        new = dataclasses.replace(creds, credential=rotation.credential)
        try:
            self._creds_store.save(new)
        except errors.ClusterError as exc:
            log.warning("cannot store the rotated credential in %s: %s; keeping the old one for now",
                        self._creds_store.ref, exc)
            return False
        self._creds = new
        hub.with_credential(new.credential)
        log.info("hub rotated the cluster credential; the new one is stored in %s", self._creds_store.ref)
        return True

    def _send_report(self, status: report.Status, backlog: int) -> None:
        hub = self._hub
        if hub is None or self._creds is None:
            raise hubclient.HubUnavailable(self.settings.hub, "not connected")
        hub.report(status, backlog)

    # -- the loop -------------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.last_loop = time.monotonic()
            try:
                item = self._queue.get(timeout=TICK)
            except queue.Empty:
                item = None
            batch = [item] if item is not None else []
            while True:  # drain: a burst of events is handled, and reported, once
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if any(isinstance(i, _Stop) for i in batch):
                return
            desired = [i for i in batch if isinstance(i, hubclient.Desired)]
            live = [i for i in batch if isinstance(i, watching.LiveChange | watching.Resync)]
            try:
                if desired:
                    self._on_desired(desired[-1])
                if live:
                    self._on_live(live)
                self._on_tick()
            except errors.ClusterError as exc:
                log.warning("%s", exc)
                self._state.errors = [str(exc)]
                self._publish()
            except Exception:  # a bug must not stop enforcement of everything else; it is logged in full
                log.exception("unexpected error in the agent loop")

    def _on_desired(self, desired: hubclient.Desired) -> None:
        st = self._state
        was_paused, st.paused = st.paused, desired.paused
        if desired.paused:
            st.pending = desired
            self._publish()
            return
        st.pending = None
        if desired.digest and desired.digest != st.digest:
            self.reconcile_once(_Source(digest=desired.digest, commit=desired.commit, signature=desired.signature,
                                        inline=desired if desired.inline_bundle else None))
            return
        st.commit = desired.commit or st.commit
        if was_paused:
            # Drift seen while paused was only reported; now it is handled by policy.
            for ref in list(st.drift):
                d = st.desired.get(ref)
                if d is not None:
                    self._check_drift(d, self.client.get(d.api_version, ref.kind, ref.namespace, ref.name))
        self._publish()

    def _on_tick(self) -> None:
        st = self._state
        now = time.monotonic()
        # Failed objects are retried now and then; a full re-apply would also overwrite drift that the
        # `report` policy must leave alone, so it only runs while none is recorded.
        retry_due = now - st.last_resync > min(self.settings.resync_interval, RETRY_INTERVAL)
        if st.retry is not None and retry_due and not st.paused:
            self.reconcile_once(st.retry)  # a bundle not fetched or applied because the hub or API was away
            return
        if st.bundle is None:
            return
        waiting = any(e.action == Action.WAITING for e in st.actions.values())
        if (st.errors or waiting) and retry_due and not st.paused and not st.drift:
            self.reconcile_once(_Source(digest=st.digest, commit=st.commit, signature=st.signature))
            return
        # Only the health timeout changes the status with time alone; anything else arrives as an
        # event, so an idle spoke does not rebuild its status twice a second.
        if st.last_phase == Phase.PROGRESSING and now - st.applied_at > self.settings.health_timeout:
            self._publish()

    # -- reconcile_once -----------------------------------------------------------------------------

    def reconcile_once(self, source: _Source) -> report.Status:
        """fetch → verify → apply → prune → save inventory → assess → report."""
        st = self._state
        st.last_resync = time.monotonic()
        st.retry = None
        self.reporter.submit(dataclasses.replace(self._build_status(), phase=Phase.APPLYING))
        # fetch + verify
        try:
            bundle, data = self._fetch_and_verify(source)
        except bundles.BundleError as exc:  # the same bytes would fail again: refuse until a new digest comes
            st.refused = f"bundle {source.digest} refused: {exc}"
            log.error("%s", st.refused)
            return self._publish()
        except hubclient.HubError as exc:
            st.retry = source
            st.errors = [f"bundle {source.digest} not fetched: {exc}"]
            log.warning("%s", st.errors[0])
            return self._publish()
        st.refused = ""
        # apply
        options = engine.EngineOptions(cluster=self.settings.cluster, dependency_timeout=self.settings.health_timeout)
        try:
            result = engine.apply_bundle(self.client, bundle, previous=st.inventory, options=options)
        except Exception as exc:  # an OrderingError or a cluster outage: report it, keep the last state
            st.errors = [f"bundle {source.digest}: {exc}"]
            if not isinstance(exc, ordering.OrderingError):
                st.retry = source
            log.error("%s", st.errors[0])
            return self._publish()
        # prune
        previous_entries = list(st.inventory.entries.values()) if st.inventory is not None else []
        pruned = pruning.prune_all(self.client, inventory=previous_entries, desired=result.desired,
                                   cluster=self.settings.cluster)
        changes = ChangeSet(list(result.changeset) + pruned.entries)
        # save inventory (with the bundle, so a restart can enforce it without the hub)
        new_inventory = inventory.Inventory(
            entries={e.ref: e for e in [*result.inventory, *pruned.retained]}, digest=source.digest,
            commit=source.commit, signature=source.signature, bundle_bytes=data)
        try:
            self._inventory_store.save(new_inventory)
        except errors.ClusterError as exc:
            result.errors.append(f"{self._inventory_store.ref}: cannot save the inventory: {exc.detail}")
        # take it into force
        previous_digest = st.digest
        st.inventory = new_inventory
        st.bundle, st.digest, st.commit, st.signature = bundle, source.digest, source.commit, source.signature
        st.desired = result.desired
        st.policies, policy_errors = _policies(bundle)
        st.actions = {e.ref: e for e in changes}
        st.errors = result.errors + policy_errors + [str(e) for e in pruned.entries if e.action == Action.FAILED]
        # The apply wrote every drifted object back (an object that differs from its manifest is never
        # "unchanged"), so drift left in place until now is gone: superseded by this bundle.
        self.reporter.record([
            report.DriftEvent(r.ref, r.app, DriftAction.SUPERSEDED, r.kind_of_drift, r.fields, r.managers)
            for r in st.drift.values()
            if r.ref in st.actions and st.actions[r.ref].action != Action.FAILED])
        st.drift = {}
        if source.digest != previous_digest:
            st.applied_at = time.monotonic()  # the health timeout runs from the first apply of a bundle
        # assess: the engine's answers are the live objects as of now; the drift watch keeps them current
        self._watch.set_kinds({(d.api_version, ref.kind) for ref, d in st.desired.items()})
        st.live = dict(result.live)
        log.info("applied %s: %s", source.digest, _summary(changes))
        return self._publish()

    def _fetch_and_verify(self, source: _Source) -> tuple[dict[str, Any], bytes]:
        creds = self._creds
        if creds is None or len(creds.signing_key) != 32:
            raise bundles.BundleIntegrityError(f"bundle {source.digest}: no hub signing key to verify it with")
        data = source.data
        signature = source.signature
        st = self._state
        if data is None and st.bundle is not None and source.digest == st.digest and st.inventory is not None:
            data = st.inventory.bundle_bytes
        if data is None and source.inline is not None:
            carried = hubclient.inline_bundle(source.inline, max_size=self.settings.max_bundle_bytes)
            if carried is not None:
                data = carried.data
        if data is None:
            hub = self._hub
            if hub is None:
                raise hubclient.HubUnavailable(self.settings.hub, "not connected")
            fetched = hub.get_bundle(source.digest, max_size=self.settings.max_bundle_bytes)
            data = fetched.data
            signature = fetched.signature or signature
        bundle = bundles.decode(data, expected_digest=source.digest)
        bundles.verify_signature(creds.signing_key, source.digest, signature)
        return bundle, data

    # -- drift --------------------------------------------------------------------------------------

    def _on_live(self, events: list[watching.LiveChange | watching.Resync]) -> None:
        st = self._state
        touched: dict[ObjectRef, dict[str, Any] | None] = {}
        for event in events:
            if isinstance(event, watching.Resync):
                for ref, d in st.desired.items():
                    if (d.api_version, ref.kind) == (event.api_version, event.kind):
                        touched[ref] = event.objects.get(ref)
            elif event.ref in st.desired:
                touched[event.ref] = None if event.type == "DELETED" else event.object
        if not touched:
            return
        for ref, obj in touched.items():
            d = st.desired[ref]
            if obj is not None and _older(obj, st.live.get(ref)):
                # A stale event (e.g. a controller's status write queued before our own correction):
                # judging it would "correct" the same drift twice.
                continue
            if obj is None:
                # Deleted, or moved out of our label selector: look before acting.
                obj = self.client.get(d.api_version, ref.kind, ref.namespace, ref.name)
            if obj is not None:
                st.live[ref] = obj
            else:
                st.live.pop(ref, None)
            self._check_drift(d, obj)
        self._publish()

    def _check_drift(self, d: engine.Desired, live: dict[str, Any] | None) -> None:
        st = self._state
        entry = st.actions.get(d.ref)
        if entry is not None and entry.action in (Action.FAILED, Action.WAITING):
            return  # not enforced in the first place (failed, or its app waits for another); a retry will
        mode = str(((d.manifest.get("metadata") or {}).get("annotations") or {}).get(bundles.ANNOTATION_SSA, ""))
        if mode == applying.SSA_IGNORE or (mode == applying.SSA_IF_NOT_PRESENT and live is not None):
            return  # never updated by Convoy, so a change is not drift (a deleted IfNotPresent object is)
        fields: tuple[drift.FieldDiff, ...] = ()
        managers: tuple[str, ...] = ()
        known = st.drift.get(d.ref)
        if live is None:
            kind_of_drift = "deleted"  # who deleted it is not on record anywhere the spoke can read
        else:
            diffs = drift.diff(d.manifest, live, manager=applying.MANAGER)
            if not diffs:
                if st.drift.pop(d.ref, None) is not None:  # put back by someone else: no longer drift
                    self.reporter.record([report.DriftEvent(d.ref, d.app, DriftAction.REVERTED, known.kind_of_drift
                                                            if known else "modified", known.fields if known else ())])
                    log.info("drift on %s reverted (the live object matches the bundle again)", d.ref)
                return
            kind_of_drift, fields = "modified", tuple(diffs)
            managers = drift.changed_by((live.get("metadata") or {}).get("managedFields"), diffs,
                                        manager=applying.MANAGER)
        policy = st.policies.get(d.app, self.settings.drift_policy)
        now = dt.datetime.now(dt.UTC)
        record = report.DriftRecord(d.ref, d.app, kind_of_drift, fields, now, managers)
        same_as_known = known is not None and (known.kind_of_drift, known.fields) == (kind_of_drift, fields)
        if st.paused or policy == DriftPolicy.REPORT:
            if not same_as_known:  # a resync or an echo of the same change is not a new detection
                st.drift[d.ref] = record
                self.reporter.record([self._drift_event(record, DriftAction.REPORTED)])
                log.info("drift on %s reported (%s)", d.ref, _fields_text(record))
            return
        detected = self._drift_event(record, DriftAction.DETECTED)
        applied = applying.apply_one(
            self.client, d.manifest, live=live, manifest_hash=d.hash, previous_hash=None,
            options=applying.ApplyOptions(cluster=self.settings.cluster))
        if applied.entry.action != Action.FAILED:
            st.drift.pop(d.ref, None)
            if applied.live is not None:
                st.live[d.ref] = applied.live
            action = DriftAction.RECREATED if kind_of_drift == "deleted" else DriftAction.CORRECTED
            self.reporter.record([detected, self._drift_event(record, action)])
            log.info("drift %s on %s (%s)", action, d.ref, _fields_text(record))
        else:
            st.drift[d.ref] = record
            if not same_as_known:  # a correction failing again on the next event is no news
                self.reporter.record([detected, self._drift_event(record, DriftAction.FAILED,
                                                                  message=applied.entry.message)])
            log.warning("drift on %s not corrected: %s", d.ref, applied.entry.message)

    @staticmethod
    def _drift_event(record: report.DriftRecord, action: DriftAction, *, message: str = "") -> report.DriftEvent:
        return report.DriftEvent(record.ref, record.app, action, record.kind_of_drift, record.fields,
                                 record.managers, message=message)

    # -- status -------------------------------------------------------------------------------------

    def _publish(self) -> report.Status:
        status = self._build_status()
        self._state.last_phase = status.phase
        self.reporter.submit(status)
        return status

    def _build_status(self) -> report.Status:
        st = self._state
        objects = []
        healths = waiting.assess(st.live, st.desired)
        for ref, d in sorted(st.desired.items()):
            entry = st.actions.get(ref)
            result = healths[ref]
            if entry is not None and entry.action in (Action.SKIPPED, Action.WAITING) and ref not in st.live:
                result = health.HealthResult(HealthStatus.UNKNOWN, entry.message)
            objects.append(report.ObjectStatus(
                ref=ref, app=d.app, action=entry.action if entry else None, health=result.status,
                reason=result.reason, error=entry.message if entry and entry.action == Action.FAILED else ""))
        for ref, entry in sorted(st.actions.items()):
            if ref not in st.desired:
                objects.append(report.ObjectStatus(ref=ref, app=entry.app, action=entry.action,
                                                   health=HealthStatus.UNKNOWN, reason=entry.message,
                                                   error=entry.message if entry.action == Action.FAILED else ""))
        errors_ = list(st.errors) + ([st.refused] if st.refused else [])
        phase, message = self._phase(objects)
        return report.Status(phase=phase, commit=st.commit, digest=st.digest, objects=tuple(objects),
                             drift=tuple(st.drift.values()), errors=tuple(errors_),
                             message=message)

    def _phase(self, objects: list[report.ObjectStatus]) -> tuple[Phase, str]:
        st = self._state
        phases = []
        message = ""
        if st.bundle is None:
            phases.append(Phase.FAILED if st.refused else Phase.PAUSED if st.paused else Phase.UNKNOWN)
            message = st.refused
        not_current = [o for o in objects if o.ref in st.desired and o.health != HealthStatus.CURRENT
                       and o.action not in (Action.FAILED, Action.SKIPPED)]
        failed_health = [o for o in not_current if o.health == HealthStatus.FAILED]
        timed_out = time.monotonic() - st.applied_at > self.settings.health_timeout
        if st.errors or st.refused or any(o.action == Action.FAILED for o in objects):
            phases.append(Phase.FAILED)
            message = message or (st.errors[0] if st.errors else st.refused)
        if failed_health or (not_current and timed_out):
            phases.append(Phase.DEGRADED)
            worst = failed_health or not_current
            message = message or "; ".join(f"{o.ref}: {o.health} {o.reason}".strip() for o in worst[:5])
        elif not_current:
            phases.append(Phase.PROGRESSING)
        if st.drift:
            phases.append(Phase.DRIFTED)
        if st.paused:
            phases.append(Phase.PAUSED)
        phase = Phase.worst(phases) if phases else Phase.READY
        return phase, message

    # -- /healthz ---------------------------------------------------------------------------------------

    def _serve_health(self) -> None:
        agent = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the stdlib's name
                alive = time.monotonic() - agent.last_loop < max(60.0, 10 * TICK)
                if self.path in ("/healthz", "/livez"):
                    code = 200 if alive else 503
                elif self.path == "/readyz":
                    code = 200 if alive and agent.ready.is_set() else 503
                else:
                    code = 404
                body = b"ok\n" if code == 200 else b"not ok\n"
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # probes every few seconds would flood the log

        self._http = http.server.ThreadingHTTPServer((self.settings.health_host, self.settings.health_port), Handler)
        self._http.daemon_threads = True
        self.health_port = int(self._http.server_address[1])
        thread = threading.Thread(target=self._http.serve_forever, name="convoy-healthz", daemon=True)
        thread.start()


def _policies(bundle: Mapping[str, Any]) -> tuple[dict[str, DriftPolicy], list[str]]:
    """Per-app drift policy overrides; an unknown value keeps the spoke's default and is reported."""
    policies: dict[str, DriftPolicy] = {}
    problems: list[str] = []
    for app in bundle.get("apps") or []:
        value = app.get("driftPolicy")
        if not value:
            continue
        try:
            policies[str(app.get("name"))] = DriftPolicy(value)
        except ValueError:
            problems.append(f"app {app.get('name')}: driftPolicy {value!r} is not one of "
                            f"{', '.join(p.value for p in DriftPolicy)}; using the spoke's default")
    return policies, problems


def _fields_text(record: report.DriftRecord) -> str:
    what = "; ".join(str(f) for f in record.fields[:5]) or record.kind_of_drift
    return what + (f"; changed by {', '.join(record.managers)}" if record.managers else "")


def _summary(changes: ChangeSet) -> str:
    tally: dict[str, int] = {}
    for entry in changes:
        tally[entry.action] = tally.get(entry.action, 0) + 1
    return ", ".join(f"{n} {a}" for a, n in sorted(tally.items())) or "nothing to do"


def _older(event_obj: dict[str, Any], known: dict[str, Any] | None) -> bool:
    """True when ``event_obj`` is an older revision than the live copy the spoke already holds.

    resourceVersions are opaque in general, but every API server (etcd revisions) and kubesim hands out
    decimal counters; when either is not a number, nothing is skipped.
    """
    if known is None:
        return False
    new = str((event_obj.get("metadata") or {}).get("resourceVersion", ""))
    old = str((known.get("metadata") or {}).get("resourceVersion", ""))
    return new.isdigit() and old.isdigit() and int(new) < int(old)
