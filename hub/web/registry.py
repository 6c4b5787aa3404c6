"""The read side of the OCI Distribution API for the hub's own bundles, on the HTTP side port.

``GET|HEAD /v2/``, ``/v2/<name>/manifests/<tag|digest>``, ``/v2/<name>/blobs/<digest>``,
``/v2/<name>/tags/list`` and ``/v2/<name>/referrers/<digest>``, for the one repository
:data:`REPOSITORY`. Tags are ``<cluster>-<short commit>`` and ``<cluster>-latest``; the signature
artifact of a bundle manifest is listed by the referrers API and by its ``sha256-<hex>`` fallback tag.

Every request carries the same credentials as the gRPC API, as a bearer token or as the password of
HTTP Basic (what ``skopeo --creds`` and docker-style clients send): a cluster's credential reads only
that cluster's bundles, the admin credential reads all. Anything else gets 401 with a Basic challenge.
Artifacts are built on demand from the store (:mod:`protos.oci`) and remembered by (cluster, commit,
digest), which never changes meaning, so a cache entry is never stale.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from hub.store import repository as store
from protos import oci

__all__ = ["REPOSITORY", "Denied", "RegistryHooks", "StoredBundle", "add_routes"]

log = logging.getLogger(__name__)

#: The repository name the hub serves its bundles under (``<hub>:<port>/convoy/bundles:<tag>``).
REPOSITORY = "convoy/bundles"
_API_VERSION_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="convoy"'}


class Denied(Exception):
    """The credential is missing, unknown or rate-limited (``status``: 401 or 429)."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True)
class StoredBundle:
    compressed: bytes
    signature: bytes
    created_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class RegistryHooks:
    """What the registry needs from the hub (given by the composition root)."""

    #: credential -> the cluster it belongs to, or None for the admin credential; raises :class:`Denied`
    authorize: Callable[[str, str | None], Awaitable[str | None]]
    #: cluster (None: all) -> its bundles by commit
    refs: Callable[[str | None], Awaitable[Sequence[store.BundleRef]]]
    #: bundle digest -> stored bytes and signature (None once pruned)
    load: Callable[[str], Awaitable[StoredBundle | None]]
    source: str                     #: the fleet repository, for the config blob and the source annotation
    cache_size: int = 4096          #: artifacts remembered


@dataclasses.dataclass(frozen=True)
class _Tagged:
    ref: store.BundleRef
    artifact: oci.Artifact


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"errors": [{"code": code, "message": message}]}, status=status,
                             headers={**_API_VERSION_HEADER, **(headers or {})})


def _credential(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "basic":
        try:
            _user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return password or None
    return None


def _blob_response(blob: oci.Blob) -> web.Response:
    return web.Response(body=blob.data, headers={**_API_VERSION_HEADER, "Content-Type": blob.media_type,
                                                 "Docker-Content-Digest": blob.digest})


def add_routes(app: web.Application, hooks: RegistryHooks) -> None:
    cache: OrderedDict[tuple[str, str, str], oci.Artifact] = OrderedDict()

    async def artifact_of(ref: store.BundleRef) -> oci.Artifact | None:
        key = (ref.cluster, ref.commit, ref.digest)
        found = cache.get(key)
        if found is not None:
            cache.move_to_end(key)
            return found
        stored = await hooks.load(ref.digest)
        if stored is None:
            return None
        artifact = oci.build_from_stored(cluster=ref.cluster, commit=ref.commit, source=hooks.source,
                                         bundle_digest=ref.digest, compressed=stored.compressed,
                                         signature=stored.signature, created=stored.created_at)
        cache[key] = artifact
        while len(cache) > hooks.cache_size:
            cache.popitem(last=False)
        return artifact

    async def visible(request: web.Request) -> list[store.BundleRef]:
        """Every bundle the caller may read, oldest first; raises :class:`Denied`."""
        credential = _credential(request)
        if credential is None:
            raise Denied("no credentials: send the cluster's or the admin credential (Bearer or Basic password)")
        scope = await hooks.authorize(credential, request.remote)
        return list(await hooks.refs(scope))

    async def built(refs: list[store.BundleRef]) -> list[_Tagged]:
        """The artifacts of ``refs``: only for lookups by digest (a tag needs just its own)."""
        tagged: list[_Tagged] = []
        for ref in refs:
            artifact = await artifact_of(ref)
            if artifact is not None:
                tagged.append(_Tagged(ref, artifact))
        return tagged

    def guarded(handler: Callable[[web.Request, list[store.BundleRef]], Awaitable[web.Response]]
                ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def wrapper(request: web.Request) -> web.Response:
            name = request.match_info.get("name")
            try:
                tagged = await visible(request)
            except Denied as exc:
                code = "UNAUTHORIZED" if exc.status == 401 else "TOOMANYREQUESTS"
                return _error(exc.status, code, str(exc), _CHALLENGE if exc.status == 401 else None)
            if name is not None and name != REPOSITORY:
                return _error(404, "NAME_UNKNOWN", f"repository {name!r} is not served here; the hub's bundles "
                                                   f"are under {REPOSITORY}")
            return await handler(request, tagged)
        return wrapper

    def tags_of(refs: list[store.BundleRef]) -> dict[str, store.BundleRef]:
        tags: dict[str, store.BundleRef] = {}
        for ref in refs:  # oldest first: a later render of the same short commit wins
            tags[oci.sha_tag(ref.cluster, ref.commit)] = ref
            if ref.latest:
                tags[oci.latest_tag(ref.cluster)] = ref
        return tags

    def referrers_of(tagged: list[_Tagged], digest: str) -> list[oci.Blob]:
        return list({item.artifact.signature_manifest.digest: item.artifact.signature_manifest
                     for item in tagged if item.artifact.manifest.digest == digest}.values())

    async def base(request: web.Request, refs: list[store.BundleRef]) -> web.Response:
        return web.json_response({}, headers=_API_VERSION_HEADER)

    async def manifest(request: web.Request, refs: list[store.BundleRef]) -> web.Response:
        reference = request.match_info["reference"]
        if reference.startswith("sha256:"):
            for item in await built(refs):
                for blob in (item.artifact.manifest, item.artifact.signature_manifest):
                    if blob.digest == reference:
                        return _blob_response(blob)
            return _error(404, "MANIFEST_UNKNOWN", f"no bundle manifest {reference} that you may read")
        if reference.startswith("sha256-"):  # the referrers tag-schema fallback
            signatures = referrers_of(await built(refs), reference.replace("-", ":", 1))
            if signatures:
                return _blob_response(oci.Blob(oci.INDEX_MEDIA_TYPE, oci.referrers_index(signatures)))
        ref = tags_of(refs).get(reference)
        artifact = None if ref is None else await artifact_of(ref)
        if artifact is None:
            return _error(404, "MANIFEST_UNKNOWN", f"no tag {reference!r} that you may read (tags are "
                                                   "<cluster>-<short commit> and <cluster>-latest)")
        return _blob_response(artifact.manifest)

    async def blob(request: web.Request, refs: list[store.BundleRef]) -> web.Response:
        digest = request.match_info["digest"]
        for item in await built(refs):
            found = item.artifact.blobs().get(digest)
            if found is not None:
                return web.Response(body=found.data, headers={
                    **_API_VERSION_HEADER, "Content-Type": "application/octet-stream",
                    "Docker-Content-Digest": found.digest})
        return _error(404, "BLOB_UNKNOWN", f"no blob {digest} that you may read")

    async def tags_list(request: web.Request, refs: list[store.BundleRef]) -> web.Response:
        names = sorted(tags_of(refs))
        last = request.query.get("last")
        if last:
            names = [tag for tag in names if tag > last]
        limit = request.query.get("n")
        if limit and limit.isdigit():
            names = names[: int(limit)]
        return web.json_response({"name": REPOSITORY, "tags": names}, headers=_API_VERSION_HEADER)

    async def referrers(request: web.Request, refs: list[store.BundleRef]) -> web.Response:
        signatures = referrers_of(await built(refs), request.match_info["digest"])
        wanted = request.query.get("artifactType")
        headers = {**_API_VERSION_HEADER, "Content-Type": oci.INDEX_MEDIA_TYPE}
        if wanted is not None:
            headers["OCI-Filters-Applied"] = "artifactType"
            if wanted != oci.SIGNATURE_ARTIFACT_TYPE:
                signatures = []
        return web.Response(body=oci.referrers_index(signatures), headers=headers)

    app.router.add_get("/v2/", guarded(base))
    app.router.add_get(r"/v2/{name:.+}/manifests/{reference}", guarded(manifest))
    app.router.add_get(r"/v2/{name:.+}/blobs/{digest}", guarded(blob))
    app.router.add_get(r"/v2/{name:.+}/tags/list", guarded(tags_list))
    app.router.add_get(r"/v2/{name:.+}/referrers/{digest}", guarded(referrers))

