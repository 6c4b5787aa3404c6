"""Adopting a manual change, end to end (issue 21 part 1), on real hub, spoke and kubesim processes.

web's driftPolicy is `report` on dev-eu-1; a `kubectl scale` and a ConfigMap edit by another field
manager stay in place and are reported. `convoy status` suggests `convoy drift adopt`; the command
writes a branch whose `convoy preview` shows only dev-eu-1 changing, its rendered objects equal to the
live ones on the drifted fields; merged into main, the cluster converges with nothing left to correct.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import git
import pytest
from kubernetes import client as kube

from hub import localfleet
from protos import codec
from tests.e2e.conftest import fleet_without_rollout

CLUSTER = "dev-eu-1"
BRANCH = "adopt-dev-scale"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[localfleet.LocalFleet]:
    base = tmp_path_factory.mktemp("adopt")
    source = fleet_without_rollout(localfleet.sample_fleet_path(), base / "sample")
    fleet_yaml = source / "fleet.yaml"
    fleet_yaml.write_text(re.sub(r"(?m)^    driftPolicy: \w+$", "    driftPolicy: report", fleet_yaml.read_text()))
    clusters = [c for c in localfleet.sandbox_clusters(source, 5) if c.name == CLUSTER]
    local = localfleet.LocalFleet(workdir=base / "fleet", clusters=clusters, fleet_source=source,
                                  poll_interval=1.0, heartbeat_seconds=1.0, spoke_heartbeat=2.0,
                                  health_timeout=20.0, workload_delay=0.2)
    try:
        local.start()
        local.wait_all_ready(timeout=120)
        yield local
    finally:
        local.stop()


def _cli(fleet: localfleet.LocalFleet, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **localfleet.GIT_IDENTITY, "CONVOY_CONFIG": str(fleet.cli_config)}
    return subprocess.run([sys.executable, "-m", "hub", *args], capture_output=True, text=True, timeout=120, env=env)


def _live(fleet: localfleet.LocalFleet) -> tuple[int, str]:
    api = fleet.api_client(CLUSTER)
    replicas = int(kube.AppsV1Api(api).read_namespaced_deployment("web", "shop").spec.replicas)
    greeting = str(kube.CoreV1Api(api).read_namespaced_config_map("web-config", "shop").data["GREETING"])
    return replicas, greeting


def _drifted_paths(fleet: localfleet.LocalFleet) -> list[tuple[str, list[str], list[str]]]:
    with fleet.admin() as admin:
        detail = admin.get_cluster(CLUSTER)
    return sorted((str(codec.ref_from_wire(d.ref)), list(d.managers), [f.path for f in d.fields])
                  for d in detail.drift)


def _rendered(fleet: localfleet.LocalFleet, rev: str) -> dict[str, Any]:
    result = _cli(fleet, "render", "--repo", str(fleet.repo_dir), "--rev", rev, "--cluster", CLUSTER, "-o", "json")
    assert result.returncode == 0, result.stderr
    bundle = json.loads(result.stdout)
    objects = bundle.get("objects", bundle.get("bundle", {}).get("objects"))
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in objects}


def test_a_kubectl_scale_is_adopted_into_a_branch_whose_preview_converges_to_live(
        fleet: localfleet.LocalFleet) -> None:
    desired_replicas, desired_greeting = _live(fleet)
    subprocess.run(["kubectl", "--kubeconfig", str(fleet.kubeconfig), "--context", CLUSTER, "-n", "shop",
                    "scale", "deployment/web", f"--replicas={desired_replicas + 2}"], check=True, capture_output=True)
    kube.CoreV1Api(fleet.api_client(CLUSTER)).patch_namespaced_config_map(
        "web-config", "shop", {"data": {"GREETING": "Hotfixed ${by hand}"}}, field_manager="hotfix")
    expected = [("ConfigMap/shop/web-config", ["hotfix"], [".data.GREETING"]),
                ("Deployment.apps/shop/web", ["kubectl"], [".spec.replicas"])]
    localfleet.wait_until(lambda: _drifted_paths(fleet) == expected, timeout=30, what="the reported drift")
    status = _cli(fleet, "status")
    assert f"adopt into Git: convoy drift adopt {CLUSTER}" in status.stdout, status.stdout
    assert f"adopt into Git: convoy drift adopt {CLUSTER}" in _cli(fleet, "describe", CLUSTER).stdout

    adopted = _cli(fleet, "drift", "adopt", CLUSTER, "--repo", str(fleet.repo_dir), "--branch", BRANCH)
    assert adopted.returncode == 0, adopted.stderr
    assert f"branch {BRANCH}" in adopted.stdout and f"clusters/{CLUSTER}/web/kustomization.yaml" in adopted.stdout
    message = str(git.Repo(fleet.repo_dir).commit(BRANCH).message)
    assert message.startswith(f"Adopt manual change on {CLUSTER}: ")
    assert "changed by kubectl" in message and "changed by hotfix" in message
    assert f".spec.replicas: {desired_replicas} -> {desired_replicas + 2}" in message

    preview = _cli(fleet, "preview", "--repo", str(fleet.repo_dir), "--base", "main", "--head", BRANCH, "-o", "json")
    assert preview.returncode == 0, preview.stderr
    rows = {row["cluster"]: row for row in json.loads(preview.stdout)["clusters"]}
    assert {name for name, row in rows.items() if row["status"] != "unchanged"} == {CLUSTER}
    assert sorted(rows[CLUSTER]["changedObjects"]) == ["ConfigMap/shop/web-config", "Deployment.apps/shop/web"]
    # The branch renders what is live on the drifted fields (the literal `${` survives substitution).
    head = _rendered(fleet, BRANCH)
    assert head["Deployment/web"]["spec"]["replicas"] == desired_replicas + 2
    assert head["ConfigMap/web-config"]["data"]["GREETING"] == "Hotfixed ${by hand}"
    assert _rendered(fleet, "main")["ConfigMap/web-config"]["data"]["GREETING"] == desired_greeting

    # Merged, the hub deploys it: the cluster converges with its live state, and the drift is gone.
    repo = git.Repo(fleet.repo_dir)
    repo.git.merge("--ff-only", BRANCH)
    with fleet.admin() as admin:
        admin.sync_now()
    localfleet.wait_until(lambda: (s := fleet.statuses()[CLUSTER]).desired_commit == repo.head.commit.hexsha
                          and s.applied_digest == s.desired_digest and s.drift_count == 0 and not _drifted_paths(fleet),
                          timeout=60, what=f"{CLUSTER} at the adopted commit without drift")
    assert _live(fleet) == (desired_replicas + 2, "Hotfixed ${by hand}")
