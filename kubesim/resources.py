"""The resource table: which kinds a cluster serves, and the per-kind rules of their REST strategies.

A :class:`ResourceType` carries what discovery publishes (plural, kind, scope, verbs, short names,
categories, subresources) and what the registry needs to behave as the real strategy of that kind
does (does it keep ``metadata.generation``, what bumps it, does it have a status subresource, which
field selectors it supports). :data:`BUILTINS` is the table of built-in kinds; custom resources get
theirs from their CRD (``kubesim.crds``).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ALL_VERBS", "BUILTINS", "ResourceType", "builtin_types"]

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")

_GENERIC_FIELDS = ("metadata.name", "metadata.namespace")


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One served resource (one group/version/plural) and the rules its strategy applies."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...] = ALL_VERBS
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status: bool = False
    scale: bool = False
    #: Keeps ``metadata.generation`` (1 on create, +1 on a spec change).
    generation: bool = False
    #: Deployment: annotation changes bump generation too.
    generation_on_annotations: bool = False
    custom: bool = False
    field_labels: tuple[str, ...] = ()
    #: Status written on create (``{}`` for most kinds with a status subresource).
    initial_status: Mapping[str, Any] | None = None
    #: CRD version schema (``openAPIV3Schema``) for pruning, defaults and SSA list types.
    crd_schema: Mapping[str, Any] | None = field(default=None, compare=False)
    #: Custom resources: the CRD's scale subresource paths (specReplicas, statusReplicas, labelSelector).
    scale_paths: tuple[str, str, str] | None = field(default=None, compare=False)
    #: Whether a DELETE answers with the deleted object instead of a Status.
    delete_returns_object: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        """Storage identity: one object set per group and plural, whatever version serves it."""
        return (self.group, self.plural)

    @property
    def group_resource(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def selectable_fields(self) -> tuple[str, ...]:
        return _GENERIC_FIELDS + self.field_labels

    @property
    def storage_version_hash(self) -> str:
        digest = hashlib.sha256(f"{self.group}/{self.version}/{self.kind}".encode()).digest()
        return base64.b64encode(digest[:8]).decode()


def _rt(group: str, version: str, plural: str, kind: str, namespaced: bool, **kw: Any) -> ResourceType:
    singular = kw.pop("singular", kind.lower())
    return ResourceType(group=group, version=version, plural=plural, singular=singular, kind=kind,
                        namespaced=namespaced, **kw)


_WORKLOAD = {"generation": True, "status": True, "initial_status": {}, "categories": ("all",)}

BUILTINS: tuple[ResourceType, ...] = (
    # core/v1
    _rt("", "v1", "namespaces", "Namespace", False, short_names=("ns",), status=True,
        initial_status={"phase": "Active"}, field_labels=("status.phase",)),
    _rt("", "v1", "configmaps", "ConfigMap", True, short_names=("cm",)),
    _rt("", "v1", "secrets", "Secret", True, field_labels=("type",)),
    # The service registry sets ReturnDeletedObject: a DELETE answers with the Service, not a Status.
    _rt("", "v1", "services", "Service", True, short_names=("svc",), categories=("all",), status=True,
        initial_status={"loadBalancer": {}}, delete_returns_object=True),
    _rt("", "v1", "serviceaccounts", "ServiceAccount", True, short_names=("sa",), delete_returns_object=True),
    _rt("", "v1", "pods", "Pod", True, short_names=("po",), categories=("all",), status=True,
        initial_status={"phase": "Pending", "qosClass": "BestEffort"}, delete_returns_object=True,
        field_labels=("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                      "status.phase", "status.podIP", "status.nominatedNodeName")),
    _rt("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, short_names=("pvc",), status=True,
        initial_status={"phase": "Pending"}),
    _rt("", "v1", "persistentvolumes", "PersistentVolume", False, short_names=("pv",), status=True,
        initial_status={"phase": "Pending"}),
    _rt("", "v1", "endpoints", "Endpoints", True, short_names=("ep",)),
    _rt("", "v1", "events", "Event", True, short_names=("ev",),
        field_labels=("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                      "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
                      "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type")),
    _rt("", "v1", "limitranges", "LimitRange", True, short_names=("limits",)),
    _rt("", "v1", "resourcequotas", "ResourceQuota", True, short_names=("quota",), status=True,
        initial_status={}),
    _rt("", "v1", "nodes", "Node", False, short_names=("no",), status=True, initial_status={},
        field_labels=("spec.unschedulable",)),
    _rt("", "v1", "replicationcontrollers", "ReplicationController", True, short_names=("rc",),
        categories=("all",), status=True, generation=True, initial_status={"replicas": 0}),
    _rt("", "v1", "podtemplates", "PodTemplate", True),
    # apps/v1
    _rt("apps", "v1", "deployments", "Deployment", True, short_names=("deploy",), scale=True,
        generation_on_annotations=True, **_WORKLOAD),
    # Initial statuses carry the fields Go encodes without omitempty (the client requires them).
    _rt("apps", "v1", "replicasets", "ReplicaSet", True, short_names=("rs",), scale=True,
        field_labels=("status.replicas",), **dict(_WORKLOAD, initial_status={"replicas": 0})),
    _rt("apps", "v1", "statefulsets", "StatefulSet", True, short_names=("sts",), scale=True,
        **dict(_WORKLOAD, initial_status={"replicas": 0, "availableReplicas": 0})),
    _rt("apps", "v1", "daemonsets", "DaemonSet", True, short_names=("ds",),
        **dict(_WORKLOAD, initial_status={"currentNumberScheduled": 0, "numberMisscheduled": 0,
                                          "desiredNumberScheduled": 0, "numberReady": 0})),
    _rt("apps", "v1", "controllerrevisions", "ControllerRevision", True),
    # batch/v1
    _rt("batch", "v1", "jobs", "Job", True, field_labels=("status.successful",), **_WORKLOAD),
    _rt("batch", "v1", "cronjobs", "CronJob", True, short_names=("cj",), **_WORKLOAD),
    # autoscaling/v2
    _rt("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True,
        short_names=("hpa",), categories=("all",), status=True, generation=True,
        initial_status={"desiredReplicas": 0}),
    # policy/v1
    _rt("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, short_names=("pdb",),
        status=True, generation=True, initial_status={"disruptionsAllowed": 0, "currentHealthy": 0,
                                                      "desiredHealthy": 0, "expectedPods": 0}),
    # networking.k8s.io/v1
    _rt("networking.k8s.io", "v1", "ingresses", "Ingress", True, short_names=("ing",), status=True,
        generation=True, initial_status={"loadBalancer": {}}),
    _rt("networking.k8s.io", "v1", "ingressclasses", "IngressClass", False),
    _rt("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, short_names=("netpol",),
        generation=True),
    # rbac.authorization.k8s.io/v1
    _rt("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    _rt("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    _rt("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    _rt("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    # authorization.k8s.io/v1: create-only reviews, answered by the authorizer and never stored.
    _rt("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False,
        verbs=("create",)),
    _rt("authorization.k8s.io", "v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview", False,
        verbs=("create",)),
    _rt("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", False, verbs=("create",)),
    # coordination.k8s.io/v1
    _rt("coordination.k8s.io", "v1", "leases", "Lease", True),
    # storage.k8s.io/v1
    _rt("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, short_names=("sc",),
        delete_returns_object=True),
    _rt("storage.k8s.io", "v1", "csidrivers", "CSIDriver", False),
    # scheduling.k8s.io/v1
    _rt("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, short_names=("pc",)),
    # discovery.k8s.io/v1, events.k8s.io/v1
    _rt("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    _rt("events.k8s.io", "v1", "events", "Event", True, short_names=("ev",)),
    # admissionregistration.k8s.io/v1
    _rt("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration",
        False, categories=("api-extensions",), generation=True),
    _rt("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", "MutatingWebhookConfiguration",
        False, categories=("api-extensions",), generation=True),
    # node.k8s.io/v1
    _rt("node.k8s.io", "v1", "runtimeclasses", "RuntimeClass", False),
    # apiregistration.k8s.io/v1: one local APIService per served group/version (kubesim.wiring).
    _rt("apiregistration.k8s.io", "v1", "apiservices", "APIService", False, categories=("api-extensions",),
        status=True, initial_status={}),
    # apiextensions.k8s.io/v1
    _rt("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False,
        short_names=("crd", "crds"), categories=("api-extensions",), status=True, generation=True,
        initial_status={}),
)

_BY_GV: dict[tuple[str, str], dict[str, ResourceType]] = {}
for _t in BUILTINS:
    _BY_GV.setdefault((_t.group, _t.version), {})[_t.plural] = _t


def builtin_types() -> dict[tuple[str, str], dict[str, ResourceType]]:
    """``{(group, version): {plural: type}}`` for the built-in kinds (shared, never mutated)."""
    return _BY_GV
