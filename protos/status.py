"""Closed vocabularies shared by the hub, the spoke and the CLI."""

from __future__ import annotations

import enum
from collections.abc import Iterable

__all__ = ["Action", "DriftAction", "DriftPolicy", "HealthStatus", "Phase"]


class Phase(enum.StrEnum):
    """Where a cluster stands against its desired bundle.

    Declared from best to worst so ``Phase.worst()`` can pick the one to show.
    """

    READY = "Ready"              #: every object applied and Current
    PAUSED = "Paused"            #: the hub paused the cluster; nothing new is applied
    APPLYING = "Applying"        #: an apply is under way
    PROGRESSING = "Progressing"  #: applied; some objects are not Current yet
    DRIFTED = "Drifted"          #: live state differs from the bundle (policy `report`)
    DEGRADED = "Degraded"        #: objects not Current within the health timeout
    FAILED = "Failed"            #: the bundle could not be applied (fully)
    UNKNOWN = "Unknown"          #: never reported

    @classmethod
    def worst(cls, phases: Iterable[Phase]) -> Phase:
        order = list(cls)
        return max(phases, key=order.index, default=cls.READY)


class HealthStatus(enum.StrEnum):
    """kstatus results, best first."""

    CURRENT = "Current"          #: the object is fully reconciled
    IN_PROGRESS = "InProgress"   #: still being reconciled
    UNKNOWN = "Unknown"          #: cannot be judged (not found, no status yet)
    FAILED = "Failed"            #: the controller gave up

    @classmethod
    def worst(cls, statuses: Iterable[HealthStatus]) -> HealthStatus:
        order = list(cls)
        return max(statuses, key=order.index, default=cls.CURRENT)


class Action(enum.StrEnum):
    """What the spoke did to one object."""

    CREATED = "created"
    CONFIGURED = "configured"
    UNCHANGED = "unchanged"
    PRUNED = "pruned"
    SKIPPED = "skipped"
    WAITING = "waiting"          #: not applied yet: its app waits for the apps it depends on to be healthy
    FAILED = "failed"


class DriftPolicy(enum.StrEnum):
    """What the spoke does about a change made behind Convoy's back."""

    CORRECT = "correct"  #: re-apply and report what was corrected (default)
    REPORT = "report"    #: leave it and report it


class DriftAction(enum.StrEnum):
    """What happened to one drifted object: each is one event in the hub's history.

    A detection under ``correct`` is ``detected`` followed by ``corrected``/``recreated`` (or
    ``failed``); under ``report`` (or while paused) it is ``reported``, and the item stays in the
    cluster's current drift until ``reverted`` by hand or ``superseded`` by a newly applied bundle.
    """

    DETECTED = "detected"        #: a change behind Convoy's back; the spoke corrects it now
    REPORTED = "reported"        #: a change left in place (policy `report`, or paused); it stays drift
    CORRECTED = "corrected"      #: the changed fields were applied back
    RECREATED = "recreated"      #: a deleted object was created again
    FAILED = "failed"            #: the correction failed; the item stays drift
    REVERTED = "reverted"        #: a reported item matches the bundle again without Convoy acting
    SUPERSEDED = "superseded"    #: a reported item was overwritten by applying a new bundle
    #: the spoke had to drop this many older events while the hub was away (count and span in the message)
    NOT_RECORDED = "not_recorded"
