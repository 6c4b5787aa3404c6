"""Hub settings: defaults, precedence flags > env > file > defaults, parsing, errors, redaction."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hub import settings as hs


def test_defaults(tmp_path: Path) -> None:
    settings = hs.load_settings(cli_values={}, env={"HOME": str(tmp_path)})
    assert settings.branch == "main" and settings.rev is None
    assert settings.poll_interval == 15.0 and settings.poll_jitter == 0.1
    assert settings.grpc_listen == "127.0.0.1:7443" and settings.http_listen == "127.0.0.1:7080"
    assert not settings.insecure and not settings.allow_history_rewrite and not settings.require_signed_commits
    assert settings.max_bundle_bytes == 32 * 1024 * 1024 and settings.bundle_retention == 20
    assert settings.heartbeat_seconds == 30.0
    assert settings.data_dir == tmp_path / ".local" / "share" / "convoy" / "hub"
    assert settings.database_url == f"sqlite:///{(settings.data_dir / 'convoy.db').resolve()}"
    assert settings.sqlite
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.branch = "other"  # type: ignore[misc]


def test_precedence_flags_over_env_over_file_over_defaults(tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text("branch: from-file\npoll-interval: 1m\nhttp_listen: 0.0.0.0:9000\nrepo: /from/file\n"
                      "data_dir: data\n")
    env = {"CONVOY_HUB_BRANCH": "from-env", "CONVOY_HUB_POLL_INTERVAL": "30", "HOME": str(tmp_path)}
    settings = hs.load_settings(cli_values={"branch": "from-flag", "grpc_listen": None}, env=env,
                                config_file=config)
    assert settings.branch == "from-flag"          # flag beats env and file
    assert settings.poll_interval == 30.0          # env beats file
    assert settings.http_listen == "0.0.0.0:9000"  # file beats default
    assert settings.grpc_listen == "127.0.0.1:7443"  # an unset flag (None) does not hide the default
    assert settings.repo == "/from/file"
    assert settings.data_dir == tmp_path / "data"  # relative to the config file
    assert settings.database_url.endswith(str(tmp_path / "data" / "convoy.db"))


def test_config_file_from_environment(tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text("insecure: true\n")
    settings = hs.load_settings(env={"CONVOY_HUB_CONFIG": str(config), "HOME": str(tmp_path)})
    assert settings.insecure


@pytest.mark.parametrize(("env", "field", "expected"), [
    ({"CONVOY_HUB_POLL_INTERVAL": "500ms"}, "poll_interval", 0.5),
    ({"CONVOY_HUB_POLL_INTERVAL": "2m"}, "poll_interval", 120.0),
    ({"CONVOY_HUB_HEARTBEAT_SECONDS": "2.5"}, "heartbeat_seconds", 2.5),
    ({"CONVOY_HUB_MAX_BUNDLE_BYTES": "64MiB"}, "max_bundle_bytes", 64 * 1024 * 1024),
    ({"CONVOY_HUB_MAX_BUNDLE_BYTES": "1000"}, "max_bundle_bytes", 1000),
    ({"CONVOY_HUB_INSECURE": "yes"}, "insecure", True),
    ({"CONVOY_HUB_ALLOW_HISTORY_REWRITE": "off"}, "allow_history_rewrite", False),
    ({"CONVOY_HUB_BUNDLE_RETENTION": "5"}, "bundle_retention", 5),
    ({"CONVOY_HUB_SSH_KEY_FILE": "/keys/id"}, "ssh_key_file", Path("/keys/id")),
    ({"CONVOY_HUB_REV": ""}, "rev", None),
    ({"CONVOY_HUB_ADVERTISE_ADDRESS": "[::1]:7443"}, "advertise_address", "[::1]:7443"),
    ({"CONVOY_HUB_DATABASE_URL": "postgresql://postgres@127.0.0.1/convoy"}, "database_url",
     "postgresql://postgres@127.0.0.1/convoy"),
])
def test_environment_values_are_parsed(tmp_path: Path, env: dict[str, str], field: str, expected: object) -> None:
    settings = hs.load_settings(env={**env, "HOME": str(tmp_path)})
    assert getattr(settings, field) == expected


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"env": {"CONVOY_HUB_POLL_INTERVAL": "soon"}},
     r"environment variable CONVOY_HUB_POLL_INTERVAL: .*poll_interval.*'soon'"),
    ({"env": {"CONVOY_HUB_POLL_INTERVAL": "0"}}, r"poll_interval: must be a positive number"),
    ({"env": {"CONVOY_HUB_INSECURE": "maybe"}}, r"insecure: bad value 'maybe'"),
    ({"env": {"CONVOY_HUB_GRPC_LISTEN": "7443"}}, r"grpc_listen: '7443' is not host:port"),
    ({"env": {"CONVOY_HUB_GRPC_LISTEN": "h:99999"}}, r"grpc_listen"),
    ({"env": {"CONVOY_HUB_POLL_JITTER": "1.5"}}, r"poll_jitter"),
    ({"env": {"CONVOY_HUB_BUNDLE_RETENTION": "0"}}, r"bundle_retention: must be at least 1"),
    ({"cli_values": {"tls_cert": "/c.pem"}}, r"tls_cert and tls_key must be given together"),
    ({"cli_values": {"tls_cert": "/c.pem", "tls_key": "/k.pem", "insecure": True}}, r"insecure: cannot be combined"),
    ({"cli_values": {"require_signed_commits": True}}, r"needs allowed_signers_file"),
    ({"cli_values": {"polling": 3}}, r"flag --polling: no such hub setting"),
])
def test_bad_values_name_their_source(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    env = {"HOME": str(tmp_path), **kwargs.get("env", {})}  # type: ignore[dict-item]
    cli = kwargs.get("cli_values", {})
    with pytest.raises(hs.SettingsError, match=message):
        hs.load_settings(cli_values=cli, env=env)  # type: ignore[arg-type]


def test_config_file_errors(tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text("branch: main\npoll_intervall: 3\n")
    with pytest.raises(hs.SettingsError, match=r"config file .*hub.yaml: unknown setting\(s\) poll_intervall"):
        hs.load_settings(env={}, config_file=config)
    config.write_text("branch: [unclosed\n")
    with pytest.raises(hs.SettingsError, match=r"hub.yaml: not valid YAML \(line 2, column 1\)"):
        hs.load_settings(env={}, config_file=config)
    config.write_text("- a list\n")
    with pytest.raises(hs.SettingsError, match="expected a mapping"):
        hs.load_settings(env={}, config_file=config)
    config.write_text("heartbeat_seconds: [1]\n")
    with pytest.raises(hs.SettingsError, match=r"config file .*heartbeat_seconds"):
        hs.load_settings(env={}, config_file=config)
    with pytest.raises(hs.SettingsError, match="cannot read it"):
        hs.load_settings(env={}, config_file=tmp_path / "missing.yaml")


def test_unknown_environment_variables_are_ignored_with_a_warning(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    settings = hs.load_settings(env={"CONVOY_HUB_BRANCHH": "x", "CONVOY_HUB_CA": "/ca.pem", "HOME": str(tmp_path)})
    assert settings.branch == "main"
    assert "CONVOY_HUB_BRANCHH" in caplog.text and "CONVOY_HUB_CA" not in caplog.text


def test_webhook_secret_from_file_and_redaction(tmp_path: Path) -> None:
    secret_file = tmp_path / "webhook"
    secret_file.write_text("s3cr3t-value\n")
    settings = hs.load_settings(
        cli_values={"webhook_secret_file": str(secret_file),
                    "repo": "https://oauth2:tok3n-value@git.example.com/fleet.git",
                    "database_url": "postgresql://convoy:pa55word@db:5432/convoy"},
        env={"HOME": str(tmp_path)})
    assert settings.webhook_secret == "s3cr3t-value"
    shown = repr(settings)
    for secret in ("s3cr3t-value", "tok3n-value", "pa55word"):
        assert secret not in shown and secret not in str(settings)
    assert "'<redacted>'" in shown and "git.example.com/fleet.git" in shown and "db:5432/convoy" in shown
    token_as_user = hs.load_settings(cli_values={"repo": "https://ghp_abc123@github.com/o/r.git"},
                                     env={"HOME": str(tmp_path)})
    assert "ghp_abc123" not in repr(token_as_user)
    ssh = hs.load_settings(cli_values={"repo": "ssh://git@github.com/o/r.git"}, env={"HOME": str(tmp_path)})
    assert "ssh://git@github.com/o/r.git" in repr(ssh)


def test_webhook_secret_value_beats_file_and_bad_file_is_an_error(tmp_path: Path) -> None:
    secret_file = tmp_path / "webhook"
    secret_file.write_text("from-file")
    settings = hs.load_settings(cli_values={"webhook_secret_file": str(secret_file)},
                                env={"CONVOY_HUB_WEBHOOK_SECRET": "from-env", "HOME": str(tmp_path)})
    assert settings.webhook_secret == "from-env"
    with pytest.raises(hs.SettingsError, match="webhook_secret_file: cannot read"):
        hs.load_settings(cli_values={"webhook_secret_file": str(tmp_path / "nope")}, env={})
    secret_file.write_text("\n")
    with pytest.raises(hs.SettingsError, match="is empty"):
        hs.load_settings(cli_values={"webhook_secret_file": str(secret_file)}, env={})


def test_bad_secret_value_is_not_echoed(tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text("webhook_secret: {nested: topsecret}\n")
    with pytest.raises(hs.SettingsError) as error:
        hs.load_settings(env={}, config_file=config)
    assert "topsecret" not in str(error.value) and "<redacted>" in str(error.value)


def test_every_field_is_documented() -> None:
    docs = hs.HubSettings.describe()
    assert docs and all(docs.values())


def test_webhook_bounds_have_small_defaults_and_are_checked(tmp_path: Path) -> None:
    settings = hs.HubSettings(repo="r", data_dir=tmp_path)
    assert settings.webhook_max_bytes == 1024 * 1024 and settings.webhook_max_concurrent == 8
    loaded = hs.load_settings(cli_values={"webhook_max_bytes": "256KiB", "data_dir": str(tmp_path)}, env={})
    assert loaded.webhook_max_bytes == 256 * 1024
    with pytest.raises(hs.SettingsError, match="webhook_max_concurrent"):
        hs.HubSettings(repo="r", data_dir=tmp_path, webhook_max_concurrent=0)


def test_helm_and_plugins_are_off_unless_the_operator_turns_them_on(tmp_path: Path) -> None:
    settings = hs.load_settings(cli_values={}, env={"HOME": str(tmp_path)})
    assert not settings.allow_helm and not settings.allow_plugins
    settings = hs.load_settings(cli_values={"allow_plugins": True},
                                env={"HOME": str(tmp_path), "CONVOY_HUB_ALLOW_HELM": "yes"})
    assert settings.allow_helm and settings.allow_plugins


def test_abuse_limits_have_defaults_read_the_environment_and_refuse_nonsense(tmp_path: Path) -> None:
    settings = hs.load_settings(cli_values={}, env={"HOME": str(tmp_path)})
    assert ((settings.auth_failure_rate, settings.auth_failure_burst, settings.unknown_credential_cache)
            == (1.0, 20, 10.0))
    assert (settings.watch_rate, settings.watch_burst, settings.bundle_fetches_per_minute) == (1.0, 20, 30)
    env = {"HOME": str(tmp_path), "CONVOY_HUB_UNKNOWN_CREDENTIAL_CACHE": "1m", "CONVOY_HUB_WATCH_BURST": "50"}
    tuned = hs.load_settings(cli_values={}, env=env)
    assert tuned.unknown_credential_cache == 60.0 and tuned.watch_burst == 50
    for name, value in (("auth_failure_burst", "0"), ("bundle_fetches_per_minute", "0"), ("watch_rate", "0")):
        with pytest.raises(hs.SettingsError, match=name):
            hs.load_settings(cli_values={}, env={"HOME": str(tmp_path), f"CONVOY_HUB_{name.upper()}": value})


def test_render_bounds_defaults_and_flags(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from hub.cli import cli
    from hub.render import pipeline
    from hub.service import render_limits

    defaults = hs.load_settings(cli_values={}, env={"HOME": str(tmp_path)})
    # The hub's defaults are the CLI's (convoy render/validate use RenderLimits()).
    assert render_limits(defaults) == pipeline.RenderLimits()
    assert (defaults.max_file_bytes, defaults.max_fleet_file_bytes) == (8 * 1024 * 1024, 2 * 1024 * 1024)
    assert (defaults.max_bundle_objects, defaults.max_render_seconds) == (10_000, 30.0)
    given = hs.load_settings(cli_values={"max_file_bytes": "1MiB", "max_fleet_file_bytes": "64KiB",
                                         "max_bundle_objects": 500, "max_render_seconds": "2m"},
                             env={"HOME": str(tmp_path)})
    limits = render_limits(given)
    assert (limits.max_file_bytes, limits.max_fleet_file_bytes) == (1024 * 1024, 64 * 1024)
    assert (limits.max_bundle_objects, limits.max_render_seconds) == (500, 120.0)
    with pytest.raises(hs.SettingsError, match="max_render_seconds"):
        hs.load_settings(cli_values={"max_render_seconds": "0"}, env={"HOME": str(tmp_path)})
    help_text = CliRunner().invoke(cli, ["hub", "serve", "--help"]).output
    for flag in ("--max-file-bytes", "--max-fleet-file-bytes", "--max-build-bytes", "--max-bundle-objects",
                 "--max-render-seconds", "--max-fleet-render-seconds"):
        assert flag in help_text


def test_oci_push_and_bundle_retention_age_are_checked(tmp_path: Path) -> None:
    pushing = hs.HubSettings(repo="/r", data_dir=tmp_path, oci_push="ghcr.io/acme/bundles",
                             oci_push_interval=0.5, bundle_retention_age=3600)
    assert pushing.oci_push == "ghcr.io/acme/bundles" and pushing.bundle_retention_age == 3600
    assert hs.HubSettings(repo="/r", data_dir=tmp_path).oci_push == ""  # off by default
    for bad in ("ghcr.io", "ghcr.io/acme/bundles:latest"):
        with pytest.raises(hs.SettingsError, match="oci_push: must be REGISTRY/REPOSITORY"):
            hs.HubSettings(repo="/r", data_dir=tmp_path, oci_push=bad)
    with pytest.raises(hs.SettingsError, match="bundle_retention_age: must be 0 or more"):
        hs.HubSettings(repo="/r", data_dir=tmp_path, bundle_retention_age=-1)
