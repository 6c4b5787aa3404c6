"""ignoreDifferences, end to end (issue 21 part 2): an HPA-style field left alone, on real hub, spoke and
kubesim processes.

The sample fleet's web app ignores its Deployment's ``/spec/replicas`` (2 in Git on dev). Another field
manager scales it: the spoke neither reports nor reverts it (`convoy status` and `convoy diff` show no
drift), and a later Git change to the same Deployment is applied while the replicas stay as scaled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as kube

from hub import localfleet
from protos.convoy.v1 import convoy_pb2 as pb
from tests.e2e.conftest import fleet_without_rollout

CLUSTER = "dev-eu-1"
WEB = "Deployment.apps/shop/web"
IMAGE = '.spec.template.spec.containers[name="web"].image'
IGNORE = """    ignoreDifferences:
      - {group: apps, kind: Deployment, name: web, jsonPointers: [/spec/replicas]}
"""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[localfleet.LocalFleet]:
    base = tmp_path_factory.mktemp("ignore")
    source = fleet_without_rollout(localfleet.sample_fleet_path(), base / "sample")
    fleet_file = source / "fleet.yaml"
    text = fleet_file.read_text()
    assert "    driftPolicy: correct\n" in text
    fleet_file.write_text(text.replace("    driftPolicy: correct\n", "    driftPolicy: correct\n" + IGNORE))
    dev = source / "apps/web/overlays/env/dev/kustomization.yaml"
    dev.write_text(dev.read_text().replace("{name: web, count: 1}", "{name: web, count: 2}"))
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


def _kubectl(fleet: localfleet.LocalFleet, *args: str) -> str:
    return subprocess.run(["kubectl", "--kubeconfig", str(fleet.kubeconfig), "--context", CLUSTER, "-n", "shop",
                           *args], check=True, capture_output=True, text=True, timeout=60).stdout


def _live(fleet: localfleet.LocalFleet) -> dict[str, Any]:
    live: dict[str, Any] = json.loads(_kubectl(fleet, "get", "deployment/web", "-o", "json"))
    return live


def _convoy_owns_replicas(live: dict[str, Any]) -> bool:
    return any(entry.get("manager") == "convoy" and "f:replicas" in (entry.get("fieldsV1") or {}).get("f:spec", {})
               for entry in live["metadata"].get("managedFields") or [])


def _drift_events(fleet: localfleet.LocalFleet, after: int) -> list[tuple[str, dict[str, Any]]]:
    with fleet.admin() as admin:
        events = admin.history(pb.HistoryRequest(cluster=CLUSTER, limit=1000)).events
    return [(e.kind, json.loads(e.details_json or "{}")) for e in events if e.kind.startswith("drift") and e.id > after]


def _last_event_id(fleet: localfleet.LocalFleet) -> int:
    with fleet.admin() as admin:
        return max((e.id for e in admin.history(pb.HistoryRequest(cluster=CLUSTER, limit=1000)).events), default=0)


def _cli(fleet: localfleet.LocalFleet, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "hub", *args], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "CONVOY_CONFIG": str(fleet.cli_config)}, check=True)
    return result.stdout


def _no_drift_shown(fleet: localfleet.LocalFleet) -> bool:
    with fleet.admin() as admin:
        detail = admin.get_cluster(CLUSTER)
    return detail.summary.drift_count == 0 and not detail.drift and fleet.statuses()[CLUSTER].drift_count == 0


def test_a_field_another_manager_scales_is_left_alone(fleet: localfleet.LocalFleet) -> None:
    assert _live(fleet)["spec"]["replicas"] == 2  # created with the Git value
    before = _last_event_id(fleet)
    _kubectl(fleet, "scale", "deployment/web", "--replicas=5")
    # A change Convoy does own, made after the scale: once its correction is in the history, the spoke
    # has judged the scale too (one watch stream, in order).
    kube.AppsV1Api(fleet.api_client(CLUSTER)).patch_namespaced_deployment(
        "web", "shop", {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:evil"}]}}}},
        field_manager="someone-else")
    events = localfleet.wait_until(
        lambda: (e := _drift_events(fleet, before)) and any(kind == "drift_corrected" for kind, _ in e) and e,
        timeout=30, what="the image change corrected")
    assert {f["path"] for _, details in events for f in details["fields"]} == {IMAGE}, events
    live = _live(fleet)
    assert live["spec"]["replicas"] == 5 and live["spec"]["template"]["spec"]["containers"][0]["image"] != "nginx:evil"
    localfleet.wait_until(lambda: _no_drift_shown(fleet), timeout=15, what="DRIFT 0")
    assert "no drift reported" in _cli(fleet, "diff", CLUSTER)

    # A Git change to the same Deployment is applied; the replicas stay as scaled, and not Convoy's.
    deployment = "apps/web/base/deployment.yaml"
    text = fleet.read(deployment)
    annotated = text.replace("  name: web\n", "  name: web\n  annotations: {example.com/release: r2}\n", 1)
    sha = fleet.commit("web: a release annotation", {deployment: annotated})
    with fleet.admin() as admin:
        admin.sync_now()
    localfleet.wait_until(
        lambda: (s := fleet.statuses()[CLUSTER]).desired_commit == sha and s.applied_digest == s.desired_digest
        and s.phase == pb.PHASE_READY, timeout=60, what=f"{CLUSTER} at commit {sha[:8]}", interval=0.3)
    live = _live(fleet)
    assert live["metadata"]["annotations"]["example.com/release"] == "r2"
    assert live["spec"]["replicas"] == 5 and not _convoy_owns_replicas(live)
    assert _no_drift_shown(fleet) and "no drift reported" in _cli(fleet, "diff", CLUSTER)
    assert not [e for e in _drift_events(fleet, before) if any(f["path"] == ".spec.replicas" for f in e[1]["fields"])]
