"""Deployment health (kstatus ``deploymentConditions``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spoke.health import _common as c

# The controller never sets Progressing when the deadline is "infinite" (deployment_util.go).
_NO_DEADLINE = 2**31 - 1


def health(obj: Mapping[str, Any]) -> c.HealthResult:
    progressing = c.condition(obj, "Progressing")
    if progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded":
        # The message names the ReplicaSet that stalled; it is what the user needs to look at.
        return c.failed(str(progressing.get("message") or "ProgressDeadlineExceeded"))

    spec = c.int_at(obj, "spec.replicas", 1)
    replicas = c.int_at(obj, "status.replicas", 0)
    updated = c.int_at(obj, "status.updatedReplicas", 0)
    ready = c.int_at(obj, "status.readyReplicas", 0)
    available = c.int_at(obj, "status.availableReplicas", 0)
    if spec > replicas:
        return c.in_progress(f"Replicas: {replicas}/{spec}")
    if spec > updated:
        return c.in_progress(f"Updated: {updated}/{spec}")
    if replicas > spec:
        return c.in_progress(f"Pending termination: {replicas - spec}")
    if updated > available:
        return c.in_progress(f"Available: {available}/{updated}")
    if spec > ready:
        return c.in_progress(f"Ready: {ready}/{spec}")

    deadline = c.int_at(obj, "spec.progressDeadlineSeconds", _NO_DEADLINE)
    if deadline != _NO_DEADLINE and not (
        progressing is not None
        and progressing.get("status") == "True"
        and progressing.get("reason") == "NewReplicaSetAvailable"
    ):
        return c.in_progress("ReplicaSet not available: rollout still progressing")
    available_cond = c.condition(obj, "Available")
    if available_cond is None or available_cond.get("status") != "True":
        return c.in_progress("Deployment not Available")
    return c.current(f"Deployment is available. Replicas: {replicas}")
