"""The workload simulator: statuses a real controller writes, and the outcome/delay annotations."""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client

from kubesim.workloads import ANNOTATION_DELAY, ANNOTATION_OUTCOME, MANAGER
from tests.polling import wait_for

POD_TEMPLATE = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def _conditions(obj: Any) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in (obj.status.conditions or [])}


def _deployment(name: str, image: str = "nginx:1", **annotations: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "annotations": annotations},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "x"}},
                     "template": dict(POD_TEMPLATE, spec={"containers": [{"name": "c", "image": image}]})}}


def test_deployment_becomes_available_and_an_image_bump_rolls_out(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment("default", _deployment("web"))

    def ready() -> Any:
        dep = apps.read_namespaced_deployment("web", "default")
        done = (dep.status.observed_generation == dep.metadata.generation
                and _conditions(dep).get("Progressing") == ("True", "NewReplicaSetAvailable")
                and dep.status.available_replicas == 3)
        return dep if done else None

    dep = wait_for(ready)
    assert _conditions(dep)["Available"] == ("True", "MinimumReplicasAvailable")
    assert {m.manager for m in dep.metadata.managed_fields if m.subresource == "status"} == {MANAGER}
    bumped = apps.patch_namespaced_deployment(
        "web", "default", {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}})
    assert bumped.metadata.generation == 2
    in_progress = wait_for(lambda: _conditions(apps.read_namespaced_deployment("web", "default")).get(
        "Progressing") == ("True", "ReplicaSetUpdated"))
    assert in_progress
    dep = wait_for(ready)
    assert dep.status.observed_generation == 2


def test_fail_and_stuck_outcomes(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment("default", _deployment("bad", **{ANNOTATION_OUTCOME: "fail"}))
    apps.create_namespaced_deployment("default", _deployment("stuck", **{ANNOTATION_OUTCOME: "stuck",
                                                                         ANNOTATION_DELAY: "0.01"}))
    failed = wait_for(lambda: _conditions(apps.read_namespaced_deployment("bad", "default")).get(
        "Progressing") == ("False", "ProgressDeadlineExceeded"))
    assert failed
    time.sleep(0.3)  # well past the delay: a stuck rollout must still not be available
    stuck = apps.read_namespaced_deployment("stuck", "default")
    assert _conditions(stuck).get("Available", ("False", ""))[0] == "False"
    assert not stuck.status.available_replicas


def test_jobs_statefulsets_daemonsets_pvcs_and_load_balancers(api: client.ApiClient) -> None:
    batch = client.BatchV1Api(api)
    apps = client.AppsV1Api(api)
    core = client.CoreV1Api(api)
    job_spec = {"template": dict(POD_TEMPLATE, spec={"restartPolicy": "Never", **POD_TEMPLATE["spec"]})}
    batch.create_namespaced_job("default", {"metadata": {"name": "ok"}, "spec": job_spec})
    batch.create_namespaced_job("default", {"metadata": {"name": "ko", "annotations": {ANNOTATION_OUTCOME: "fail"}},
                                            "spec": job_spec})
    apps.create_namespaced_stateful_set("default", {"metadata": {"name": "db"}, "spec": {
        "replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "x"}}, "template": POD_TEMPLATE}})
    apps.create_namespaced_daemon_set("default", {"metadata": {"name": "agent"}, "spec": {
        "selector": {"matchLabels": {"app": "x"}}, "template": POD_TEMPLATE}})
    core.create_namespaced_persistent_volume_claim("default", {"metadata": {"name": "data"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    core.create_namespaced_service("default", {"metadata": {"name": "lb"}, "spec": {
        "type": "LoadBalancer", "ports": [{"port": 80}]}})
    assert wait_for(lambda: _conditions(batch.read_namespaced_job("ok", "default")).get("Complete")
                       == ("True", "CompletionsReached"))
    assert wait_for(lambda: _conditions(batch.read_namespaced_job("ko", "default")).get("Failed")
                       == ("True", "BackoffLimitExceeded"))
    sts = wait_for(lambda: (s := apps.read_namespaced_stateful_set("db", "default")).status.ready_replicas
                      == 2 and s)
    assert sts.status.current_revision == sts.status.update_revision
    ds = wait_for(lambda: (d := apps.read_namespaced_daemon_set("agent", "default")).status.number_ready and d)
    assert ds.status.desired_number_scheduled == ds.status.number_available
    pvc = wait_for(lambda: (p := core.read_namespaced_persistent_volume_claim("data", "default")).status.phase
                      == "Bound" and p)
    assert pvc.status.capacity == {"storage": "1Gi"}
    svc = wait_for(lambda: core.read_namespaced_service("lb", "default").status.load_balancer.ingress)
    assert svc[0].ip
