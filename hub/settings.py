"""Settings of ``convoy hub serve`` / ``convoy hub migrate``.

Every field of :class:`HubSettings` can be set four ways; the first that sets it wins:

1. a command-line flag (``--poll-interval 30``; the flag of field ``x_y`` is ``--x-y``);
2. an environment variable ``CONVOY_HUB_<FIELD>`` (``CONVOY_HUB_POLL_INTERVAL=30``);
3. the YAML config file (``--config FILE`` or ``CONVOY_HUB_CONFIG``): a mapping of field names
   (``poll_interval: 30``; ``poll-interval`` is accepted too);
4. the default documented on the field.

Durations accept seconds (``15``, ``2.5``) or a unit (``500ms``, ``15s``, ``5m``, ``1h``); sizes accept
bytes or a unit (``32MiB``, ``512KiB``, ``1GB``); booleans accept true/false, yes/no, on/off, 1/0.
Unknown keys in the file or among the flags and bad values are errors naming the source and the key.
``repr`` never shows a secret: the webhook secret is redacted, and so are passwords inside the
repository and database URLs.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

__all__ = ["ENV_PREFIX", "HubSettings", "SettingsError", "default_data_dir", "display_default", "load_settings"]

log = logging.getLogger(__name__)

ENV_PREFIX = "CONVOY_HUB_"
#: CONVOY_HUB_* variables that belong to someone else (the CLI's hub selection), not to the hub.
_FOREIGN_ENV = {"CONVOY_HUB_CA", "CONVOY_HUB_CONFIG"}
MiB = 1024 * 1024
KiB = 1024
#: Bound on inline_bundle_bytes: a Watch notice must stay far below the 4 MiB default message limit.
MAX_INLINE_BUNDLE_BYTES = 1 * MiB


class SettingsError(ValueError):
    """A setting has a bad value or an unknown name; the message says where it came from."""


def default_data_dir(env: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_DATA_HOME/convoy/hub``, else ``~/.local/share/convoy/hub``."""
    base = Path(env["XDG_DATA_HOME"]) if env.get("XDG_DATA_HOME") else Path(env.get("HOME") or Path.home()) / \
        ".local" / "share"
    return base / "convoy" / "hub"


class _Kind:
    """How a field's value is parsed from text (env, flags given as strings) and checked."""

    DURATION = "duration"
    SIZE = "size"


def _meta(doc: str, *, kind: str | None = None, secret: bool = False) -> dict[str, Any]:
    return {"doc": doc, "kind": kind, "secret": secret}


@dataclasses.dataclass(frozen=True, repr=False)
class HubSettings:
    """Everything ``convoy hub serve`` is told. Defaults are the values below."""

    # -- the fleet repository
    repo: str = dataclasses.field(default="", metadata=_meta("fleet repository URL or local path"))
    branch: str = dataclasses.field(default="main", metadata=_meta("branch to follow (refs/heads/BRANCH, never a tag)"))
    rev: str | None = dataclasses.field(default=None, metadata=_meta(
        "pinned tag or commit instead of the branch: refs/tags/NAME or a full sha; a bare name must name "
        "exactly one tag, branch or commit (ambiguity is refused)"))
    poll_interval: float = dataclasses.field(default=15.0, metadata=_meta("seconds between fetches",
                                                                           kind=_Kind.DURATION))
    poll_jitter: float = dataclasses.field(default=0.1, metadata=_meta(
        "fraction of the poll interval added or removed at random, so hubs never fetch in lockstep"))
    git_timeout: float = dataclasses.field(default=300.0, metadata=_meta(
        "longest one git command (a fetch) may run; past it the fetch fails and is retried on the next poll",
        kind=_Kind.DURATION))
    git_stall_seconds: float = dataclasses.field(default=30.0, metadata=_meta(
        "an HTTP(S) fetch that receives nothing for this long is cut (a stalled remote)", kind=_Kind.DURATION))
    ssh_key_file: Path | None = dataclasses.field(default=None, metadata=_meta("SSH private key for the repo"))
    https_token_file: Path | None = dataclasses.field(default=None, metadata=_meta("file holding an HTTPS token"))
    https_token_env: str | None = dataclasses.field(default=None, metadata=_meta(
        "name of an environment variable holding an HTTPS token"))
    allow_history_rewrite: bool = dataclasses.field(default=False, metadata=_meta(
        "accept a head that does not descend from the last deployed commit"))
    require_signed_commits: bool = dataclasses.field(default=False, metadata=_meta(
        "refuse unsigned or badly signed heads"))
    allowed_signers_file: Path | None = dataclasses.field(default=None, metadata=_meta(
        "SSH allowed-signers file for signed commits"))
    gpg_keyring: Path | None = dataclasses.field(default=None, metadata=_meta(
        "GnuPG home or exported public keys for signed commits"))
    webhook_secret: str | None = dataclasses.field(default=None, metadata=_meta(
        "shared secret of the push webhook (or webhook_secret_file)", secret=True))
    webhook_secret_file: Path | None = dataclasses.field(default=None, metadata=_meta(
        "file holding the webhook secret; read at load time"))
    webhook_max_bytes: int = dataclasses.field(default=1 * MiB, metadata=_meta(
        "largest webhook body read; a larger one gets HTTP 413 unread (push payloads are small)", kind=_Kind.SIZE))
    webhook_max_concurrent: int = dataclasses.field(default=8, metadata=_meta(
        "webhook requests read and checked at once before their signature is known; more get HTTP 429"))
    allow_helm: bool = dataclasses.field(default=False, metadata=_meta(
        "let external kustomize builds run helm for helmCharts (charts must be vendored: no network); "
        "a commit can never turn this on"))
    allow_plugins: bool = dataclasses.field(default=False, metadata=_meta(
        "let external kustomize builds run exec/Go plugins and KRM functions named by a commit"))

    # -- storage
    data_dir: Path = dataclasses.field(default_factory=default_data_dir, metadata=_meta(
        "mirror, TLS material, keys, admin credential, SQLite database (default: $XDG_DATA_HOME/convoy/hub, "
        "else ~/.local/share/convoy/hub)"))
    database_url: str = dataclasses.field(default="", metadata=_meta(
        "SQLAlchemy URL; empty: SQLite in the data directory"))
    bundle_retention: int = dataclasses.field(default=20, metadata=_meta(
        "keep bundles any cluster needed in its last N desired states"))
    bundle_retention_age: float = dataclasses.field(default=0.0, metadata=_meta(
        "a bundle no cluster desires, runs, is pinned to or had among its last bundle_retention is deleted "
        "only once older than this (0: at the next sync); its digest stays in the history",
        kind=_Kind.DURATION))
    max_bundle_bytes: int = dataclasses.field(default=32 * MiB, metadata=_meta(
        "largest uncompressed bundle the hub renders and serves", kind=_Kind.SIZE))

    # -- rendering bounds (a commit author controls what is rendered; docs/security.md)
    max_file_bytes: int = dataclasses.field(default=8 * MiB, metadata=_meta(
        "largest file a render reads (manifests, patches, generator sources, cluster.yaml); a bigger one "
        "fails the clusters that use it, refused by its Git object header before it is read", kind=_Kind.SIZE))
    max_fleet_file_bytes: int = dataclasses.field(default=2 * MiB, metadata=_meta(
        "largest fleet.yaml", kind=_Kind.SIZE))
    max_build_bytes: int = dataclasses.field(default=64 * MiB, metadata=_meta(
        "bytes one kustomize build (an app's layers) may read in all, and characters its vars may add",
        kind=_Kind.SIZE))
    max_bundle_objects: int = dataclasses.field(default=10_000, metadata=_meta(
        "most objects in one cluster's bundle (and in any one kustomize build)"))
    max_render_seconds: float = dataclasses.field(default=30.0, metadata=_meta(
        "longest one cluster's render may take; past it the cluster fails with an error and keeps its "
        "last good bundle", kind=_Kind.DURATION))
    max_fleet_render_seconds: float = dataclasses.field(default=600.0, metadata=_meta(
        "longest one commit's render may take; clusters not rendered by then fail and keep their last good "
        "bundle (the next commit is rendered afresh)", kind=_Kind.DURATION))

    # -- serving
    grpc_listen: str = dataclasses.field(default="127.0.0.1:7443", metadata=_meta("gRPC host:port"))
    http_listen: str = dataclasses.field(default="127.0.0.1:7080", metadata=_meta(
        "HTTP side port host:port: webhook, /metrics, /healthz, /readyz"))
    registry_listen: str = dataclasses.field(default="127.0.0.1:7444", metadata=_meta(
        "host:port of the OCI read API (/v2/) over TLS, with the hub's serving certificate and the same "
        "credentials as gRPC; with insecure, /v2/ is on the plain HTTP port instead"))
    oci_plain_http: bool = dataclasses.field(default=False, metadata=_meta(
        "also serve /v2/ on the plain HTTP side port (a sandbox only: credentials then cross in clear)"))
    advertise_address: str | None = dataclasses.field(default=None, metadata=_meta(
        "host:port spokes dial; put in join tokens and the server certificate"))
    tls_cert: Path | None = dataclasses.field(default=None, metadata=_meta(
        "serving certificate (PEM); default: made by the hub's own CA"))
    tls_key: Path | None = dataclasses.field(default=None, metadata=_meta("private key of tls_cert (PEM)"))
    tls_ca: Path | None = dataclasses.field(default=None, metadata=_meta("CA of tls_cert, handed to spokes"))
    identity_dir: Path | None = dataclasses.field(default=None, metadata=_meta(
        "directory of the hub's identity (signing.key, the CA, the admin credential); default data_dir. "
        "Replicas on one PostgreSQL mount the same one (one Kubernetes Secret) so they sign and serve alike"))
    insecure: bool = dataclasses.field(default=False, metadata=_meta("plaintext gRPC: local sandboxes only"))
    replica_heartbeat: float = dataclasses.field(default=5.0, metadata=_meta(
        "how often each replica records itself (address, open Watch streams) in the database; `convoy status` "
        "shows a replica gone after three missed heartbeats (PostgreSQL only)", kind=_Kind.DURATION))
    sync_handoff_timeout: float = dataclasses.field(default=60.0, metadata=_meta(
        "how long a replica that is not the leader waits for the leader to answer a `convoy sync` it "
        "handed over", kind=_Kind.DURATION))
    heartbeat_seconds: float = dataclasses.field(default=30.0, metadata=_meta(
        "Watch heartbeat interval; also how often the hub pings each spoke's connection (one that "
        "does not answer within min(10 s, the interval) is dropped)", kind=_Kind.DURATION))
    inline_bundle_bytes: int = dataclasses.field(default=256 * KiB, metadata=_meta(
        "send a new bundle inside the Watch notice when it is at most this big compressed "
        "(saves each spoke a GetBundle call); 0 turns it off", kind=_Kind.SIZE))
    register_rate: float = dataclasses.field(default=1.0, metadata=_meta(
        "Register calls per second sustained, per peer"))
    register_burst: int = dataclasses.field(default=20, metadata=_meta("Register burst per peer"))
    report_rate: float = dataclasses.field(default=5.0, metadata=_meta(
        "status reports per second sustained, per peer (ReportStatus calls and StreamStatus messages)"))
    report_burst: int = dataclasses.field(default=50, metadata=_meta("status report burst per peer"))
    auth_failure_rate: float = dataclasses.field(default=1.0, metadata=_meta(
        "unrecognised cluster credentials per second sustained, per peer; beyond the burst the peer's "
        "lookups are refused before the database (valid credentials never count)"))
    auth_failure_burst: int = dataclasses.field(default=20, metadata=_meta(
        "unrecognised cluster credential burst per peer"))
    unknown_credential_cache: float = dataclasses.field(default=10.0, metadata=_meta(
        "how long an unrecognised credential is answered from memory, without a database read",
        kind=_Kind.DURATION))
    watch_rate: float = dataclasses.field(default=1.0, metadata=_meta(
        "Watch streams opened per second sustained, per cluster"))
    watch_burst: int = dataclasses.field(default=20, metadata=_meta("Watch open burst per cluster"))
    bundle_fetches_per_minute: int = dataclasses.field(default=30, metadata=_meta(
        "GetBundle calls per minute for the same bundle, per cluster"))

    # -- credentials and the audit log
    credential_rotation_grace: float = dataclasses.field(default=3600.0, metadata=_meta(
        "after `convoy cluster rotate-credential` hands a spoke its new credential, how long the old one "
        "keeps working if the spoke never uses the new one (it stops at once when the spoke does)",
        kind=_Kind.DURATION))
    event_retention: float = dataclasses.field(default=30 * 86400.0, metadata=_meta(
        "delete events (convoy history) older than this", kind=_Kind.DURATION))
    event_max_count: int = dataclasses.field(default=200_000, metadata=_meta(
        "keep at most this many events, deleting the oldest"))
    event_aggregate_window: float = dataclasses.field(default=600.0, metadata=_meta(
        "a status or refused-registration event repeating one of the same kind, cluster and message "
        "within this window counts up that event instead of adding one", kind=_Kind.DURATION))
    event_prune_interval: float = dataclasses.field(default=3600.0, metadata=_meta(
        "how often the hub applies event_retention and event_max_count", kind=_Kind.DURATION))

    # -- bundles as OCI artifacts
    oci_push: str = dataclasses.field(default="", metadata=_meta(
        "push every new bundle and its signature to this REGISTRY/REPOSITORY (e.g. ghcr.io/acme/bundles); "
        "empty: off (the hub still serves them itself under /v2/convoy/bundles)"))
    oci_push_docker_config: Path | None = dataclasses.field(default=None, metadata=_meta(
        "docker-style config.json with the registry's credentials (`auths`); default: none (anonymous)"))
    oci_push_insecure: bool = dataclasses.field(default=False, metadata=_meta(
        "push over plain HTTP (a registry on localhost only)"))
    oci_push_interval: float = dataclasses.field(default=2.0, metadata=_meta(
        "how often the hub looks for bundles not yet pushed (failures are retried then)", kind=_Kind.DURATION))
    oci_push_concurrency: int = dataclasses.field(default=16, metadata=_meta(
        "how many artifacts the hub pushes at once (one HTTP connection each, kept open between requests); "
        "size it for the registry"))
    oci_announce_wait: float = dataclasses.field(default=10.0, metadata=_meta(
        "how long Watch holds back the notice of a new bundle too big to send inline until its OCI push "
        "lands, so the spoke can fetch it from the registry (then it is sent anyway; 0: never wait)",
        kind=_Kind.DURATION))

    def __post_init__(self) -> None:
        if not self.database_url:
            from hub.store.db import default_sqlite_url  # lazy: settings must load without SQLAlchemy

            object.__setattr__(self, "database_url", default_sqlite_url(self.data_dir))
        self._check()

    def _check(self) -> None:
        def bad(field: str, problem: str) -> SettingsError:
            return SettingsError(f"hub setting {field}: {problem}")

        for name in ("poll_interval", "git_timeout", "git_stall_seconds", "heartbeat_seconds", "register_rate",
                     "report_rate", "auth_failure_rate",
                     "unknown_credential_cache", "watch_rate", "credential_rotation_grace", "event_retention",
                     "event_aggregate_window", "event_prune_interval", "max_render_seconds",
                     "max_fleet_render_seconds", "oci_push_interval", "replica_heartbeat",
                     "sync_handoff_timeout"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise bad(name, f"must be a positive number, got {value!r}")
        if not math.isfinite(self.oci_announce_wait) or self.oci_announce_wait < 0:
            raise bad("oci_announce_wait", f"must be 0 or more seconds, got {self.oci_announce_wait!r}")
        if not math.isfinite(self.bundle_retention_age) or self.bundle_retention_age < 0:
            raise bad("bundle_retention_age", f"must be 0 or more seconds, got {self.bundle_retention_age!r}")
        if self.oci_push and not re.fullmatch(r"(oci://)?[^/\s]+/[^:@\s]+", self.oci_push):
            raise bad("oci_push", f"must be REGISTRY/REPOSITORY (e.g. ghcr.io/acme/bundles), got {self.oci_push!r}")
        if not 0 <= self.poll_jitter < 1:
            raise bad("poll_jitter", f"must be a fraction in [0, 1), got {self.poll_jitter!r}")
        if not 0 <= self.inline_bundle_bytes <= MAX_INLINE_BUNDLE_BYTES:
            raise bad("inline_bundle_bytes", f"must be between 0 and {MAX_INLINE_BUNDLE_BYTES} "
                                             f"(a Watch message stays well under gRPC's 4 MiB default), "
                                             f"got {self.inline_bundle_bytes!r}")
        for name in ("register_burst", "report_burst", "bundle_retention", "max_bundle_bytes", "auth_failure_burst",
                     "watch_burst", "bundle_fetches_per_minute", "event_max_count", "max_file_bytes",
                     "max_fleet_file_bytes", "max_build_bytes", "max_bundle_objects"):
            if getattr(self, name) < 1:
                raise bad(name, f"must be at least 1, got {getattr(self, name)!r}")
        for name in ("webhook_max_bytes", "webhook_max_concurrent", "oci_push_concurrency"):
            if getattr(self, name) < 1:
                raise bad(name, f"must be at least 1, got {getattr(self, name)!r}")
        for name in ("grpc_listen", "http_listen", "registry_listen"):
            _check_address(getattr(self, name), name)
        if self.advertise_address is not None:
            _check_address(self.advertise_address, "advertise_address")
        if not self.branch.strip():
            raise bad("branch", "must not be empty")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise bad("tls_cert" if self.tls_cert is None else "tls_key",
                      "tls_cert and tls_key must be given together")
        if self.insecure and self.tls_cert is not None:
            raise bad("insecure", "cannot be combined with tls_cert: choose plaintext or TLS")
        if self.require_signed_commits and self.allowed_signers_file is None and self.gpg_keyring is None:
            raise bad("require_signed_commits", "needs allowed_signers_file (SSH) or gpg_keyring (GPG)")

    @property
    def tracked_ref(self) -> str:
        """What the hub follows: ``rev`` as given, else the branch by its full name (never a tag called so)."""
        return self.rev if self.rev else f"refs/heads/{self.branch}"

    @property
    def sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def __repr__(self) -> str:
        parts = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.metadata.get("secret") and value:
                shown = "'<redacted>'"
            elif field.name in {"repo", "database_url"} and isinstance(value, str):
                shown = repr(_redact_url(value))
            else:
                shown = repr(value)
            parts.append(f"{field.name}={shown}")
        return f"HubSettings({', '.join(parts)})"

    __str__ = __repr__

    @classmethod
    def describe(cls) -> dict[str, str]:
        """Field name -> documentation (for ``--help`` texts and the README)."""
        return {field.name: field.metadata.get("doc", "") for field in dataclasses.fields(cls)}


def display_default(field: dataclasses.Field[Any]) -> str:
    """A setting's default as ``--help`` shows it (``15s``, ``256KiB``, ``main``); ``""`` when there is none.

    Help texts take their defaults from here, so they cannot drift from the dataclass.
    """
    value = field.default
    if value is dataclasses.MISSING or value is None or value is False or value == "":
        return ""  # no default, or one computed at load time (data_dir): the doc says what it is
    kind = field.metadata.get("kind")
    if kind == _Kind.DURATION:
        return f"{value:g}s"
    if kind == _Kind.SIZE:
        for unit, size in (("GiB", 1024**3), ("MiB", MiB), ("KiB", KiB)):
            if value >= size and value % size == 0:
                return f"{value // size}{unit}"
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _redact_url(value: str) -> str:
    """Hide the password (or token) in ``scheme://user:secret@host/...``."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return value
    if "@" not in parts.netloc:
        return value
    if parts.password is not None:
        userinfo = f"{parts.username or ''}:***"
    elif parts.scheme in {"http", "https"}:
        # https://TOKEN@host carries the token as the user name.
        userinfo = "***"
    else:
        return value  # ssh://git@host: the user name is not a secret
    host = (parts.hostname or "") + (f":{port}" if port is not None else "")
    return urlunsplit((parts.scheme, f"{userinfo}@{host}", parts.path, parts.query, parts.fragment))


_ADDRESS = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]*):(\d{1,5})")


def _check_address(value: str, field: str) -> None:
    match = _ADDRESS.fullmatch(value)
    if match is None or int(match.group(2)) > 65535:
        raise SettingsError(f"hub setting {field}: {value!r} is not host:port (use [::1]:PORT for IPv6)")


# ------------------------------------------------------------------------------------------- parsing

_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n", ""}
_DURATION = re.compile(r"\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_SIZE = re.compile(r"\s*(\d+)\s*(b|kb|kib|mb|mib|gb|gib|k|m|g)?\s*", re.IGNORECASE)
_SIZE_UNITS = {None: 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "k": 1024, "kib": 1024,
               "m": MiB, "mib": MiB, "g": 1024**3, "gib": 1024**3}


def _base_type(tp: Any) -> tuple[type, bool]:
    """(the non-None type of an annotation, whether None is allowed)."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], True
    return tp, False


def _convert(field: dataclasses.Field[Any], tp: Any, value: Any, source: str) -> Any:
    base, optional = _base_type(tp)
    where = f"{source}: hub setting {field.name}"
    if value is None:
        if optional:
            return None
        raise SettingsError(f"{where}: a value is required")
    kind = field.metadata.get("kind")
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError("expected true or false")
        if base is float:
            if isinstance(value, bool):
                raise ValueError("expected a number")
            if isinstance(value, int | float):
                return float(value)
            if kind == _Kind.DURATION:
                match = _DURATION.fullmatch(str(value))
                if match is None:
                    raise ValueError("expected seconds or a duration like 500ms, 15s, 5m, 1h")
                return float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            return float(str(value))
        if base is int:
            if isinstance(value, bool):
                raise ValueError("expected a whole number")
            if isinstance(value, int):
                return value
            if kind == _Kind.SIZE:
                match = _SIZE.fullmatch(str(value))
                if match is None:
                    raise ValueError("expected bytes or a size like 512KiB, 32MiB")
                return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower() if match.group(2) else None]
            return int(str(value).strip())
        if base is Path:
            text = str(value).strip()
            if not text:
                if optional:
                    return None
                raise ValueError("expected a path")
            return Path(text).expanduser()
        if base is str:
            if isinstance(value, dict | list):
                raise ValueError("expected text")
            text = str(value)
            return None if optional and text == "" else text
    except ValueError as exc:
        shown = "<redacted>" if field.metadata.get("secret") else repr(value)
        raise SettingsError(f"{where}: bad value {shown}: {exc}") from None
    raise AssertionError(f"unsupported settings type {tp!r}")  # pragma: no cover - a programming error


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"config file {path}: cannot read it: {exc.strerror}") from None
    try:
        document = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise SettingsError(f"config file {path}: not valid YAML{where}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise SettingsError(f"config file {path}: expected a mapping of setting names to values")
    return {str(key).replace("-", "_"): value for key, value in document.items()}


def load_settings(*, cli_values: Mapping[str, Any] | None = None, env: Mapping[str, str] = os.environ,
                  config_file: Path | None = None) -> HubSettings:
    """Merge flags > ``CONVOY_HUB_*`` environment > config file > defaults into :class:`HubSettings`.

    ``cli_values`` maps field names to values (unset flags left out or None). Relative paths in the
    config file are relative to the file's directory.
    """
    fields = {field.name: field for field in dataclasses.fields(HubSettings)}
    hints = typing.get_type_hints(HubSettings)
    values: dict[str, Any] = {}

    if config_file is None and env.get("CONVOY_HUB_CONFIG"):
        config_file = Path(env["CONVOY_HUB_CONFIG"])
    if config_file is not None:
        source = f"config file {config_file}"
        document = _read_config_file(config_file)
        unknown = sorted(set(document) - set(fields))
        if unknown:
            raise SettingsError(f"{source}: unknown setting(s) {', '.join(unknown)} "
                                f"(known: {', '.join(sorted(fields))})")
        for name, raw in document.items():
            value = _convert(fields[name], hints[name], raw, source)
            if isinstance(value, Path) and not value.is_absolute():
                value = config_file.parent / value
            values[name] = value

    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX) or key in _FOREIGN_ENV:
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name not in fields:
            log.warning("ignoring environment variable %s: no hub setting %s", key, name)
            continue
        values[name] = _convert(fields[name], hints[name], raw, f"environment variable {key}")

    for name, raw in (cli_values or {}).items():
        if raw is None:
            continue
        if name not in fields:
            raise SettingsError(f"flag --{name.replace('_', '-')}: no such hub setting")
        values[name] = _convert(fields[name], hints[name], raw, f"flag --{name.replace('_', '-')}")

    secret_file = values.get("webhook_secret_file")
    if secret_file is not None and "webhook_secret" not in values:
        try:
            secret = Path(secret_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(f"hub setting webhook_secret_file: cannot read {secret_file}: "
                                f"{exc.strerror}") from None
        if not secret:
            raise SettingsError(f"hub setting webhook_secret_file: {secret_file} is empty")
        values["webhook_secret"] = secret
    if "data_dir" not in values:
        values["data_dir"] = default_data_dir(env)
    return HubSettings(**values)
