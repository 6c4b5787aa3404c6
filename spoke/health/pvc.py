"""PersistentVolumeClaim health: Current once Bound."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spoke.health import _common as c


def health(obj: Mapping[str, Any]) -> c.HealthResult:
    phase = c.str_at(obj, "status.phase", "unknown")
    if phase != "Bound":
        return c.in_progress(f"PVC is not Bound: phase {phase}")
    return c.current("PVC is Bound")
