"""The CRD controller: establishes CustomResourceDefinitions and serves their custom resources.

It does what the apiextensions controllers do: some time (``crd_establish_delay``) after a CRD is
written it reports ``NamesAccepted`` and then ``Established`` (two MODIFIED events). Its custom
resources are served from NamesAccepted on, and appear in discovery only once Established. When the
CRD is gone (``kubesim.collecting`` deletes its instances first) its types leave the resource table
and the watches on them end. A store listener, wired by ``kubesim.wiring``.
"""

from __future__ import annotations

import copy
from typing import Any

from kubesim import clock, crds, registry
from kubesim.clusters import Cluster
from kubesim.resources import ResourceType
from kubesim.store import Event

__all__ = ["CrdController"]

Obj = dict[str, Any]


def _condition(kind: str, status: str, reason: str, message: str, when: str) -> Obj:
    return {"type": kind, "status": status, "lastTransitionTime": when, "reason": reason, "message": message}


class CrdController:
    """Establishes CRDs and keeps the cluster's custom resource table in step with them."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._pending: set[str] = set()
        self._registered: dict[str, list[ResourceType]] = {}

    def on_event(self, event: Event) -> None:
        if event.key != crds.CRD_KEY:
            return
        name = event.obj["metadata"]["name"]
        if event.type == "DELETED":
            self._unregister(name)
            spec = event.obj.get("spec") or {}
            # Watches on the custom resources end with the type, as the real server closes them.
            self.cluster.store.close_subscriptions((spec.get("group", ""), (spec.get("names") or {}).get("plural", "")))
            return
        obj = event.obj
        accepted = crds.condition_true(obj, "NamesAccepted")
        if accepted:
            self._register(name, obj)
        elif name not in self._pending and not obj["metadata"].get("deletionTimestamp"):
            self._pending.add(name)
            self.cluster.timers.call_later(self.cluster.options.crd_establish_delay, self._establish, name)

    def _establish(self, name: str) -> None:
        self._pending.discard(name)
        store = self.cluster.store
        rt = self.cluster.resolve(*crds.CRD_KEY[:1], "v1", crds.CRD_KEY[1])
        obj = store.get(crds.CRD_KEY, "", name)
        if rt is None or obj is None or obj["metadata"].get("deletionTimestamp"):
            return
        when = clock.now()
        status = copy.deepcopy(obj.get("status") or {})
        names = dict((obj.get("spec") or {}).get("names") or {})
        names.setdefault("singular", str(names.get("kind", "")).lower())
        names.setdefault("listKind", f"{names.get('kind', '')}List")
        status["acceptedNames"] = names
        conditions = [c for c in status.get("conditions") or () if c.get("type") not in ("NamesAccepted",)]
        conditions.append(_condition("NamesAccepted", "True", "NoConflicts", "no conflicts found", when))
        status["conditions"] = conditions
        obj = registry.write_status(self.cluster, rt, obj, status, manager="kube-apiserver")
        status = copy.deepcopy(obj["status"])
        status["conditions"] = [c for c in status["conditions"] if c.get("type") != "Established"] + [
            _condition("Established", "True", "InitialNamesAccepted", "the initial names have been accepted", when)]
        registry.write_status(self.cluster, rt, obj, status, manager="kube-apiserver")

    def _register(self, name: str, obj: Obj) -> None:
        types = crds.types_of_crd(obj)
        # A terminating CRD stays in discovery (with fewer verbs) until it is gone.
        established = crds.condition_true(obj, "Established")
        wanted = {(t.group, t.version, t.plural) for t in types} if established else set()
        registered = self._registered.get(name)
        if registered == types and all(w in self.cluster.established for w in wanted) and (
                established or not any((t.group, t.version, t.plural) in self.cluster.established for t in types)):
            return
        self._unregister(name)
        for rt in types:
            self.cluster.custom.setdefault((rt.group, rt.version), {})[rt.plural] = rt
        self.cluster.established.update(wanted)
        self._registered[name] = types

    def _unregister(self, name: str) -> None:
        for rt in self._registered.pop(name, []):
            table = self.cluster.custom.get((rt.group, rt.version))
            if table is not None:
                table.pop(rt.plural, None)
                if not table:
                    del self.cluster.custom[(rt.group, rt.version)]
            self.cluster.established.discard((rt.group, rt.version, rt.plural))
