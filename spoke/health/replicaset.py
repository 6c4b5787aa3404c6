"""ReplicaSet health (kstatus ``replicasetConditions``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spoke.health import _common as c


def health(obj: Mapping[str, Any]) -> c.HealthResult:
    failure = c.condition(obj, "ReplicaFailure")
    if failure is not None and failure.get("status") == "True":
        # kstatus keeps this InProgress: a quota or admission refusal can clear without a spec change.
        return c.in_progress(f"Replica failure: {c.describe(failure)}")
    spec = c.int_at(obj, "spec.replicas", 1)
    replicas = c.int_at(obj, "status.replicas", 0)
    for field, label in (
        ("fullyLabeledReplicas", "Labelled"),
        ("availableReplicas", "Available"),
        ("readyReplicas", "Ready"),
    ):
        have = c.int_at(obj, f"status.{field}", 0)
        if spec > have:
            return c.in_progress(f"{label}: {have}/{spec}")
    if replicas > spec:
        return c.in_progress(f"Pending termination: {replicas - spec}")
    return c.current(f"ReplicaSet is available. Replicas: {replicas}")
