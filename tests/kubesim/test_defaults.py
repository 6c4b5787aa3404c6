"""API-server defaulting: what `kubectl get -o yaml` shows on a real cluster after a plain create."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest
import yaml

from kubesim.defaults import (
    apply_defaults,
    generate_job_selector,
    image_pull_policy,
    preserve_service_allocations,
)


def _defaulted(manifest: str, **allocators: Any) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load(manifest)
    group, _, version = obj["apiVersion"].rpartition("/")
    apply_defaults(group, version, obj["kind"], obj, **allocators)
    return obj


def test_deployment_is_defaulted_like_a_real_api_server() -> None:
    obj = _defaulted(
        """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx
        ports: [{containerPort: 80}]
"""
    )
    assert obj["spec"] == yaml.safe_load(
        """
progressDeadlineSeconds: 600
replicas: 1
revisionHistoryLimit: 10
selector: {matchLabels: {app: web}}
strategy:
  rollingUpdate: {maxSurge: 25%, maxUnavailable: 25%}
  type: RollingUpdate
template:
  metadata: {labels: {app: web}}
  spec:
    containers:
    - image: nginx
      imagePullPolicy: Always
      name: web
      ports: [{containerPort: 80, protocol: TCP}]
      resources: {}
      terminationMessagePath: /dev/termination-log
      terminationMessagePolicy: File
    dnsPolicy: ClusterFirst
    restartPolicy: Always
    schedulerName: default-scheduler
    securityContext: {}
    terminationGracePeriodSeconds: 30
"""
    )


def test_explicit_values_win_and_recreate_gets_no_rolling_update() -> None:
    obj = _defaulted(
        """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  revisionHistoryLimit: null
  strategy: {type: Recreate}
  template:
    spec:
      restartPolicy: Always
      containers: [{name: web, image: "nginx:1.27", imagePullPolicy: Never}]
"""
    )
    assert obj["spec"]["replicas"] == 3
    assert obj["spec"]["revisionHistoryLimit"] == 10  # null is defaulted like absent
    assert obj["spec"]["strategy"] == {"type": "Recreate"}
    assert obj["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "Never"


@pytest.mark.parametrize(
    ("image", "policy"),
    [("nginx", "Always"), ("nginx:latest", "Always"), ("nginx:1.27", "IfNotPresent"),
     ("registry:5000/team/app", "Always"), ("registry:5000/team/app:v2", "IfNotPresent"),
     ("nginx@sha256:" + "a" * 64, "IfNotPresent"), ("nginx:latest@sha256:" + "a" * 64, "Always")],
)
def test_image_pull_policy(image: str, policy: str) -> None:
    assert image_pull_policy(image) == policy


def test_service_defaults_with_and_without_allocator() -> None:
    manifest = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}]
"""
    assert "clusterIP" not in _defaulted(manifest)["spec"]
    addresses = (f"10.96.0.{n}" for n in itertools.count(10))
    obj = _defaulted(manifest, allocate_cluster_ip=lambda: next(addresses))
    assert obj["spec"] == yaml.safe_load(
        """
clusterIP: 10.96.0.10
clusterIPs: [10.96.0.10]
internalTrafficPolicy: Cluster
ipFamilies: [IPv4]
ipFamilyPolicy: SingleStack
ports: [{name: http, port: 80, protocol: TCP, targetPort: 80}]
selector: {app: web}
sessionAffinity: None
type: ClusterIP
"""
    )


def test_headless_nodeport_and_external_name_services() -> None:
    headless = _defaulted(
        "{apiVersion: v1, kind: Service, metadata: {name: h}, spec: {clusterIP: None, ports: [{port: 5432}]}}",
        allocate_cluster_ip=lambda: "10.96.0.99",
    )
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["clusterIPs"] == ["None"]

    ports = iter([30001, 30002])
    node_port = _defaulted(
        "{apiVersion: v1, kind: Service, metadata: {name: n}, spec: {type: LoadBalancer, "
        "ports: [{port: 80, targetPort: http}, {port: 443, nodePort: 31443}], sessionAffinity: ClientIP}}",
        allocate_cluster_ip=lambda: "10.96.0.11",
        allocate_node_port=lambda: next(ports),
    )["spec"]
    assert [p["nodePort"] for p in node_port["ports"]] == [30001, 31443]
    assert node_port["ports"][0]["targetPort"] == "http"
    assert node_port["externalTrafficPolicy"] == "Cluster"
    assert node_port["allocateLoadBalancerNodePorts"] is True
    assert node_port["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}

    external = _defaulted(
        "{apiVersion: v1, kind: Service, metadata: {name: e}, spec: {type: ExternalName, externalName: a.b}}",
        allocate_cluster_ip=lambda: "10.96.0.12",
    )["spec"]
    assert external == {"type": "ExternalName", "externalName": "a.b", "sessionAffinity": "None"}


def test_service_update_keeps_allocations() -> None:
    old = {"spec": {"type": "NodePort", "clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"],
                    "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}}
    new: dict[str, Any] = {"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 81}]}}
    preserve_service_allocations(old, new)
    assert new["spec"]["clusterIP"] == "10.96.0.5"
    assert new["spec"]["clusterIPs"] == ["10.96.0.5"]
    assert [p.get("nodePort") for p in new["spec"]["ports"]] == [30080, None]


def test_statefulset_daemonset_job_cronjob() -> None:
    sts = _defaulted(
        """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template: {spec: {containers: [{name: db, image: "postgres:16"}]}}
  volumeClaimTemplates: [{metadata: {name: data}, spec: {accessModes: [ReadWriteOnce]}}]
"""
    )["spec"]
    assert sts["podManagementPolicy"] == "OrderedReady"
    assert sts["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert sts["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert sts["revisionHistoryLimit"] == 10 and sts["replicas"] == 1
    assert sts["volumeClaimTemplates"][0]["spec"]["volumeMode"] == "Filesystem"
    assert sts["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"

    ds = _defaulted(
        "{apiVersion: apps/v1, kind: DaemonSet, metadata: {name: d}, spec: {template: {spec: {containers: []}}}}"
    )["spec"]
    assert ds["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert ds["revisionHistoryLimit"] == 10
    assert "replicas" not in ds

    job = _defaulted(
        "{apiVersion: batch/v1, kind: Job, metadata: {name: j}, spec: {template: {spec: {restartPolicy: Never, "
        "containers: [{name: j, image: busybox}]}}}}"
    )["spec"]
    assert (job["completions"], job["parallelism"], job["backoffLimit"]) == (1, 1, 6)
    assert job["completionMode"] == "NonIndexed" and job["suspend"] is False
    assert job["podReplacementPolicy"] == "TerminatingOrFailed"
    assert job["template"]["spec"]["restartPolicy"] == "Never"

    parallel_only = _defaulted(
        "{apiVersion: batch/v1, kind: Job, metadata: {name: j}, spec: {parallelism: 3, template: {spec: {}}}}"
    )["spec"]
    assert "completions" not in parallel_only and parallel_only["parallelism"] == 3

    cron = _defaulted(
        "{apiVersion: batch/v1, kind: CronJob, metadata: {name: c}, spec: {schedule: '* * * * *', jobTemplate: "
        "{spec: {template: {spec: {restartPolicy: OnFailure, containers: [{name: c, image: busybox}]}}}}}}"
    )["spec"]
    assert (cron["concurrencyPolicy"], cron["successfulJobsHistoryLimit"], cron["failedJobsHistoryLimit"]) == (
        "Allow", 3, 1)
    assert cron["suspend"] is False
    assert "backoffLimit" not in cron["jobTemplate"]["spec"]  # Job defaults are for Jobs, not templates
    assert cron["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst"


def test_pod_probes_volumes_and_env() -> None:
    pod = _defaulted(
        """
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  volumes: [{name: cfg, configMap: {name: cfg}}, {name: scratch}]
  containers:
  - name: app
    image: app:1
    env: [{name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
    livenessProbe: {httpGet: {port: 8080}}
    resources: {limits: {cpu: "1"}}
"""
    )["spec"]
    container = pod["containers"][0]
    assert container["livenessProbe"] == {
        "httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3,
    }
    assert container["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"
    assert container["resources"] == {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}
    assert pod["volumes"] == [{"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 420}},
                              {"name": "scratch", "emptyDir": {}}]
    assert pod["enableServiceLinks"] is True


def test_host_network_host_ports_only_on_pods() -> None:
    spec = "{hostNetwork: true, containers: [{name: a, image: a, ports: [{containerPort: 53}]}]}"
    pod = _defaulted("{apiVersion: v1, kind: Pod, metadata: {name: p}, spec: " + spec + "}")
    assert pod["spec"]["containers"][0]["ports"][0]["hostPort"] == 53
    ds = _defaulted("{apiVersion: apps/v1, kind: DaemonSet, metadata: {name: d}, spec: {template: {spec: "
                    + spec + "}}}")
    assert "hostPort" not in ds["spec"]["template"]["spec"]["containers"][0]["ports"][0]


def test_other_kinds() -> None:
    ns = _defaulted("{apiVersion: v1, kind: Namespace, metadata: {name: shop}}")
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "shop"}
    assert _defaulted("{apiVersion: v1, kind: Secret, metadata: {name: s}}")["type"] == "Opaque"
    policy = _defaulted("{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: n}, "
                        "spec: {podSelector: {}, egress: [{ports: [{port: 53}]}]}}")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["egress"][0]["ports"][0]["protocol"] == "TCP"
    binding = _defaulted("{apiVersion: rbac.authorization.k8s.io/v1, kind: RoleBinding, metadata: {name: b}, "
                         "subjects: [{kind: User, name: u}, {kind: ServiceAccount, name: s, namespace: x}]}")
    assert [s["apiGroup"] for s in binding["subjects"]] == ["rbac.authorization.k8s.io", ""]
    hpa_v2 = _defaulted("{apiVersion: autoscaling/v2, kind: HorizontalPodAutoscaler, metadata: {name: h}, "
                        "spec: {maxReplicas: 5}}")["spec"]
    assert hpa_v2["minReplicas"] == 1
    assert hpa_v2["metrics"][0]["resource"]["target"]["averageUtilization"] == 80
    hpa_v1 = _defaulted("{apiVersion: autoscaling/v1, kind: HorizontalPodAutoscaler, metadata: {name: h}, "
                        "spec: {maxReplicas: 5}}")["spec"]
    assert hpa_v1 == {"maxReplicas": 5}
    crd = _defaulted("{apiVersion: apiextensions.k8s.io/v1, kind: CustomResourceDefinition, metadata: {name: x}, "
                     "spec: {names: {kind: Widget, plural: widgets}}}")["spec"]
    assert crd["names"]["singular"] == "widget" and crd["names"]["listKind"] == "WidgetList"
    assert crd["conversion"] == {"strategy": "None"}
    config_map = _defaulted("{apiVersion: v1, kind: ConfigMap, metadata: {name: c}, data: {a: b}}")
    assert config_map == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}}
    custom = _defaulted("{apiVersion: example.com/v1, kind: Widget, metadata: {name: w}, spec: {a: 1}}")
    assert custom["spec"] == {"a": 1}


@pytest.mark.parametrize(
    "manifest",
    [
        "{apiVersion: apps/v1, kind: Deployment, metadata: {name: d}, spec: {template: {spec: {containers: "
        "[{name: a, image: a, ports: [{containerPort: 1}]}]}}}}",
        "{apiVersion: v1, kind: Service, metadata: {name: s}, spec: {type: NodePort, ports: [{port: 1}]}}",
        "{apiVersion: batch/v1, kind: Job, metadata: {name: j}, spec: {template: {spec: {}}}}",
    ],
)
def test_defaulting_is_idempotent(manifest: str) -> None:
    counter = itertools.count(1)
    once = _defaulted(manifest, allocate_cluster_ip=lambda: f"10.96.0.{next(counter)}",
                      allocate_node_port=lambda: 30000 + next(counter))
    twice = copy.deepcopy(once)
    group, _, version = twice["apiVersion"].rpartition("/")
    apply_defaults(group, version, twice["kind"], twice, allocate_cluster_ip=lambda: "x",
                   allocate_node_port=lambda: 1)
    assert twice == once


def test_new_jobs_select_their_pods_by_uid() -> None:
    job: dict[str, Any] = yaml.safe_load(
        "{apiVersion: batch/v1, kind: Job, metadata: {name: migrate}, spec: {template: {spec: "
        "{restartPolicy: Never, containers: [{name: m, image: m}]}}}}")
    apply_defaults("batch", "v1", "Job", job)
    generate_job_selector(job, "0b7c")
    expected = {"batch.kubernetes.io/controller-uid": "0b7c", "batch.kubernetes.io/job-name": "migrate",
                "controller-uid": "0b7c", "job-name": "migrate"}
    assert job["spec"]["template"]["metadata"]["labels"] == expected
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "0b7c"}}
    assert job["metadata"]["labels"] == expected
    labelled: dict[str, Any] = yaml.safe_load(
        "{apiVersion: batch/v1, kind: Job, metadata: {name: j}, spec: {template: {metadata: {labels: {app: a}}}}}")
    apply_defaults("batch", "v1", "Job", labelled)
    generate_job_selector(labelled, "u")
    assert labelled["metadata"]["labels"] == {"app": "a"}  # copied at create, before the selector existed
    assert len(labelled["spec"]["template"]["metadata"]["labels"]) == 5
    manual: dict[str, Any] = {"metadata": {"name": "m"}, "spec": {"manualSelector": True, "template": {}}}
    generate_job_selector(manual, "u")
    assert manual == {"metadata": {"name": "m"}, "spec": {"manualSelector": True, "template": {}}}
