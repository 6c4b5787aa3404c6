"""DaemonSet health (kstatus ``daemonsetConditions``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spoke.health import _common as c


def health(obj: Mapping[str, Any]) -> c.HealthResult:
    # Without an observed generation the counts below may describe the previous spec.
    if c.int_at(obj, "status.observedGeneration", -1) == -1:
        return c.in_progress("DaemonSet not observed by its controller yet")
    desired = c.int_at(obj, "status.desiredNumberScheduled", -1)
    if desired == -1:
        return c.in_progress("Missing .status.desiredNumberScheduled")
    for field, label in (
        ("currentNumberScheduled", "Current"),
        ("updatedNumberScheduled", "Updated"),
        ("numberAvailable", "Available"),
        ("numberReady", "Ready"),
    ):
        have = c.int_at(obj, f"status.{field}", 0)
        if desired > have:
            return c.in_progress(f"{label}: {have}/{desired}")
    return c.current(f"All replicas scheduled as expected. Replicas: {desired}")
