"""Any other kind: the widely used ``Ready`` condition, else Current (kstatus ``checkReadyCondition``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spoke.health import _common as c


def health(obj: Mapping[str, Any]) -> c.HealthResult:
    ready = c.condition(obj, "Ready")
    if ready is None:
        # No known condition to judge by: kstatus assumes a resource without one is current.
        return c.current("Resource is current")
    if ready.get("status") == "True":
        return c.current("Resource is Ready")
    return c.in_progress(f"Resource not Ready: {c.describe(ready)}")


def always_current(obj: Mapping[str, Any]) -> c.HealthResult:
    """Kinds with no controller to wait for (ConfigMap, Secret, CronJob, PDB, RBAC, ...)."""
    return c.current(f"{obj.get('kind')} needs no reconciliation")
