"""The clusters one kubesim process hosts: each its own store, resource table, timers and faults.

A :class:`Cluster` is cheap until first used: its store is made on the first request and handed to
the ``boot`` function it was given (``kubesim.wiring.boot``: the controllers and the pre-created
namespaces), so a thousand idle clusters cost a dict entry each. This module knows no controller:
they sit above it and reach the cluster through this state.
"""

from __future__ import annotations

import ipaddress
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from kubesim import clock, resources
from kubesim import faults as faults_mod
from kubesim.resources import ResourceType
from kubesim.store import Store

__all__ = ["Boot", "Cluster", "ClusterOptions", "ClusterSet"]


@dataclass(frozen=True, slots=True)
class ClusterOptions:
    """Behaviour knobs shared by every cluster of a server.

    ``workload_delay``: seconds before a simulated controller reports a workload ready.
    ``crd_establish_delay``: seconds between a CRD's creation and its NamesAccepted/Established.
    ``watch_history``: events retained per cluster for watches to resume from (older: 410).
    ``bookmark_interval``: seconds between BOOKMARK events on watches that allow them.
    ``watch_timeout``: length of a watch without ``timeoutSeconds`` (the real server: 30-60 min).
    ``ca_pem``: the CA published in every namespace's ``kube-root-ca.crt`` ConfigMap.
    """

    workload_delay: float = 0.2
    crd_establish_delay: float = 0.05
    watch_history: int = 10000
    bookmark_interval: float = 60.0
    watch_timeout: float = 1800.0
    #: The CA new namespaces get in their ``kube-root-ca.crt`` ConfigMap (the server's, with TLS).
    ca_pem: str = ""


#: Sets up a cluster whose store was just made: its controllers and its first objects.
Boot = Callable[["Cluster"], None]


class Cluster:
    """One emulated cluster, addressed as ``/clusters/<name>``."""

    def __init__(self, name: str, options: ClusterOptions, *, boot: Boot) -> None:
        self.name = name
        self.options = options
        self._boot_with = boot
        self._faults = faults_mod.Faults()
        self._store: Store | None = None
        # Custom resource types, registered by the CRD controller: {(group, version): {plural: type}}.
        self.custom: dict[tuple[str, str], dict[str, ResourceType]] = {}
        # Group/versions whose CRD is Established (only those appear in discovery).
        self.established: set[tuple[str, str, str]] = set()  # (group, version, plural)
        self._next_ip = int(ipaddress.IPv4Address("10.96.0.10"))
        self._next_node_port = 30000
        self._next_lb_ip = int(ipaddress.IPv4Address("172.18.255.1"))
        self.timers = clock.Timers()
        # ServiceAccount bearer tokens this cluster issued:
        # {token: (namespace, name, account uid, expiry as wall_time() or None: a legacy Secret token)}.
        self.tokens: dict[str, tuple[str, str, str, float | None]] = {}

    @property
    def faults(self) -> faults_mod.Faults:
        return self._faults

    @faults.setter
    def faults(self, value: faults_mod.Faults) -> None:
        self._faults = value
        if self._store is not None:
            self._store.poke_subscriptions()  # open watches re-read them (a cut applies at once)

    def wall_time(self) -> float:
        """Seconds since the epoch by this cluster's clock (real time plus the ``clock_ahead`` fault)."""
        return time.time() + self._faults.clock_ahead

    @property
    def started(self) -> bool:
        return self._store is not None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._boot()
        assert self._store is not None
        return self._store

    def _boot(self) -> None:
        # The store is in place before the boot function runs: its writes go through this cluster.
        self._store = Store(history=self.options.watch_history)
        self._boot_with(self)

    def close(self) -> None:
        self.timers.cancel_all()
        if self._store is not None:
            self._store.close_subscriptions()

    # -- resource table ---------------------------------------------------------------------------

    def resolve(self, group: str, version: str, plural: str) -> ResourceType | None:
        table = resources.builtin_types().get((group, version))
        if table is not None and plural in table:
            return table[plural]
        custom = self.custom.get((group, version))
        return None if custom is None else custom.get(plural)

    def group_versions(self) -> dict[str, list[str]]:
        """``{group: [versions, preferred first]}`` for discovery (built-ins then established CRDs)."""
        out: dict[str, list[str]] = {}
        for group, version in resources.builtin_types():
            out.setdefault(group, []).append(version)
        for group, version, _plural in sorted(self.established):
            versions = out.setdefault(group, [])
            if version not in versions:
                versions.append(version)
        return out

    def discoverable(self, group: str, version: str) -> list[ResourceType]:
        builtin = resources.builtin_types().get((group, version))
        types = list(builtin.values()) if builtin else []
        for plural, rt in sorted((self.custom.get((group, version)) or {}).items()):
            if (group, version, plural) in self.established:
                types.append(rt)
        return types

    def types_of(self, group: str, plural: str) -> Iterator[ResourceType]:
        for table in (resources.builtin_types(), self.custom):
            for (g, _v), plurals in table.items():
                if g == group and plural in plurals:
                    yield plurals[plural]

    # -- allocators -------------------------------------------------------------------------------

    def allocate_cluster_ip(self) -> str:
        self._next_ip += 1
        return str(ipaddress.IPv4Address(self._next_ip))

    def allocate_node_port(self) -> int:
        self._next_node_port += 1
        return self._next_node_port

    def allocate_lb_ip(self) -> str:
        self._next_lb_ip += 1
        return str(ipaddress.IPv4Address(self._next_lb_ip))

    @staticmethod
    def new_uid() -> str:
        return str(uuid.uuid4())


class ClusterSet:
    """The clusters of one server, by name; each booted with ``boot`` on first use."""

    def __init__(self, options: ClusterOptions, *, boot: Boot) -> None:
        self.options = options
        self._boot = boot
        self._clusters: dict[str, Cluster] = {}

    def add(self, name: str) -> Cluster:
        cluster = self._clusters.get(name)
        if cluster is None:
            cluster = self._clusters[name] = Cluster(name, self.options, boot=self._boot)
        return cluster

    def get(self, name: str) -> Cluster | None:
        return self._clusters.get(name)

    def remove(self, name: str) -> None:
        cluster = self._clusters.pop(name, None)
        if cluster is not None:
            cluster.close()

    def names(self) -> list[str]:
        return list(self._clusters)

    def close(self) -> None:
        for cluster in self._clusters.values():
            cluster.close()
