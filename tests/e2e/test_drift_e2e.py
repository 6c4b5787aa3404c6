"""Drift, end to end (issue 12 items 1 and 2): what `convoy status`, `convoy diff` and `convoy history`
show after a change behind Convoy's back, on real hub, spoke and kubesim processes.

Drift is a current fact: once corrected, reverted by hand or superseded by a new bundle it is gone
from the status and the diff; history keeps one event per detection and correction, naming the
object, the field, the field manager that made the change and what the spoke did.

One cluster (dev-eu-1, web's driftPolicy `correct` in the sample) serves the tests in order.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as kube

from hub import localfleet
from protos.convoy.v1 import convoy_pb2 as pb
from tests.e2e.conftest import fleet_without_rollout

CLUSTER = "dev-eu-1"
WEB = "Deployment.apps/shop/web"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[localfleet.LocalFleet]:
    base = tmp_path_factory.mktemp("drift")
    source = fleet_without_rollout(localfleet.sample_fleet_path(), base / "sample")
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


def _api(fleet: localfleet.LocalFleet) -> kube.AppsV1Api:
    return kube.AppsV1Api(fleet.api_client(CLUSTER))


def _replicas(fleet: localfleet.LocalFleet) -> int:
    return int(_api(fleet).read_namespaced_deployment("web", "shop").spec.replicas)


def _scale(fleet: localfleet.LocalFleet, replicas: int, manager: str) -> None:
    _api(fleet).patch_namespaced_deployment("web", "shop", {"spec": {"replicas": replicas}}, field_manager=manager)


def _detail(fleet: localfleet.LocalFleet) -> pb.ClusterDetail:
    with fleet.admin() as admin:
        return admin.get_cluster(CLUSTER)


def _history(fleet: localfleet.LocalFleet) -> list[pb.Event]:
    with fleet.admin() as admin:
        return list(admin.history(pb.HistoryRequest(cluster=CLUSTER, limit=1000)).events)


def _drift_events(fleet: localfleet.LocalFleet, after: int = 0) -> list[tuple[str, str, dict[str, Any]]]:
    return [(e.kind, e.message, json.loads(e.details_json or "{}")) for e in _history(fleet)
            if e.kind.startswith("drift") and e.id > after]


def _last_event_id(fleet: localfleet.LocalFleet) -> int:
    return max((e.id for e in _history(fleet)), default=0)


def _no_drift_shown(fleet: localfleet.LocalFleet) -> bool:
    detail = _detail(fleet)
    return detail.summary.drift_count == 0 and not detail.drift and fleet.statuses()[CLUSTER].drift_count == 0


def _settle(fleet: localfleet.LocalFleet, commit: str) -> None:
    with fleet.admin() as admin:
        admin.sync_now()
    localfleet.wait_until(
        lambda: (s := fleet.statuses()[CLUSTER]).desired_commit == commit and s.applied_digest == s.desired_digest
        and s.phase == pb.PHASE_READY, timeout=60, what=f"{CLUSTER} at commit {commit[:8]}", interval=0.3)


def _cli(fleet: localfleet.LocalFleet, *args: str) -> str:
    import os
    import sys

    result = subprocess.run([sys.executable, "-m", "hub", *args], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "CONVOY_CONFIG": str(fleet.cli_config)}, check=True)
    return result.stdout


def test_corrected_drift_leaves_status_and_diff_and_is_in_history(fleet: localfleet.LocalFleet) -> None:
    desired = _replicas(fleet)
    before = _last_event_id(fleet)
    subprocess.run(["kubectl", "--kubeconfig", str(fleet.kubeconfig), "--context", CLUSTER, "-n", "shop",
                    "scale", "deployment/web", f"--replicas={desired + 4}"], check=True, capture_output=True)
    localfleet.wait_until(lambda: _replicas(fleet) == desired, timeout=15, what="the spoke to correct the drift")

    def recorded() -> list[tuple[str, str, dict[str, Any]]] | None:
        events = _drift_events(fleet, before)
        return events if any(kind == "drift_corrected" for kind, _, _ in events) else None

    events = localfleet.wait_until(recorded, timeout=15, what="the correction in the hub's history")
    detected = [(m, d) for kind, m, d in events if kind == "drift"]
    corrected = [(m, d) for kind, m, d in events if kind == "drift_corrected"]
    assert len(detected) == 1 and len(corrected) == 1, events
    for message, details in (*detected, *corrected):
        assert WEB in message and ".spec.replicas" in message and "kubectl" in message, message
        assert details["object"] == WEB and details["managers"] == ["kubectl"]
        assert details["fields"] == [{"path": ".spec.replicas", "desired": str(desired), "live": str(desired + 4)}]
    assert detected[0][1]["action"] == "detected" and corrected[0][1]["action"] == "corrected"
    # Drift is a current fact: corrected, it is in neither the status nor the diff.
    localfleet.wait_until(lambda: _no_drift_shown(fleet), timeout=10, what="DRIFT 0 after the correction")
    assert "no drift reported" in _cli(fleet, "diff", CLUSTER)

    # A second change does not pile up next to the first: one more detection and correction, no drift.
    before = _last_event_id(fleet)
    _scale(fleet, desired + 2, "someone-else")
    localfleet.wait_until(lambda: _replicas(fleet) == desired, timeout=15, what="the second correction")
    events = localfleet.wait_until(recorded, timeout=15, what="the second correction in the history")
    assert [(kind, d["managers"], d["fields"][0]["live"]) for kind, _, d in events] == [
        ("drift", ["someone-else"], str(desired + 2)), ("drift_corrected", ["someone-else"], str(desired + 2))]
    localfleet.wait_until(lambda: _no_drift_shown(fleet), timeout=10, what="DRIFT 0 after the second correction")


def _set_policy(fleet: localfleet.LocalFleet, policy: str) -> str:
    text = fleet.read("fleet.yaml")
    changed = re.sub(r"(?m)^    driftPolicy: \w+$", f"    driftPolicy: {policy}", text)
    assert changed != text or f"driftPolicy: {policy}" in text
    sha = fleet.commit(f"web: driftPolicy {policy}", {"fleet.yaml": changed})
    _settle(fleet, sha)
    return sha


def _drift_items(fleet: localfleet.LocalFleet) -> list[tuple[str, str, list[str], list[tuple[str, str, str]]]]:
    from protos import codec

    return [(str(codec.ref_from_wire(d.ref)), d.kind_of_drift, list(d.managers),
             [(f.path, f.desired, f.live) for f in d.fields]) for d in _detail(fleet).drift]


def test_reported_drift_is_replaced_not_piled_up_and_leaves_when_reverted_by_hand(
        fleet: localfleet.LocalFleet) -> None:
    _set_policy(fleet, "report")
    desired = _replicas(fleet)
    before = _last_event_id(fleet)
    _scale(fleet, desired + 1, "hand")
    expected = [(WEB, "modified", ["hand"], [(".spec.replicas", str(desired), str(desired + 1))])]
    localfleet.wait_until(lambda: _drift_items(fleet) == expected, timeout=15, what="the reported drift")
    assert fleet.statuses()[CLUSTER].drift_count == 1
    # Changed again: the item is replaced by the current values, never listed twice.
    _scale(fleet, desired + 2, "hand")
    expected = [(WEB, "modified", ["hand"], [(".spec.replicas", str(desired), str(desired + 2))])]
    localfleet.wait_until(lambda: _drift_items(fleet) == expected, timeout=15, what="the drift's new values")
    assert fleet.statuses()[CLUSTER].drift_count == 1
    diff = _cli(fleet, "diff", CLUSTER)
    assert diff.count(WEB) == 1 and f"live:    {desired + 2}" in diff and f"live:    {desired + 1}" not in diff
    assert _replicas(fleet) == desired + 2  # reported only, never corrected
    # Reverted by hand: gone from status and diff; history says so.
    _scale(fleet, desired, "hand")
    localfleet.wait_until(lambda: _no_drift_shown(fleet), timeout=15, what="DRIFT 0 after reverting by hand")
    events = localfleet.wait_until(
        lambda: (e := _drift_events(fleet, before)) and e[-1][0] == "drift_cleared" and e, timeout=10,
        what="the revert in the history")
    assert [(kind, d["action"]) for kind, _, d in events] == [
        ("drift", "reported"), ("drift", "reported"), ("drift_cleared", "reverted")]
    assert all(WEB in message for _, message, _ in events)
    assert ".spec.replicas" in events[0][1] and "hand" in events[0][1]


def test_a_new_bundle_supersedes_reported_drift(fleet: localfleet.LocalFleet) -> None:
    desired = _replicas(fleet)
    _scale(fleet, desired + 3, "hand")
    localfleet.wait_until(lambda: len(_drift_items(fleet)) == 1, timeout=15, what="the reported drift")
    before = _last_event_id(fleet)
    cm = "apps/web/base/configmap.yaml"
    sha = fleet.commit("web: a new release", {cm: fleet.read(cm).rstrip("\n") + "\n  RELEASE: r2\n"})
    _settle(fleet, sha)
    localfleet.wait_until(lambda: _no_drift_shown(fleet), timeout=15, what="DRIFT 0 after the new bundle")
    assert _replicas(fleet) == desired  # the new bundle was applied over the manual change
    events = localfleet.wait_until(
        lambda: (e := _drift_events(fleet, before)) and e, timeout=10, what="the superseded drift in history")
    assert [(kind, d["action"], d["object"]) for kind, _, d in events] == [("drift_cleared", "superseded", WEB)]
    _set_policy(fleet, "correct")
