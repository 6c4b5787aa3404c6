"""Where the cluster stands: each object's status and the cluster's phase, from what the agent knows.

Pure, like ``spoke.health``: the agent passes what it applied (the change set entries), what it
wants (each desired object's app), what it last saw live, and the few facts of its own state
(refused bundle, pause, errors, drift, health timeout); nothing here reads a clock or the cluster.

The phase is the worst that applies (``Phase.worst``): no bundle yet is Unknown (Failed if the
newest was refused, Paused if paused); errors, a refused bundle or a failed object make it Failed;
a Failed object health, or objects not Current past the health timeout, Degraded; objects not
Current yet, Progressing; drift left in place, Drifted; a pause, Paused; else Ready. Objects that
were skipped on purpose (annotations, not owned) or failed to apply do not count as "not Current";
objects that wait for their app's dependencies do.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from protos.objects import ObjectRef
from protos.status import Action, HealthStatus, Phase
from spoke import health, report
from spoke.apply.changeset import ChangeSetEntry

__all__ = ["object_statuses", "phase_of"]

#: How many unhealthy objects a Degraded message names.
_NAMED = 5


def object_statuses(*, desired: Mapping[ObjectRef, str], actions: Mapping[ObjectRef, ChangeSetEntry],
                    live: Mapping[ObjectRef, Mapping[str, Any]]) -> list[report.ObjectStatus]:
    """One status per desired object (``desired``: ref -> app), then one per acted-on object no longer
    desired (pruned, or kept and not pruned), each sorted by ref."""
    objects = []
    healths = health.assess(live, desired)
    for ref, app in sorted(desired.items()):
        entry = actions.get(ref)
        result = healths[ref]
        if entry is not None and entry.action in (Action.SKIPPED, Action.WAITING) and ref not in live:
            result = health.HealthResult(HealthStatus.UNKNOWN, entry.message)
        objects.append(report.ObjectStatus(
            ref=ref, app=app, action=entry.action if entry else None, health=result.status,
            reason=result.reason, error=entry.message if entry and entry.action == Action.FAILED else ""))
    for ref, entry in sorted(actions.items()):
        if ref not in desired:
            objects.append(report.ObjectStatus(ref=ref, app=entry.app, action=entry.action,
                                               health=HealthStatus.UNKNOWN, reason=entry.message,
                                               error=entry.message if entry.action == Action.FAILED else ""))
    return objects


def phase_of(objects: Sequence[report.ObjectStatus], *, desired: Collection[ObjectRef], has_bundle: bool,
             refused: str, paused: bool, errors: Sequence[str], drifted: bool,
             timed_out: bool) -> tuple[Phase, str]:
    """The cluster's phase and the message that explains it ("" when there is nothing to explain).

    ``timed_out``: the health timeout has passed since the bundle was first applied.
    """
    phases = []
    message = ""
    if not has_bundle:
        phases.append(Phase.FAILED if refused else Phase.PAUSED if paused else Phase.UNKNOWN)
        message = refused
    not_current = [o for o in objects if o.ref in desired and o.health != HealthStatus.CURRENT
                   and o.action not in (Action.FAILED, Action.SKIPPED)]
    failed_health = [o for o in not_current if o.health == HealthStatus.FAILED]
    if errors or refused or any(o.action == Action.FAILED for o in objects):
        phases.append(Phase.FAILED)
        message = message or (errors[0] if errors else refused)
    if failed_health or (not_current and timed_out):
        phases.append(Phase.DEGRADED)
        worst = failed_health or not_current
        message = message or "; ".join(f"{o.ref}: {o.health} {o.reason}".strip() for o in worst[:_NAMED])
    elif not_current:
        phases.append(Phase.PROGRESSING)
    if drifted:
        phases.append(Phase.DRIFTED)
    if paused:
        phases.append(Phase.PAUSED)
    phase = Phase.worst(phases) if phases else Phase.READY
    return phase, message
