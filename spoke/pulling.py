"""``--bundle-source oci://REGISTRY/REPOSITORY``: the bundle bytes from a registry (or a mirror or
pull-through cache in front of one) instead of the hub.

The hub's Watch stream still says *which* digest to apply and carries the hub's signature; this
module only fetches bytes: the manifest under ``<cluster>-<short commit>``, which must name the
desired bundle digest, then its one layer by digest (content-addressed, so any cache may serve it).
The caller verifies the inflated bytes against the digest and the hub's signature exactly as for
GetBundle, and falls back to GetBundle when a pull fails.

Authentication: credentials from a docker-style ``config.json`` (``--registry-config``: ``auths``,
``credHelpers`` or ``credsStore``, looked up as docker does by :mod:`protos.registryauth`; a helper
``docker-credential-<name>`` runs only when that file names it, and only when the registry asks for
credentials, once per fetch), answering the registry's challenge: HTTP Basic, or the bearer-token flow
(anonymous or with those credentials; the token is kept until the registry refuses it). The cluster's
own credential goes only to the hub's own host (its ``/v2/``), never elsewhere. The client is
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

from protos import bundle as bundles
from protos import oci, registryauth

__all__ = ["BundleSource", "PullError", "Puller", "parse_reference", "parse_source"]

log = logging.getLogger(__name__)

_ACCEPT = f"{oci.MANIFEST_MEDIA_TYPE}, {oci.INDEX_MEDIA_TYPE}"


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


def _check_config(config: Path | None) -> None:
    """An unreadable ``--registry-config`` is said at once (the credentials in it are read when asked for)."""
    if config is None:
        return
    try:
        document = json.loads(config.read_text())
    except (OSError, ValueError) as exc:
        raise PullError(f"{config}: cannot read the registry credentials ({type(exc).__name__})") from None
    if not isinstance(document, dict):
        raise PullError(f"{config}: cannot read the registry credentials (not a JSON object)")


class Puller:
    """Fetches a bundle's compressed bytes from a registry by the cluster's tag and the layer digest."""

    def __init__(self, source: BundleSource, *, cluster: str, docker_config: Path | None = None,
                 hub_host: str | None = None, timeout: float = 30.0) -> None:
        self.source = source
        self.cluster = cluster
        _check_config(docker_config)
        self._config = docker_config
        # This fetch's credentials from the config, looked up (a helper run) when the registry first asks.
        self._docker: registryauth.Credentials | None = None
        self._looked_up = False
        self._basic: str | None = None
        # The cluster credential goes only to the hub's own registry, never to a third party.
        same_host = hub_host is not None and source.registry.rsplit(":", 1)[0] == hub_host
        self._to_hub = same_host
        self._credential: str | None = None
        self._token: str | None = None
        self._timeout = timeout
        scheme = "http" if source.insecure else "https"
        self._base = f"{scheme}://{source.registry}/v2/{source.repository}"

    def _credentials(self) -> registryauth.Credentials | None:
        if not self._looked_up:
            self._looked_up = True
            try:
                self._docker = registryauth.docker_credentials(self._config, self.source.registry)
            except registryauth.RegistryAuthError as exc:
                raise PullError(f"{self.source}: {exc}") from None
        return self._docker

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
                scheme, params = registryauth.parse_challenge(exc.headers.get("WWW-Authenticate", ""))
                if exc.code == 401 and attempt == 0 and scheme == "bearer":
                    self._token = self._fetch_token(params)
                    continue
                if exc.code == 401 and attempt == 0 and scheme == "basic" and not self._token:
                    credentials = self._credentials()
                    if credentials is not None and credentials.basic() != self._basic:
                        self._basic = credentials.basic()
                        continue
                raise PullError(f"{url}: HTTP {exc.code} {exc.reason}") from None
            except (urllib.error.URLError, OSError) as exc:
                raise PullError(f"{url}: {getattr(exc, 'reason', exc)}") from None
        raise PullError(f"{url}: refused after authenticating")

    def _fetch_token(self, challenge: dict[str, str]) -> str:
        """The distribution token flow (with the config's credentials as HTTP Basic, if any)."""
        try:
            return registryauth.bearer_token(challenge, repository=self.source.repository,
                                             credentials=self._credentials(), timeout=self._timeout)
        except registryauth.RegistryAuthError as exc:
            raise PullError(f"{self.source}: {exc}") from None

    def fetch(self, *, digest: str, commit: str, max_size: int, credential: str | None = None,
              manifest_digest: str = "") -> bytes:
        """The canonical bytes of bundle ``digest`` (inflated, at most ``max_size``; NOT yet verified).
        ``credential``: the cluster's, sent only when the registry is the hub's own host.
        ``manifest_digest``: the manifest by that digest (the hub's announcement), else by the commit's tag."""
        self._credential = credential if self._to_hub else None
        self._looked_up = False  # a helper's answer may be short-lived: asked again when needed
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
