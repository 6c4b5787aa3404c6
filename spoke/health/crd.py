"""CustomResourceDefinition health (kstatus ``crdConditions``): Current once Established."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spoke.health import _common as c


def health(obj: Mapping[str, Any]) -> c.HealthResult:
    names = c.condition(obj, "NamesAccepted")
    if names is not None and names.get("status") == "False":
        return c.failed(f"CRD names not accepted: {c.describe(names)}")
    established = c.condition(obj, "Established")
    if established is not None:
        if established.get("status") == "True":
            return c.current("CRD is established")
        if established.get("status") == "False" and established.get("reason") != "Installing":
            return c.failed(f"CRD not established: {c.describe(established)}")
    return c.in_progress("CRD is being installed (not Established yet)")
