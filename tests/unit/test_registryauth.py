"""Docker-config credentials for ``convoy bundle verify REF`` and the spoke's ``--registry-config``: docker's
lookup order, helpers only by a plain name, bounded in time and output, and errors that name the file or
helper but never a secret."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from protos import registryauth


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


def _helper(tmp_path: Path, name: str, body: str) -> None:
    script = tmp_path / f"docker-credential-{name}"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)


def test_a_helper_answers_for_the_host_it_is_asked_about(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    _helper(tmp_path, "vault", f'[ "$1" = get ] || exit 3\ncat > {tmp_path}/asked\n'
                               'echo \'{"Username": "robot", "Secret": "t0ps3cret"}\'')
    config = _config(tmp_path, {"credsStore": "vault"})
    assert registryauth.docker_credentials(config, "registry.example:5000") == registryauth.Credentials(
        "robot", "t0ps3cret")
    assert (tmp_path / "asked").read_text() == "registry.example:5000"
    _helper(tmp_path, "vault", 'echo "credentials not found in native keychain"; exit 1')
    assert registryauth.docker_credentials(config, "registry.example:5000") is None


def test_a_helper_is_bounded_in_time_and_output_and_its_secret_never_shows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    config = _config(tmp_path, {"credsStore": "odd"})
    _helper(tmp_path, "odd", "exec yes t0ps3cret")  # never ends, and floods stdout
    with pytest.raises(registryauth.RegistryAuthError,
                       match=r"docker-credential-odd for registry.example answered more than 65536 bytes") as raised:
        registryauth.docker_credentials(config, "registry.example")
    assert "t0ps3cret" not in str(raised.value)
    monkeypatch.setattr(registryauth, "HELPER_TIMEOUT", 0.5)
    _helper(tmp_path, "odd", "sleep 30 &\nwait")  # its child keeps stdout open: the group is killed
    with pytest.raises(registryauth.RegistryAuthError,
                       match=r"docker-credential-odd for registry.example did not answer within 0.5 s"):
        registryauth.docker_credentials(config, "registry.example")
    _helper(tmp_path, "odd", "echo 'Secret: t0ps3cret' >&2; echo '{\"Secret\": \"t0ps3cret\"}'; exit 2")
    with pytest.raises(registryauth.RegistryAuthError, match="exited with 2") as raised:
        registryauth.docker_credentials(config, "registry.example")
    assert "t0ps3cret" not in str(raised.value)
    _helper(tmp_path, "odd", "echo '{\"Secret\": \"t0ps3cret\"}'")  # no Username
    with pytest.raises(registryauth.RegistryAuthError, match="answer is not") as raised:
        registryauth.docker_credentials(config, "registry.example")
    assert "t0ps3cret" not in str(raised.value)
