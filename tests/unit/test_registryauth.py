"""Docker-config credentials for ``convoy bundle verify REF``: docker's lookup order, helpers only by a
plain name, and errors that name the file or helper but never a secret."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from hub.commands import registryauth


def _config(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(document))
    return path


def test_auths_give_basic_credentials_and_an_unknown_registry_gets_none(tmp_path: Path) -> None:
    auth = base64.b64encode(b"robot:pa:ss").decode()
    config = _config(tmp_path, {"auths": {"https://registry.example": {"auth": auth}}})
    found = registryauth.docker_credentials(config, "registry.example")
    assert found == registryauth.Credentials("robot", "pa:ss") and "pa:ss" not in repr(found)
    assert registryauth.docker_credentials(config, "other.example") is None
    assert registryauth.docker_credentials(None, "registry.example") is None


def test_a_cred_helper_beats_auths_and_must_be_a_plain_name_on_path(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no helper installed
    auth = base64.b64encode(b"robot:secret").decode()
    config = _config(tmp_path, {"auths": {"registry.example": {"auth": auth}},
                                "credHelpers": {"registry.example": "ecr-login"}})
    with pytest.raises(registryauth.RegistryAuthError,
                       match=r"docker-credential-ecr-login \(for registry.example\) is not on PATH"):
        registryauth.docker_credentials(config, "registry.example")
    sneaky = _config(tmp_path, {"credsStore": "../../bin/sh"})
    with pytest.raises(registryauth.RegistryAuthError, match="is not a plain name"):
        registryauth.docker_credentials(sneaky, "registry.example")


def test_a_challenge_is_parsed_and_a_realm_must_be_http(tmp_path: Path) -> None:
    scheme, params = registryauth.parse_challenge('Bearer realm="https://auth.example/token",service="reg"')
    assert scheme == "bearer" and params == {"realm": "https://auth.example/token", "service": "reg"}
    with pytest.raises(registryauth.RegistryAuthError, match="unusable bearer challenge"):
        registryauth.bearer_token({"realm": "file:///etc/passwd"}, repository="r", credentials=None)
