"""``--oci-push REGISTRY/REPOSITORY``: every desired bundle and its signature, pushed to an external registry.

Each cycle reads the bundles clusters were given (``store.bundle_refs``), builds their artifacts
exactly as the hub's own ``/v2/`` serves them (:func:`protos.oci.build_from_stored`) and pushes what
the registry does not have yet; manifests are PUT under their tags (``<cluster>-<short commit>``,
``<cluster>-latest``), the signature manifest by digest, and, for registries without the referrers API
(CNCF Distribution 2.x; asked once), an image index under the ``sha256-<hex>`` fallback tag. A failed
artifact is retried on the next cycle; the age of the oldest bundle not yet pushed is the push lag
(metric ``convoy_hub_oci_push_lag_seconds``).

Few requests per artifact, many artifacts at once (``--oci-push-concurrency``) over one kept-alive
connection pool: the ledger of what was pushed (``oci_pushes``, shared by replicas) says which blobs the
registry holds (content-addressed: an artifact of a bundle digest pushed before shares its layer and
signature), so those are not asked about again; the blobs of a new commit of a cluster pushed before are
new content and are sent without a HEAD first; for a cluster the ledger has never seen (a new cluster, or
a lost ledger) every blob gets a HEAD first, so nothing the registry holds is re-sent. A manifest PUT the
registry refuses after trusting the ledger (a blob garbage-collected meanwhile) is retried at once the
cautious way.

The registry client is the ``oras`` SDK (auth challenges, docker-config credentials, blob HEAD);
uploads and manifests go through its authenticated ``do_request`` with our exact bytes, because its
``upload_manifest`` re-serialises the JSON, which would change the manifest digest that the signature
artifact's ``subject`` names, and its ``upload_blob`` HEADs again and goes through a temporary file.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

from hub import metrics as metrics_mod
from hub.store import db as store_db
from hub.store import repository as store
from protos import oci

__all__ = ["DbLedger", "MemoryLedger", "OrasRegistry", "PushError", "PushLedger", "PushTarget", "Pusher",
           "RegistryClient", "StoredBundle"]

log = logging.getLogger(__name__)


#: Pushed artifacts are recorded (and their Watch streams woken) in batches of at most this many, or
#: this often, during a cycle.
FLUSH_RECORDS = 50
FLUSH_SECONDS = 1.0

#: A blob bigger than this gets a HEAD before it is sent even when it is probably new.
HEAD_FIRST_BYTES = 256 * 1024


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What the ledger says about one artifact before it is pushed."""

    bundle_known: bool      #: another artifact of this bundle digest was pushed: its layer and signature are there
    cluster_known: bool     #: this cluster was pushed before (so the shared empty blob is there)
    manifest_known: bool    #: this very manifest was pushed before (its fallback index may list others)

    VERIFY: ClassVar[_Plan]


_Plan.VERIFY = _Plan(bundle_known=False, cluster_known=False, manifest_known=True)


class PushError(Exception):
    """The registry refused or failed a request; the message names the registry and the object."""


@dataclasses.dataclass(frozen=True)
class PushTarget:
    registry: str       #: host[:port]
    repository: str     #: path inside the registry

    @classmethod
    def parse(cls, value: str) -> PushTarget:
        registry, _, repository = value.removeprefix("oci://").partition("/")
        if not registry or not repository or ":" in repository or "@" in repository:
            raise ValueError(f"--oci-push must be REGISTRY/REPOSITORY (e.g. ghcr.io/acme/bundles), got {value!r}")
        return cls(registry=registry, repository=repository)

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}"


@dataclasses.dataclass(frozen=True)
class StoredBundle:
    compressed: bytes
    signature: bytes
    created_at: dt.datetime


class RegistryClient(Protocol):
    """The I/O seam of pushing (a fake in unit tests, :class:`OrasRegistry` for real)."""

    def has_blob(self, digest: str) -> bool: ...
    def put_blob(self, blob: oci.Blob) -> None: ...
    def put_manifest(self, reference: str, manifest: oci.Blob) -> None: ...
    def get_manifest(self, reference: str) -> bytes | None: ...
    def has_referrers_api(self, digest: str) -> bool: ...
    def delete_manifest(self, digest: str) -> None: ...


def _registry_without_retries(provider: Any) -> Any:
    """``oras.provider.Registry`` whose requests fail at once: its own retry decorator sleeps 3 s, 5 s,
    11 s, 29 s and 83 s on a refused connection, which held a push cycle (and the hub's shutdown) for
    minutes per request. The pusher retries every ``--oci-push-interval`` instead."""
    once = getattr(provider.Registry.do_request, "__wrapped__", provider.Registry.do_request)
    return type("OnceRegistry", (provider.Registry,), {"do_request": once})


class OrasRegistry:
    """:class:`RegistryClient` over the ``oras`` SDK."""

    def __init__(self, target: PushTarget, *, docker_config: Path | None = None, insecure: bool = False,
                 connections: int = 16) -> None:
        import oras.provider  # lazy: only a hub that pushes needs it
        import requests.adapters

        self.target = target
        self._registry = _registry_without_retries(oras.provider)(hostname=target.registry, insecure=insecure)
        self._container = self._registry.get_container(f"{target.registry}/{target.repository}")
        self._registry.auth.load_configs(self._container,
                                         configs=[str(docker_config)] if docker_config is not None else None)
        self._base = f"{self._registry.prefix}://{target.registry}/v2/{target.repository}"
        # One session for every pushing thread, with a kept-alive connection per thread: requests' default
        # pool keeps 10, so more workers than that reconnected (and warned) on every request.
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=max(connections, 1))
        self._registry.session.mount(f"{self._registry.prefix}://{target.registry}/", adapter)

    def _request(self, method: str, url: str, **kwargs: Any) -> Any:
        try:
            return self._registry.do_request(url, method, **kwargs)
        except (OSError, ValueError) as exc:  # requests' errors are OSErrors; a failed auth is a ValueError
            raise PushError(f"{self.target}: {method} {url}: {exc}") from exc

    @staticmethod
    def _check(response: Any, what: str, target: PushTarget) -> None:
        if response.status_code >= 300:
            raise PushError(f"{target}: {what}: HTTP {response.status_code} {response.text[:200]}")

    def has_blob(self, digest: str) -> bool:
        return bool(self._request("HEAD", f"{self._base}/blobs/{digest}").status_code == 200)

    def put_blob(self, blob: oci.Blob) -> None:
        """A monolithic upload (POST, then PUT of the bytes with their digest). Not ``oras``'
        ``upload_blob``: it HEADs the blob again first (the pusher decides that) and goes through a
        temporary file."""
        started = self._request("POST", f"{self._base}/blobs/uploads/",
                                headers={"Content-Type": "application/octet-stream"})
        self._check(started, f"starting the upload of blob {blob.digest}", self.target)
        location = started.headers.get("Location", "")
        if not location:
            raise PushError(f"{self.target}: starting the upload of blob {blob.digest}: no Location in the answer")
        url = urllib.parse.urljoin(f"{self._base}/blobs/uploads/", location)
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode({"digest": blob.digest})
        response = self._request("PUT", url, data=blob.data, headers={
            "Content-Type": "application/octet-stream", "Content-Length": str(len(blob.data))})
        self._check(response, f"uploading blob {blob.digest}", self.target)

    def put_manifest(self, reference: str, manifest: oci.Blob) -> None:
        response = self._request("PUT", f"{self._base}/manifests/{reference}", data=manifest.data,
                                 headers={"Content-Type": manifest.media_type})
        self._check(response, f"putting manifest {reference}", self.target)

    def get_manifest(self, reference: str) -> bytes | None:
        response = self._request("GET", f"{self._base}/manifests/{reference}",
                                 headers={"Accept": f"{oci.MANIFEST_MEDIA_TYPE}, {oci.INDEX_MEDIA_TYPE}"})
        if response.status_code == 404:
            return None
        self._check(response, f"getting manifest {reference}", self.target)
        return bytes(response.content)

    def delete_manifest(self, digest: str) -> None:
        response = self._request("DELETE", f"{self._base}/manifests/{digest}")
        if response.status_code != 404:  # already gone is what we wanted
            self._check(response, f"deleting manifest {digest}", self.target)

    def has_referrers_api(self, digest: str) -> bool:
        response = self._request("GET", f"{self._base}/referrers/{digest}")
        return bool(response.status_code == 200 and
                    response.headers.get("Content-Type", "").startswith(oci.INDEX_MEDIA_TYPE))


@dataclasses.dataclass(frozen=True)
class PushOutcome:
    pushed: int                   #: artifacts pushed in this cycle
    deleted: int                  #: manifests deleted because retention removed their bundle
    failed: tuple[str, ...]       #: one line per artifact that failed (retried next cycle)
    lag_seconds: float            #: age of the oldest desired bundle still not pushed after the cycle
    pending: int = 0              #: bundle artifacts still not pushed after the cycle


class PushLedger(Protocol):
    """What was pushed to the target: the database's ``oci_pushes`` rows (shared by replicas) for real."""

    def pushed(self) -> dict[store.PushKey, store.PushRecord]: ...
    def record(self, records: Sequence[store.PushRecord]) -> None: ...
    def forget(self, keys: Sequence[store.PushKey]) -> None: ...


class MemoryLedger:
    """A :class:`PushLedger` in this process only (unit tests, benchmarks)."""

    def __init__(self) -> None:
        self.records: dict[store.PushKey, store.PushRecord] = {}

    def pushed(self) -> dict[store.PushKey, store.PushRecord]:
        return dict(self.records)

    def record(self, records: Sequence[store.PushRecord]) -> None:
        for record in records:
            if record.latest:
                for key, other in list(self.records.items()):
                    if other.cluster == record.cluster and other.latest:
                        self.records[key] = dataclasses.replace(other, latest=False)
            self.records[record.key] = record

    def forget(self, keys: Sequence[store.PushKey]) -> None:
        for key in keys:
            self.records.pop(key, None)


class DbLedger:
    """A :class:`PushLedger` in the hub's database, per target."""

    def __init__(self, db: store_db.Database, target: str) -> None:
        self.db = db
        self.target = target

    def pushed(self) -> dict[store.PushKey, store.PushRecord]:
        with self.db.session(write=False) as session:
            return store.oci_pushes(session, self.target)

    def record(self, records: Sequence[store.PushRecord]) -> None:
        with self.db.session() as session:
            store.record_oci_pushes(session, self.target, records)

    def forget(self, keys: Sequence[store.PushKey]) -> None:
        with self.db.session() as session:
            store.forget_oci_pushes(session, self.target, keys)


class Pusher:
    """Pushes what the registry lacks. What was pushed is in the ledger (the database, shared by replicas):
    a new leader pushes only what is missing there, and a lost ledger is re-derived with cheap HEADs (blobs
    the registry has are not re-sent; a manifest PUT of the same bytes is idempotent)."""

    def __init__(self, *, client: RegistryClient, refs: Callable[[], Sequence[store.BundleRef]],
                 load: Callable[[str], StoredBundle | None], source: str, metrics: metrics_mod.HubMetrics,
                 ledger: PushLedger | None = None, on_pushed: Callable[[list[str]], None] | None = None,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC), workers: int = 16) -> None:
        self.client = client
        self._refs = refs
        self._load = load
        self.source = source
        self.metrics = metrics
        self.ledger: PushLedger = ledger if ledger is not None else MemoryLedger()
        #: Called (in the pushing thread) with the clusters whose bundles were just recorded as pushed:
        #: their Watch streams may be holding a notice for it (``oci_announce_wait``).
        self.on_pushed = on_pushed
        self._clock = clock
        self.workers = workers
        self._blobs: set[str] = set()       # blobs known to be in the registry
        self._lock = threading.Lock()       # ``_blobs`` is shared by the pushing threads
        self._referrers_api: bool | None = None

    def push_once(self) -> PushOutcome:
        """One cycle (blocking I/O: run it in a thread)."""
        pushed = 0
        failed: list[str] = []
        pending: list[dt.datetime] = []
        refs = list(self._refs())
        ledger = self.ledger.pushed()
        # What the ledger says the registry already holds: every artifact of a bundle digest shares its
        # layer and signature blobs, and a cluster pushed before has the shared empty config blob.
        known_bundles = {record.digest for record in ledger.values()}
        known_manifests = {record.manifest_digest for record in ledger.values()}
        known_clusters = {record.cluster for record in ledger.values()}
        work = [(ref, ledger.get((ref.cluster, ref.commit, ref.digest))) for ref in refs]
        work = [(ref, record) for ref, record in work if store.needs_push(ref, record)]

        def push(ref: store.BundleRef, record: store.PushRecord | None) -> store.PushRecord | str | None:
            """The record of ``ref``'s artifact pushed, or a line saying why not, or None (bundle pruned).
            Loading and building happen here, in the pool, so the first requests go out at once."""
            stored = self._load(ref.digest)
            if stored is None:
                return None  # pruned meanwhile
            try:
                artifact = oci.build_from_stored(cluster=ref.cluster, commit=ref.commit, source=self.source,
                                                 bundle_digest=ref.digest, compressed=stored.compressed,
                                                 signature=stored.signature, created=stored.created_at)
            except oci.OciError as exc:
                return f"{ref.cluster} {ref.commit[:7]}: {exc}"
            full = record is None or record.manifest_digest != artifact.manifest.digest
            tags = ([oci.sha_tag(ref.cluster, ref.commit)] if full else []) + \
                ([oci.latest_tag(ref.cluster)] if ref.latest else [])
            try:
                if not full:
                    companions = self._tag(artifact, tags, ledger)
                else:
                    plan = _Plan(bundle_known=ref.digest in known_bundles, cluster_known=ref.cluster in known_clusters,
                                 manifest_known=artifact.manifest.digest in known_manifests)
                    try:
                        companions = self._push(artifact, tags, plan)
                    except PushError:
                        # Perhaps a blob believed pushed is gone (the registry's garbage collection): from now
                        # on ask the registry about this artifact's blobs, at once if the ledger was trusted.
                        self._forget_blobs(artifact)
                        if not (plan.cluster_known or plan.bundle_known):
                            raise
                        companions = self._push(artifact, tags, _Plan.VERIFY)
            except PushError as exc:
                return f"{ref.cluster} {ref.commit[:7]}: {exc}"
            return store.PushRecord(cluster=ref.cluster, commit=ref.commit, digest=ref.digest,
                                    manifest_digest=artifact.manifest.digest, latest=ref.latest,
                                    companions=companions)

        done: list[store.PushRecord] = []
        flushed = time.monotonic()

        def flush() -> None:
            """Record what is pushed so far and wake its Watch streams: a notice held for a push
            (``--oci-announce-wait``) goes out as soon as that artifact is in, not after the whole cycle."""
            nonlocal flushed
            flushed = time.monotonic()
            if not done:
                return
            # Not-latest refs first, so a cluster's latest record is the one that keeps the mark.
            self.ledger.record(sorted(done, key=lambda record: record.latest))
            if self.on_pushed is not None:
                self.on_pushed(sorted({record.cluster for record in done}))
            done.clear()

        # Artifacts are independent: many at once hide the registry's round trips (a 1,000-cluster
        # commit is 1,000 artifacts of ~10 requests each); ``workers`` is sized for the registry.
        with concurrent.futures.ThreadPoolExecutor(max_workers=self.workers) as pool:
            futures = {pool.submit(push, ref, record): ref for ref, record in work}
            for future in concurrent.futures.as_completed(futures):
                ref, result = futures[future], future.result()
                if isinstance(result, store.PushRecord):
                    pushed += 1
                    done.append(result)
                    self.metrics.oci_pushes.labels(outcome="pushed").inc()
                elif result is not None:
                    failed.append(result)
                    pending.append(ref.since)
                    self.metrics.oci_pushes.labels(outcome="failed").inc()
                if len(done) >= FLUSH_RECORDS or time.monotonic() - flushed >= FLUSH_SECONDS:
                    flush()
        flush()
        # After the pushes, so a moved <cluster>-latest no longer names the manifest it named before.
        deleted = self._retire(refs, failed)
        now = self._clock()
        lag = max(((now - since).total_seconds() for since in pending), default=0.0)
        self.metrics.oci_push_lag.set(lag)
        return PushOutcome(pushed=pushed, deleted=deleted, failed=tuple(failed), lag_seconds=lag,
                           pending=len(pending))

    def _retire(self, refs: Sequence[store.BundleRef], failed: list[str]) -> int:
        """Delete from the registry the manifests pushed for bundles retention has since removed from the
        store. A manifest a current ref still names is kept (deleting it would delete that tag too)."""
        ledger = self.ledger.pushed()
        current = {(ref.cluster, ref.commit, ref.digest) for ref in refs}
        gone = {key: record for key, record in ledger.items() if key not in current}
        if not gone:
            return 0
        still_named = {record.manifest_digest for key, record in ledger.items() if key in current}
        deleted = 0
        for digest in sorted({record.manifest_digest for record in gone.values()} - still_named):
            companions = [c for record in gone.values() if record.manifest_digest == digest
                          for c in record.companions]
            try:
                # The signature and the fallback index first: never a signature left without its subject.
                for companion in dict.fromkeys(companions):
                    self.client.delete_manifest(companion)
                self.client.delete_manifest(digest)
                deleted += 1
                log.info("OCI push: deleted manifest %s (%s): its bundle was pruned", digest,
                         ", ".join(sorted(oci.sha_tag(k[0], k[1]) for k, r in gone.items()
                                          if r.manifest_digest == digest)))
            except PushError as exc:  # e.g. a registry with deletes disabled: tags stay, say so once
                failed.append(f"retention: {exc}")
        self.ledger.forget(sorted(gone))
        return deleted

    def _tag(self, artifact: oci.Artifact, tags: Sequence[str],
             ledger: Mapping[store.PushKey, store.PushRecord]) -> tuple[str, ...]:
        """Only point ``tags`` at an artifact already pushed; its companions stay what they were."""
        for tag in tags:
            self.client.put_manifest(tag, artifact.manifest)
        found = [r for r in ledger.values() if r.manifest_digest == artifact.manifest.digest]
        return found[0].companions if found else (artifact.signature_manifest.digest,)

    def _forget_blobs(self, artifact: oci.Artifact) -> None:
        with self._lock:
            self._blobs.difference_update(blob.digest for blob in (artifact.config, artifact.layer, artifact.empty,
                                                                   artifact.signature))

    def _send_blob(self, blob: oci.Blob, *, known: bool, ask: bool) -> None:
        """Make sure the registry has ``blob``: nothing when it is ``known`` to be there, a HEAD first when
        we must ``ask`` (or the blob is big enough for a HEAD to be cheaper than sending it again), else a
        plain upload (idempotent: content-addressed)."""
        with self._lock:
            known = known or blob.digest in self._blobs
        if known or ((ask or len(blob.data) > HEAD_FIRST_BYTES) and self.client.has_blob(blob.digest)):
            self.metrics.oci_blobs.labels(outcome="skipped").inc()
        else:
            self.client.put_blob(blob)
            self.metrics.oci_blobs.labels(outcome="sent").inc()
        with self._lock:
            self._blobs.add(blob.digest)

    def _push(self, artifact: oci.Artifact, tags: Sequence[str], plan: _Plan) -> tuple[str, ...]:
        """Push the whole artifact; returns its companions (signature manifest, fallback index).

        10 requests for a new commit's artifact on a registry without the referrers API: three blob
        uploads of two requests each, where only the config blob is new when the bundle is not (the
        ledger knows its layer and signature are there); the manifest under its commit tag; the
        signature manifest; the fallback referrers index; the ``-latest`` tag."""
        # A cluster the ledger has never seen may be a ledger lost or a replica's first push: ask before
        # sending (HEADs are cheaper than re-sending). A cluster seen before has new content here.
        ask = not plan.cluster_known
        self._send_blob(artifact.config, known=False, ask=ask)
        self._send_blob(artifact.layer, known=plan.bundle_known, ask=ask)
        self._send_blob(artifact.signature, known=plan.bundle_known, ask=ask)
        self._send_blob(artifact.empty, known=plan.cluster_known, ask=ask)
        # The commit's tag first: the PUT stores the subject (no separate PUT by digest), so a registry
        # that checks a signature's subject (or indexes referrers) finds it.
        first, *rest = tags
        self.client.put_manifest(first, artifact.manifest)
        self.client.put_manifest(artifact.signature_manifest.digest, artifact.signature_manifest)
        companions = [artifact.signature_manifest.digest]
        if self._referrers_api is None:  # once per registry (per pusher): the answer does not change
            self._referrers_api = self.client.has_referrers_api(artifact.manifest.digest)
        if not self._referrers_api:
            companions.append(self._put_fallback_referrers(artifact, read_first=ask or plan.manifest_known))
        for tag in rest:
            self.client.put_manifest(tag, artifact.manifest)
        return tuple(companions)

    def _put_fallback_referrers(self, artifact: oci.Artifact, *, read_first: bool = True) -> str:
        """The OCI 1.1 referrers tag schema: an index under ``sha256-<hex>`` listing the signature.
        ``read_first``: merge with the index already there. Not for a manifest this hub has just pushed
        for the first time (a new commit of a cluster it pushed before): nobody can have referred to it yet."""
        tag = artifact.manifest.digest.replace(":", "-")
        existing = self.client.get_manifest(tag) if read_first else None
        listed: list[dict[str, Any]] = json.loads(existing).get("manifests", []) if existing else []
        if any(entry.get("digest") == artifact.signature_manifest.digest for entry in listed):
            return oci.Blob(oci.INDEX_MEDIA_TYPE, existing or b"").digest
        if not listed:
            blob = oci.Blob(oci.INDEX_MEDIA_TYPE, oci.referrers_index([artifact.signature_manifest]))
        else:
            index = json.loads(oci.referrers_index([artifact.signature_manifest]))
            index["manifests"] = listed + index["manifests"]
            blob = oci.Blob(oci.INDEX_MEDIA_TYPE, json.dumps(index, sort_keys=True, separators=(",", ":")).encode())
        self.client.put_manifest(tag, blob)
        return blob.digest

    async def run(self, stop: asyncio.Event, interval: float, *,
                  is_leader: Callable[[], bool] = lambda: True) -> None:
        """Push every ``interval`` seconds until ``stop``; failures are logged and retried. Only while
        ``is_leader()``: replicas on one database share the ledger, and one pusher is enough (two would
        race each other's ``-latest`` tags). A new leader carries on from the ledger."""
        while not stop.is_set():
            if is_leader():
                try:
                    outcome = await asyncio.to_thread(self.push_once)
                    for line in outcome.failed[:5]:
                        log.warning("OCI push failed (retried in %gs): %s", interval, line)
                    if outcome.pushed:
                        log.info("OCI push: %d bundle artifact(s) pushed to %s", outcome.pushed,
                                 getattr(self.client, "target", "the registry"))
                except Exception:  # a background task must not die; the next cycle retries
                    log.exception("OCI push cycle failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
