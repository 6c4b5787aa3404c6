"""Bundles as OCI artifacts: the manifest, config and layer of one bundle, its signature artifact, and
checking an OCI image layout offline.

One bundle of one cluster at one commit is an OCI image manifest (schemaVersion 2) with
``artifactType`` :data:`ARTIFACT_TYPE`, a small JSON config (:data:`CONFIG_MEDIA_TYPE`: cluster,
commit, source, apps, object count, render time) and exactly one layer (:data:`LAYER_MEDIA_TYPE`):
the zlib-compressed canonical bytes the hub stores, so the layer digest is stable across re-renders of
the same input and clusters that share a bundle share the layer blob. The hub's Ed25519 signature over
the bundle digest (``protos.bundle.sign``) is carried twice: as the manifest annotation
:data:`ANNOTATION_SIGNATURE` (so a single ``skopeo copy`` yields a layout that verifies offline) and as
a second artifact (:data:`SIGNATURE_ARTIFACT_TYPE`) whose ``subject`` is the bundle manifest, which OCI
1.1 registries list under ``referrers``.

Everything here is pure: bytes in, bytes out. JSON documents are compact with sorted keys, so the
same inputs give the same manifest digest in every process.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from protos import bundle as bundles

__all__ = [
    "ANNOTATION_BUNDLE_DIGEST",
    "ANNOTATION_CLUSTER",
    "ANNOTATION_SIGNATURE",
    "ARTIFACT_TYPE",
    "CONFIG_MEDIA_TYPE",
    "EMPTY_MEDIA_TYPE",
    "INDEX_MEDIA_TYPE",
    "LAYER_MEDIA_TYPE",
    "MANIFEST_MEDIA_TYPE",
    "SIGNATURE_ARTIFACT_TYPE",
    "SIGNATURE_MEDIA_TYPE",
    "Artifact",
    "Blob",
    "BundleInfo",
    "OciError",
    "VerifiedBundle",
    "build",
    "build_from_stored",
    "latest_tag",
    "referrers_index",
    "sha_tag",
    "verify_layout",
    "verify_manifest",
    "write_blobs",
    "write_layout",
]

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
ARTIFACT_TYPE = "application/vnd.convoy.bundle.v1"
CONFIG_MEDIA_TYPE = "application/vnd.convoy.bundle.config.v1+json"
#: The canonical JSON bytes, zlib-compressed (what ``protos.bundle.compress`` makes and the hub stores).
LAYER_MEDIA_TYPE = "application/vnd.convoy.bundle.content.v1+json+zlib"
SIGNATURE_ARTIFACT_TYPE = "application/vnd.convoy.bundle.signature.v1"
#: The raw 64-byte Ed25519 signature over ``protos.bundle.signing_payload(bundle digest)``.
SIGNATURE_MEDIA_TYPE = "application/vnd.convoy.bundle.signature.v1+ed25519"
ANNOTATION_BUNDLE_DIGEST = "dev.convoy.bundle.digest"
ANNOTATION_SIGNATURE = "dev.convoy.bundle.signature"
ANNOTATION_CLUSTER = "dev.convoy.cluster"
_REF_NAME = "org.opencontainers.image.ref.name"
_EMPTY = b"{}"
#: Bundles are bounded by the spoke's limit too; offline verification refuses anything larger.
MAX_BUNDLE_BYTES = 256 * 1024 * 1024
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}\Z")


class OciError(Exception):
    """An artifact or layout that is not a valid, signed Convoy bundle."""


def _json(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclasses.dataclass(frozen=True)
class Blob:
    """Content with its media type; manifests are blobs too."""

    media_type: str
    data: bytes

    @functools.cached_property
    def digest(self) -> str:
        # Cached: the pusher and the registry read a blob's digest many times (manifests, tags, ledger).
        return _sha256(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data), **extra}


@dataclasses.dataclass(frozen=True)
class BundleInfo:
    """What the config blob says about a bundle (all of it known to the hub without rendering again)."""

    cluster: str
    commit: str
    source: str                 #: the fleet repository URL, without credentials
    apps: tuple[str, ...]
    objects: int
    created: dt.datetime        #: when the hub rendered (stored) the bundle


@dataclasses.dataclass(frozen=True)
class Artifact:
    """One bundle as OCI blobs: the manifest, its config and layer, and the signature artifact."""

    bundle_digest: str
    manifest: Blob
    config: Blob
    layer: Blob
    signature_manifest: Blob
    signature: Blob
    empty: Blob

    def blobs(self) -> dict[str, Blob]:
        """Every blob and manifest by digest."""
        return {blob.digest: blob for blob in (self.manifest, self.config, self.layer, self.signature_manifest,
                                               self.signature, self.empty)}


def sha_tag(cluster: str, commit: str) -> str:
    """The tag a person looks for: ``<cluster>-<short commit>``."""
    return f"{cluster}-{commit[:7]}"


def latest_tag(cluster: str) -> str:
    return f"{cluster}-latest"


def _created(when: dt.datetime) -> str:
    aware = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    return aware.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build(info: BundleInfo, *, bundle_digest: str, compressed: bytes, signature: bytes) -> Artifact:
    """The OCI artifact of ``compressed`` (zlib of the canonical bytes whose digest is ``bundle_digest``)."""
    created = _created(info.created)
    config = Blob(CONFIG_MEDIA_TYPE, _json({
        "cluster": info.cluster, "commit": info.commit, "source": info.source, "apps": list(info.apps),
        "objects": info.objects, "created": created, "bundleDigest": bundle_digest}))
    layer = Blob(LAYER_MEDIA_TYPE, compressed)
    annotations = {
        "org.opencontainers.image.source": info.source,
        "org.opencontainers.image.revision": info.commit,
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.title": f"{info.cluster} bundle",
        ANNOTATION_CLUSTER: info.cluster,
        ANNOTATION_BUNDLE_DIGEST: bundle_digest,
        ANNOTATION_SIGNATURE: base64.b64encode(signature).decode("ascii"),
    }
    manifest = Blob(MANIFEST_MEDIA_TYPE, _json({
        "schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE, "artifactType": ARTIFACT_TYPE,
        "config": config.descriptor(), "layers": [layer.descriptor()], "annotations": annotations}))
    empty = Blob(EMPTY_MEDIA_TYPE, _EMPTY)
    sig = Blob(SIGNATURE_MEDIA_TYPE, signature)
    signature_manifest = Blob(MANIFEST_MEDIA_TYPE, _json({
        "schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE, "artifactType": SIGNATURE_ARTIFACT_TYPE,
        "config": empty.descriptor(), "layers": [sig.descriptor()],
        "subject": manifest.descriptor(),
        "annotations": {ANNOTATION_BUNDLE_DIGEST: bundle_digest, "org.opencontainers.image.created": created}}))
    return Artifact(bundle_digest=bundle_digest, manifest=manifest, config=config, layer=layer,
                    signature_manifest=signature_manifest, signature=sig, empty=empty)


def build_from_stored(*, cluster: str, commit: str, source: str, bundle_digest: str, compressed: bytes,
                      signature: bytes, created: dt.datetime) -> Artifact:
    """:func:`build` from a stored bundle (zlib bytes): the app list and object count are read from it,
    after checking the bytes against ``bundle_digest``."""
    try:
        document = bundles.decode(bundles.decompress(compressed, max_size=MAX_BUNDLE_BYTES),
                                  expected_digest=bundle_digest)
    except bundles.BundleError as exc:
        raise OciError(f"stored bundle {bundle_digest}: {exc}") from exc
    info = BundleInfo(cluster=cluster, commit=commit, source=source,
                      apps=tuple(str(app.get("name", "")) for app in document.get("apps", [])),
                      objects=len(document["objects"]), created=created)
    return build(info, bundle_digest=bundle_digest, compressed=compressed, signature=signature)


def referrers_index(signature_manifests: Sequence[Blob]) -> bytes:
    """The image index that the referrers API (and its ``sha256-<hex>`` tag fallback) answers with."""
    return _json({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": [
        blob.descriptor(artifactType=SIGNATURE_ARTIFACT_TYPE,
                        annotations=json.loads(blob.data).get("annotations", {}))
        for blob in signature_manifests]})


@dataclasses.dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose bytes match its digest and whose signature is the hub's."""

    digest: str
    manifest_digest: str
    cluster: str
    commit: str
    objects: int
    bundle: dict[str, Any]


def _load(data: bytes, what: str) -> dict[str, Any]:
    try:
        parsed = json.loads(data)
    except ValueError as exc:
        raise OciError(f"{what} is not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise OciError(f"{what} is not a JSON object")
    return parsed


def verify_manifest(manifest_bytes: bytes, read_blob: Any, public_key: bytes) -> VerifiedBundle:
    """Check one bundle manifest: every blob matches its digest, the layer inflates to the canonical bytes
    of the annotated bundle digest, and the annotated signature is the hub's over that digest.

    ``read_blob(digest) -> bytes`` fetches a blob (from a layout directory or a registry)."""
    manifest_digest = _sha256(manifest_bytes)
    manifest = _load(manifest_bytes, f"manifest {manifest_digest}")
    if manifest.get("artifactType") != ARTIFACT_TYPE:
        raise OciError(f"manifest {manifest_digest} is not a Convoy bundle (artifactType "
                       f"{manifest.get('artifactType')!r}, expected {ARTIFACT_TYPE})")
    annotations = manifest.get("annotations") or {}
    bundle_digest = str(annotations.get(ANNOTATION_BUNDLE_DIGEST, ""))
    if not _DIGEST.match(bundle_digest):
        raise OciError(f"manifest {manifest_digest} has no {ANNOTATION_BUNDLE_DIGEST} annotation")
    try:
        signature = base64.b64decode(str(annotations.get(ANNOTATION_SIGNATURE, "")), validate=True)
    except ValueError as exc:
        raise OciError(f"manifest {manifest_digest}: {ANNOTATION_SIGNATURE} is not base64") from exc
    layers = manifest.get("layers") or []
    if len(layers) != 1 or layers[0].get("mediaType") != LAYER_MEDIA_TYPE:
        raise OciError(f"manifest {manifest_digest} must have exactly one {LAYER_MEDIA_TYPE} layer")
    config = _checked_blob(read_blob, manifest.get("config") or {}, manifest_digest)
    compressed = _checked_blob(read_blob, layers[0], manifest_digest)
    try:
        raw = bundles.decompress(compressed, max_size=MAX_BUNDLE_BYTES)
        bundle = bundles.decode(raw, expected_digest=bundle_digest)
        bundles.verify_signature(public_key, bundle_digest, signature)
    except bundles.BundleError as exc:
        raise OciError(f"manifest {manifest_digest}: {exc}") from exc
    info = _load(config, f"config of manifest {manifest_digest}")
    return VerifiedBundle(digest=bundle_digest, manifest_digest=manifest_digest,
                          cluster=str(info.get("cluster", "")), commit=str(info.get("commit", "")),
                          objects=len(bundle["objects"]), bundle=bundle)


def _checked_blob(read_blob: Any, descriptor: Mapping[str, Any], manifest_digest: str) -> bytes:
    digest = str(descriptor.get("digest", ""))
    if not _DIGEST.match(digest):
        raise OciError(f"manifest {manifest_digest} names a blob with an unsupported digest {digest!r}")
    data: bytes = read_blob(digest)
    if _sha256(data) != digest:
        raise OciError(f"blob {digest} of manifest {manifest_digest} does not match its digest")
    return data


def _layout_blob(directory: Path, digest: str) -> bytes:
    path = directory / "blobs" / "sha256" / digest.removeprefix("sha256:")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise OciError(f"{directory}: blob {digest} is missing ({exc.strerror})") from exc


def verify_layout(directory: Path, public_key: bytes) -> list[VerifiedBundle]:
    """Verify every Convoy bundle manifest an OCI image layout's ``index.json`` lists (signature artifacts
    and other manifests are skipped); :class:`OciError` on the first that fails or if there is none."""
    try:
        index = _load((directory / "index.json").read_bytes(), f"{directory}/index.json")
    except OSError as exc:
        raise OciError(f"{directory} is not an OCI image layout: no readable index.json ({exc.strerror})") from exc
    verified: list[VerifiedBundle] = []
    for descriptor in index.get("manifests") or []:
        if descriptor.get("mediaType") != MANIFEST_MEDIA_TYPE:
            continue
        data = _checked_blob(lambda d: _layout_blob(directory, d), descriptor, "index.json")
        if _load(data, f"manifest {descriptor.get('digest')}").get("artifactType") != ARTIFACT_TYPE:
            continue
        verified.append(verify_manifest(data, lambda d: _layout_blob(directory, d), public_key))
    if not verified:
        raise OciError(f"{directory}: the layout holds no Convoy bundle manifest")
    return verified


def write_blobs(directory: Path, blobs: Mapping[str, bytes],
                manifests: Sequence[tuple[str, int, str, str | None]]) -> None:
    """Write an OCI image layout: every blob by digest, and ``index.json`` listing ``manifests`` as
    ``(digest, size, artifactType, tag or None)``. Blobs are checked against their digests first."""
    for digest, data in blobs.items():
        if _sha256(data) != digest:
            raise OciError(f"blob {digest} does not match its digest; not written")
    blob_dir = directory / "blobs" / "sha256"
    blob_dir.mkdir(parents=True, exist_ok=True)
    for digest, data in blobs.items():
        (blob_dir / digest.removeprefix("sha256:")).write_bytes(data)
    entries = []
    for digest, size, artifact_type, tag in manifests:
        entry: dict[str, Any] = {"mediaType": MANIFEST_MEDIA_TYPE, "digest": digest, "size": size,
                                 "artifactType": artifact_type}
        if tag:
            entry["annotations"] = {_REF_NAME: tag}
        entries.append(entry)
    (directory / "oci-layout").write_bytes(_json({"imageLayoutVersion": "1.0.0"}))
    (directory / "index.json").write_bytes(_json({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE,
                                                  "manifests": entries}))


def write_layout(directory: Path, artifacts: Sequence[tuple[Artifact, Sequence[str]]]) -> None:
    """Write an OCI image layout holding each artifact (bundle and signature manifests) under its tags."""
    blobs: dict[str, bytes] = {}
    manifests: list[tuple[str, int, str, str | None]] = []
    for artifact, tags in artifacts:
        blobs.update({digest: blob.data for digest, blob in artifact.blobs().items()})
        names: Sequence[str | None] = list(tags) or [None]
        for tag in names:
            manifests.append((artifact.manifest.digest, len(artifact.manifest.data), ARTIFACT_TYPE, tag))
        manifests.append((artifact.signature_manifest.digest, len(artifact.signature_manifest.data),
                          SIGNATURE_ARTIFACT_TYPE, None))
    write_blobs(directory, blobs, manifests)
