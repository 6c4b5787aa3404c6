"""The defaults a real API server fills in, so that live objects differ from manifests as they do.

A naive "live == desired" comparison must fail here exactly as it fails on a real cluster, so
every write is defaulted the way kube-apiserver's ``SetDefaults_*`` functions (``pkg/apis/*/v1/
defaults.go``) do it: Deployment strategy and limits, pod-template fields, container pull policy
and termination message, Service type, ports and traffic policies, and the like.

The simple cases are a declared table (:data:`FIELD_DEFAULTS`: kind -> field path -> value,
set when the field is absent or null); conditional ones (a rolling-update block only for the
RollingUpdate strategy, ``targetPort`` = ``port``, pull policy from the image tag) are small
functions listed in :data:`DEFAULTERS`.

Allocation is not defaulting: a Service's ``clusterIP`` and node ports must be unique per
cluster, so the caller passes ``allocate_cluster_ip`` / ``allocate_node_port`` on create (and
:func:`preserve_service_allocations` on update, as the API server keeps allocated values a
write omits). Without an allocator those fields are left alone.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = [
    "DEFAULTERS",
    "FIELD_DEFAULTS",
    "apply_defaults",
    "generate_job_selector",
    "image_pull_policy",
    "preserve_service_allocations",
]

Json = dict[str, Any]
Path = tuple[str, ...]

_APPS, _BATCH, _CORE = "apps", "batch", ""

# Plain "set when missing" defaults, per (group, kind). Paths are dotted field names.
FIELD_DEFAULTS: Mapping[tuple[str, str], Mapping[str, Any]] = {
    (_APPS, "Deployment"): {
        "spec.replicas": 1,
        "spec.revisionHistoryLimit": 10,
        "spec.progressDeadlineSeconds": 600,
        "spec.strategy.type": "RollingUpdate",
    },
    (_APPS, "ReplicaSet"): {"spec.replicas": 1},
    (_APPS, "StatefulSet"): {
        "spec.replicas": 1,
        "spec.revisionHistoryLimit": 10,
        "spec.podManagementPolicy": "OrderedReady",
        "spec.updateStrategy.type": "RollingUpdate",
        "spec.persistentVolumeClaimRetentionPolicy.whenDeleted": "Retain",
        "spec.persistentVolumeClaimRetentionPolicy.whenScaled": "Retain",
    },
    (_APPS, "DaemonSet"): {
        "spec.revisionHistoryLimit": 10,
        "spec.updateStrategy.type": "RollingUpdate",
    },
    (_BATCH, "Job"): {
        "spec.completionMode": "NonIndexed",
        "spec.suspend": False,
    },
    (_BATCH, "CronJob"): {
        "spec.concurrencyPolicy": "Allow",
        "spec.suspend": False,
        "spec.successfulJobsHistoryLimit": 3,
        "spec.failedJobsHistoryLimit": 1,
    },
    (_CORE, "ReplicationController"): {"spec.replicas": 1},
    (_CORE, "Service"): {
        "spec.type": "ClusterIP",
        "spec.sessionAffinity": "None",
    },
    (_CORE, "Secret"): {"type": "Opaque"},
    (_CORE, "Namespace"): {"status.phase": "Active"},
    (_CORE, "PersistentVolumeClaim"): {"spec.volumeMode": "Filesystem", "status.phase": "Pending"},
    (_CORE, "PersistentVolume"): {
        "spec.persistentVolumeReclaimPolicy": "Retain",
        "spec.volumeMode": "Filesystem",
        "status.phase": "Pending",
    },
    ("storage.k8s.io", "StorageClass"): {"reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"},
    ("apiextensions.k8s.io", "CustomResourceDefinition"): {"spec.conversion.strategy": "None"},
}

# Pod-spec and container defaults (pkg/apis/core/v1/defaults.go SetDefaults_PodSpec, _Container).
POD_SPEC_DEFAULTS: Mapping[str, Any] = {
    "dnsPolicy": "ClusterFirst",
    "restartPolicy": "Always",
    "schedulerName": "default-scheduler",
    "securityContext": {},
    "terminationGracePeriodSeconds": 30,
}
CONTAINER_DEFAULTS: Mapping[str, Any] = {
    "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File",
    "resources": {},
}
PROBE_DEFAULTS: Mapping[str, Any] = {
    "timeoutSeconds": 1,
    "periodSeconds": 10,
    "successThreshold": 1,
    "failureThreshold": 3,
}
# configMap/secret/downwardAPI/projected volumes: 0644.
VOLUME_DEFAULT_MODE = 420

# -- helpers ------------------------------------------------------------------------------------


def _set_default(obj: Json, path: Path | str, value: Any) -> None:
    """Set ``path`` to ``value`` when it is absent or null, creating parent maps on the way."""
    parts = tuple(path.split(".")) if isinstance(path, str) else path
    node = obj
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            if child is not None:
                return  # not an object: leave bad input to validation
            child = node[part] = {}
        node = child
    if node.get(parts[-1]) is None:
        node[parts[-1]] = copy.deepcopy(value)


def _get(obj: Any, path: str) -> Any:
    node = obj
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _dicts(value: Any) -> Iterable[Json]:
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, dict))


def _apply_table(obj: Json, table: Mapping[str, Any]) -> None:
    for path, value in table.items():
        _set_default(obj, path, value)


# -- images -------------------------------------------------------------------------------------


def image_pull_policy(image: str) -> str:
    """``Always`` for ``:latest`` or no tag (and no digest), else ``IfNotPresent``."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.partition(":")[2] if ":" in last else ""
    if not tag and not digest:
        tag = "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


# -- pod templates ------------------------------------------------------------------------------


def _default_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    _apply_table(probe, PROBE_DEFAULTS)
    _default_handler(probe)


def _default_handler(handler: Json) -> None:
    http_get = handler.get("httpGet")
    if isinstance(http_get, dict):
        _set_default(http_get, "path", "/")
        _set_default(http_get, "scheme", "HTTP")


def _default_container(container: Json, *, host_network: bool) -> None:
    _apply_table(container, CONTAINER_DEFAULTS)
    if container.get("imagePullPolicy") is None and isinstance(container.get("image"), str):
        container["imagePullPolicy"] = image_pull_policy(container["image"])
    for port in _dicts(container.get("ports")):
        _set_default(port, "protocol", "TCP")
        if host_network and port.get("hostPort") is None and port.get("containerPort") is not None:
            port["hostPort"] = port["containerPort"]
    for env in _dicts(container.get("env")):
        field_ref = _get(env, "valueFrom.fieldRef")
        if isinstance(field_ref, dict):
            _set_default(field_ref, "apiVersion", "v1")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(container.get(probe))
    lifecycle = container.get("lifecycle")
    if isinstance(lifecycle, dict):
        for hook in ("postStart", "preStop"):
            if isinstance(lifecycle.get(hook), dict):
                _default_handler(lifecycle[hook])


_VOLUME_SOURCES = (
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs", "iscsi",
    "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "downwardAPI",
    "fc", "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk",
    "projected", "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral", "image",
)


def _default_volume(volume: Json) -> None:
    if not any(volume.get(source) is not None for source in _VOLUME_SOURCES):
        volume["emptyDir"] = {}  # SetDefaults_Volume: a volume with no source is an emptyDir
    for source in ("configMap", "secret", "downwardAPI", "projected"):
        if isinstance(volume.get(source), dict):
            _set_default(volume[source], "defaultMode", VOLUME_DEFAULT_MODE)
    for item in _dicts(_get(volume, "downwardAPI.items")):
        if isinstance(item.get("fieldRef"), dict):
            _set_default(item["fieldRef"], "apiVersion", "v1")


def default_pod_spec(spec: Json, *, pod: bool = False) -> None:
    """Fill in what the API server defaults in a pod spec (of a Pod, or of a pod template).

    Host ports from container ports under ``hostNetwork`` are a Pod-only default (the template
    variant sits behind a feature gate that is off).
    """
    _apply_table(spec, POD_SPEC_DEFAULTS)
    host_network = pod and bool(spec.get("hostNetwork"))
    for field in ("initContainers", "containers"):
        for container in _dicts(spec.get(field)):
            _default_container(container, host_network=host_network)
    for volume in _dicts(spec.get("volumes")):
        _default_volume(volume)


def _default_template(obj: Json, path: str = "spec.template.spec") -> None:
    spec = _get(obj, path)
    if isinstance(spec, dict):
        default_pod_spec(spec)


# -- per-kind conditional defaults ------------------------------------------------------------


def _deployment(obj: Json) -> None:
    if _get(obj, "spec.strategy.type") == "RollingUpdate":
        _set_default(obj, "spec.strategy.rollingUpdate.maxUnavailable", "25%")
        _set_default(obj, "spec.strategy.rollingUpdate.maxSurge", "25%")
    _default_template(obj)


def _statefulset(obj: Json) -> None:
    if _get(obj, "spec.updateStrategy.type") == "RollingUpdate":
        _set_default(obj, "spec.updateStrategy.rollingUpdate.partition", 0)
    for claim in _dicts(_get(obj, "spec.volumeClaimTemplates")):
        _set_default(claim, "spec.volumeMode", "Filesystem")
        _set_default(claim, "status.phase", "Pending")
    _default_template(obj)


def _daemonset(obj: Json) -> None:
    if _get(obj, "spec.updateStrategy.type") == "RollingUpdate":
        _set_default(obj, "spec.updateStrategy.rollingUpdate.maxUnavailable", 1)
        _set_default(obj, "spec.updateStrategy.rollingUpdate.maxSurge", 0)
    _default_template(obj)


def _job(obj: Json) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    # SetDefaults_Job: both unset -> 1/1; parallelism alone -> completions stays unset.
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    _set_default(spec, "parallelism", 1)
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = 2147483647 if spec.get("backoffLimitPerIndex") is not None else 6
    if spec.get("podFailurePolicy") is None:
        _set_default(spec, "podReplacementPolicy", "TerminatingOrFailed")
    else:
        _set_default(spec, "podReplacementPolicy", "Failed")
    # A Job without labels of its own shows its pod template's.
    labels = _get(obj, "spec.template.metadata.labels")
    metadata = obj.setdefault("metadata", {})
    if isinstance(labels, dict) and labels and isinstance(metadata, dict) and not metadata.get("labels"):
        metadata["labels"] = dict(labels)
    _default_template(obj)


JOB_NAME_LABELS = ("job-name", "batch.kubernetes.io/job-name")
JOB_UID_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid")


def generate_job_selector(job: dict[str, Any], uid: str) -> None:
    """What the API server does to a new Job without ``manualSelector``: label its pod template
    with the Job's name and uid and select on ``batch.kubernetes.io/controller-uid``
    (``pkg/registry/batch/job/strategy.go`` ``generateSelector``). Call on create, once the uid
    is known, after :func:`apply_defaults`: a Job without labels then shows the generated ones,
    as it does when the server defaults it again on read.
    """
    spec = job.get("spec")
    if not isinstance(spec, dict) or spec.get("manualSelector") is True:
        return
    name = _get(job, "metadata.name") or ""
    template = spec.setdefault("template", {})
    metadata = template.setdefault("metadata", {})
    labels = metadata.get("labels")
    if not isinstance(labels, dict):
        labels = metadata["labels"] = {}
    for label in JOB_NAME_LABELS:
        labels.setdefault(label, name)
    for label in JOB_UID_LABELS:
        labels.setdefault(label, uid)
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        selector = spec["selector"] = {}
    match = selector.get("matchLabels")
    if not isinstance(match, dict):
        match = selector["matchLabels"] = {}
    match.setdefault(JOB_UID_LABELS[1], uid)
    job_metadata = job.setdefault("metadata", {})
    if isinstance(job_metadata, dict) and not job_metadata.get("labels"):
        job_metadata["labels"] = dict(labels)


def _cronjob(obj: Json) -> None:
    _default_template(obj, "spec.jobTemplate.spec.template.spec")


def _replication_controller(obj: Json) -> None:
    labels = _get(obj, "spec.template.metadata.labels")
    if isinstance(labels, dict) and labels:
        spec = obj["spec"]
        if not spec.get("selector"):
            spec["selector"] = dict(labels)
        metadata = obj.setdefault("metadata", {})
        if not metadata.get("labels"):
            metadata["labels"] = dict(labels)
    _default_template(obj)


def _pod(obj: Json) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    default_pod_spec(spec, pod=True)
    _set_default(spec, "enableServiceLinks", True)
    # SetDefaults_Pod: limits without requests become requests too.
    for container in _dicts(spec.get("containers")):
        limits = _get(container, "resources.limits")
        if isinstance(limits, dict) and limits:
            requests = container["resources"].setdefault("requests", {})
            for resource, quantity in limits.items():
                requests.setdefault(resource, quantity)


def _pod_template(obj: Json) -> None:
    _default_template(obj, "template.spec")


def _service(obj: Json) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    service_type = spec.get("type")
    for port in _dicts(spec.get("ports")):
        _set_default(port, "protocol", "TCP")
        if port.get("targetPort") in (None, 0, "") and port.get("port") is not None:
            port["targetPort"] = port["port"]
    if spec.get("sessionAffinity") == "ClientIP":
        _set_default(spec, "sessionAffinityConfig.clientIP.timeoutSeconds", 10800)
    if service_type in ("NodePort", "LoadBalancer"):
        _set_default(spec, "externalTrafficPolicy", "Cluster")
    if service_type == "LoadBalancer":
        _set_default(spec, "allocateLoadBalancerNodePorts", True)
    if service_type != "ExternalName":
        _set_default(spec, "internalTrafficPolicy", "Cluster")
        # A single-stack IPv4 cluster, as kubesim is.
        _set_default(spec, "ipFamilyPolicy", "SingleStack")
        _set_default(spec, "ipFamilies", ["IPv4"])
        if spec.get("clusterIP") and not spec.get("clusterIPs"):
            spec["clusterIPs"] = [spec["clusterIP"]]


def _namespace(obj: Json) -> None:
    name = _get(obj, "metadata.name")
    if isinstance(name, str) and name:
        labels = obj.setdefault("metadata", {}).setdefault("labels", {})
        if isinstance(labels, dict):
            labels["kubernetes.io/metadata.name"] = name


def _network_policy(obj: Json) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if not spec.get("policyTypes"):
        spec["policyTypes"] = ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]
    for direction in ("ingress", "egress"):
        for rule in _dicts(spec.get(direction)):
            for port in _dicts(rule.get("ports")):
                _set_default(port, "protocol", "TCP")


def _endpoints(obj: Json) -> None:
    for subset in _dicts(obj.get("subsets")):
        for port in _dicts(subset.get("ports")):
            _set_default(port, "protocol", "TCP")


def _binding_subjects(obj: Json) -> None:
    for subject in _dicts(obj.get("subjects")):
        if subject.get("apiGroup") is None:
            subject["apiGroup"] = "" if subject.get("kind") == "ServiceAccount" else "rbac.authorization.k8s.io"


def _hpa(obj: Json) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    _set_default(spec, "minReplicas", 1)
    if not spec.get("metrics"):
        spec["metrics"] = [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        scale_up = behavior.setdefault("scaleUp", {})
        _set_default(scale_up, "stabilizationWindowSeconds", 0)
        _set_default(scale_up, "selectPolicy", "Max")
        _set_default(scale_up, "policies", [
            {"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15},
        ])
        scale_down = behavior.setdefault("scaleDown", {})
        _set_default(scale_down, "stabilizationWindowSeconds", 300)
        _set_default(scale_down, "selectPolicy", "Max")
        _set_default(scale_down, "policies", [{"type": "Percent", "value": 100, "periodSeconds": 15}])


def _crd(obj: Json) -> None:
    names = _get(obj, "spec.names")
    if isinstance(names, dict) and isinstance(names.get("kind"), str):
        _set_default(names, "singular", names["kind"].lower())
        _set_default(names, "listKind", names["kind"] + "List")


DEFAULTERS: Mapping[tuple[str, str], Callable[[Json], None]] = {
    (_APPS, "Deployment"): _deployment,
    (_APPS, "ReplicaSet"): _default_template,
    (_APPS, "StatefulSet"): _statefulset,
    (_APPS, "DaemonSet"): _daemonset,
    (_BATCH, "Job"): _job,
    (_BATCH, "CronJob"): _cronjob,
    (_CORE, "ReplicationController"): _replication_controller,
    (_CORE, "Pod"): _pod,
    (_CORE, "PodTemplate"): _pod_template,
    (_CORE, "Service"): _service,
    (_CORE, "Namespace"): _namespace,
    (_CORE, "Endpoints"): _endpoints,
    ("networking.k8s.io", "NetworkPolicy"): _network_policy,
    ("rbac.authorization.k8s.io", "RoleBinding"): _binding_subjects,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _binding_subjects,
    ("autoscaling", "HorizontalPodAutoscaler"): _hpa,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _crd,
}

# Versions whose defaults differ from the table (autoscaling/v1 has no metrics/behavior).
_ONLY_VERSIONS: Mapping[tuple[str, str], frozenset[str]] = {
    ("autoscaling", "HorizontalPodAutoscaler"): frozenset({"v2"}),
}


def apply_defaults(
    group: str,
    version: str,
    kind: str,
    obj: dict[str, Any],
    *,
    allocate_cluster_ip: Callable[[], str] | None = None,
    allocate_node_port: Callable[[], int] | None = None,
) -> None:
    """Fill in, in place, the fields the API server would default on this write.

    Idempotent: defaulting a defaulted object changes nothing. ``allocate_cluster_ip`` and
    ``allocate_node_port`` are for Service creation (see the module docstring).
    """
    key = ("" if group == "core" else group, kind)
    allowed = _ONLY_VERSIONS.get(key)
    if allowed is not None and version not in allowed:
        return
    table = FIELD_DEFAULTS.get(key)
    if table:
        _apply_table(obj, table)
    defaulter = DEFAULTERS.get(key)
    if defaulter is not None:
        defaulter(obj)
    if key == (_CORE, "Service"):
        _allocate(obj, allocate_cluster_ip, allocate_node_port)


def _allocate(
    obj: Json, cluster_ip: Callable[[], str] | None, node_port: Callable[[], int] | None
) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict) or spec.get("type") == "ExternalName":
        return
    if cluster_ip is not None and not spec.get("clusterIP"):
        spec["clusterIP"] = cluster_ip()
        spec["clusterIPs"] = [spec["clusterIP"]]
    elif spec.get("clusterIP") and not spec.get("clusterIPs"):
        spec["clusterIPs"] = [spec["clusterIP"]]
    if node_port is not None and spec.get("type") in ("NodePort", "LoadBalancer"):
        if spec.get("type") == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is False:
            return
        for port in _dicts(spec.get("ports")):
            if not port.get("nodePort"):
                port["nodePort"] = node_port()


def preserve_service_allocations(old: Mapping[str, Any], new: dict[str, Any]) -> None:
    """On a Service update, keep the clusterIP(s) and node ports the new body omits (as the API server does)."""
    old_spec, new_spec = old.get("spec"), new.get("spec")
    if not isinstance(old_spec, dict) or not isinstance(new_spec, dict):
        return
    if new_spec.get("type", "ClusterIP") == "ExternalName":
        return
    for field in ("clusterIP", "clusterIPs"):
        if not new_spec.get(field) and old_spec.get(field):
            new_spec[field] = copy.deepcopy(old_spec[field])
    if new_spec.get("type", "ClusterIP") in ("NodePort", "LoadBalancer"):
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p for p in _dicts(old_spec.get("ports"))}
        for port in _dicts(new_spec.get("ports")):
            previous = old_ports.get((port.get("port"), port.get("protocol", "TCP")))
            if previous is not None and not port.get("nodePort") and previous.get("nodePort"):
                port["nodePort"] = previous["nodePort"]
