"""``--bundle-source oci://REGISTRY/REPOSITORY``: the bundle bytes from a registry (or a mirror or
pull-through cache in front of one) instead of the hub.

The hub's Watch stream still says *which* digest to apply and carries the hub's signature; this
module only fetches bytes: the manifest under ``<cluster>-<short commit>``, which must name the
desired bundle digest, then its one layer by digest (content-addressed, so any cache may serve it).
The caller verifies the inflated bytes against the digest and the hub's signature exactly as for
GetBundle, and falls back to GetBundle when a pull fails.

Authentication: HTTP Basic from a docker-style ``config.json`` (``auths``) when it has the registry,
the registry's bearer-token challenge (anonymous or with those credentials), and the cluster's own
credential only when the registry is the hub's host (its ``/v2/``), never elsewhere. The client is
the standard library's: four GETs do not justify a registry SDK in the spoke, and the spoke's one
HTTP client library (urllib3) belongs to its Kubernetes edge.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from protos import bundle as bundles
from protos import oci

__all__ = ["BundleSource", "PullError", "Puller", "parse_reference", "parse_source"]

log = logging.getLogger(__name__)

_ACCEPT = f"{oci.MANIFEST_MEDIA_TYPE}, {oci.INDEX_MEDIA_TYPE}"
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class PullError(Exception):
    """The registry could not give the bundle; the message names the registry and the reference."""


@dataclasses.dataclass(frozen=True)
class BundleSource:
    registry: str          #: host[:port]
    repository: str
    insecure: bool = False  #: plain HTTP

    def __str__(self) -> str:
        return f"oci://{self.registry}/{self.repository}"


def parse_source(text: str, *, insecure: bool = False) -> BundleSource:
    """``oci://REGISTRY/REPOSITORY`` into a :class:`BundleSource`; ValueError naming the setting."""
    if not text.startswith("oci://"):
        raise ValueError(f"bundle_source: must be oci://REGISTRY/REPOSITORY, got {text!r}")
    registry, _, repository = text.removeprefix("oci://").partition("/")
    if not registry or not repository or any(c in repository for c in ":@ "):
        raise ValueError(f"bundle_source: must be oci://REGISTRY/REPOSITORY, got {text!r}")
    return BundleSource(registry=registry, repository=repository.rstrip("/"), insecure=insecure)


_REFERENCE = re.compile(r"(?P<registry>[^/\s@]+)/(?P<repository>[^\s@:]+)@(?P<digest>sha256:[0-9a-f]{64})")


def parse_reference(text: str, *, insecure: bool = False) -> tuple[BundleSource, str]:
    """The hub's ``DesiredState.oci_reference`` (``REGISTRY/REPOSITORY@sha256:...``) into the source and the
    manifest digest; ValueError when it is not one (the spoke then uses GetBundle)."""
    match = _REFERENCE.fullmatch(text)
    if match is None:
        raise ValueError(f"the hub's oci_reference {text!r} is not REGISTRY/REPOSITORY@sha256:<hex>")
    source = BundleSource(registry=match["registry"], repository=match["repository"].rstrip("/"), insecure=insecure)
    return source, match["digest"]


def _docker_auth(config: Path | None, registry: str) -> str | None:
    """The ``auths.<registry>.auth`` value (base64 user:password) of a docker config, if any."""
    if config is None:
        return None
    try:
        document = json.loads(config.read_text())
    except (OSError, ValueError) as exc:
        raise PullError(f"{config}: cannot read the registry credentials ({exc})") from None
    for key in (registry, f"https://{registry}", f"http://{registry}"):
        entry = (document.get("auths") or {}).get(key)
        if isinstance(entry, dict) and entry.get("auth"):
            return str(entry["auth"])
    return None


class Puller:
    """Fetches a bundle's compressed bytes from a registry by the cluster's tag and the layer digest."""

    def __init__(self, source: BundleSource, *, cluster: str, docker_config: Path | None = None,
                 hub_host: str | None = None, timeout: float = 30.0) -> None:
        self.source = source
        self.cluster = cluster
        self._basic = _docker_auth(docker_config, source.registry)
        # The cluster credential goes only to the hub's own registry, never to a third party.
        same_host = hub_host is not None and source.registry.rsplit(":", 1)[0] == hub_host
        self._to_hub = same_host
        self._credential: str | None = None
        self._token: str | None = None
        self._timeout = timeout
        scheme = "http" if source.insecure else "https"
        self._base = f"{scheme}://{source.registry}/v2/{source.repository}"

    def _headers(self, accept: str) -> dict[str, str]:
        headers = {"Accept": accept}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        elif self._credential:
            headers["Authorization"] = f"Bearer {self._credential}"
        elif self._basic:
            headers["Authorization"] = f"Basic {self._basic}"
        return headers

    def _get(self, path: str, *, accept: str = "*/*", limit: int) -> bytes:
        url = f"{self._base}/{path}"
        for attempt in range(2):
            request = urllib.request.Request(url, headers=self._headers(accept))
            try:
                with urllib.request.urlopen(request, timeout=self._timeout) as response:  # http(s) only
                    data = bytes(response.read(limit + 1))
                    if len(data) > limit:
                        raise PullError(f"{url}: more than {limit} bytes")
                    return data
            except urllib.error.HTTPError as exc:
                challenge = exc.headers.get("WWW-Authenticate", "")
                if exc.code == 401 and attempt == 0 and challenge.lower().startswith("bearer "):
                    self._token = self._fetch_token(challenge)
                    continue
                raise PullError(f"{url}: HTTP {exc.code} {exc.reason}") from None
            except (urllib.error.URLError, OSError) as exc:
                raise PullError(f"{url}: {getattr(exc, 'reason', exc)}") from None
        raise PullError(f"{url}: refused after authenticating")

    def _fetch_token(self, challenge: str) -> str:
        """The distribution token flow: GET realm?service=..&scope=.. (with Basic credentials if any)."""
        params = dict(_CHALLENGE.findall(challenge))
        realm = params.pop("realm", "")
        if not realm.startswith(("https://", "http://")):
            raise PullError(f"{self.source}: unusable bearer challenge {challenge!r}")
        params.setdefault("scope", f"repository:{self.source.repository}:pull")
        headers = {"Authorization": f"Basic {self._basic}"} if self._basic else {}
        request = urllib.request.Request(f"{realm}?{urllib.parse.urlencode(params)}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                document: dict[str, Any] = json.loads(response.read(1024 * 1024))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise PullError(f"{self.source}: token request to {realm} failed ({exc})") from None
        token = document.get("token") or document.get("access_token")
        if not token:
            raise PullError(f"{self.source}: token response from {realm} has no token")
        return str(token)

    def fetch(self, *, digest: str, commit: str, max_size: int, credential: str | None = None,
              manifest_digest: str = "") -> bytes:
        """The canonical bytes of bundle ``digest`` (inflated, at most ``max_size``; NOT yet verified).
        ``credential``: the cluster's, sent only when the registry is the hub's own host.
        ``manifest_digest``: the manifest by that digest (the hub's announcement), else by the commit's tag."""
        self._credential = credential if self._to_hub else None
        tag = manifest_digest or oci.sha_tag(self.cluster, commit)
        raw = self._get(f"manifests/{tag}", accept=_ACCEPT, limit=1024 * 1024)
        if manifest_digest and oci.Blob(oci.MANIFEST_MEDIA_TYPE, raw).digest != manifest_digest:
            raise PullError(f"{self.source}: manifest {manifest_digest} does not match its digest")
        try:
            manifest = json.loads(raw)
        except ValueError as exc:
            raise PullError(f"{self.source}:{tag} is not a JSON manifest ({exc})") from None
        annotated = (manifest.get("annotations") or {}).get(oci.ANNOTATION_BUNDLE_DIGEST)
        if annotated != digest:
            raise PullError(f"{self.source}:{tag} holds bundle {annotated}, not the desired {digest}")
        layers = manifest.get("layers") or []
        if len(layers) != 1 or layers[0].get("mediaType") != oci.LAYER_MEDIA_TYPE:
            raise PullError(f"{self.source}:{tag} is not a Convoy bundle (one {oci.LAYER_MEDIA_TYPE} layer)")
        layer_digest = str(layers[0].get("digest", ""))
        compressed = self._get(f"blobs/{layer_digest}", limit=max_size)
        if oci.Blob(oci.LAYER_MEDIA_TYPE, compressed).digest != layer_digest:
            raise PullError(f"{self.source}: blob {layer_digest} does not match its digest")
        try:
            return bundles.decompress(compressed, max_size=max_size)
        except bundles.BundleError as exc:
            raise PullError(f"{self.source}: blob {layer_digest}: {exc}") from exc
