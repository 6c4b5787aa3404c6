"""The spoke agent: ``reconcile_once`` and the loop around it.

``Agent.reconcile_once`` reads top to bottom: fetch (from the hub, or the in-cluster copy) → verify
(digest and the hub's signature) → record the intent (the inventory names the new bundle and every
object it may create, before any is applied: a kill mid-apply restarts on it) → apply (staged SSA) →
prune (inventory) → save the inventory → assess health → report. Everything else feeds it or follows
up on it, each in its own module:

* a hub thread keeps one ``Watch`` stream open (registering first if no credential is stored:
  ``registration``) and reconnects with full-jitter backoff (``backoff``), putting desired states on
  the agent's queue; a credential the hub rotates to arrives on that stream, is stored in the state
  Secret (``registration.rotate``), and the thread reconnects with it at once;
* the drift watch (``watching.DriftWatch``) puts live changes on the same queue; the loop hands each
  changed object to ``drift_policy.enforce``, which corrects or reports it by policy. The status
  carries the current drift set only (what differs now and is left so); every detection and
  correction is also a ``report.DriftEvent`` handed to the reporter for the hub's history;
* the status is computed by the pure ``phase``; a ``report.Reporter`` sends the latest one,
  coalesced, with heartbeats and a backlog count;
* ``healthz`` answers the Deployment's probes.

One thread (the loop) owns the state; the others only enqueue. A bundle that fails verification is
refused and reported; the last good one stays in force.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from protos import bundle as bundles
from protos import ignoring, sops
from protos.objects import ObjectRef
from protos.status import Action, DriftAction, DriftPolicy, Phase
from spoke import (
    backoff,
    credentials,
    drift_policy,
    healthz,
    hubclient,
    inventory,
    phase,
    pulling,
    registration,
    report,
    sealing,
    watching,
)
from spoke.apply import engine, ordering, pruning
from spoke.apply.changeset import ChangeSet, ChangeSetEntry
from spoke.cluster import ClusterClient, errors
from spoke.settings import SpokeSettings

__all__ = ["Agent"]

log = logging.getLogger(__name__)

#: what to do when the hub refuses the stored credential (logged with the refusal)
CREDENTIAL_REFUSED_HINT = ("to repair: delete that Secret and restart the spoke with a new bootstrap token "
                           "(`convoy token create --cluster NAME`)")
#: how often the loop wakes when nothing happens (health timeouts, resync)
TICK = 0.5
#: seconds between re-applies while objects failed or wait for their dependencies
RETRY_INTERVAL = 15.0
#: the first backoff window after a failure to reach the hub or the API server, seconds (then doubling)
BACKOFF_BASE = 0.5


@dataclasses.dataclass(frozen=True)
class _Stop:
    pass


def _puller(settings: SpokeSettings) -> pulling.Puller | None:
    """The registry fetcher of ``--bundle-source``, or None (bundles come from the hub only)."""
    if not settings.bundle_source or settings.bundle_source == "none":
        return None
    source = pulling.parse_source(settings.bundle_source, insecure=settings.bundle_source_insecure)
    return pulling.Puller(source, cluster=settings.cluster, hub_host=settings.hub.rsplit(":", 1)[0],
                          docker_config=Path(settings.registry_config) if settings.registry_config else None)


@dataclasses.dataclass(frozen=True)
class _Source:
    """A bundle to enforce: where it came from and its integrity data."""

    digest: str
    commit: str
    signature: bytes
    data: bytes | None = None        #: canonical bytes when already at hand (the in-cluster copy)
    inline: hubclient.Desired | None = None   #: the notice, when the hub sent the bundle inside it
    oci_reference: str = ""          #: where the hub pushed it (REGISTRY/REPOSITORY@sha256:...), or ""


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
                 hub_factory: registration.HubFactory = hubclient.HubClient,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.settings = settings
        self._clock = clock   #: wall time, for how long a replaced age key is kept
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
        self._inventory_problem = ""   #: damage found in the inventory Secret at start, until one is saved
        self._state_problem = ""   #: the state Secret missing with a bundle to enforce, until the spoke registers
        self._hub: hubclient.HubClient | None = None
        self._hub_lock = threading.Lock()
        self._hub_index = 0   #: which of settings.hub_addresses the spoke dials now
        self.reporter = report.Reporter(self._send_report, heartbeat=settings.heartbeat,
                                        retry_cap=settings.reconnect_cap)
        self._watch = watching.DriftWatch(cluster, cluster=settings.cluster, sink=self._queue.put,
                                          backoff_cap=settings.reconnect_cap)
        self._threads: list[threading.Thread] = []
        self._http: healthz.HealthServer | None = None
        self.health_port = 0
        self.last_loop = time.monotonic()
        self.hub_connected = threading.Event()
        #: the hub's heartbeat interval as its stream last said; a stream silent for 3 of them is dead
        self.hub_heartbeat: float | None = None
        self.ready = threading.Event()   #: set once the in-cluster state is loaded and enforced
        self._puller = _puller(settings)
        #: Pullers for the registries the hub announced (keyed by registry/repository), when the operator
        #: set no --bundle-source; --bundle-source none ignores announcements.
        self._announced: dict[str, pulling.Puller] = {}
        self.bundle_pulls = {True: 0, False: 0}  #: bundles fetched from --bundle-source: ok / fell back to the hub

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
            self._http = healthz.HealthServer(self.settings.health_host, self.settings.health_port,
                                              alive=self._alive, ready=self.ready.is_set, problems=self.problems)
            self.health_port = self._http.port
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
                self._http.close()

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
                self._stop.wait(backoff.full_jitter(attempt, base=BACKOFF_BASE, cap=self.settings.reconnect_cap))
                attempt += 1

    def _load_and_enforce(self) -> None:
        self._ensure_namespace()
        self._creds = self._creds_store.load()
        if self._creds is not None and self._creds.problems:
            # Named in the log now and in every status report (the hub hears once reachable).
            for problem in self._creds.problems:
                log.error("%s", problem)
        if self._creds is not None and not self._creds.age_identity:
            # Registered before sealed secrets: make the cluster's key now; Watch tells the hub its public half.
            identity, _ = sops.generate_identity()
            self._creds_store.save_identity(identity)
            self._creds = dataclasses.replace(self._creds, age_identity=identity)
        self._retire_previous_age_key()
        try:
            stored = self._inventory_store.load()
        except ValueError as exc:
            log.error("%s", exc)
            stored = self._rebuild_inventory(f"{exc}", damaged=True)
        else:
            if stored is None:
                stored = self._rebuild_inventory(f"{self._inventory_store.ref}: no inventory (first start, or deleted)",
                                                 damaged=False)
        self._state.inventory = stored
        if stored is not None and stored.bundle_bytes and self._creds is None:
            # Said once here, and by the health endpoint and every status report until the spoke registers.
            self._state_problem = (
                f"{self._creds_store.ref} is missing: no hub signing key to verify the in-cluster copy of bundle "
                f"{stored.digest} with, so nothing is enforced until the spoke reaches the hub and registers again "
                "with its bootstrap token; to repair: if that token is used up or expired, restart the spoke with a "
                "new one (`convoy token create --cluster NAME`)")
            log.error("%s", self._state_problem)
        if stored is not None and stored.bundle_bytes and self._creds is not None:
            # A restart (maybe during a hub outage): keep enforcing what was applied last.
            log.info("enforcing the in-cluster copy of bundle %s", stored.digest)
            self.reconcile_once(_Source(digest=stored.digest, commit=stored.commit, signature=stored.signature,
                                        data=stored.bundle_bytes))
        self.ready.set()

    def _rebuild_inventory(self, why: str, *, damaged: bool) -> inventory.Inventory | None:
        """No usable inventory: rebuild it from the live objects Convoy applied, so the next bundle prunes
        what it no longer wants. None when there are none (a first start)."""
        started = time.monotonic()
        rebuilt = inventory.rebuild(self.client, cluster=self.settings.cluster)
        count = len(rebuilt.inventory.entries)
        forbidden = f", {len(rebuilt.forbidden)} not permitted to list" if rebuilt.forbidden else ""
        # A first start finds nothing and is no news; a rebuild that adopted objects is worth a warning.
        log.log(logging.WARNING if count or damaged else logging.INFO,
                "%s; inventory rebuilt from %d live object(s) carrying Convoy's labels and field manager "
                "(%d kinds searched in %.1f s%s); the next bundle prunes those it no longer wants",
                why, count, rebuilt.searched, time.monotonic() - started, forbidden)
        if rebuilt.unsearched:
            self._inventory_problem = (
                f"{why}; rebuilt from live objects, but {len(rebuilt.unsearched)} kind(s) could not be searched "
                f"({', '.join(rebuilt.unsearched[:5])}{' …' if len(rebuilt.unsearched) > 5 else ''}): objects "
                "of those removed from Git before the next bundle are not pruned: delete them by hand")
            log.error("%s", self._inventory_problem)
        if not count:
            return None
        try:
            self._inventory_store.save(rebuilt.inventory)
        except errors.ClusterError as exc:  # kept in memory; the next bundle's intent stores it
            log.warning("%s: cannot store the rebuilt inventory yet: %s", self._inventory_store.ref, exc.detail)
        return rebuilt.inventory

    def _age_recipient(self) -> str:
        identity = self._creds.age_identity if self._creds is not None else ""
        return sops.recipient_of(identity) if identity else ""

    def _ensure_namespace(self) -> None:
        try:
            if self.client.get("v1", "Namespace", "", self.settings.namespace) is None:
                self.client.apply({"apiVersion": "v1", "kind": "Namespace",
                                   "metadata": {"name": self.settings.namespace}}, manager="convoy-spoke")
        except errors.ClusterError as exc:
            log.warning("cannot make sure namespace %s exists: %s", self.settings.namespace, exc)

    # -- the hub side ---------------------------------------------------------------------------------

    @property
    def hub_address(self) -> str:
        """The hub replica the spoke dials now."""
        addresses = self.settings.hub_addresses
        return addresses[self._hub_index % len(addresses)]

    def _connect(self) -> hubclient.HubClient:
        creds = self._creds
        # None stored, or the stored one is unusable: register again (with the token the spoke was given)
        if creds is None or not creds.credential or len(creds.signing_key) != 32:
            creds = self._creds = registration.register(self.settings, store=self._creds_store,
                                                        hub_factory=self._hub_factory, address=self.hub_address)
            self._state_problem = ""
        return registration.client(self.settings, creds, hub_factory=self._hub_factory, address=self.hub_address)

    def _next_replica(self) -> None:
        """The replica we dialled is away: drop its channel and dial the next address (if several)."""
        if len(self.settings.hub_addresses) < 2:
            return  # one address: keep the channel, gRPC reconnects it (and re-resolves a DNS name)
        with self._hub_lock:
            old, self._hub = self._hub, None
            self._hub_index += 1
        if old is not None:
            old.close()
        log.info("trying hub replica %s next", self.hub_address)

    def _hub_loop(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                with self._hub_lock:
                    if self._hub is None:
                        self._hub = self._connect()
                    hub = self._hub
                rotated = False
                for event in hub.watch(applied_digest=self._state.digest, heartbeat=self.hub_heartbeat,
                                       age_recipient=self._age_recipient()):
                    if not self.hub_connected.is_set():
                        log.info("connected to hub %s", self.hub_address)
                    self.hub_connected.set()
                    attempt = 0
                    if isinstance(event, hubclient.Desired):
                        self._queue.put(event)
                    elif isinstance(event, hubclient.Heartbeat) and event.interval > 0:
                        if self.hub_heartbeat != float(event.interval):
                            log.info("the hub sends a heartbeat every %gs: a Watch stream silent for %gs is presumed "
                                     "dead", event.interval, event.interval * hubclient.SILENT_HEARTBEATS)
                        self.hub_heartbeat = float(event.interval)
                    elif isinstance(event, hubclient.CredentialRotation):
                        # Either way this stream (opened with the old credential) ends: stored, the
                        # spoke reconnects at once with the new one, which retires the old one; not
                        # stored, it reconnects with the old one after the backoff and gets another.
                        rotated = self._rotate_credential(hub, event)
                        hub.cancel_watch()
                        break
                    elif isinstance(event, hubclient.AgeKeyRotation):
                        # The new recipient goes with the next Watch call: reconnect at once with it.
                        rotated = self._rotate_age_key()
                        hub.cancel_watch()
                        break
                if rotated:
                    self.hub_connected.clear()
                    continue
            except hubclient.HubTrustError as exc:
                log.error("%s", exc)
            except hubclient.HubSilentError as exc:
                # A frozen connection: every call on this channel would wait on it, so start a new one.
                log.warning("%s; reconnecting on a new connection", exc)
                with self._hub_lock:
                    dead, self._hub = self._hub, None
                if dead is not None:
                    dead.abandon()
            except hubclient.HubUnavailable as exc:
                if not self._stop.is_set():
                    log.warning("%s; reconnecting", exc)
                    self._next_replica()
            except hubclient.HubUnauthenticated as exc:
                # Retrying alone never helps: the operator must issue a new token (the bundle is still enforced).
                if not self._stop.is_set():
                    log.error("%s; the hub does not accept this cluster's credential in Secret/%s/%s; "
                              "still enforcing the last bundle. %s; retrying", exc, self.settings.namespace,
                              self.settings.state_secret, CREDENTIAL_REFUSED_HINT)
            except (hubclient.HubError, errors.ClusterError, registration.RegistrationError, OSError) as exc:
                if not self._stop.is_set():
                    log.warning("%s; reconnecting", exc)
            self.hub_connected.clear()
            if self._stop.is_set():
                return
            self._stop.wait(backoff.full_jitter(attempt, base=BACKOFF_BASE, cap=self.settings.reconnect_cap))
            attempt += 1

    def _rotate_credential(self, hub: hubclient.HubClient, rotation: hubclient.CredentialRotation) -> bool:
        """Store and use the credential the hub rotated to; False if it could not be stored."""
        creds = self._creds
        if creds is None:
            return False
        new = registration.rotate(hub, creds, rotation, store=self._creds_store)
        if new is None:
            return False
        self._creds = new
        return True

    def _rotate_age_key(self) -> bool:
        """Make and store a new age identity, keeping the current one as the previous; False if not stored."""
        creds = self._creds
        if creds is None or not creds.age_identity:
            return False
        identity, recipient = sops.generate_identity()
        new = dataclasses.replace(creds, age_identity=identity, age_identity_previous=creds.age_identity,
                                  age_identity_previous_since=self._clock())
        try:
            # Stored before the hub hears the recipient: a key the hub seals for must never be lost.
            self._creds_store.save(new)
        except errors.ClusterError as exc:
            log.warning("cannot store a new age key: %s; keeping the current one", exc)
            return False
        self._creds = new
        log.info("new age key %s... made at the hub's request; the previous one is kept for files not yet "
                 "re-sealed", recipient[:16])
        return True

    def _retire_previous_age_key(self) -> None:
        """Drop the age key a rotation replaced once ``previous_age_key_grace`` has passed (see credentials)."""
        creds = self._creds
        if creds is None:
            return
        grace = dt.timedelta(seconds=self.settings.previous_age_key_grace)
        new = credentials.retire_previous_age_key(creds, now=self._clock(), grace=grace)
        if new is None:
            return
        dropped = not new.age_identity_previous
        # In force at once, even if it cannot be stored now: the grace is over whatever the Secret says,
        # and the next attempt (each bundle, each start) stores it.
        self._creds = new
        try:
            self._creds_store.save(new)
        except errors.ClusterError as exc:
            log.warning("cannot store the state Secret while retiring the previous age key: %s", exc)
        if dropped:
            log.info("dropped the age key replaced by a rotation %s ago (--previous-age-key-grace %gs): files "
                     "still sealed only for it no longer open; re-seal them with convoy seal --refresh",
                     self._clock() - creds.age_identity_previous_since if creds.age_identity_previous_since
                     else "?", self.settings.previous_age_key_grace)

    def _send_report(self, status: report.Status, backlog: int) -> None:
        hub = self._hub
        if hub is None or self._creds is None:
            raise hubclient.HubUnavailable(self.hub_address, "not connected")
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
                                        inline=desired if desired.inline_bundle else None,
                                        oci_reference=desired.oci_reference))
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
        """fetch → verify → record intent → apply → prune → save inventory → assess → report."""
        st = self._state
        st.last_resync = time.monotonic()
        st.retry = None
        self.reporter.submit(dataclasses.replace(self._build_status(), phase=Phase.APPLYING))
        # fetch + verify
        try:
            bundle, data = self._fetch_and_verify(source)
            # Sealed secrets open here, with the cluster's own key, and nowhere else.
            self._retire_previous_age_key()
            bundle = sealing.open_bundle(bundle, self._creds.age_identity if self._creds is not None else "",
                                         self._creds.age_identity_previous if self._creds is not None else "")
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
        options = engine.EngineOptions(cluster=self.settings.cluster, dependency_timeout=self.settings.health_timeout)
        # write ahead: before the first object of a new bundle is applied, the inventory names it and
        # every object it may create, so a spoke killed mid-apply restarts on this bundle and prunes
        # whatever of the old one is left, instead of re-applying the old copy over a half-applied new one
        try:
            self._save_intent(source, bundle, data)
        except errors.ClusterError as exc:  # applying what cannot be recorded would leave objects no prune finds
            st.retry = source
            st.errors = [f"{self._inventory_store.ref}: cannot record bundle {source.digest} before applying it "
                         f"(nothing applied): {exc.detail}"]
            log.error("%s", st.errors[0])
            return self._publish()
        # apply
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
            self._inventory_problem = ""
        except errors.ClusterError as exc:
            result.errors.append(f"{self._inventory_store.ref}: cannot save the inventory: {exc.detail}")
        # take it into force
        previous_digest = st.digest
        st.inventory = new_inventory
        st.bundle, st.digest, st.commit, st.signature = bundle, source.digest, source.commit, source.signature
        st.desired = result.desired
        st.policies, policy_errors = drift_policy.policies(bundle)
        policy_errors += ignoring.rules_by_app(bundle)[1]
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

    def _save_intent(self, source: _Source, bundle: dict[str, Any], data: bytes) -> None:
        """Store the inventory as it may be after applying ``bundle``: old entries plus its objects."""
        st = self._state
        previous = st.inventory or inventory.Inventory()
        if previous.digest == source.digest:
            return  # the stored copy is this bundle already (a retry, or a restart enforcing it)
        _steps, desired = engine.prepare(bundle, cluster=self.settings.cluster)
        # An object not applied yet gets no hash (it will be applied, never judged unchanged); one the
        # old bundle applied keeps its entry until this apply replaces it.
        entries = {ref: inventory.InventoryEntry(ref=ref, api_version=d.api_version, app=d.app, hash="")
                   for ref, d in desired.items()}
        entries.update(previous.entries)
        intent = previous.replace(entries=entries.values(), digest=source.digest, commit=source.commit,
                                  signature=source.signature, bundle_bytes=data)
        self._inventory_store.save(intent)
        st.inventory = intent

    def _fetch_and_verify(self, source: _Source) -> tuple[dict[str, Any], bytes]:
        creds = self._creds
        if creds is None or len(creds.signing_key) != 32:
            raise bundles.BundleIntegrityError(f"bundle {source.digest}: no hub signing key to verify it with")
        data = source.data
        signature = source.signature
        st = self._state
        if (data is None and st.bundle is not None and st.inventory is not None
                and source.digest == st.digest == st.inventory.digest):  # not a newer bundle's recorded intent
            data = st.inventory.bundle_bytes
        if data is None and source.inline is not None:
            carried = hubclient.inline_bundle(source.inline, max_size=self.settings.max_bundle_bytes)
            if carried is not None:
                data = carried.data
        puller, manifest_digest = (self._puller, "") if self._puller is not None else self._announced_puller(source)
        if data is None and puller is not None:
            try:
                data = puller.fetch(digest=source.digest, commit=source.commit, manifest_digest=manifest_digest,
                                    max_size=self.settings.max_bundle_bytes, credential=creds.credential)
                self.bundle_pulls[True] += 1
            except pulling.PullError as exc:  # the hub still has it: fall back to GetBundle
                self.bundle_pulls[False] += 1
                log.warning("bundle %s from %s failed (%s); fetching it from the hub", source.digest,
                            puller.source, exc)
        if data is None:
            hub = self._hub
            if hub is None:
                raise hubclient.HubUnavailable(self.hub_address, "not connected")
            fetched = hub.get_bundle(source.digest, max_size=self.settings.max_bundle_bytes)
            data = fetched.data
            signature = fetched.signature or signature
        bundle = bundles.decode(data, expected_digest=source.digest)
        bundles.verify_signature(creds.signing_key, source.digest, signature)
        return bundle, data

    def _announced_puller(self, source: _Source) -> tuple[pulling.Puller | None, str]:
        """The puller for the registry the hub's Watch named, and the manifest digest to pull; (None, "")
        when there is none or the operator said ``--bundle-source none``. Only the hub says which
        manifest: the registry is trusted for bytes, and those are verified."""
        if not source.oci_reference or self.settings.bundle_source == "none":
            return None, ""
        try:
            where, manifest_digest = pulling.parse_reference(source.oci_reference,
                                                             insecure=self.settings.bundle_source_insecure)
        except ValueError as exc:
            log.warning("%s; fetching bundle %s from the hub", exc, source.digest)
            return None, ""
        key = f"{where.registry}/{where.repository}"
        puller = self._announced.get(key)
        if puller is None:
            config = Path(self.settings.registry_config) if self.settings.registry_config else None
            try:
                # hub_host=None: the cluster credential never goes to an announced registry, even one on the
                # hub's host; only what the spoke's own --registry-config holds for it.
                puller = pulling.Puller(where, cluster=self.settings.cluster, docker_config=config, hub_host=None)
            except pulling.PullError as exc:  # an unreadable --registry-config
                log.warning("%s; fetching bundle %s from the hub", exc, source.digest)
                return None, ""
            self._announced[key] = puller
        return puller, manifest_digest

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
            if obj is not None and drift_policy.is_stale(obj, st.live.get(ref)):
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
        outcome = drift_policy.enforce(self.client, d, live, known=st.drift.get(d.ref), entry=st.actions.get(d.ref),
                                       policy=st.policies.get(d.app, self.settings.drift_policy), paused=st.paused,
                                       cluster=self.settings.cluster)
        if outcome.drift is None:
            st.drift.pop(d.ref, None)
        else:
            st.drift[d.ref] = outcome.drift
        if outcome.live is not None:
            st.live[d.ref] = outcome.live
        if outcome.events:
            self.reporter.record(list(outcome.events))

    # -- status -------------------------------------------------------------------------------------

    def _publish(self) -> report.Status:
        status = self._build_status()
        self._state.last_phase = status.phase
        self.reporter.submit(status)
        return status

    def _build_status(self) -> report.Status:
        st = self._state
        objects = phase.object_statuses(desired={ref: d.app for ref, d in st.desired.items()}, actions=st.actions,
                                        live=st.live)
        timed_out = time.monotonic() - st.applied_at > self.settings.health_timeout
        current, message = phase.phase_of(objects, desired=st.desired, has_bundle=st.bundle is not None,
                                          refused=st.refused, paused=st.paused, errors=st.errors,
                                          drifted=bool(st.drift), timed_out=timed_out)
        errors_ = list(st.errors) + ([st.refused] if st.refused else []) + self.problems()
        return report.Status(phase=current, commit=st.commit, digest=st.digest, objects=tuple(objects),
                             drift=tuple(st.drift.values()), errors=tuple(errors_),
                             message=message)

    def problems(self) -> list[str]:
        """What is wrong with the spoke's own state and what to do (the health endpoint and reports say it)."""
        found = [*(self._creds.problems if self._creds is not None else ()), self._inventory_problem,
                 self._state_problem]
        return [p for p in found if p]

    def _alive(self) -> bool:
        """The loop turned recently (what the liveness probe asks)."""
        return time.monotonic() - self.last_loop < max(60.0, 10 * TICK)


def _summary(changes: ChangeSet) -> str:
    tally: dict[str, int] = {}
    for entry in changes:
        tally[entry.action] = tally.get(entry.action, 0) + 1
    return ", ".join(f"{n} {a}" for a, n in sorted(tally.items())) or "nothing to do"
