"""Wait: read live state and judge it — CRDs Established, namespaces present, objects healthy.

Health itself is the pure ``spoke.health.compute`` (kstatus rules); this module fetches the live
objects it needs (one list per kind, selected by Convoy's cluster label) and polls with a deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from protos import bundle as bundles
from protos.objects import ObjectRef
from protos.status import HealthStatus
from spoke import health
from spoke.cluster import ClusterClient, errors

__all__ = ["POLL_INTERVAL", "read_live", "wait_established", "wait_healthy", "wait_namespaces"]

#: seconds between polls; the API has no cheaper "tell me when" for a one-off wait
POLL_INTERVAL = 0.1


def read_live(client: ClusterClient, kinds: Iterable[tuple[str, str]], *, cluster: str,
              ) -> dict[ObjectRef, dict[str, Any]]:
    """Live objects of the given (apiVersion, kind)s that carry this cluster's label.

    A kind the API does not serve (yet) contributes nothing.
    """
    selector = f"{bundles.LABEL_CLUSTER}={cluster}"
    out: dict[ObjectRef, dict[str, Any]] = {}
    for api_version, kind in sorted(set(kinds)):
        try:
            listed = client.list(api_version, kind, label_selector=selector)
        except errors.UnknownKindError:
            continue
        for item in listed.items:
            out[ObjectRef.of(item)] = item
    return out


def _poll(check: Callable[[], bool], *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL)


def wait_established(client: ClusterClient, crds: Iterable[ObjectRef], *, timeout: float) -> dict[ObjectRef, str]:
    """Wait until each CRD is Established; returns the ones that are not, with the reason."""
    pending = {ref: "not Established yet" for ref in crds}

    def check() -> bool:
        for ref in list(pending):
            live = client.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", ref.name)
            if live is None:
                pending[ref] = "not found"
                continue
            result = health.compute(live)
            if result.status == HealthStatus.CURRENT:
                del pending[ref]
            else:
                pending[ref] = result.reason or "not Established yet"
        return not pending

    if pending:
        _poll(check, timeout=timeout)
        client.forget_discovery()  # the new kinds must be looked up afresh
    return pending


def wait_namespaces(client: ClusterClient, names: Iterable[str], *, timeout: float) -> dict[str, str]:
    """Wait until each namespace exists and is not terminating; returns the ones that are not."""
    pending = {name: "not found" for name in names}

    def check() -> bool:
        for name in list(pending):
            live = client.get("v1", "Namespace", "", name)
            if live is None:
                continue
            if (live.get("status") or {}).get("phase", "Active") == "Terminating":
                pending[name] = "terminating"
                continue
            del pending[name]
        return not pending

    if pending:
        _poll(check, timeout=timeout)
    return pending


def wait_healthy(client: ClusterClient, objects: Mapping[ObjectRef, str], *, cluster: str,
                 timeout: float) -> dict[ObjectRef, health.HealthResult]:
    """Poll until every object (ref -> apiVersion) is Current or ``timeout`` passes; the last judgement."""
    kinds = {(api_version, ref.kind) for ref, api_version in objects.items()}
    results: dict[ObjectRef, health.HealthResult] = {}

    def check() -> bool:
        nonlocal results
        results = health.assess(read_live(client, kinds, cluster=cluster), objects)
        return all(r.status == HealthStatus.CURRENT for r in results.values())

    _poll(check, timeout=timeout)
    return results
