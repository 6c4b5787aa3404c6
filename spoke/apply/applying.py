"""Apply: server-side apply of one object (``apply_one``) or many in parallel (``apply_all``).

Unchanged objects are not re-applied, so a quiet cluster sees no writes and no resourceVersion churn.
The choice (of two that would work): a **stored per-object hash** of the manifest last applied (kept in
the in-cluster inventory) **plus a live check** — the object is skipped only when its manifest hash
equals the stored one AND the live object exists AND ``spoke.drift.diff`` finds no managed field
that differs. The hash catches fields removed from the manifest (which a desired-vs-live diff
cannot see); the live diff catches edits made while the spoke was not watching. It costs one list
per kind instead of one dry-run request per object, which is what makes an unchanged re-apply of a
300-object bundle fast. When SSA does run and the API server finds nothing to change, the
resourceVersion stays put and the entry says ``unchanged`` too.

Per-object annotations: ``convoy.dev/ssa: Ignore`` (never touched), ``convoy.dev/ssa: IfNotPresent``
(created when missing, never updated), ``convoy.dev/force: "true"`` (an immutable-field change
deletes and recreates the object; without it the object fails with a message saying so).
Fields an app's ``ignoreDifferences`` names are left out of the comparison and, when the object
exists, out of what is applied (``protos.ignoring.for_apply``: Convoy gives up owning them).
One failing object never stops the others: every outcome is a ``ChangeSetEntry``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from protos import bundle as bundles
from protos import ignoring
from protos.objects import ObjectRef
from protos.status import Action
from spoke import drift
from spoke.apply.changeset import ChangeSetEntry
from spoke.cluster import ClusterClient, errors

__all__ = ["Applied", "ApplyOptions", "apply_all", "apply_one", "stamp"]

#: the field manager Convoy applies as
MANAGER = "convoy"
SSA_IGNORE = "Ignore"
SSA_IF_NOT_PRESENT = "IfNotPresent"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ApplyOptions:
    cluster: str                        #: stamped as convoy.dev/cluster on every object
    manager: str = MANAGER              #: SSA field manager
    force_conflicts: bool = True        #: take fields other managers own (GitOps is the source of truth)
    workers: int = 8                    #: parallel requests within one stage
    delete_timeout: float = 60.0        #: how long a force-recreate waits for the old object to go


@dataclasses.dataclass(frozen=True, slots=True)
class Applied:
    """The entry for one object and the live object after the apply (None when absent or failed)."""

    entry: ChangeSetEntry
    live: dict[str, Any] | None
    hash: str


def stamp(obj: Mapping[str, Any], *, cluster: str) -> dict[str, Any]:
    """A copy carrying Convoy's ownership labels for this cluster (what prune later checks)."""
    # A JSON round trip copies plain manifest data several times faster than copy.deepcopy.
    out: dict[str, Any] = json.loads(json.dumps(obj))
    labels = out.setdefault("metadata", {}).setdefault("labels", {})
    labels[bundles.LABEL_MANAGED_BY] = bundles.MANAGED_BY_VALUE
    labels[bundles.LABEL_CLUSTER] = cluster
    return out


def _annotation(obj: Mapping[str, Any], key: str) -> str:
    return str(((obj.get("metadata") or {}).get("annotations") or {}).get(key, ""))


def _app(obj: Mapping[str, Any]) -> str:
    return str(((obj.get("metadata") or {}).get("labels") or {}).get(bundles.LABEL_APP, ""))


def is_unchanged(desired: Mapping[str, Any], live: Mapping[str, Any] | None, *, manifest_hash: str,
                 previous_hash: str | None, manager: str, ignore: Sequence[ignoring.Rule] = ()) -> bool:
    """The decision documented above: same manifest as last time and no managed field differs live
    (fields ``ignore`` names do not count)."""
    if live is None or previous_hash != manifest_hash:
        return False
    return not drift.diff(ignoring.without(desired, ignore), live, manager=manager)


def apply_one(client: ClusterClient, obj: Mapping[str, Any], *, live: Mapping[str, Any] | None,
              manifest_hash: str, previous_hash: str | None, options: ApplyOptions,
              live_known: bool = True, ignore: Sequence[ignoring.Rule] = ()) -> Applied:
    """Apply one stamped manifest. ``live`` is the object as last seen (``live_known`` False: not looked up).

    ``ignore``: the app's ignoreDifferences rules; their fields are not compared, and not applied over a
    live object (see ``protos.ignoring.for_apply``).
    """
    ref = ObjectRef.of(obj)
    app = _app(obj)
    mode = _annotation(obj, bundles.ANNOTATION_SSA)
    try:
        if mode == SSA_IGNORE:
            return Applied(ChangeSetEntry(ref, Action.SKIPPED, f"{bundles.ANNOTATION_SSA}: Ignore", app),
                           None if live is None else dict(live), manifest_hash)
        if mode == SSA_IF_NOT_PRESENT:
            current = live if live_known else client.get(str(obj["apiVersion"]), ref.kind, ref.namespace,
                                                         ref.name)
            if current is not None:
                return Applied(ChangeSetEntry(ref, Action.SKIPPED,
                                              f"exists; {bundles.ANNOTATION_SSA}: IfNotPresent", app),
                               dict(current), manifest_hash)
        elif live_known and is_unchanged(obj, live, manifest_hash=manifest_hash, previous_hash=previous_hash,
                                         manager=options.manager, ignore=ignore):
            assert live is not None
            return Applied(ChangeSetEntry(ref, Action.UNCHANGED, "", app), dict(live), manifest_hash)
        if ignore:
            current = live if live_known else client.get(str(obj["apiVersion"]), ref.kind, ref.namespace, ref.name)
            obj = ignoring.for_apply(obj, current, ignore, manager=options.manager)
        return _ssa(client, obj, ref=ref, app=app, live=live, manifest_hash=manifest_hash, options=options)
    except errors.ClusterError as exc:
        return Applied(ChangeSetEntry(ref, Action.FAILED, exc.detail, app), None, manifest_hash)


def _ssa(client: ClusterClient, obj: Mapping[str, Any], *, ref: ObjectRef, app: str,
         live: Mapping[str, Any] | None, manifest_hash: str, options: ApplyOptions) -> Applied:
    before = str(((live or {}).get("metadata") or {}).get("resourceVersion", ""))
    try:
        created, result = client.apply_status(obj, manager=options.manager, force=options.force_conflicts)
    except errors.ImmutableFieldError as exc:
        if _annotation(obj, bundles.ANNOTATION_FORCE).lower() != "true":
            message = (f"immutable field changed; the API server refused: {exc.api_message}. "
                       f"Set the annotation {bundles.ANNOTATION_FORCE}: \"true\" to let Convoy delete and "
                       f"recreate it")
            return Applied(ChangeSetEntry(ref, Action.FAILED, message, app), None, manifest_hash)
        result = _recreate(client, obj, ref=ref, options=options)
        return Applied(ChangeSetEntry(ref, Action.CREATED, "recreated: an immutable field changed", app),
                       result, manifest_hash)
    after = str((result.get("metadata") or {}).get("resourceVersion", ""))
    if created:
        action = Action.CREATED
    elif before and before == after:
        action = Action.UNCHANGED
    else:
        action = Action.CONFIGURED
    return Applied(ChangeSetEntry(ref, action, "", app), result, manifest_hash)


def _recreate(client: ClusterClient, obj: Mapping[str, Any], *, ref: ObjectRef,
              options: ApplyOptions) -> dict[str, Any]:
    api_version = str(obj["apiVersion"])
    client.delete(api_version, ref.kind, ref.namespace, ref.name, propagation="Foreground")
    deadline = time.monotonic() + options.delete_timeout
    while client.get(api_version, ref.kind, ref.namespace, ref.name) is not None:
        if time.monotonic() > deadline:
            raise errors.ClusterError(ref, f"still present {options.delete_timeout:.0f}s after deleting it "
                                           f"to recreate it (finalizers?)")
        time.sleep(0.05)  # polling the API for the deletion to finish; there is no event to wait on here
    return client.apply(obj, manager=options.manager, force=options.force_conflicts)


def apply_all(client: ClusterClient, objects: Sequence[Mapping[str, Any]], *,
              live: Mapping[ObjectRef, Mapping[str, Any]], hashes: Mapping[ObjectRef, str],
              previous: Mapping[ObjectRef, str], options: ApplyOptions,
              live_known: bool = True, ignore: Mapping[ObjectRef, Sequence[ignoring.Rule]] | None = None,
              ) -> list[Applied]:
    """Apply independent objects concurrently; results in the order of ``objects``."""

    def one(obj: Mapping[str, Any]) -> Applied:
        ref = ObjectRef.of(obj)
        return apply_one(client, obj, live=live.get(ref), manifest_hash=hashes[ref],
                         previous_hash=previous.get(ref), options=options, live_known=live_known,
                         ignore=(ignore or {}).get(ref, ()))

    if len(objects) <= 1 or options.workers <= 1:
        return [one(obj) for obj in objects]
    with concurrent.futures.ThreadPoolExecutor(max_workers=options.workers,
                                               thread_name_prefix="convoy-apply") as pool:
        return list(pool.map(one, objects))
