"""Spoke settings: flags over CONVOY_SPOKE_* variables, join tokens, clear errors."""

from __future__ import annotations

import base64
import json

import pytest

from protos.status import DriftPolicy
from spoke import settings

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


def test_several_hub_replicas_are_one_comma_separated_setting_and_each_must_be_host_port() -> None:
    s = settings.load_settings(cli={"hub": " hub-0:7443, hub-1:7443 ,hub-2:7443", "cluster": "c1"}, env={})
    assert s.hub_addresses == ("hub-0:7443", "hub-1:7443", "hub-2:7443")
    with pytest.raises(settings.SettingsError, match="--hub: 'hub-1' is not host:port"):
        settings.load_settings(cli={"hub": "hub-0:7443,hub-1", "cluster": "c1"}, env={})
