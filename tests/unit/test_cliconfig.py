"""CLI connection settings: named hubs, precedence, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hub import cliconfig
from hub.commands import fleet


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_current_hub_and_relative_paths(tmp_path: Path) -> None:
    cfg = write(tmp_path / "config.yaml", "current: prod\nhubs:\n  prod:\n    address: hub.example:7443\n"
                "    ca: ca.crt\n    credential: fleet.cred\n  dev:\n    address: 127.0.0.1:7443\n    insecure: true\n")
    env = {"CONVOY_CONFIG": str(cfg)}
    conn = cliconfig.resolve(env=env)
    assert (conn.name, conn.address, conn.ca, conn.credential, conn.insecure) == (
        "prod", "hub.example:7443", tmp_path / "ca.crt", tmp_path / "fleet.cred", False)
    assert cliconfig.resolve("dev", env=env).insecure is True
    assert cliconfig.resolve(env={**env, "CONVOY_HUB": "dev"}).name == "dev"


def test_environment_overrides_fields(tmp_path: Path) -> None:
    cfg = write(tmp_path / "config.yaml", "current: a\nhubs:\n  a:\n    address: h:1\n    credential: c\n")
    conn = cliconfig.resolve(env={"CONVOY_CONFIG": str(cfg), "CONVOY_CREDENTIAL_FILE": "/x/cred",
                                  "CONVOY_HUB_CA": "/x/ca.pem", "CONVOY_INSECURE": "true"})
    assert conn.credential == Path("/x/cred") and conn.ca == Path("/x/ca.pem") and conn.insecure


def test_unknown_hub_and_missing_config_say_what_to_do(tmp_path: Path) -> None:
    cfg = write(tmp_path / "config.yaml", "current: a\nhubs:\n  a:\n    address: h:1\n")
    with pytest.raises(cliconfig.CliConfigError, match=r"unknown hub .b.*convoy config use-hub"):
        cliconfig.resolve("b", env={"CONVOY_CONFIG": str(cfg)})
    with pytest.raises(cliconfig.CliConfigError, match="no hub configured"):
        cliconfig.resolve(env={"CONVOY_CONFIG": str(tmp_path / "absent.yaml")})
    with pytest.raises(cliconfig.CliConfigError, match="no admin credential"):
        cliconfig.resolve(env={"CONVOY_CONFIG": str(cfg)}).credential_value()
    bad = write(tmp_path / "bad.yaml", "hubs:\n  a:\n    address: h:1\n    tokne: x\n")
    with pytest.raises(cliconfig.CliConfigError, match="unknown fields: tokne"):
        cliconfig.load_config(bad)


def test_config_commands_round_trip(tmp_path: Path) -> None:
    env = {"CONVOY_CONFIG": str(tmp_path / "c" / "config.yaml")}
    runner = CliRunner()
    result = runner.invoke(fleet.config, ["set-hub", "one", "--address", "127.0.0.1:1", "--insecure"], env=env)
    assert result.exit_code == 0, result.output
    result = runner.invoke(fleet.config, ["set-hub", "two", "--address", "127.0.0.1:2", "--no-use"], env=env)
    assert result.exit_code == 0
    assert cliconfig.resolve(env=env).name == "one"
    assert runner.invoke(fleet.config, ["use", "two"], env=env).exit_code == 0
    assert cliconfig.resolve(env=env).address == "127.0.0.1:2"
    missing = runner.invoke(fleet.config, ["use", "three"], env=env)
    assert missing.exit_code == 1 and "no hub named 'three'" in missing.output
    assert (tmp_path / "c" / "config.yaml").stat().st_mode & 0o777 == 0o600


def test_unreachable_hub_is_one_line_and_exit_3(tmp_path: Path) -> None:
    cred = write(tmp_path / "cred", "secret-admin-credential\n")
    env = {"CONVOY_CONFIG": str(tmp_path / "none.yaml"), "CONVOY_CREDENTIAL_FILE": str(cred),
           "CONVOY_INSECURE": "1"}
    result = CliRunner().invoke(fleet.status, ["--hub", "127.0.0.1:9"], env=env)
    assert result.exit_code == 3, result.output
    assert result.output.startswith("error: hub 127.0.0.1:9 is unreachable")
    assert "Traceback" not in result.output and "secret-admin-credential" not in result.output


def test_config_verbs_follow_kubectl(tmp_path: Path) -> None:
    env = {"CONVOY_CONFIG": str(tmp_path / "config.yaml")}
    runner = CliRunner()
    first = runner.invoke(fleet.config, ["set-hub", "one", "--address", "127.0.0.1:1", "--insecure"], env=env)
    assert first.exit_code == 0 and "current hub is now one" in first.output, first.output
    second = runner.invoke(fleet.config, ["set-hub", "two", "--address", "127.0.0.1:2", "--ca", "ca.pem"], env=env)
    assert "current hub is now two (was one)" in second.output, second.output
    again = runner.invoke(fleet.config, ["set-hub", "two", "--address", "127.0.0.1:3"], env=env)
    assert "current hub" not in again.output  # already current: nothing switched
    kept = runner.invoke(fleet.config, ["set-hub", "three", "--address", "h:3", "--no-use"], env=env)
    assert "current hub" not in kept.output

    assert runner.invoke(fleet.config, ["current-hub"], env=env).output == "two\n"
    listed = runner.invoke(fleet.config, ["get-hubs"], env=env)
    assert listed.exit_code == 0, listed.output
    header, *rows = listed.output.splitlines()
    assert header.split() == ["CURRENT", "NAME", "ADDRESS", "CA", "CREDENTIAL", "INSECURE"]
    assert [row.split()[:2] for row in rows] == [["one", "127.0.0.1:1"], ["three", "h:3"], ["*", "two"]]
    assert runner.invoke(fleet.config, ["get-hubs", "-o", "name"], env=env).output == "one\nthree\ntwo\n"

    assert runner.invoke(fleet.config, ["use-hub", "one"], env=env).output == "switched to hub one\n"
    assert cliconfig.resolve(env=env).name == "one"
    deleted = runner.invoke(fleet.config, ["delete-hub", "one"], env=env)
    assert deleted.exit_code == 0 and "deleted hub one" in deleted.output and "no current hub" in deleted.output
    assert runner.invoke(fleet.config, ["get-hubs", "-o", "name"], env=env).output == "three\ntwo\n"
    none = runner.invoke(fleet.config, ["current-hub"], env=env)
    assert none.exit_code == 1 and "no current hub" in none.output
    missing = runner.invoke(fleet.config, ["delete-hub", "nine"], env=env)
    assert missing.exit_code == 1 and "no hub named 'nine'" in missing.output


def test_an_explicit_hub_uses_its_own_ca_and_credential(tmp_path: Path) -> None:
    cfg = write(tmp_path / "config.yaml", "current: sandbox\nhubs:\n  sandbox:\n    address: h:1\n"
                "  prod:\n    address: prod:7443\n    ca: prod-ca.pem\n    credential: prod.cred\n")
    env = {"CONVOY_CONFIG": str(cfg), "CONVOY_HUB_CA": "/sandbox/ca.pem", "CONVOY_CREDENTIAL_FILE": "/sandbox/cred"}
    prod = cliconfig.resolve("prod", env=env)
    assert (prod.ca, prod.credential) == (tmp_path / "prod-ca.pem", tmp_path / "prod.cred")
    current = cliconfig.resolve(env=env)  # not chosen by --hub: the environment still overrides
    assert (current.ca, current.credential) == (Path("/sandbox/ca.pem"), Path("/sandbox/cred"))
