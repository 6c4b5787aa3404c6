"""Spoke settings: flags over CONVOY_SPOKE_* variables, join tokens, clear errors."""

from __future__ import annotations

import base64
import json
import pathlib

import pytest
from click.testing import CliRunner

from protos import jointoken
from protos.status import DriftPolicy
from spoke import install, settings

FP = "sha256:" + "ab" * 32
TOKEN = "0123456789ab." + "s" * 43


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_env_only_gives_defaults_for_the_rest() -> None:
    s = settings.load_settings(cli={}, env={"CONVOY_SPOKE_HUB": "hub.example:7443", "CONVOY_SPOKE_CLUSTER": "edge-1",
                                            "CONVOY_SPOKE_LABELS": "env=prod, region=eu",
                                            "CONVOY_SPOKE_TOKEN": "abc.def"})
    assert s.hub == "hub.example:7443"
    assert s.cluster == "edge-1"
    assert dict(s.labels) == {"env": "prod", "region": "eu"}
    assert s.token == "abc.def"
    assert s.namespace == "convoy-system"
    assert s.drift_policy is DriftPolicy.CORRECT
    assert s.health_timeout == 300.0
    assert s.health_port == settings.DEFAULT_HEALTH_PORT
    assert s.kubeconfig is None and s.context is None


def test_flags_win_over_environment() -> None:
    s = settings.load_settings(
        cli={"hub": "flag:1", "drift_policy": "report", "insecure": True, "health_port": 9000},
        env={"CONVOY_SPOKE_HUB": "env:2", "CONVOY_SPOKE_CLUSTER": "c1", "CONVOY_SPOKE_DRIFT_POLICY": "correct",
             "CONVOY_SPOKE_INSECURE": "false", "CONVOY_SPOKE_HEALTH_PORT": "8000"})
    assert (s.hub, s.drift_policy, s.insecure, s.health_port) == ("flag:1", DriftPolicy.REPORT, True, 9000)


def test_token_is_not_in_repr() -> None:
    s = settings.load_settings(cli={"hub": "h:1", "cluster": "c1", "token": "id1.supersecret"}, env={})
    assert "supersecret" not in repr(s)


def test_json_join_token_carries_fingerprint_and_hub() -> None:
    join = "convoy-join.v1." + _b64(json.dumps({"token": TOKEN, "ca": FP, "hub": "hub:7443"}).encode())
    s = settings.load_settings(cli={"cluster": "c1"}, env={"CONVOY_SPOKE_TOKEN": join})
    assert (s.token, s.ca_fingerprint, s.hub) == (TOKEN, FP, "hub:7443")


def test_join_token_of_an_insecure_hub_has_no_fingerprint() -> None:
    join = "convoy-join.v1." + _b64(json.dumps({"token": TOKEN, "ca": "", "hub": None}).encode())
    s = settings.load_settings(cli={"cluster": "c1", "hub": "h:1", "token": join}, env={})
    assert (s.token, s.ca_fingerprint) == (TOKEN, None)


@pytest.mark.parametrize(("cli", "env", "needle"), [
    ({}, {"CONVOY_SPOKE_CLUSTER": "c"}, "CONVOY_SPOKE_HUB"),
    ({"hub": "h:1"}, {}, "CONVOY_SPOKE_CLUSTER"),
    ({"hub": "h:1", "cluster": "Bad_Name"}, {}, "--cluster"),
    ({"hub": "nohostport", "cluster": "c"}, {}, "host:port"),
    ({"hub": "h:1", "cluster": "c"}, {"CONVOY_SPOKE_DRIFT_POLICY": "ignore"}, "CONVOY_SPOKE_DRIFT_POLICY"),
    ({"hub": "h:1", "cluster": "c"}, {"CONVOY_SPOKE_HEALTH_PORT": "http"}, "CONVOY_SPOKE_HEALTH_PORT"),
    ({"hub": "h:1", "cluster": "c"}, {"CONVOY_SPOKE_LABELS": "noequals"}, "CONVOY_SPOKE_LABELS"),
    ({"hub": "h:1", "cluster": "c"}, {"CONVOY_SPOKE_INSECURE": "maybe"}, "CONVOY_SPOKE_INSECURE"),
    ({"hub": "h:1", "cluster": "c", "token": "convoy-join.garbage!"}, {}, "join token"),
])
def test_bad_settings_name_the_flag_or_variable(cli: dict[str, object], env: dict[str, str], needle: str) -> None:
    with pytest.raises(settings.SettingsError, match=needle):
        settings.load_settings(cli=cli, env=env)


def test_join_token_without_fingerprint_is_refused() -> None:
    join = "convoy-join.v1." + _b64(json.dumps({"token": "0123456789ab." + "s" * 43, "ca": "md5:00"}).encode())
    with pytest.raises(settings.SettingsError, match="fingerprint"):
        settings.parse_join_token(join)


def test_reads_the_join_tokens_the_hub_makes() -> None:
    from hub.security import secrets as hub_secrets  # the test may look at both sides; the spoke may not

    token = "0123456789ab." + "s" * 43
    join = hub_secrets.make_join_token(token, FP, "hub.example:7443")
    s = settings.load_settings(cli={"cluster": "c1", "token": join}, env={})
    assert (s.token, s.ca_fingerprint, s.hub) == (token, FP, "hub.example:7443")


def test_the_token_can_come_from_a_file_so_it_stays_out_of_ps(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "join.token"
    path.write_text(TOKEN + "\n")
    base = {"CONVOY_SPOKE_HUB": "h:1", "CONVOY_SPOKE_CLUSTER": "c1"}
    assert settings.load_settings(cli={"token_file": str(path)}, env=base).token == TOKEN
    assert settings.load_settings(cli={}, env={**base, "CONVOY_SPOKE_TOKEN_FILE": str(path)}).token == TOKEN
    with pytest.raises(settings.SettingsError, match="give --token or --token-file, not both"):
        settings.load_settings(cli={"token": TOKEN, "token_file": str(path)}, env=base)
    with pytest.raises(settings.SettingsError, match=r"--token-file: cannot read .*absent"):
        settings.load_settings(cli={"token_file": str(tmp_path / "absent")}, env=base)
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(settings.SettingsError, match="is empty"):
        settings.load_settings(cli={"token_file": str(tmp_path / "empty")}, env=base)


def test_install_takes_the_token_from_the_environment_or_a_file_and_the_hub_from_the_token(
        tmp_path: pathlib.Path) -> None:
    join = jointoken.make_join_token(TOKEN, FP, "hub.example:7443")
    runner = CliRunner()
    from_env = runner.invoke(install.install, ["--cluster", "edge-1"], env={"CONVOY_SPOKE_TOKEN": join})
    assert from_env.exit_code == 0, from_env.output
    assert "hub.example:7443" in from_env.output and join in from_env.output
    path = tmp_path / "join.token"
    path.write_text(join)
    from_file = runner.invoke(install.install, ["--cluster", "edge-1", "--token-file", str(path)],
                              env={"CONVOY_SPOKE_TOKEN": ""})
    assert from_file.exit_code == 0 and from_file.output == from_env.output
    none = runner.invoke(install.install, ["--cluster", "edge-1"], env={"CONVOY_SPOKE_TOKEN": ""})
    assert none.exit_code == 2 and "CONVOY_SPOKE_TOKEN" in none.output
    bare = runner.invoke(install.install, ["--cluster", "edge-1", "--token", TOKEN])
    assert bare.exit_code == 2 and "give --hub" in bare.output


def test_bundle_source_is_an_oci_reference() -> None:
    env = {"CONVOY_SPOKE_HUB": "hub.example:7443", "CONVOY_SPOKE_CLUSTER": "edge-1"}
    s = settings.load_settings(cli={"bundle_source": "oci://mirror.example/fleet/bundles"},
                               env={**env, "CONVOY_SPOKE_BUNDLE_SOURCE_INSECURE": "true"})
    assert s.bundle_source == "oci://mirror.example/fleet/bundles" and s.bundle_source_insecure
    assert settings.load_settings(cli={}, env=env).bundle_source is None
    for bad in ("mirror.example/fleet", "oci://mirror.example", "https://mirror.example/fleet"):
        with pytest.raises(settings.SettingsError, match=r"--bundle-source: .* is not oci://REGISTRY/REPOSITORY"):
            settings.load_settings(cli={"bundle_source": bad}, env=env)
    # none: never a registry, not even the one the hub announces in Watch.
    assert settings.load_settings(cli={"bundle_source": "none"}, env=env).bundle_source == "none"


def test_several_hub_replicas_are_one_comma_separated_setting_and_each_must_be_host_port() -> None:
    s = settings.load_settings(cli={"hub": " hub-0:7443, hub-1:7443 ,hub-2:7443", "cluster": "c1"}, env={})
    assert s.hub_addresses == ("hub-0:7443", "hub-1:7443", "hub-2:7443")
    with pytest.raises(settings.SettingsError, match="--hub: 'hub-1' is not host:port"):
        settings.load_settings(cli={"hub": "hub-0:7443,hub-1", "cluster": "c1"}, env={})
