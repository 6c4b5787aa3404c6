"""Job health (kstatus ``jobConditions``): finished or running counts as Current; Failed=True fails."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spoke.health import _common as c


def health(obj: Mapping[str, Any]) -> c.HealthResult:
    parallelism = c.int_at(obj, "spec.parallelism", 1)
    completions = c.int_at(obj, "spec.completions", parallelism)
    succeeded = c.int_at(obj, "status.succeeded", 0)
    failed_pods = c.int_at(obj, "status.failed", 0)
    complete = c.condition(obj, "Complete")
    if complete is not None and complete.get("status") == "True":
        return c.current(f"Job completed: succeeded {succeeded}/{completions}")
    failure = c.condition(obj, "Failed")
    if failure is not None and failure.get("status") == "True":
        return c.failed(f"Job failed ({c.describe(failure)}): failed {failed_pods}/{completions}")
    if not c.str_at(obj, "status.startTime"):
        return c.in_progress("Job not started")
    active = c.int_at(obj, "status.active", 0)
    # A running Job is Current in kstatus: waiting for it would block every apply on batch work.
    return c.current(f"Job in progress: succeeded {succeeded}, active {active}, failed {failed_pods}")
