"""Service health (kstatus ``serviceConditions``).

Only ``type: LoadBalancer`` can be unfinished: kstatus waits for ``spec.clusterIP``.
It does not wait for ``status.loadBalancer.ingress`` (a cluster without a
load-balancer controller would never converge), but the reason says whether
an ingress address exists, so a user sees the difference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spoke.health import _common as c


def health(obj: Mapping[str, Any]) -> c.HealthResult:
    if c.str_at(obj, "spec.type", "ClusterIP") != "LoadBalancer":
        return c.current("Service is ready")
    if not c.str_at(obj, "spec.clusterIP"):
        return c.in_progress("LoadBalancer Service has no clusterIP yet")
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    addresses = [str(i.get("ip") or i.get("hostname")) for i in ingress if isinstance(i, Mapping)]
    if addresses:
        return c.current(f"LoadBalancer Service is ready at {', '.join(addresses)}")
    return c.current("LoadBalancer Service is ready (no ingress address reported yet)")
