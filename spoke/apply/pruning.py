"""Delete: prune what the inventory says Convoy applied and the bundle no longer wants.

Which objects may go is decided by the pure ``spoke.prune.prune_set`` (only objects in the
inventory, not desired, carrying Convoy's ownership labels for this cluster, without
``convoy.dev/prune: disabled``; namespaces last). This module only reads the live objects it needs
and performs the deletions in the order given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from protos.objects import ObjectRef
from protos.status import Action
from spoke import prune
from spoke.apply.changeset import ChangeSetEntry
from spoke.cluster import ClusterClient, errors
from spoke.inventory import InventoryEntry

__all__ = ["PruneResult", "prune_all"]


@dataclasses.dataclass(frozen=True)
class PruneResult:
    entries: list[ChangeSetEntry]
    #: inventory entries still owned after pruning (deletions that failed, to be retried)
    retained: list[InventoryEntry]


def prune_all(client: ClusterClient, *, inventory: Iterable[InventoryEntry], desired: Iterable[ObjectRef],
              cluster: str) -> PruneResult:
    """Delete inventory objects that left the bundle; refusals are reported as skipped with the reason."""
    wanted = set(desired)
    candidates = {entry.ref: entry for entry in inventory if entry.ref not in wanted}
    if not candidates:
        return PruneResult(entries=[], retained=[])
    live: dict[ObjectRef, dict[str, Any]] = {}
    entries: list[ChangeSetEntry] = []
    retained: list[InventoryEntry] = []
    for ref, entry in candidates.items():
        try:
            obj = client.get(entry.api_version, ref.kind, ref.namespace, ref.name)
        except errors.UnknownKindError:
            obj = None  # its CRD is gone, and with it every object of the kind
        except errors.ClusterError as exc:
            entries.append(ChangeSetEntry(ref, Action.FAILED, f"cannot read it to prune: {exc.detail}",
                                          entry.app))
            retained.append(entry)
            continue
        if obj is not None:
            live[ref] = obj
    decisions = prune.prune_set(inventory=list(candidates), desired=wanted, live=live, cluster=cluster)
    for decision in decisions:
        entry = candidates[decision.ref]
        if decision.ref not in live:
            continue  # already gone: nothing to do, and it leaves the inventory
        if not decision.delete:
            why = f"{decision.reason} ({decision.detail})" if decision.detail else str(decision.reason)
            entries.append(ChangeSetEntry(decision.ref, Action.SKIPPED, f"not pruned: {why}", entry.app))
            continue
        try:
            client.delete(entry.api_version, decision.ref.kind, decision.ref.namespace, decision.ref.name)
        except errors.ClusterError as exc:
            entries.append(ChangeSetEntry(decision.ref, Action.FAILED, f"prune failed: {exc.detail}", entry.app))
            retained.append(entry)
            continue
        entries.append(ChangeSetEntry(decision.ref, Action.PRUNED, "", entry.app))
    return PruneResult(entries=entries, retained=retained)
