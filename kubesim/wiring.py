"""The composition root: what a cluster is made of when it first comes to life.

``boot`` is handed to every :class:`~kubesim.clusters.Cluster` (through :func:`cluster_set`) and
runs once, when the cluster's store has just been made: it subscribes the simulated controllers to
the store and creates the namespaces every real cluster starts with. This is the one module that
knows all the controllers; they know the cluster state and the verbs below them, never each other.
"""

from __future__ import annotations

from kubesim import collecting, establishing, registry, resources, workloads
from kubesim.clusters import Cluster, ClusterOptions, ClusterSet

__all__ = ["PRECREATED_NAMESPACES", "boot", "cluster_set"]

PRECREATED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


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


def cluster_set(options: ClusterOptions) -> ClusterSet:
    """An empty set of clusters that boot with their controllers."""
    return ClusterSet(options, boot=boot)
