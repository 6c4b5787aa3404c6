"""CLI connection settings, like kubeconfig contexts.

``~/.config/convoy/config.yaml`` (or ``$CONVOY_CONFIG``)::

    current: local
    hubs:
      local:
        address: 127.0.0.1:7443
        ca: /var/lib/convoy/tls/ca.crt          # null: system roots
        credential: /var/lib/convoy/admin.credential
        insecure: false                         # true only for local sandboxes

Precedence: ``--hub`` (a hub name from the file, or a ``host:port``), then
``CONVOY_HUB``, then ``current``. ``CONVOY_HUB_CA``, ``CONVOY_CREDENTIAL_FILE``
and ``CONVOY_INSECURE`` override the chosen entry's fields, except for a hub
named with ``--hub``: that one uses its own CA and credential (environment set
for one hub must not be sent to another).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["CliConfig", "CliConfigError", "HubConnection", "config_path", "load_config", "resolve"]


class CliConfigError(Exception):
    """The CLI configuration is missing or wrong; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class HubConnection:
    name: str
    address: str
    ca: Path | None
    credential: Path | None
    insecure: bool = False

    def credential_value(self) -> str:
        if self.credential is None:
            raise CliConfigError(f"hub {self.name!r} has no admin credential file configured "
                                 "(set `credential:` in the CLI config or CONVOY_CREDENTIAL_FILE)")
        try:
            return self.credential.read_text().strip()
        except OSError as exc:
            raise CliConfigError(f"cannot read the admin credential {self.credential}: {exc.strerror}") from None

    def ca_pem(self) -> bytes | None:
        if self.ca is None:
            return None
        try:
            return self.ca.read_bytes()
        except OSError as exc:
            raise CliConfigError(f"cannot read the hub CA {self.ca}: {exc.strerror}") from None


@dataclasses.dataclass
class CliConfig:
    path: Path
    current: str | None
    hubs: dict[str, dict[str, Any]]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        document = {"current": self.current, "hubs": self.hubs}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(document, sort_keys=True))
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)


def config_path(env: Mapping[str, str] = os.environ) -> Path:
    if env.get("CONVOY_CONFIG"):
        return Path(env["CONVOY_CONFIG"])
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "convoy" / "config.yaml"


def load_config(path: Path | None = None, env: Mapping[str, str] = os.environ) -> CliConfig:
    path = path or config_path(env)
    if not path.exists():
        return CliConfig(path=path, current=None, hubs={})
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise CliConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("hubs", {}), dict):
        raise CliConfigError(f"{path}: expected a mapping with `current` and `hubs`")
    hubs = {str(name): dict(entry or {}) for name, entry in (document.get("hubs") or {}).items()}
    for name, entry in hubs.items():
        if "address" not in entry:
            raise CliConfigError(f"{path}: hub {name!r} has no address")
        unknown = set(entry) - {"address", "ca", "credential", "insecure"}
        if unknown:
            raise CliConfigError(f"{path}: hub {name!r} has unknown fields: {', '.join(sorted(unknown))}")
    current = document.get("current")
    return CliConfig(path=path, current=str(current) if current else None, hubs=hubs)


def _path(value: object, base: Path) -> Path | None:
    if value in (None, ""):
        return None
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else base / path


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def resolve(hub: str | None = None, *, config: CliConfig | None = None,
            env: Mapping[str, str] = os.environ) -> HubConnection:
    """The hub to talk to, from ``--hub`` (``hub``), the environment and the config file."""
    config = config or load_config(env=env)
    wanted = hub or env.get("CONVOY_HUB") or config.current
    if not wanted:
        raise CliConfigError(
            f"no hub configured: run `convoy config set-hub NAME --address HOST:PORT --ca CA --credential FILE` "
            f"or pass --hub (config file: {config.path})")
    base = config.path.parent
    if wanted in config.hubs:
        entry = config.hubs[wanted]
        name = wanted
        address = str(entry["address"])
        ca = _path(entry.get("ca"), base)
        credential = _path(entry.get("credential"), base)
        insecure = bool(entry.get("insecure", False))
    elif ":" in wanted:
        name, address, ca, credential, insecure = wanted, wanted, None, None, False
    else:
        known = ", ".join(sorted(config.hubs)) or "none"
        raise CliConfigError(f"unknown hub {wanted!r} (configured: {known}); `convoy config use-hub NAME` picks one")
    if hub and hub in config.hubs:
        return HubConnection(name=name, address=address, ca=ca, credential=credential, insecure=insecure)
    if env.get("CONVOY_HUB_CA"):
        ca = Path(env["CONVOY_HUB_CA"])
    if env.get("CONVOY_CREDENTIAL_FILE"):
        credential = Path(env["CONVOY_CREDENTIAL_FILE"])
    if env.get("CONVOY_INSECURE"):
        insecure = _truthy(env.get("CONVOY_INSECURE"))
    return HubConnection(name=name, address=address, ca=ca, credential=credential, insecure=insecure)
