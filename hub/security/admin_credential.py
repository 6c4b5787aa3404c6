"""The admin credential and the CLI configuration the hub writes at first start.

``<data_dir>/admin.credential`` holds the admin bearer credential in clear text (the CLI must send
it), owner-only. ``<data_dir>/cli-config.yaml`` is a complete ``convoy`` CLI configuration in the
format of :mod:`hub.cliconfig` — copy it to ``~/.config/convoy/config.yaml`` or point
``CONVOY_CONFIG`` at it::

    current: local
    hubs:
      local: {address: "127.0.0.1:7443", ca: /data/tls/ca.crt, credential: /data/admin.credential,
              insecure: false}
"""

from __future__ import annotations

from pathlib import Path

import yaml

from hub.security import files
from hub.security import secrets as hub_secrets

__all__ = ["admin_credential_matches", "admin_credential_path", "ensure_admin_credential", "write_cli_config"]


def admin_credential_path(data_dir: Path) -> Path:
    return data_dir / "admin.credential"


def ensure_admin_credential(data_dir: Path) -> str:
    """The admin credential, made at the first call."""
    path = admin_credential_path(data_dir)
    data, _ = files.write_private_once(path, lambda: (hub_secrets.new_credential() + "\n").encode("ascii"))
    credential = data.decode("ascii", "replace").strip()
    if len(credential) < 32:
        raise files.PrivateFileError(path, "admin credential is empty or too short (at least 32 characters); "
                                           "remove the file to make a new one")
    return credential


def admin_credential_matches(presented: str, credential: str) -> bool:
    """Constant-time check of a presented admin credential."""
    return hub_secrets.secrets_match(presented, hub_secrets.hash_secret(credential))


def write_cli_config(data_dir: Path, *, hub_address: str, ca_path: Path | None, credential_path: Path,
                     name: str = "local", insecure: bool = False) -> Path:
    """Write ``<data_dir>/cli-config.yaml`` (owner-only) and return its path."""
    path = data_dir / "cli-config.yaml"
    document = {
        "current": name,
        "hubs": {name: {
            "address": hub_address,
            "ca": str(ca_path.resolve()) if ca_path is not None else None,
            "credential": str(credential_path.resolve()),
            "insecure": insecure,
        }},
    }
    files.write_private(path, yaml.safe_dump(document, sort_keys=True).encode("utf-8"))
    return path
