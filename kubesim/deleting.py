"""The DELETE verb: preconditions, propagation policies and finalizers.

``delete`` follows ``store.go`` ``Delete``: an object without finalizers goes at once; one with
finalizers (including the ``foregroundDeletion``/``orphan`` finalizers a propagation policy adds)
gets ``deletionTimestamp`` and stays until they are removed. A namespace, and a CRD (which gets the
``customresourcecleanup`` finalizer), only start terminating here: the controllers that finish what
DELETE starts are in ``kubesim.collecting``.
"""

from __future__ import annotations

import copy
from typing import Any

from kubesim import clock, crds, errors, registry
from kubesim.clusters import Cluster
from kubesim.resources import ResourceType
from kubesim.store import Key

__all__ = ["CLEANUP", "FOREGROUND", "NS_KEY", "ORPHAN", "delete", "delete_collection"]

Obj = dict[str, Any]
NS_KEY: Key = ("", "namespaces")
FOREGROUND, ORPHAN = "foregroundDeletion", "orphan"
CLEANUP = crds.CLEANUP_FINALIZER
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")


def delete(
    cluster: Cluster,
    rt: ResourceType,
    namespace: str,
    name: str,
    options: dict[str, Any],
    *,
    dry_run: bool = False,
) -> tuple[int, Obj]:
    """DELETE one object; returns the status code and the body (a Status or the object)."""
    old = registry.get(cluster, rt, namespace, name)
    meta = old["metadata"]
    if rt.key == NS_KEY and name in PROTECTED_NAMESPACES:
        raise errors.forbidden("", "namespaces", name, "this namespace may not be deleted")
    pre = options.get("preconditions") or {}
    if pre.get("uid") and pre["uid"] != meta.get("uid"):
        raise errors.conflict(rt.group, rt.plural, name,
                              f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
                              f"{meta.get('uid')}")
    if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
        raise errors.conflict(rt.group, rt.plural, name,
                              f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                              f"ResourceVersion in object meta: {meta.get('resourceVersion')}")
    policy = options.get("propagationPolicy")
    orphan_dependents = options.get("orphanDependents")
    if policy is None and orphan_dependents is not None:
        policy = "Orphan" if orphan_dependents else "Background"
    if policy not in (None, "Background", "Foreground", "Orphan"):
        raise errors.ApiError(422, "Invalid",
                              f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: '
                              f'"{policy}": supported values: "Foreground", "Background", "Orphan", "nil"',
                              {"group": "meta.k8s.io", "kind": "DeleteOptions"})
    new = copy.deepcopy(old)
    new_meta = new["metadata"]
    finalizers: list[str] = list(new_meta.get("finalizers") or [])
    if policy == "Foreground" and FOREGROUND not in finalizers:
        finalizers.append(FOREGROUND)
        finalizers = [f for f in finalizers if f != ORPHAN]
    elif policy == "Orphan" and ORPHAN not in finalizers:
        finalizers.append(ORPHAN)
        finalizers = [f for f in finalizers if f != FOREGROUND]
    if rt.key == crds.CRD_KEY and CLEANUP not in finalizers:
        finalizers.append(CLEANUP)
    terminating = bool(meta.get("deletionTimestamp"))
    if rt.key == NS_KEY:
        if terminating:
            raise errors.conflict("", "namespaces", name,
                                  "The system is ensuring all content is removed from this namespace.  Upon "
                                  "completion, this namespace will automatically be purged by the system.")
        new_meta["deletionTimestamp"] = clock.now()
        new_meta["deletionGracePeriodSeconds"] = 0
        new.setdefault("status", {})["phase"] = "Terminating"
        if finalizers:
            new_meta["finalizers"] = finalizers
        return 200, _store(cluster, rt, old, new, dry_run)
    if finalizers:
        if terminating and finalizers == list(meta.get("finalizers") or []):
            return 200, old
        new_meta["finalizers"] = finalizers
        if not terminating:
            new_meta["deletionTimestamp"] = clock.now()
            new_meta["deletionGracePeriodSeconds"] = 0
            if int(new_meta.get("generation") or 0) > 0:
                new_meta["generation"] = int(new_meta["generation"]) + 1
        if rt.key == crds.CRD_KEY:
            status = new.setdefault("status", {})
            conditions = [c for c in status.get("conditions") or () if c.get("type") != "Terminating"]
            conditions.append({"type": "Terminating", "status": "True", "lastTransitionTime": clock.now(),
                               "reason": "InstanceDeletionInProgress",
                               "message": "CustomResource deletion is in progress"})
            status["conditions"] = conditions
        stored = _store(cluster, rt, old, new, dry_run)
        code = 202 if orphan_dependents is False else 200
        return code, stored
    if dry_run:
        removed = old
    else:
        gone = cluster.store.remove(rt.key, meta.get("namespace") or "", name)
        assert gone is not None
        removed = gone
    if rt.delete_returns_object:
        return 200, removed
    return 200, {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {"name": name, "group": rt.group, "kind": rt.plural, "uid": meta.get("uid")},
    }



def _store(cluster: Cluster, rt: ResourceType, old: Obj, new: Obj, dry_run: bool) -> Obj:
    if dry_run:
        return new
    return cluster.store.put(rt.key, new)


def delete_collection(
    cluster: Cluster,
    rt: ResourceType,
    namespace: str | None,
    objs: list[Obj],
    options: dict[str, Any],
    *,
    dry_run: bool = False,
) -> Obj:
    deleted: list[Obj] = []
    for obj in objs:
        meta = obj["metadata"]
        try:
            _code, _body = delete(cluster, rt, meta.get("namespace") or "", meta["name"], options, dry_run=dry_run)
        except errors.ApiError as exc:
            if exc.code == 404:
                continue
            raise
        deleted.append(obj)
    return {"kind": rt.list_kind, "apiVersion": rt.api_version,
            "metadata": {"resourceVersion": str(cluster.store.revision)}, "items": deleted}
