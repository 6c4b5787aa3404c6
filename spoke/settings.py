"""Spoke settings: flags and ``CONVOY_SPOKE_*`` environment variables, validated once at start.

Precedence: a flag given on the command line wins over the environment; defaults fill the rest.
The bootstrap token may be a bare ``<id>.<secret>`` or a join token (``convoy-join...``) that also
carries the hub CA fingerprint (and possibly the hub address). Join tokens and labels are parsed by
the shared definitions in ``protos`` (:mod:`protos.jointoken`, :mod:`protos.selectors`), the ones
the hub uses.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from protos import jointoken, selectors
from protos.status import DriftPolicy

__all__ = [
    "DEFAULT_HEALTH_PORT",
    "DEFAULT_NAMESPACE",
    "ENV_PREFIX",
    "SettingsError",
    "SpokeSettings",
    "load_settings",
    "parse_join_token",
    "parse_labels",
]

ENV_PREFIX = "CONVOY_SPOKE_"
DEFAULT_NAMESPACE = "convoy-system"
DEFAULT_HEALTH_PORT = 8081

_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")

#: setting name -> environment variable (the names `convoy spoke install` writes into the Deployment).
ENV_NAMES: dict[str, str] = {
    "hub": "CONVOY_SPOKE_HUB",
    "cluster": "CONVOY_SPOKE_CLUSTER",
    "labels": "CONVOY_SPOKE_LABELS",
    "token": "CONVOY_SPOKE_TOKEN",
    "token_file": "CONVOY_SPOKE_TOKEN_FILE",
    "namespace": "CONVOY_SPOKE_NAMESPACE",
    "insecure": "CONVOY_SPOKE_INSECURE",
    "drift_policy": "CONVOY_SPOKE_DRIFT_POLICY",
    "health_port": "CONVOY_SPOKE_HEALTH_PORT",
    "health_host": "CONVOY_SPOKE_HEALTH_HOST",
    "health_timeout": "CONVOY_SPOKE_HEALTH_TIMEOUT",
    "heartbeat": "CONVOY_SPOKE_HEARTBEAT",
    "kubeconfig": "CONVOY_SPOKE_KUBECONFIG",
    "context": "CONVOY_SPOKE_CONTEXT",
    "hub_ca": "CONVOY_SPOKE_HUB_CA",
    "state_secret": "CONVOY_SPOKE_STATE_SECRET",
    "bundle_source": "CONVOY_SPOKE_BUNDLE_SOURCE",
    "bundle_source_insecure": "CONVOY_SPOKE_BUNDLE_SOURCE_INSECURE",
    "registry_config": "CONVOY_SPOKE_REGISTRY_CONFIG",
    "previous_age_key_grace": "CONVOY_SPOKE_PREVIOUS_AGE_KEY_GRACE",
}


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the flag/variable."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class SpokeSettings:
    """Everything ``convoy spoke run`` needs, with documented defaults."""

    hub: str                                   #: hub gRPC address host:port, or several comma-separated
    cluster: str                               #: this cluster's name (DNS label)
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    token: str | None = dataclasses.field(default=None, repr=False)  #: bootstrap token; first start only
    ca_fingerprint: str | None = None          #: pinned hub CA (from a join token)
    hub_ca_file: str | None = None             #: PEM file trusted for the hub instead of pinning
    namespace: str = DEFAULT_NAMESPACE         #: where the state Secret and inventory live
    kubeconfig: str | None = None              #: None with no context: in-cluster configuration
    context: str | None = None
    insecure: bool = False                     #: plaintext gRPC, for local sandboxes only
    drift_policy: DriftPolicy = DriftPolicy.CORRECT
    health_timeout: float = 300.0              #: seconds before not-Current objects make it Degraded
    heartbeat: float = 30.0                    #: seconds between status reports when nothing changes
    health_port: int = DEFAULT_HEALTH_PORT     #: /healthz for the Deployment's probes; 0 = any free port
    health_host: str = "0.0.0.0"               #: the kubelet probes the pod IP
    state_secret: str = "convoy-spoke-state"   #: credential, hub CA and signing key
    inventory_name: str = "convoy-inventory"   #: inventory + last applied bundle (a Secret)
    reconnect_cap: float = 30.0                #: ceiling of the hub reconnect backoff, seconds
    resync_interval: float = 600.0             #: full re-check of the bundle even when quiet
    max_bundle_bytes: int = 64 * 1024 * 1024   #: refuse bundles that inflate past this
    #: oci://REGISTRY/REPOSITORY to fetch bundle bytes from (the hub still says which digest); None: the hub
    bundle_source: str | None = None
    bundle_source_insecure: bool = False       #: plain HTTP to the bundle source (a local registry only)
    registry_config: str | None = None         #: docker-style config.json with the bundle source's credentials
    #: seconds the age key a `convoy keys rotate` replaced still opens sealed secrets; then it is dropped
    previous_age_key_grace: float = 7 * 24 * 3600.0

    @property
    def hub_addresses(self) -> tuple[str, ...]:
        """Every hub replica the spoke may dial, in the order given; it moves on when one is away."""
        return tuple(self.hub.split(","))


def parse_labels(text: str, *, source: str = "labels") -> dict[str, str]:
    """``k=v,k2=v2`` into a dict (:func:`protos.selectors.parse_labels`); empty text gives ``{}``."""
    try:
        return selectors.parse_labels(text, where=source)
    except selectors.SelectorError as exc:
        raise SettingsError(str(exc)) from None


def parse_join_token(text: str) -> jointoken.JoinToken:
    """A join token (:mod:`protos.jointoken`), its errors as :class:`SettingsError` naming the setting."""
    try:
        return jointoken.parse_join_token(text)
    except jointoken.JoinTokenError as exc:
        raise SettingsError(f"token: {exc}") from None


def _truthy(value: str, *, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"", "0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name}: {value!r} is not a boolean (true/false)")


def read_token_file(path: str, *, source: str = "--token-file") -> str:
    """The token in ``path`` (a file keeps it out of ``ps`` and shell history), stripped."""
    try:
        text = Path(path).expanduser().read_text().strip()
    except OSError as exc:
        raise SettingsError(f"{source}: cannot read {path}: {exc.strerror}") from None
    if not text:
        raise SettingsError(f"{source}: {path} is empty")
    return text


def load_settings(*, cli: Mapping[str, Any], env: Mapping[str, str]) -> SpokeSettings:
    """Merge flags (``cli``, keys as in ``SpokeSettings``; None = not given) over ``env``."""

    def pick(key: str) -> tuple[Any, str]:
        value = cli.get(key)
        if value is not None and value != "":
            return value, f"--{key.replace('_', '-')}"
        env_name = ENV_NAMES.get(key, ENV_PREFIX + key.upper())
        return env.get(env_name), env_name

    values: dict[str, Any] = {}
    token, token_source = pick("token")
    token_file, file_source = pick("token_file")
    if token and token_file:
        raise SettingsError(f"token: give {token_source} or {file_source}, not both")
    if token_file:
        token = read_token_file(str(token_file), source=file_source)
    hub, hub_source = pick("hub")
    if token:
        token = str(token).strip()
        if jointoken.is_join_token(token):
            join = parse_join_token(token)
            values["token"] = join.token
            values["ca_fingerprint"] = join.ca_fingerprint or None
            hub = hub or join.hub_address
        else:
            values["token"] = token
    if not hub:
        raise SettingsError(f"hub: no hub address (give --hub or {ENV_NAMES['hub']})")
    values["hub"] = ",".join(part.strip() for part in str(hub).split(",") if part.strip())
    for address in values["hub"].split(",") or [""]:
        if ":" not in address:
            raise SettingsError(f"{hub_source}: {address!r} is not host:port")

    cluster, cluster_source = pick("cluster")
    if not cluster:
        raise SettingsError(f"cluster: no cluster name (give --cluster or {ENV_NAMES['cluster']})")
    if not _NAME.fullmatch(str(cluster)) or len(str(cluster)) > 63:
        raise SettingsError(f"{cluster_source}: {cluster!r} is not a valid cluster name (DNS label)")
    values["cluster"] = str(cluster)

    labels, labels_source = pick("labels")
    if isinstance(labels, Mapping):
        values["labels"] = dict(labels)
    elif labels:
        values["labels"] = parse_labels(str(labels), source=labels_source)

    namespace, ns_source = pick("namespace")
    if namespace:
        if not _NAME.fullmatch(str(namespace)):
            raise SettingsError(f"{ns_source}: {namespace!r} is not a valid namespace name")
        values["namespace"] = str(namespace)

    source, source_name = pick("bundle_source")
    if source:
        if str(source) != "none" and (not str(source).startswith("oci://")
                                      or "/" not in str(source).removeprefix("oci://").strip("/")):
            raise SettingsError(f"{source_name}: {source!r} is not oci://REGISTRY/REPOSITORY or none")
        values["bundle_source"] = str(source)
    source_insecure, source_insecure_name = pick("bundle_source_insecure")
    if isinstance(source_insecure, bool):
        values["bundle_source_insecure"] = source_insecure
    elif source_insecure is not None:
        values["bundle_source_insecure"] = _truthy(str(source_insecure), name=source_insecure_name)

    for key in ("kubeconfig", "context", "state_secret", "health_host", "registry_config"):
        value, _ = pick(key)
        if value:
            values[key] = str(value)
    hub_ca, _ = pick("hub_ca")
    if hub_ca:
        values["hub_ca_file"] = str(hub_ca)

    insecure, insecure_source = pick("insecure")
    if isinstance(insecure, bool):
        values["insecure"] = insecure
    elif insecure is not None:
        values["insecure"] = _truthy(str(insecure), name=insecure_source)

    policy, policy_source = pick("drift_policy")
    if policy:
        try:
            values["drift_policy"] = DriftPolicy(str(policy).strip().lower())
        except ValueError as exc:
            allowed = ", ".join(p.value for p in DriftPolicy)
            raise SettingsError(f"{policy_source}: {policy!r} is not a drift policy ({allowed})") from exc

    for key, kind in (("health_port", int), ("health_timeout", float), ("heartbeat", float),
                      ("previous_age_key_grace", float)):
        value, source = pick(key)
        if value is None or value == "":
            continue
        try:
            number = kind(value)
        except (TypeError, ValueError) as exc:
            raise SettingsError(f"{source}: {value!r} is not a number") from exc
        if number < 0 or (key == "health_port" and number > 65535):
            raise SettingsError(f"{source}: {value!r} is out of range")
        values[key] = number

    return SpokeSettings(**values)

