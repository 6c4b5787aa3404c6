"""Bundles as OCI artifacts (issue 19), the pure parts: the artifact is deterministic, its layer is the
stored bytes (stable across re-renders), verification refuses every kind of tampering, and the pusher
retries failures, skips blobs the registry has and reports push lag."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from hub import metrics as metrics_mod
from hub.commands import formatting
from hub.publish import pushing
from hub.store import repository as store
from protos import bundle as bundles
from protos import oci
from protos.codec import pb
from spoke import pulling

KEY = ed25519.Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
T0 = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
COMMIT = "a" * 40


def _bundle(version: str = "1") -> tuple[str, bytes, bytes]:
    document = {"apiVersion": bundles.API_VERSION, "kind": "Bundle", "apps": [{"name": "web"}],
                "objects": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                             "data": {"v": version}}]}
    raw = bundles.encode(document)
    digest = bundles.digest_of(raw)
    return digest, bundles.compress(raw), bundles.sign(KEY, digest)


def _artifact(cluster: str = "alpha", version: str = "1") -> oci.Artifact:
    digest, compressed, signature = _bundle(version)
    return oci.build_from_stored(cluster=cluster, commit=COMMIT, source="https://git.example/fleet",
                                 bundle_digest=digest, compressed=compressed, signature=signature, created=T0)


def test_the_artifact_is_deterministic_and_its_layer_is_shared_across_clusters() -> None:
    first, again, other = _artifact(), _artifact(), _artifact("beta")
    assert first.manifest.digest == again.manifest.digest
    assert first.layer.digest == other.layer.digest  # same bundle, same layer blob
    assert first.manifest.digest != other.manifest.digest  # the config names the cluster
    manifest = json.loads(first.manifest.data)
    assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == oci.MANIFEST_MEDIA_TYPE
    assert manifest["artifactType"] == oci.ARTIFACT_TYPE
    assert manifest["annotations"]["org.opencontainers.image.created"] == "2026-01-02T03:04:05Z"
    assert json.loads(first.config.data) == {
        "cluster": "alpha", "commit": COMMIT, "source": "https://git.example/fleet", "apps": ["web"], "objects": 1,
        "created": "2026-01-02T03:04:05Z", "bundleDigest": first.bundle_digest}
    signature = json.loads(first.signature_manifest.data)
    assert signature["subject"] == first.manifest.descriptor()
    assert signature["layers"][0]["mediaType"] == oci.SIGNATURE_MEDIA_TYPE


def _verify(artifact: oci.Artifact, manifest: bytes | None = None, key: bytes = PUBLIC) -> oci.VerifiedBundle:
    blobs = artifact.blobs()
    return oci.verify_manifest(manifest or artifact.manifest.data, lambda d: blobs[d].data, key)


def test_verify_accepts_the_hub_s_artifact() -> None:
    verified = _verify(_artifact())
    assert (verified.cluster, verified.commit, verified.objects) == ("alpha", COMMIT, 1)


def test_verify_refuses_another_key_a_swapped_layer_and_a_forged_annotation() -> None:
    artifact = _artifact()
    other = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    with pytest.raises(oci.OciError, match="signature does not verify"):
        _verify(artifact, key=other)
    # Another bundle's layer, with a manifest rewritten to name it: the digest annotation no longer matches.
    forged = json.loads(artifact.manifest.data)
    forged["layers"] = [_artifact(version="2").layer.descriptor()]
    blobs = artifact.blobs() | _artifact(version="2").blobs()
    with pytest.raises(oci.OciError, match="digest mismatch"):
        oci.verify_manifest(json.dumps(forged).encode(), lambda d: blobs[d].data, PUBLIC)
    # Pointing the annotation at the other bundle too: its signature is not that bundle's.
    forged["annotations"][oci.ANNOTATION_BUNDLE_DIGEST] = _artifact(version="2").bundle_digest
    with pytest.raises(oci.OciError, match="signature does not verify"):
        oci.verify_manifest(json.dumps(forged).encode(), lambda d: blobs[d].data, PUBLIC)
    forged["annotations"][oci.ANNOTATION_SIGNATURE] = base64.b64encode(b"x" * 64).decode()
    with pytest.raises(oci.OciError, match="signature does not verify"):
        oci.verify_manifest(json.dumps(forged).encode(), lambda d: blobs[d].data, PUBLIC)


def test_a_layout_round_trips_and_a_missing_blob_is_named(tmp_path: Path) -> None:
    artifact = _artifact()
    oci.write_layout(tmp_path / "layout", [(artifact, ["alpha-latest"])])
    [verified] = oci.verify_layout(tmp_path / "layout", PUBLIC)
    assert verified.manifest_digest == artifact.manifest.digest
    (tmp_path / "layout" / "blobs" / "sha256" / artifact.layer.digest.removeprefix("sha256:")).unlink()
    with pytest.raises(oci.OciError, match=f"blob {artifact.layer.digest} is missing"):
        oci.verify_layout(tmp_path / "layout", PUBLIC)
    with pytest.raises(oci.OciError, match="not an OCI image layout"):
        oci.verify_layout(tmp_path, PUBLIC)


# -- the pusher, with an in-memory registry -------------------------------------------------------------

class FakeRegistry:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, bytes] = {}
        self.down = False
        self.uploads = 0
        self.calls: list[str] = []  # the requests a real registry would get (not the one-off referrers probe)

    def _check(self, call: str) -> None:
        self.calls.append(call)
        if self.down:
            raise pushing.PushError("registry.example/b: connection refused")

    def has_blob(self, digest: str) -> bool:
        self._check("HEAD blob")
        return digest in self.blobs

    def put_blob(self, blob: oci.Blob) -> None:
        self._check("upload blob")
        self.uploads += 1
        self.blobs[blob.digest] = blob.data

    def put_manifest(self, reference: str, manifest: oci.Blob) -> None:
        self._check("PUT manifest")
        document = json.loads(manifest.data)
        # As CNCF Distribution does: a manifest naming a blob the registry lacks is refused.
        for descriptor in [document["config"], *document["layers"]] if "layers" in document else []:
            if descriptor["digest"] not in self.blobs:
                raise pushing.PushError(f"registry.example/b: MANIFEST_BLOB_UNKNOWN {descriptor['digest']}")
        self.manifests[reference] = manifest.data

    def get_manifest(self, reference: str) -> bytes | None:
        self._check("GET manifest")
        return self.manifests.get(reference)

    def has_referrers_api(self, digest: str) -> bool:
        return False

    def delete_manifest(self, digest: str) -> None:
        self._check("DELETE manifest")
        for reference in [r for r, data in self.manifests.items()
                          if r == digest or oci.Blob("", data).digest == digest]:
            del self.manifests[reference]


def test_the_pusher_retries_after_a_failure_and_reports_the_lag() -> None:
    digest, compressed, signature = _bundle()
    refs = [store.BundleRef(cluster="alpha", commit=COMMIT, digest=digest, latest=True, since=T0)]
    registry = FakeRegistry()
    metrics = metrics_mod.HubMetrics()
    clock = [T0 + dt.timedelta(seconds=30)]
    pusher = pushing.Pusher(client=registry, refs=lambda: refs,
                            load=lambda d: pushing.StoredBundle(compressed, signature, T0), source="https://git.example/fleet",
                            metrics=metrics, clock=lambda: clock[0])
    registry.down = True
    failed = pusher.push_once()
    assert failed.pushed == 0 and "connection refused" in failed.failed[0] and failed.lag_seconds == 30
    assert metrics.oci_push_lag._value.get() == 30
    registry.down = False
    done = pusher.push_once()
    assert done.pushed == 1 and done.failed == () and done.lag_seconds == 0
    assert {"alpha-aaaaaaa", "alpha-latest"} <= set(registry.manifests)
    assert registry.uploads == 4  # config, layer, {} and the signature
    assert pusher.push_once().pushed == 0  # nothing new: nothing sent
    # The fallback referrers tag lists the signature manifest.
    artifact = _artifact()
    [entry] = json.loads(registry.manifests[artifact.manifest.digest.replace(":", "-")])["manifests"]
    assert entry["digest"] == artifact.signature_manifest.digest


def _pusher(registry: FakeRegistry, refs: list[store.BundleRef], ledger: pushing.PushLedger,
            metrics: metrics_mod.HubMetrics | None = None) -> pushing.Pusher:
    stored = {digest: pushing.StoredBundle(compressed, signature, T0)
              for digest, compressed, signature in (_bundle("1"), _bundle("2"))}
    return pushing.Pusher(client=registry, refs=lambda: refs, load=stored.get, source="https://git.example/fleet",
                          metrics=metrics or metrics_mod.HubMetrics(), ledger=ledger,
                          clock=lambda: T0 + dt.timedelta(seconds=30))


def test_a_new_leader_pushes_only_what_the_shared_ledger_lacks_and_resends_no_blob() -> None:
    one, two = _bundle("1")[0], _bundle("2")[0]
    refs = [store.BundleRef(cluster="alpha", commit=COMMIT, digest=one, latest=True, since=T0)]
    registry, ledger = FakeRegistry(), pushing.MemoryLedger()
    woken: list[list[str]] = []
    first = _pusher(registry, refs, ledger)
    first.on_pushed = woken.append
    assert first.push_once().pushed == 1 and woken == [["alpha"]]
    # The leader changes: the new one reads the same ledger (the database) and pushes nothing again.
    second = _pusher(registry, refs, ledger)
    assert second.push_once().pushed == 0 and registry.uploads == 4
    refs.append(store.BundleRef(cluster="beta", commit=COMMIT, digest=two, latest=True, since=T0))
    assert second.push_once().pushed == 1
    assert registry.uploads == 7  # beta's config, layer and signature; the empty config blob is shared
    # A ledger lost altogether is re-derived: everything is pushed again, but no blob is re-sent.
    metrics = metrics_mod.HubMetrics()
    third = _pusher(registry, refs, pushing.MemoryLedger(), metrics)
    assert third.push_once().pushed == 2 and registry.uploads == 7
    assert metrics.oci_blobs.labels(outcome="sent")._value.get() == 0


def test_a_new_commit_costs_few_requests_and_a_blob_the_registry_lost_is_sent_again() -> None:
    one, two = _bundle("1")[0], _bundle("2")[0]
    refs = [store.BundleRef(cluster="alpha", commit=COMMIT, digest=one, latest=True, since=T0)]
    registry, ledger = FakeRegistry(), pushing.MemoryLedger()
    pusher = _pusher(registry, refs, ledger)
    assert pusher.push_once().pushed == 1
    # A cluster the ledger has not seen: every blob asked about first (a lost ledger re-sends nothing).
    assert registry.calls.count("HEAD blob") == 4

    def commit(sha: str, digest: str) -> list[str]:
        refs[:] = [dataclasses.replace(ref, latest=False) for ref in refs] + [
            store.BundleRef(cluster="alpha", commit=sha, digest=digest, latest=True, since=T0)]
        registry.calls.clear()
        assert pusher.push_once().pushed == 1
        assert registry.manifests["alpha-latest"] == registry.manifests[oci.sha_tag("alpha", sha)]
        return registry.calls

    manifests = ["PUT manifest"] * 4  # commit tag, signature, fallback referrers index, -latest tag
    # A new bundle: its config, layer and signature are new content, sent without asking first.
    assert commit("b" * 40, two) == ["upload blob"] * 3 + manifests
    # The same bundle at a new commit: only the new config blob (the ledger knows the layer and signature).
    assert commit("c" * 40, two) == ["upload blob", *manifests]
    # The registry lost a blob the ledger vouches for (its garbage collection): the manifest is refused,
    # and the artifact is pushed again at once, asking about every blob.
    layer = next(d for d, data in registry.blobs.items() if data == _bundle("2")[1])
    del registry.blobs[layer]
    calls = commit("d" * 40, two)
    assert calls.count("HEAD blob") == 4 and layer in registry.blobs
    artifact = oci.Blob(oci.MANIFEST_MEDIA_TYPE, registry.manifests["alpha-ddddddd"])
    [entry] = json.loads(registry.manifests[artifact.digest.replace(":", "-")])["manifests"]
    assert entry["artifactType"] == oci.SIGNATURE_ARTIFACT_TYPE


def test_pushed_artifacts_are_recorded_and_announced_during_the_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    one = _bundle("1")[0]
    refs = [store.BundleRef(cluster=name, commit=COMMIT, digest=one, latest=True, since=T0)
            for name in ("alpha", "beta", "gamma")]
    registry, ledger = FakeRegistry(), pushing.MemoryLedger()
    pusher = _pusher(registry, refs, ledger)
    seen: list[tuple[list[str], int]] = []
    pusher.on_pushed = lambda names: seen.append((names, len(ledger.pushed())))
    monkeypatch.setattr(pushing, "FLUSH_RECORDS", 1)
    assert pusher.push_once().pushed == 3
    # Each woken stream finds its push already in the ledger, one artifact at a time, not all at the end.
    assert sorted(name for names, _ in seen for name in names) == ["alpha", "beta", "gamma"]
    assert [count for _, count in seen] == [1, 2, 3]


def test_a_rollback_moves_the_latest_tag_back_without_pushing_the_artifact_again() -> None:
    one, two = _bundle("1")[0], _bundle("2")[0]
    old = store.BundleRef(cluster="alpha", commit=COMMIT, digest=one, latest=True, since=T0)
    new = store.BundleRef(cluster="alpha", commit="b" * 40, digest=two, latest=True, since=T0)
    registry, ledger = FakeRegistry(), pushing.MemoryLedger()
    refs = [old]
    pusher = _pusher(registry, refs, ledger)
    pusher.push_once()
    refs[:] = [dataclasses.replace(old, latest=False), new]
    assert pusher.push_once().pushed == 1
    assert registry.manifests["alpha-latest"] == registry.manifests["alpha-bbbbbbb"]
    assert [r.latest for r in sorted(ledger.pushed().values(), key=lambda r: r.commit)] == [False, True]
    refs[:] = [old, dataclasses.replace(new, latest=False)]
    uploads = registry.uploads
    assert pusher.push_once().pushed == 1 and registry.uploads == uploads
    assert registry.manifests["alpha-latest"] == registry.manifests["alpha-aaaaaaa"]
    assert pusher.push_once().pushed == 0


def test_push_backlog_counts_unpushed_artifacts_and_a_latest_tag_not_moved_yet() -> None:
    one, two = _bundle("1")[0], _bundle("2")[0]
    refs = [store.BundleRef(cluster="alpha", commit=COMMIT, digest=one, latest=True, since=T0),
            store.BundleRef(cluster="beta", commit=COMMIT, digest=two, latest=False,
                            since=T0 + dt.timedelta(seconds=20))]
    pushed = {("alpha", COMMIT, one): store.PushRecord("alpha", COMMIT, one, "sha256:" + "1" * 64, latest=False)}
    backlog = store.push_backlog(refs, pushed, T0 + dt.timedelta(seconds=42))
    assert backlog == store.PushBacklog(pending=2, oldest_seconds=42.0)
    pushed[("alpha", COMMIT, one)] = dataclasses.replace(pushed[("alpha", COMMIT, one)], latest=True)
    assert store.push_backlog(refs, pushed, T0 + dt.timedelta(seconds=42)).pending == 1


async def test_the_pusher_pushes_nothing_while_another_replica_leads() -> None:
    refs = [store.BundleRef(cluster="alpha", commit=COMMIT, digest=_bundle("1")[0], latest=True, since=T0)]
    registry = FakeRegistry()
    pusher = _pusher(registry, refs, pushing.MemoryLedger())
    stop = asyncio.Event()
    asked: list[bool] = []

    def follower() -> bool:
        asked.append(False)
        if len(asked) == 3:
            stop.set()
        return False

    await pusher.run(stop, 0.001, is_leader=follower)
    assert len(asked) == 3 and registry.manifests == {} and registry.uploads == 0

    stop.clear()

    def leader_once() -> bool:
        stop.set()  # this one cycle, then stop
        return True

    await pusher.run(stop, 0.001, is_leader=leader_once)
    assert "alpha-latest" in registry.manifests


def test_the_announced_reference_names_registry_repository_and_manifest_digest() -> None:
    source, manifest = pulling.parse_reference("registry.example:5000/fleet/bundles@sha256:" + "ab" * 32)
    assert (source.registry, source.repository, manifest) == ("registry.example:5000", "fleet/bundles",
                                                              "sha256:" + "ab" * 32)
    for bad in ("registry.example/fleet/bundles:alpha-latest", "registry.example@sha256:" + "ab" * 32,
                "registry.example/fleet@sha256:short"):
        with pytest.raises(ValueError, match="is not REGISTRY/REPOSITORY@sha256:<hex>"):
            pulling.parse_reference(bad)


def test_the_status_header_shows_the_push_backlog_only_for_a_pushing_hub() -> None:
    assert formatting.oci_push_line(pb.ListClustersResponse()) is None
    response = pb.ListClustersResponse(oci_push=pb.OciPushLag(target="ghcr.io/acme/b", pending=3, oldest_seconds=12.4))
    assert formatting.oci_push_line(response) == "OCI push to ghcr.io/acme/b: 3 pending, oldest 12s"
    assert formatting.oci_push_document(response) == {"target": "ghcr.io/acme/b", "pending": 3, "oldestSeconds": 12.4}
    done = pb.ListClustersResponse(oci_push=pb.OciPushLag(target="ghcr.io/acme/b"))
    assert formatting.oci_push_line(done) == "OCI push to ghcr.io/acme/b: up to date"


async def test_a_pull_by_the_announced_digest_refuses_a_manifest_the_registry_swapped() -> None:
    from aiohttp import web

    good, swapped = _artifact("alpha", "1"), _artifact("alpha", "2")
    served = {"manifest": good.manifest.data}

    async def manifest(request: web.Request) -> web.Response:
        return web.Response(body=served["manifest"], content_type=oci.MANIFEST_MEDIA_TYPE)

    async def blob(request: web.Request) -> web.Response:
        return web.Response(body={good.layer.digest: good.layer.data,
                                  swapped.layer.digest: swapped.layer.data}[request.match_info["digest"]])

    app = web.Application()
    app.router.add_get("/v2/fleet/bundles/manifests/{reference}", manifest)
    app.router.add_get("/v2/fleet/bundles/blobs/{digest}", blob)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        reference = f"127.0.0.1:{runner.addresses[0][1]}/fleet/bundles@{good.manifest.digest}"
        source, manifest_digest = pulling.parse_reference(reference, insecure=True)
        puller = pulling.Puller(source, cluster="alpha")

        def fetch() -> bytes:
            return puller.fetch(digest=good.bundle_digest, commit=COMMIT, max_size=1 << 20,
                                manifest_digest=manifest_digest)

        assert bundles.digest_of(await asyncio.to_thread(fetch)) == good.bundle_digest
        # The registry answers the hub's digest with another (validly signed, older or newer) bundle.
        served["manifest"] = swapped.manifest.data
        with pytest.raises(pulling.PullError, match=f"manifest {manifest_digest} does not match its digest"):
            await asyncio.to_thread(fetch)
    finally:
        await runner.cleanup()
