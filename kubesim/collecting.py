"""The controllers that finish what DELETE starts (``kubesim.deleting``).

The :class:`GarbageCollector` (a store listener, run on the loop right after the write that woke it,
wired by ``kubesim.wiring``) plays three real controllers:

* the garbage collector: dependents (``ownerReferences[].uid``) of a deleted owner are deleted in
  the background, or first (``foregroundDeletion``), or orphaned (``orphan``) before the owner goes;
* the namespace controller: a terminating namespace is emptied, then its ``kubernetes`` finalizer
  is removed and it is deleted;
* the apiextensions finalizer: a terminating CRD's custom resources are deleted, then the CRD.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
from typing import Any

from kubesim import crds, deleting, errors, registry
from kubesim.clusters import Cluster
from kubesim.deleting import CLEANUP, FOREGROUND, NS_KEY, ORPHAN
from kubesim.resources import ResourceType
from kubesim.store import Event, Key

__all__ = ["GarbageCollector"]

Obj = dict[str, Any]
GC_MANAGER = "kube-controller-manager"


class GarbageCollector:
    """Finishes deletions: dependents, namespace contents and CRD instances (see the module docstring)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._scheduled = False
        self._deleted_owners: set[str] = set()
        self._terminating: set[tuple[Key, str, str]] = set()

    def on_event(self, event: Event) -> None:
        meta = event.obj["metadata"]
        where = (event.key, meta.get("namespace") or "", meta["name"])
        if event.type == "DELETED":
            self._terminating.discard(where)
            if meta.get("uid") in self.cluster.store.dependents:
                self._deleted_owners.add(meta["uid"])
            # A dependent or a namespace member going away may unblock its owner or namespace.
            if not (self._terminating or self._deleted_owners):
                return
        elif meta.get("deletionTimestamp"):
            self._terminating.add(where)
        else:
            return
        if not self._scheduled:
            self._scheduled = True
            # A fresh context: the collector's writes must not inherit the request's fieldValidation.
            asyncio.get_running_loop().call_soon(self._run, context=contextvars.Context())

    def _run(self) -> None:
        self._scheduled = False
        owners, self._deleted_owners = self._deleted_owners, set()
        for uid in owners:
            self._collect_dependents_of_deleted(uid)
        for where in sorted(self._terminating):
            obj = self.cluster.store.get(*where)
            if obj is None:
                self._terminating.discard(where)
                continue
            self._finish(where[0], obj)

    def _rt(self, key: Key) -> ResourceType | None:
        return next(iter(self.cluster.types_of(*key)), None)

    def _dependents(self, uid: str) -> list[tuple[Key, Obj]]:
        out = []
        for key, ns, name in sorted(self.cluster.store.dependents.get(uid, ())):
            obj = self.cluster.store.get(key, ns, name)
            if obj is not None:
                out.append((key, obj))
        return out

    def _delete(self, key: Key, obj: Obj, policy: str = "Background") -> None:
        rt = self._rt(key)
        if rt is None or obj["metadata"].get("deletionTimestamp"):
            return
        meta = obj["metadata"]
        # Already gone, or protected: nothing for the collector to do.
        with contextlib.suppress(errors.ApiError):
            deleting.delete(self.cluster, rt, meta.get("namespace") or "", meta["name"],
                            {"propagationPolicy": policy})

    def _collect_dependents_of_deleted(self, uid: str) -> None:
        for key, dep in self._dependents(uid):
            refs = dep["metadata"].get("ownerReferences") or []
            alive = [r for r in refs if r.get("uid") != uid and self.cluster.store.by_uid_get(r.get("uid", ""))]
            if alive:
                self._drop_owner(key, dep, uid)
            else:
                self._delete(key, dep)

    def _drop_owner(self, key: Key, dep: Obj, uid: str) -> None:
        rt = self._rt(key)
        if rt is None:
            return
        new = copy.deepcopy(dep)
        refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
        if refs:
            new["metadata"]["ownerReferences"] = refs
        else:
            new["metadata"].pop("ownerReferences", None)
        registry.write(self.cluster, rt, dep, new, manager=GC_MANAGER)

    def _remove_finalizer(self, key: Key, obj: Obj, finalizer: str) -> None:
        rt = self._rt(key)
        if rt is None:
            return
        new = copy.deepcopy(obj)
        finalizers = [f for f in new["metadata"].get("finalizers") or [] if f != finalizer]
        if finalizers:
            new["metadata"]["finalizers"] = finalizers
        else:
            new["metadata"].pop("finalizers", None)
        registry.write(self.cluster, rt, obj, new, manager=GC_MANAGER)

    def _finish(self, key: Key, obj: Obj) -> None:
        meta = obj["metadata"]
        finalizers = meta.get("finalizers") or []
        uid = meta.get("uid", "")
        if ORPHAN in finalizers:
            for dep_key, dep in self._dependents(uid):
                self._drop_owner(dep_key, dep, uid)
            self._remove_finalizer(key, obj, ORPHAN)
            return
        if FOREGROUND in finalizers:
            deps = self._dependents(uid)
            for dep_key, dep in deps:
                self._delete(dep_key, dep, "Foreground")
            if not self._dependents(uid):
                self._remove_finalizer(key, obj, FOREGROUND)
            return
        if key == NS_KEY:
            self._finish_namespace(obj)
        elif key == crds.CRD_KEY and CLEANUP in finalizers:
            self._finish_crd(obj)

    def _finish_namespace(self, ns: Obj) -> None:
        name = ns["metadata"]["name"]
        remaining = False
        for key in self.cluster.store.resource_keys():
            if key == NS_KEY:
                continue
            for (obj_ns, _name), obj in self.cluster.store.items(key):
                if obj_ns == name:
                    remaining = True
                    self._delete(key, obj)
        others = [f for f in (ns.get("spec") or {}).get("finalizers") or [] if f != "kubernetes"]
        if remaining or others:
            return  # content left, or another system's namespace finalizer still pending
        rt = self._rt(NS_KEY)
        assert rt is not None
        new = copy.deepcopy(ns)
        new.setdefault("spec", {})["finalizers"] = []
        # The namespace controller's /finalize call: spec.finalizers emptied, then the namespace goes.
        if not new["metadata"].get("finalizers"):
            self.cluster.store.remove(NS_KEY, "", name)
        else:
            self.cluster.store.put(NS_KEY, new)

    def _finish_crd(self, crd: Obj) -> None:
        spec = crd.get("spec") or {}
        key = (spec.get("group", ""), (spec.get("names") or {}).get("plural", ""))
        remaining = False
        for _where, obj in self.cluster.store.items(key):
            remaining = True
            self._delete(key, obj)
        if not remaining:
            self._remove_finalizer(crds.CRD_KEY, crd, CLEANUP)
