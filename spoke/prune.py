"""Which objects a prune may delete: a pure decision over plain data (cli-utils prune policies).

An object is deleted only when all of these hold, checked in this order; the first that
fails is the :class:`PruneReason` of a refusal:

1. it is in the inventory (Convoy applied it before) and not in the desired set;
2. it still exists;
3. its live labels say ``app.kubernetes.io/managed-by=convoy`` (someone else's object is never ours);
4. its live labels say ``convoy.dev/cluster=<this cluster>`` (a copy from another cluster's spoke,
   e.g. a restored backup, is not ours either);
5. it does not carry ``convoy.dev/prune: disabled``;
6. a Namespace or CRD holds none of the objects that stay (desired ones, or ones a refusal above
   keeps): deleting it would take them along.

Decisions come back in deletion order: namespaced objects, then cluster-scoped ones, then
CustomResourceDefinitions and Namespaces last — deleting a namespace or a CRD first would delete
everything inside it, including objects a refusal above meant to keep.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from typing import Any

from protos.bundle import ANNOTATION_PRUNE, LABEL_CLUSTER, LABEL_MANAGED_BY, MANAGED_BY_VALUE
from protos.objects import ObjectRef

__all__ = ["PruneDecision", "PruneReason", "prune_set"]


class PruneReason(enum.StrEnum):
    """Why an object is, or is not, deleted."""

    REMOVED = "removed from the bundle"                      #: deleted
    ALREADY_GONE = "already gone"                            #: nothing to delete; drop it from the inventory
    NOT_MANAGED = "not managed by convoy"                    #: managed-by label missing or foreign
    OTHER_CLUSTER = "belongs to another cluster"             #: cluster label missing or another cluster's
    PRUNE_DISABLED = "prune disabled by annotation"          #: convoy.dev/prune: disabled
    IN_USE = "still holds objects that stay"                 #: a Namespace or CRD with kept objects inside


@dataclasses.dataclass(frozen=True, slots=True)
class PruneDecision:
    """One inventory object no longer desired, and what to do about it."""

    ref: ObjectRef
    delete: bool
    reason: PruneReason
    detail: str = ""  #: the label or annotation value behind a refusal, for the report

    def __str__(self) -> str:
        verdict = "delete" if self.delete else "keep"
        extra = f" ({self.detail})" if self.detail else ""
        return f"{self.ref}: {verdict}, {self.reason}{extra}"


def _last_rank(ref: ObjectRef) -> int:
    if (ref.group, ref.kind) in {("", "Namespace"), ("apiextensions.k8s.io", "CustomResourceDefinition")}:
        return 2
    return 1 if not ref.namespace else 0


def _decide(ref: ObjectRef, live: Mapping[str, Any] | None, cluster: str) -> PruneDecision:
    if live is None:
        return PruneDecision(ref, False, PruneReason.ALREADY_GONE)
    metadata = live.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    owner = labels.get(LABEL_MANAGED_BY)
    if owner != MANAGED_BY_VALUE:
        return PruneDecision(ref, False, PruneReason.NOT_MANAGED,
                             f"{LABEL_MANAGED_BY}={owner}" if owner is not None else f"no {LABEL_MANAGED_BY} label")
    stamped = labels.get(LABEL_CLUSTER)
    if stamped != cluster:
        return PruneDecision(ref, False, PruneReason.OTHER_CLUSTER,
                             f"{LABEL_CLUSTER}={stamped}" if stamped is not None else f"no {LABEL_CLUSTER} label")
    if str(annotations.get(ANNOTATION_PRUNE, "")).lower() == "disabled":
        return PruneDecision(ref, False, PruneReason.PRUNE_DISABLED, f"{ANNOTATION_PRUNE}=disabled")
    return PruneDecision(ref, True, PruneReason.REMOVED)


def prune_set(
    *,
    inventory: Iterable[ObjectRef],
    desired: Iterable[ObjectRef],
    live: Mapping[ObjectRef, Mapping[str, Any]],
    cluster: str,
) -> list[PruneDecision]:
    """A decision for every inventory object that is no longer desired, in deletion order.

    ``live`` maps refs to the live objects the caller read (absent: not found). Objects outside
    the inventory are never considered, whatever their labels say.
    """
    wanted = set(desired)
    seen: set[ObjectRef] = set()
    candidates: list[ObjectRef] = []
    for ref in inventory:
        if ref not in wanted and ref not in seen:
            seen.add(ref)
            candidates.append(ref)
    # Stable: objects of one rank keep the inventory's order.
    candidates.sort(key=_last_rank)
    decisions = [_decide(ref, live.get(ref), cluster) for ref in candidates]
    staying = wanted | {d.ref for d in decisions if not d.delete and d.reason != PruneReason.ALREADY_GONE}
    return [_protect_contents(d, live.get(d.ref), staying) for d in decisions]


def _protect_contents(decision: PruneDecision, live: Mapping[str, Any] | None,
                      staying: set[ObjectRef]) -> PruneDecision:
    """Refuse deleting a Namespace or CRD whose deletion would cascade to objects that stay."""
    if not decision.delete or live is None:
        return decision
    ref = decision.ref
    if (ref.group, ref.kind) == ("", "Namespace"):
        inside = sorted(r for r in staying if r.namespace == ref.name)
    elif (ref.group, ref.kind) == ("apiextensions.k8s.io", "CustomResourceDefinition"):
        spec = live.get("spec") or {}
        kind = (spec.get("names") or {}).get("kind")
        inside = sorted(r for r in staying if r.group == spec.get("group") and r.kind == kind)
    else:
        return decision
    if not inside:
        return decision
    more = f" and {len(inside) - 1} more" if len(inside) > 1 else ""
    return PruneDecision(ref, False, PruneReason.IN_USE, f"{inside[0]}{more}")
