"""The fleet CLI against a running hub with real spokes: status, describe, history, diff, pause/resume,
tokens, sync and config — as a user types them (one clear line on errors, documented exit codes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from kubernetes import client as kube

from hub import localfleet
from hub.cli import cli
from protos.codec import pb


@pytest.fixture(scope="module")
def env(e2e_fleet: localfleet.LocalFleet) -> dict[str, str]:
    return {"CONVOY_CONFIG": str(e2e_fleet.cli_config)}


def convoy(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_status_table_json_selector_and_exit_code(env: dict[str, str]) -> None:
    table = convoy(env, "status")
    assert table.exit_code == 0, table.output
    assert "5 clusters: 5 Ready" in table.output and "fleet commit" in table.output
    for name in ("dev-eu-1", "staging-eu-1", "prod-eu-1", "prod-us-1", "prod-ap-1"):
        assert name in table.output
    document = json.loads(convoy(env, "status", "-o", "json").output)
    assert {c["name"] for c in document["clusters"]} >= {"dev-eu-1", "prod-us-1"}
    assert all(c["phase"] == "Ready" and c["appliedDigest"] == c["desiredDigest"] for c in document["clusters"])
    prod = yaml.safe_load(convoy(env, "status", "-l", "env=prod,region in (eu,us)", "-o", "yaml").output)
    assert sorted(c["name"] for c in prod["clusters"]) == ["prod-eu-1", "prod-us-1"]
    assert convoy(env, "status", "--exit-code").exit_code == 0


def test_describe_shows_objects_health_and_events(env: dict[str, str]) -> None:
    result = convoy(env, "describe", "prod-eu-1")
    assert result.exit_code == 0, result.output
    assert "Deployment.apps/shop/web" in result.output and "Current" in result.output
    assert "env=prod" in result.output and "Recent events" in result.output
    missing = convoy(env, "describe", "no-such-cluster")
    assert missing.exit_code == 1 and missing.output.startswith("error:") and "no-such-cluster" in missing.output


def test_drift_shows_in_diff_and_history_and_exit_code_gates(env: dict[str, str],
                                                             e2e_fleet: localfleet.LocalFleet) -> None:
    assert convoy(env, "diff", "dev-eu-1").output.startswith("dev-eu-1: no drift")
    core = kube.CoreV1Api(e2e_fleet.api_client("dev-eu-1"))
    # Paused, the spoke leaves a manual change in place: it is current drift, shown by `convoy diff`.
    assert convoy(env, "pause", "dev-eu-1").exit_code == 0
    localfleet.wait_until(lambda: e2e_fleet.statuses()["dev-eu-1"].phase == pb.PHASE_PAUSED, timeout=20,
                          what="dev-eu-1 paused")
    core.patch_namespaced_config_map("web-config", "shop", {"data": {"REGION": "mars"}}, field_manager="intruder")
    localfleet.wait_until(lambda: "REGION" in convoy(env, "diff", "dev-eu-1").output, timeout=20,
                          what="the drift in convoy diff")
    diff = convoy(env, "diff", "dev-eu-1").output
    assert "ConfigMap/shop/web-config" in diff and '"mars"' in diff and '"eu"' in diff and "intruder" in diff
    # Resumed, the spoke corrects it: gone from diff (drift is a current fact), kept in history.
    assert convoy(env, "resume", "dev-eu-1").exit_code == 0
    localfleet.wait_until(lambda: convoy(env, "diff", "dev-eu-1").output.startswith("dev-eu-1: no drift"),
                          timeout=20, what="the corrected drift to leave convoy diff")
    assert core.read_namespaced_config_map("web-config", "shop").data["REGION"] == "eu"
    history = convoy(env, "history", "dev-eu-1", "--since", "1h")
    assert history.exit_code == 0 and "drift" in history.output
    assert "drift corrected on ConfigMap/shop/web-config: .data.REGION" in history.output
    assert "changed by intruder" in history.output
    everything = convoy(env, "history", "--all", "-o", "json")
    kinds = {e["kind"] for e in json.loads(everything.output)}
    assert {"registration", "desired_changed", "drift", "drift_corrected"} <= kinds
    assert convoy(env, "history").exit_code == 2  # neither CLUSTER nor --all


def test_pause_resume_by_selector(env: dict[str, str]) -> None:
    paused = convoy(env, "pause", "-l", "env=staging")
    assert paused.exit_code == 0 and paused.output.strip() == "staging-eu-1 paused"
    row = next(c for c in json.loads(convoy(env, "status", "-o", "json").output)["clusters"]
               if c["name"] == "staging-eu-1")
    assert row["paused"] is True
    assert convoy(env, "resume", "staging-eu-1").output.strip() == "staging-eu-1 resumed"
    assert convoy(env, "pause", "-l", "env=nowhere").exit_code == 1


def test_tokens_and_sync(env: dict[str, str]) -> None:
    created = convoy(env, "token", "create", "--ttl", "1h", "--uses", "2", "--labels", "team=a", "-o", "json")
    assert created.exit_code == 0, created.output
    token = json.loads(created.output)
    assert token["caFingerprint"].startswith("sha256:") and token["joinToken"].startswith("convoy-join.")
    listed = json.loads(convoy(env, "token", "list", "-o", "json").output)
    assert any(t["id"] == token["id"] and t["usesLeft"] == 2 for t in listed)
    assert token["token"] not in convoy(env, "token", "list").output  # never shown again
    assert convoy(env, "token", "revoke", token["id"]).exit_code == 0
    assert next(t for t in json.loads(convoy(env, "token", "list", "-o", "json").output)
                if t["id"] == token["id"])["revoked"] is True
    synced = convoy(env, "sync")
    assert synced.exit_code == 0 and "(already deployed)" in synced.output, synced.output


def test_bad_credential_is_exit_4(env: dict[str, str], tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.credential"
    wrong.write_text("not-the-admin-credential-0123456789abcdef\n")
    result = convoy({**env, "CONVOY_CREDENTIAL_FILE": str(wrong)}, "status")
    assert result.exit_code == 4 and result.output.startswith("error: hub") and "credential" in result.output


def test_status_watch_updates_until_interrupted(env: dict[str, str]) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    process = subprocess.Popen([sys.executable, "-m", "hub", "status", "--watch", "--interval", "0.3"],
                               env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    time.sleep(2.5)  # a few refreshes: the thing under test is a live view that runs until interrupted
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    assert "prod-eu-1" in output and "Ready" in output and "Traceback" not in output
