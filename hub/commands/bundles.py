"""``convoy bundle ls|export|verify``: a cluster's bundles as OCI artifacts.

``ls`` and ``export`` read the hub's OCI Distribution API (``/v2/`` on its HTTP port, ``--registry``)
with the admin credential of the CLI config; ``verify`` is offline: an OCI image layout (from
``convoy bundle export`` or ``skopeo copy ... oci:DIR``) and the hub's public key (``signing.pub`` in
its data directory). The HTTP client is the standard library's: the read side needs four GETs, and
the CLI should not pull a registry SDK in for that.
"""

from __future__ import annotations

import json
import re
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from hub import cliconfig
from hub.security import signing
from protos import oci, registryauth

__all__ = ["REPOSITORY", "Registry", "RegistryError", "bundle", "inspect"]

REPOSITORY = "convoy/bundles"
_ACCEPT = f"{oci.MANIFEST_MEDIA_TYPE}, {oci.INDEX_MEDIA_TYPE}"


class RegistryError(Exception):
    pass


class Registry:
    """The few GETs of the OCI read API, with a credential (the hub's admin or a cluster's) as a bearer
    token, or none (an anonymous registry)."""

    def __init__(self, base: str, credential: str | None, repository: str = REPOSITORY,
                 ca: Path | None = None, docker: registryauth.Credentials | None = None) -> None:
        self.base = base.rstrip("/")
        self._credential = credential
        self.repository = repository
        self._docker = docker            #: from --docker-config: Basic, or for the token flow
        self._token: str | None = None   #: from the registry's token flow
        self._basic = False              #: the registry asked for Basic
        # The hub's TLS registry port presents the hub's certificate: trust the CA the CLI config names.
        self._context = ssl.create_default_context(cafile=str(ca)) if ca is not None and base.startswith(
            "https://") else None

    def get(self, path: str, accept: str = "*/*") -> bytes:
        url = f"{self.base}/v2/{self.repository}/{path}"
        for attempt in range(2):
            request = urllib.request.Request(url, headers={"Accept": accept, **self._authorization()})
            try:
                with urllib.request.urlopen(request, timeout=30, context=self._context) as response:
                    return bytes(response.read())
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and attempt == 0 and self._answer(exc.headers.get("WWW-Authenticate", "")):
                    continue
                try:
                    detail = json.loads(exc.read())["errors"][0]["message"]
                except (ValueError, LookupError, TypeError):
                    detail = exc.reason
                raise RegistryError(f"{url}: {exc.code} {detail}") from None
            except (urllib.error.URLError, OSError) as exc:
                raise RegistryError(f"{url}: {getattr(exc, 'reason', exc)}") from None
        raise RegistryError(f"{url}: refused after authenticating")

    def _authorization(self) -> dict[str, str]:
        if self._token:
            return {"Authorization": f"Bearer {self._token}"}
        if self._credential:
            return {"Authorization": f"Bearer {self._credential}"}
        if self._basic and self._docker is not None:
            return {"Authorization": f"Basic {self._docker.basic()}"}
        return {}

    def _answer(self, challenge: str) -> bool:
        """Meet a 401's challenge (True: retry): the token flow, or Basic with the docker credentials."""
        scheme, params = registryauth.parse_challenge(challenge)
        if scheme == "bearer" and not self._credential:
            try:
                self._token = registryauth.bearer_token(params, repository=self.repository, credentials=self._docker,
                                                        context=self._context)
            except registryauth.RegistryAuthError as exc:
                raise RegistryError(f"{self.base}: {exc}") from None
            return True
        if scheme == "basic" and self._docker is not None and not self._basic:
            self._basic = True
            return True
        return False

    def tags(self) -> list[str]:
        return list(json.loads(self.get("tags/list"))["tags"])


def _registry(registry: str, hub_name: str | None) -> Registry:
    if not registry.startswith(("http://", "https://")):
        raise click.UsageError(f"--registry must be an http:// or https:// URL, got {registry!r}")
    resolved = cliconfig.resolve(hub_name)
    return Registry(registry, resolved.credential_value(), ca=resolved.ca)


def _cluster_tags(tags: list[str], cluster: str) -> list[str]:
    return [tag for tag in tags if tag.startswith(f"{cluster}-")]


def ls_rows(cluster: str, tags: list[str], manifests: Mapping[str, Mapping[str, Any]], registry: str) -> list[str]:
    """One line per artifact: tag, revision, bundle digest, created, reference."""
    host = registry.split("://", 1)[1].rstrip("/")
    rows = []
    for tag in tags:
        annotations = manifests[tag].get("annotations", {})
        rows.append(f"{tag:<24} {annotations.get('org.opencontainers.image.revision', '')[:12]:<12} "
                    f"{annotations.get(oci.ANNOTATION_BUNDLE_DIGEST, '')[:19]:<19} "
                    f"{annotations.get('org.opencontainers.image.created', ''):<20} {host}/{REPOSITORY}:{tag}")
    return rows


def inspect(client: Registry, tag: str, public_key: bytes) -> oci.VerifiedBundle:
    """Fetch the artifact under ``tag`` and verify it (blob digests, bundle digest, hub signature)."""
    manifest = client.get(f"manifests/{tag}", _ACCEPT)
    return oci.verify_manifest(manifest, lambda digest: client.get(f"blobs/{digest}"), public_key)


@click.group()
def bundle() -> None:
    """A cluster's bundles as OCI artifacts: list, export to an OCI layout, verify offline."""


_registry_option = click.option(
    "--registry", envvar="CONVOY_REGISTRY", required=True,
    help="The hub's OCI registry port (e.g. https://127.0.0.1:7444, verified with the CLI config's CA; "
         "http://HOST:HTTP-PORT for an insecure or sandbox hub); env CONVOY_REGISTRY.")
_hub_option = click.option("--hub", "hub_name", envvar="CONVOY_HUB", default=None,
                           help="Hub name from the CLI config (for its admin credential).")


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@bundle.command("ls")
@click.argument("cluster")
@_registry_option
@_hub_option
def ls(cluster: str, registry: str, hub_name: str | None) -> None:
    """List CLUSTER's bundle artifacts (tags <cluster>-<short commit> and <cluster>-latest).

    \b
    Examples:
      convoy bundle ls prod-eu-1 --registry http://127.0.0.1:7080
    """
    try:
        client = _registry(registry, hub_name)
        tags = _cluster_tags(client.tags(), cluster)
        manifests = {tag: json.loads(client.get(f"manifests/{tag}", _ACCEPT)) for tag in tags}
    except (RegistryError, cliconfig.CliConfigError) as exc:
        _fail(str(exc))
        return
    if not tags:
        _fail(f"cluster {cluster}: no bundles at {registry}")
    for line in ls_rows(cluster, tags, manifests, registry):
        click.echo(line)


@bundle.command("export")
@click.argument("cluster")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--commit", default="", help="A fleet commit (7+ characters); default: the desired bundle.")
@_registry_option
@_hub_option
def export(cluster: str, directory: Path, commit: str, registry: str, hub_name: str | None) -> None:
    """Write CLUSTER's bundle (and its signature artifact) into an OCI image layout DIRECTORY.

    \b
    Examples:
      convoy bundle export prod-eu-1 ./prod-eu-1.oci --registry http://127.0.0.1:7080
      convoy bundle export prod-eu-1 ./old.oci --commit 3f2a9c1e --registry http://127.0.0.1:7080
    """
    tag = oci.latest_tag(cluster) if not commit else oci.sha_tag(cluster, commit)
    try:
        client = _registry(registry, hub_name)
        manifest_bytes = client.get(f"manifests/{tag}", _ACCEPT)
        manifest = json.loads(manifest_bytes)
        blobs = {oci.Blob(oci.MANIFEST_MEDIA_TYPE, manifest_bytes).digest: manifest_bytes}
        for descriptor in [manifest["config"], *manifest["layers"]]:
            blobs[descriptor["digest"]] = client.get(f"blobs/{descriptor['digest']}")
        manifest_digest = next(iter(blobs))
        referrers = json.loads(client.get(f"referrers/{manifest_digest}", oci.INDEX_MEDIA_TYPE))
        signatures = []
        for descriptor in referrers.get("manifests", []):
            data = client.get(f"manifests/{descriptor['digest']}", _ACCEPT)
            blobs[descriptor["digest"]] = data
            signatures.append(descriptor["digest"])
            for layer in [json.loads(data)["config"], *json.loads(data)["layers"]]:
                blobs[layer["digest"]] = client.get(f"blobs/{layer['digest']}")
    except (RegistryError, cliconfig.CliConfigError) as exc:
        _fail(str(exc))
        return
    oci.write_blobs(directory, blobs, manifests=[(manifest_digest, len(manifest_bytes), oci.ARTIFACT_TYPE, tag)]
                    + [(digest, len(blobs[digest]), oci.SIGNATURE_ARTIFACT_TYPE, None) for digest in signatures])
    click.echo(f"{cluster}: {tag} ({manifest['annotations'].get(oci.ANNOTATION_BUNDLE_DIGEST)}) written to "
               f"{directory} as an OCI image layout")


_REF = re.compile(r"^(?P<registry>[^/\s]+)/(?P<repository>[^:@\s]+)"
                  r"(?::(?P<tag>[\w][\w.-]{0,127})|@(?P<digest>sha256:[0-9a-f]{64}))\Z")


@bundle.command("verify")
@click.argument("target")
@click.option("--public-key", "public_key", type=click.Path(path_type=Path), required=True,
              help="The hub's bundle-signing public key: <hub data dir>/signing.pub (PEM) or 32 raw bytes.")
@click.option("--insecure", is_flag=True, help="REF over plain HTTP (a local registry or the hub's side port).")
@click.option("--credential-file", "credential_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A bearer credential for REF (the hub's admin credential, or a cluster's); default: anonymous.")
@click.option("--docker-config", "docker_config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Your docker-style config.json for REF's registry: auths, credHelpers or credsStore (the "
                   "docker-credential-NAME helpers it names are run); used for Basic or the token flow.")
@click.option("--ca-file", "ca_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CA (PEM) to check REF's registry certificate with, e.g. the hub's for its registry port; "
                   "default: the system's roots.")
def verify(target: str, public_key: Path, insecure: bool, credential_file: Path | None,
           docker_config: Path | None, ca_file: Path | None) -> None:
    """Check bundles: TARGET is an OCI image layout directory (every bundle in it) or a reference
    REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@sha256:... Blob digests, bundle digest and the hub's
    signature are checked with the hub's public key, not with anything the registry says.

    \b
    Examples:
      convoy bundle verify ./prod-eu-1.oci --public-key /var/lib/convoy/signing.pub
      convoy bundle verify registry.example/fleet/bundles:prod-eu-1-latest --public-key signing.pub
      convoy bundle verify ghcr.io/acme/b:prod-eu-1-latest --public-key signing.pub --docker-config cfg.json
    """
    try:
        key = signing.load_public_key(public_key)
        if Path(target).is_dir():
            verified = oci.verify_layout(Path(target), key)
        else:
            match = _REF.match(target)
            if match is None:
                raise click.UsageError(f"{target!r} is neither a directory nor REGISTRY/REPOSITORY:TAG|@DIGEST")
            credential = credential_file.read_text().strip() if credential_file else None
            docker = registryauth.docker_credentials(docker_config, match["registry"])
            client = Registry(f"{'http' if insecure else 'https'}://{match['registry']}", credential,
                              repository=match["repository"], docker=docker, ca=ca_file)
            verified = [inspect(client, match["tag"] or match["digest"], key)]
    except (signing.SigningKeyError, oci.OciError, RegistryError, registryauth.RegistryAuthError) as exc:
        _fail(str(exc))
        return
    for item in verified:
        click.echo(f"{item.cluster} {item.commit[:7]} {item.digest}: {item.objects} objects, digest good, "
                   "signature good")
