"""``--oci-push REGISTRY/REPOSITORY``: every desired bundle and its signature, pushed to an external registry.

Each cycle reads the bundles clusters were given (``store.bundle_refs``), builds their artifacts
exactly as the hub's own ``/v2/`` serves them (:func:`protos.oci.build_from_stored`) and pushes what
the registry does not have yet: blobs it already holds are not re-sent (a HEAD first), manifests are
PUT under their tags (``<cluster>-<short commit>``, ``<cluster>-latest``), the signature manifest by
digest, and, for registries without the referrers API (CNCF Distribution 2.x), an image index under the
``sha256-<hex>`` fallback tag. A failed artifact is retried on the next cycle; the age of the oldest
bundle not yet pushed is the push lag (metric ``convoy_hub_oci_push_lag_seconds``).

The registry client is the ``oras`` SDK (auth challenges, docker-config credentials, blob HEAD and
upload); manifests are PUT through its authenticated ``do_request`` with our exact bytes, because its
``upload_manifest`` re-serialises the JSON, which would change the manifest digest that the signature
artifact's ``subject`` names.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from hub import metrics as metrics_mod
from hub.store import repository as store
from protos import oci

__all__ = ["OrasRegistry", "PushError", "PushTarget", "Pusher", "RegistryClient", "StoredBundle"]

log = logging.getLogger(__name__)


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


class OrasRegistry:
    """:class:`RegistryClient` over the ``oras`` SDK."""

    def __init__(self, target: PushTarget, *, docker_config: Path | None = None, insecure: bool = False) -> None:
        import oras.provider  # lazy: only a hub that pushes needs it

        self.target = target
        self._registry = oras.provider.Registry(hostname=target.registry, insecure=insecure)
        self._container = self._registry.get_container(f"{target.registry}/{target.repository}")
        self._registry.auth.load_configs(self._container,
                                         configs=[str(docker_config)] if docker_config is not None else None)
        self._base = f"{self._registry.prefix}://{target.registry}/v2/{target.repository}"

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
        with tempfile.NamedTemporaryFile() as file:
            file.write(blob.data)
            file.flush()
            layer = {"digest": blob.digest, "size": len(blob.data), "mediaType": blob.media_type}
            try:
                response = self._registry.upload_blob(file.name, self._container, layer)
            except (OSError, ValueError) as exc:
                raise PushError(f"{self.target}: uploading blob {blob.digest}: {exc}") from exc
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


class Pusher:
    """Pushes what the registry lacks; remembers what it pushed (per process: a restart re-checks with
    cheap HEADs, and a manifest PUT of the same bytes is idempotent)."""

    def __init__(self, *, client: RegistryClient, refs: Callable[[], Sequence[store.BundleRef]],
                 load: Callable[[str], StoredBundle | None], source: str, metrics: metrics_mod.HubMetrics,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC), workers: int = 8) -> None:
        self.client = client
        self._refs = refs
        self._load = load
        self.source = source
        self.metrics = metrics
        self._clock = clock
        self.workers = workers
        self._pushed: dict[str, str] = {}   # tag -> manifest digest pushed under it
        self._blobs: set[str] = set()       # blobs known to be in the registry
        self._companions: dict[str, list[str]] = {}  # bundle manifest -> its signature manifest, fallback index
        self._referrers_api: bool | None = None
        # (cluster, commit, bundle digest) -> its manifest digest: a quiet cycle reads no bundle bytes.
        self._manifests: dict[tuple[str, str, str], str] = {}

    def push_once(self) -> PushOutcome:
        """One cycle (blocking I/O: run it in a thread)."""
        pushed = 0
        failed: list[str] = []
        pending: list[dt.datetime] = []
        refs = list(self._refs())
        work: list[tuple[store.BundleRef, oci.Artifact, list[str]]] = []
        for ref in refs:
            tags = [oci.sha_tag(ref.cluster, ref.commit)] + ([oci.latest_tag(ref.cluster)] if ref.latest else [])
            known = self._manifests.get((ref.cluster, ref.commit, ref.digest))
            if known is not None and all(self._pushed.get(tag) == known for tag in tags):
                continue
            stored = self._load(ref.digest)
            if stored is None:
                continue  # pruned meanwhile
            artifact = oci.build_from_stored(cluster=ref.cluster, commit=ref.commit, source=self.source,
                                             bundle_digest=ref.digest, compressed=stored.compressed,
                                             signature=stored.signature, created=stored.created_at)
            self._manifests[(ref.cluster, ref.commit, ref.digest)] = artifact.manifest.digest
            todo = [tag for tag in tags if self._pushed.get(tag) != artifact.manifest.digest]
            if todo:
                work.append((ref, artifact, todo))

        def push(item: tuple[store.BundleRef, oci.Artifact, list[str]]) -> str | None:
            ref, artifact, todo = item
            try:
                self._push(artifact, todo)
            except PushError as exc:
                return f"{ref.cluster} {ref.commit[:7]}: {exc}"
            return None

        # Artifacts are independent: a few at once hide the registry's round trips (a 1,000-cluster
        # commit is 1,000 artifacts of ~10 requests each).
        with concurrent.futures.ThreadPoolExecutor(max_workers=self.workers) as pool:
            for (ref, _artifact, _todo), error in zip(work, pool.map(push, work), strict=True):
                if error is None:
                    pushed += 1
                    self.metrics.oci_pushes.labels(outcome="pushed").inc()
                else:
                    failed.append(error)
                    pending.append(ref.since)
                    self.metrics.oci_pushes.labels(outcome="failed").inc()
        # After the pushes, so a moved <cluster>-latest no longer names the manifest it named before.
        deleted = self._retire({oci.sha_tag(ref.cluster, ref.commit) for ref in refs}
                               | {oci.latest_tag(ref.cluster) for ref in refs if ref.latest}, failed)
        now = self._clock()
        lag = max(((now - since).total_seconds() for since in pending), default=0.0)
        self.metrics.oci_push_lag.set(lag)
        return PushOutcome(pushed=pushed, deleted=deleted, failed=tuple(failed), lag_seconds=lag)

    def _retire(self, current: set[str], failed: list[str]) -> int:
        """Delete from the registry the manifests of tags this process pushed whose bundle retention has
        since removed from the store. A manifest a current tag still names is kept (deleting it would
        delete that tag too) and looked at again next cycle."""
        gone = {tag: digest for tag, digest in self._pushed.items() if tag not in current}
        if not gone:
            return 0
        still_named = {digest for tag, digest in self._pushed.items() if tag in current}
        deleted = 0
        for digest in sorted(set(gone.values()) - still_named):
            try:
                # The signature and the fallback index first: never a signature left without its subject.
                for companion in self._companions.pop(digest, []):
                    self.client.delete_manifest(companion)
                self.client.delete_manifest(digest)
                deleted += 1
                log.info("OCI push: deleted manifest %s (tags %s): its bundle was pruned", digest,
                         ", ".join(sorted(tag for tag, named in gone.items() if named == digest)))
            except PushError as exc:  # e.g. a registry with deletes disabled: tags stay, say so once
                failed.append(f"retention: {exc}")
        for tag, digest in gone.items():
            if digest not in still_named:
                del self._pushed[tag]
        current_digests = set(self._pushed.values())
        for key in [key for key, digest in self._manifests.items() if digest not in current_digests]:
            del self._manifests[key]
        return deleted

    def _push(self, artifact: oci.Artifact, tags: Sequence[str]) -> None:
        for blob in (artifact.config, artifact.layer, artifact.empty, artifact.signature):
            if blob.digest in self._blobs or self.client.has_blob(blob.digest):
                self.metrics.oci_blobs.labels(outcome="skipped").inc()
            else:
                self.client.put_blob(blob)
                self.metrics.oci_blobs.labels(outcome="sent").inc()
            self._blobs.add(blob.digest)
        # The subject first, so a registry that checks it (or indexes referrers) finds it.
        self.client.put_manifest(artifact.manifest.digest, artifact.manifest)
        self.client.put_manifest(artifact.signature_manifest.digest, artifact.signature_manifest)
        self._companions[artifact.manifest.digest] = [artifact.signature_manifest.digest]
        if self._referrers_api is None:
            self._referrers_api = self.client.has_referrers_api(artifact.manifest.digest)
        if not self._referrers_api:
            self._put_fallback_referrers(artifact)
        for tag in tags:
            self.client.put_manifest(tag, artifact.manifest)
            self._pushed[tag] = artifact.manifest.digest

    def _put_fallback_referrers(self, artifact: oci.Artifact) -> None:
        """The OCI 1.1 referrers tag schema: an index under ``sha256-<hex>`` listing the signature."""
        tag = artifact.manifest.digest.replace(":", "-")
        existing = self.client.get_manifest(tag)
        listed: list[dict[str, Any]] = json.loads(existing).get("manifests", []) if existing else []
        if any(entry.get("digest") == artifact.signature_manifest.digest for entry in listed):
            return
        index = json.loads(oci.referrers_index([artifact.signature_manifest]))
        index["manifests"] = listed + index["manifests"]
        blob = oci.Blob(oci.INDEX_MEDIA_TYPE, json.dumps(index, sort_keys=True, separators=(",", ":")).encode())
        self.client.put_manifest(tag, blob)
        self._companions.setdefault(artifact.manifest.digest, []).append(blob.digest)

    async def run(self, stop: asyncio.Event, interval: float) -> None:
        """Push every ``interval`` seconds until ``stop``; failures are logged and retried."""
        while not stop.is_set():
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
