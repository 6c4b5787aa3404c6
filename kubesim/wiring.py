"""The composition root: what a cluster is made of when it first comes to life.

``boot`` is handed to every :class:`~kubesim.clusters.Cluster` (through :func:`cluster_set`) and
runs once, when the cluster's store has just been made: it subscribes the simulated controllers to
the store and creates the namespaces every real cluster starts with. This is the one module that
knows all the controllers; they know the cluster state and the verbs below them, never each other.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from kubesim import authorizing, clock, collecting, establishing, populating, registry, resources, workloads
from kubesim.clusters import Cluster, ClusterOptions, ClusterSet

__all__ = ["API_SERVER_IP", "BOOTSTRAP_RBAC", "KUBERNETES_SERVICE_IP", "PRECREATED_NAMESPACES", "boot", "cluster_set"]

PRECREATED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

RBAC_GROUP = "rbac.authorization.k8s.io"
_BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}


def _cluster_role(name: str, rules: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    return ("clusterroles", {"metadata": {"name": name, "labels": dict(_BOOTSTRAP_LABELS),
                                          "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
                             "rules": rules})


def _binding(name: str, group: str, role: str | None = None) -> tuple[str, dict[str, Any]]:
    return ("clusterrolebindings", {
        "metadata": {"name": name, "labels": dict(_BOOTSTRAP_LABELS),
                     "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role or name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}]})


#: The bootstrap policy every cluster starts with (``plugin/pkg/auth/authorizer/rbac/bootstrappolicy``):
#: the roles that let any authenticated user discover the API and ask what it may do.
BOOTSTRAP_RBAC: tuple[tuple[str, dict[str, Any]], ...] = (
    _cluster_role("cluster-admin", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                                    {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
    _cluster_role("system:discovery", [{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz",
                                                            "/livez", "/openapi", "/openapi/*", "/readyz",
                                                            "/version", "/version/"], "verbs": ["get"]}]),
    _cluster_role("system:basic-user", [{"apiGroups": ["authorization.k8s.io"],
                                         "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                                         "verbs": ["create"]}]),
    _cluster_role("system:public-info-viewer", [{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version",
                                                                     "/version/"], "verbs": ["get"]}]),
    _binding("cluster-admin", "system:masters"),
    _binding("system:discovery", "system:authenticated"),
    _binding("system:basic-user", "system:authenticated"),
    _binding("system:public-info-viewer", "system:authenticated"),
)


#: The first address of the service range (kubeadm's default 10.96.0.0/12): the ``kubernetes`` Service's.
KUBERNETES_SERVICE_IP = "10.96.0.1"
#: The address the API server advertises (a kind control-plane node's), behind the ``kubernetes`` Service.
API_SERVER_IP = "172.18.0.2"
_API_PORT = {"name": "https", "port": 6443, "protocol": "TCP"}


_API_SERVICE_KEYS = (("", "services"), ("", "endpoints"), ("discovery.k8s.io", "endpointslices"))


def _kubernetes_service(cluster: Cluster) -> None:
    """The ``kubernetes`` Service of ``default`` and its endpoints, as the API server's own reconciler writes them.

    (``pkg/controlplane/controller/kubernetesservice`` and ``pkg/controlplane/reconcilers``.) One
    seeder for the three resources: the first touch of any writes all three.
    """
    for key in _API_SERVICE_KEYS:
        cluster.store.seeders.pop(key, None)  # before the writes below read them back
    core = resources.builtin_types()[("", "v1")]
    registry.create(cluster, core["services"], "default", {
        "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": KUBERNETES_SERVICE_IP, "sessionAffinity": "None",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}},
        manager="kube-apiserver")
    registry.create(cluster, core["endpoints"], "default", {
        "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": API_SERVER_IP}], "ports": [dict(_API_PORT)]}]},
        manager="kube-apiserver")
    registry.create(cluster, resources.builtin_types()[("discovery.k8s.io", "v1")]["endpointslices"], "default", {
        "metadata": {"name": "kubernetes", "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [API_SERVER_IP], "conditions": {"ready": True}}],
        "ports": [dict(_API_PORT)]}, manager="kube-apiserver")

def boot(cluster: Cluster) -> None:
    """Wire ``cluster``'s controllers to its store, then create its pre-created namespaces."""
    store = cluster.store
    # Listener order is the order each write's event reaches them; kept as it always was.
    store.listeners.append(collecting.GarbageCollector(cluster).on_event)
    store.listeners.append(workloads.Simulator(cluster).on_event)
    store.listeners.append(establishing.CrdController(cluster).on_event)
    ns_type = resources.builtin_types()[("", "v1")]["namespaces"]
    for name in PRECREATED_NAMESPACES:
        registry.create(cluster, ns_type, "", {"metadata": {"name": name}}, manager="kube-apiserver")
    populator = populating.Populator(cluster)
    store.listeners.append(populator.on_event)
    store.listeners.append(authorizing.AggregationController(cluster).on_event)
    # What a real control plane writes at start but most requests never read is written on the
    # first touch of its resource (Store.seeders): the pre-created namespaces' default ServiceAccount
    # and kube-root-ca.crt, the bootstrap RBAC policy, the local APIServices, the ``kubernetes`` Service.
    for plural in ("serviceaccounts", "configmaps"):
        store.seeders[("", plural)] = functools.partial(populator.fill_now, PRECREATED_NAMESPACES, plural)
    for plural in ("clusterroles", "clusterrolebindings"):
        store.seeders[(RBAC_GROUP, plural)] = functools.partial(_seed_rbac, cluster, plural)
    store.seeders[("apiregistration.k8s.io", "apiservices")] = functools.partial(_seed_apiservices, cluster)
    api_service = functools.partial(_kubernetes_service, cluster)
    for key in _API_SERVICE_KEYS:
        store.seeders[key] = api_service


def _seed_rbac(cluster: Cluster, plural: str) -> None:
    rt = resources.builtin_types()[(RBAC_GROUP, "v1")][plural]
    for kind, body in BOOTSTRAP_RBAC:
        if kind == plural:
            registry.create(cluster, rt, "", copy.deepcopy(body), manager="kube-apiserver")


def _seed_apiservices(cluster: Cluster) -> None:
    apiservices = resources.builtin_types()[("apiregistration.k8s.io", "v1")]["apiservices"]
    for group, version in resources.builtin_types():
        # The aggregator registers every built-in group/version as a Local APIService at start.
        made = copy.deepcopy(registry.create(cluster, apiservices, "", {
            "metadata": {"name": f"{version}.{group}",
                         "labels": {"kube-aggregator.kubernetes.io/automanaged": "onstart"}},
            "spec": {"group": group, "version": version, "groupPriorityMinimum": 18000, "versionPriority": 15}},
            manager="kube-apiserver"))
        made["status"] = {"conditions": [{"type": "Available", "status": "True", "lastTransitionTime": clock.now(),
                                          "reason": "Local", "message": "Local APIServices are always available"}]}
        cluster.store.put(apiservices.key, made)


def cluster_set(options: ClusterOptions) -> ClusterSet:
    """An empty set of clusters that boot with their controllers."""
    return ClusterSet(options, boot=boot)
