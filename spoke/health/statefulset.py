"""StatefulSet health (kstatus ``stsConditions``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spoke.health import _common as c


def health(obj: Mapping[str, Any]) -> c.HealthResult:
    if c.str_at(obj, "spec.updateStrategy.type") == "OnDelete":
        # Pods are replaced only when someone deletes them: there is no rollout to wait for.
        return c.current("StatefulSet uses the OnDelete update strategy")
    spec = c.int_at(obj, "spec.replicas", 1)
    replicas = c.int_at(obj, "status.replicas", 0)
    ready = c.int_at(obj, "status.readyReplicas", 0)
    current_ = c.int_at(obj, "status.currentReplicas", 0)
    updated = c.int_at(obj, "status.updatedReplicas", 0)
    partition = c.int_at(obj, "spec.updateStrategy.rollingUpdate.partition", -1)
    if spec > replicas:
        return c.in_progress(f"Replicas: {replicas}/{spec}")
    if spec > ready:
        return c.in_progress(f"Ready: {ready}/{spec}")
    if replicas > spec:
        return c.in_progress(f"Pending termination: {replicas - spec}")
    if partition != -1:
        # Only ordinals >= partition get the new revision; that many updated pods is a finished rollout.
        want = max(spec - partition, 0)
        if updated < want:
            return c.in_progress(f"Partitioned rollout: updated {updated}/{want}")
        if partition == 0:  # the API server's default: every pod is in the rollout
            return c.current(f"All replicas updated. Replicas: {replicas}")
        return c.current(f"Partitioned rollout complete: updated {updated}")
    if spec > current_:
        return c.in_progress(f"Current: {current_}/{spec}")
    current_rev = c.str_at(obj, "status.currentRevision")
    update_rev = c.str_at(obj, "status.updateRevision")
    if current_rev != update_rev:
        return c.in_progress(f"Waiting for revision {update_rev} to replace {current_rev}")
    return c.current(f"All replicas scheduled as expected. Replicas: {replicas}")
