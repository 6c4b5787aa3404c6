"""Pod health (kstatus ``podConditions``), including containers stuck in CrashLoopBackOff."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spoke.health import _common as c


def _crash_looping(obj: Mapping[str, Any]) -> list[str]:
    status = obj.get("status") or {}
    names: list[str] = []
    for key in ("initContainerStatuses", "containerStatuses"):
        for cs in status.get(key) or []:
            waiting = ((cs or {}).get("state") or {}).get("waiting") or {}
            if waiting.get("reason") == "CrashLoopBackOff":
                names.append(str(cs.get("name")))
    return names


def health(obj: Mapping[str, Any]) -> c.HealthResult:
    phase = c.str_at(obj, "status.phase")
    if phase == "Succeeded":
        return c.current("Pod has completed successfully")
    if phase == "Failed":
        # kstatus: the Pod is done; judging the workload that owns it is the owner's rule.
        return c.current("Pod has completed, but not successfully")
    if phase == "Running":
        ready = c.condition(obj, "Ready")
        if ready is not None and ready.get("status") == "True":
            return c.current("Pod is Ready")
        looping = _crash_looping(obj)
        if looping:
            return c.failed(f"Containers in CrashLoopBackOff: {', '.join(looping)}")
        return c.in_progress("Pod is running but is not Ready")
    if phase == "Pending":
        looping = _crash_looping(obj)
        if looping:
            return c.failed(f"Containers in CrashLoopBackOff: {', '.join(looping)}")
        scheduled = c.condition(obj, "PodScheduled")
        if scheduled is not None and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
            # kstatus fails this after a 15 s grace period; a pure function has no clock, so the
            # caller's health timeout plays that part.
            return c.in_progress(f"Pod not scheduled: {c.describe(scheduled)}")
        return c.in_progress("Pod is in the Pending phase")
    if not phase:
        return c.in_progress("Pod phase not available yet")
    return c.unknown(f"Pod has unknown phase {phase!r}")
