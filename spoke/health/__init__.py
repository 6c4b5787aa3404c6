"""Health of live objects by kstatus rules: pure functions over plain dicts.

Map: ``compute`` (this module; ``assess`` for many objects) applies the rules every kind shares, then the
per-kind rule from ``_RULES``: ``deployment`` · ``statefulset`` · ``daemonset``
· ``replicaset`` · ``job`` · ``pod`` · ``pvc`` · ``service`` · ``crd`` ·
``generic`` (a ``Ready`` condition, else Current; and the kinds that are always
Current). ``_common`` holds the result type and typed field readers.

Nothing here touches the network: like ``kstatus.Compute``, the caller passes
the whole live object and gets a :class:`HealthResult` back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from protos.objects import ObjectRef, group_of
from protos.status import HealthStatus
from spoke.health import (
    crd,
    daemonset,
    deployment,
    generic,
    job,
    pod,
    pvc,
    replicaset,
    service,
    statefulset,
)
from spoke.health._common import BadStatusError, HealthResult, condition, describe

__all__ = ["NOT_FOUND", "HealthResult", "HealthStatus", "assess", "compute"]

Rule = Callable[[Mapping[str, Any]], HealthResult]

#: Per-kind rules, keyed by (API group, kind). Anything else falls to ``generic.health``.
_RULES: dict[tuple[str, str], Rule] = {
    ("apps", "Deployment"): deployment.health,
    ("apps", "StatefulSet"): statefulset.health,
    ("apps", "DaemonSet"): daemonset.health,
    ("apps", "ReplicaSet"): replicaset.health,
    ("batch", "Job"): job.health,
    ("", "Pod"): pod.health,
    ("", "PersistentVolumeClaim"): pvc.health,
    ("", "Service"): service.health,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): crd.health,
    ("", "ConfigMap"): generic.always_current,
    ("", "Secret"): generic.always_current,
    ("batch", "CronJob"): generic.always_current,
    ("policy", "PodDisruptionBudget"): generic.always_current,
}

#: What a caller reports for an object it expected but could not find.
NOT_FOUND = HealthResult(HealthStatus.UNKNOWN, "not found")


def compute(obj: Mapping[str, Any]) -> HealthResult:
    """The kstatus verdict on one live object.

    Fetches nothing: the caller passes the whole object as returned by the API
    (metadata, spec and status). Rules, in order: a set ``deletionTimestamp`` is
    InProgress "Terminating"; a ``status.observedGeneration`` behind
    ``metadata.generation`` is InProgress; ``Reconciling=True`` is InProgress and
    ``Stalled=True`` is Failed; then the kind's own rule. A status whose fields
    have the wrong types is Unknown with the offending field in the reason.
    """
    try:
        return _compute(obj)
    except BadStatusError as err:
        return HealthResult(HealthStatus.UNKNOWN, f"cannot read status: {err}")


def assess(live: Mapping[ObjectRef, Mapping[str, Any]], refs: Iterable[ObjectRef]) -> dict[ObjectRef, HealthResult]:
    """Health of each ref from already-read live objects; a missing object is Unknown (``NOT_FOUND``)."""
    return {ref: compute(obj) if (obj := live.get(ref)) is not None else NOT_FOUND for ref in refs}


def _compute(obj: Mapping[str, Any]) -> HealthResult:
    metadata = obj.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return HealthResult(HealthStatus.IN_PROGRESS, "Terminating")

    status = obj.get("status")
    generation = metadata.get("generation")
    observed = status.get("observedGeneration") if isinstance(status, Mapping) else None
    if generation is not None and observed is not None and generation != observed:
        return HealthResult(
            HealthStatus.IN_PROGRESS,
            f"generation {generation} not observed yet (observedGeneration {observed})",
        )

    reconciling = condition(obj, "Reconciling")
    if reconciling is not None and reconciling.get("status") == "True":
        return HealthResult(HealthStatus.IN_PROGRESS, f"Reconciling: {describe(reconciling)}")
    stalled = condition(obj, "Stalled")
    if stalled is not None and stalled.get("status") == "True":
        return HealthResult(HealthStatus.FAILED, f"Stalled: {describe(stalled)}")

    key = (group_of(str(obj.get("apiVersion", ""))), str(obj.get("kind", "")))
    rule = _RULES.get(key, generic.health)
    return rule(obj)
