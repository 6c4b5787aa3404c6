"""CustomResourceDefinitions: validation, establishment, serving and structural-schema basics.

The CRD controller (``CrdController``, a store listener) does what the apiextensions controllers do:
some time (``crd_establish_delay``) after a CRD is written it reports ``NamesAccepted`` and then
``Established`` (two MODIFIED events). Its custom resources are served from NamesAccepted on, and
appear in discovery only once Established. Deleting a CRD (``kubesim.deleting``) puts the
``customresourcecleanup`` finalizer and a ``Terminating`` condition on it; the garbage collector
then deletes every custom resource of the type, removes the finalizer, and the types leave the
resource table together with the CRD.

Custom resources are pruned (unknown fields dropped unless ``x-kubernetes-preserve-unknown-fields``),
defaulted (``default``) and type-checked (``type``, ``required``, ``enum``) against the version's
``openAPIV3Schema``, as a structural schema is.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kubesim.resources import ResourceType
from kubesim.store import Event

if TYPE_CHECKING:
    from kubesim.clusters import Cluster

__all__ = [
    "CLEANUP_FINALIZER",
    "CRD_KEY",
    "CrdController",
    "on_create",
    "on_update",
    "prune_and_default",
    "validate_crd",
    "validate_custom",
]

CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")
CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
Obj = dict[str, Any]
Cause = tuple[str, str, str]


def _condition(kind: str, status: str, reason: str, message: str, when: str) -> Obj:
    return {"type": kind, "status": status, "lastTransitionTime": when, "reason": reason, "message": message}


def condition_true(obj: Mapping[str, Any], kind: str) -> bool:
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if cond.get("type") == kind:
            return bool(cond.get("status") == "True")
    return False


def storage_version(obj: Mapping[str, Any]) -> str:
    for version in (obj.get("spec") or {}).get("versions") or ():
        if version.get("storage"):
            return str(version.get("name"))
    return ""


def on_create(obj: Obj) -> None:
    obj["status"] = {
        "conditions": [],
        "acceptedNames": {"plural": "", "kind": ""},
        "storedVersions": [storage_version(obj)] if storage_version(obj) else [],
    }


def on_update(old: Obj, new: Obj) -> None:
    """The storage version joins ``status.storedVersions`` as the apiextensions strategy does."""
    storage = storage_version(new)
    status = new.get("status")
    if storage and isinstance(status, dict):
        stored = status.setdefault("storedVersions", [])
        if storage not in stored:
            stored.append(storage)


def validate_crd(obj: Obj) -> list[Cause]:
    causes: list[Cause] = []
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group") or ""
    plural = names.get("plural") or ""
    if not group:
        causes.append(("FieldValueRequired", "spec.group", "Required value"))
    if not plural:
        causes.append(("FieldValueRequired", "spec.names.plural", "Required value"))
    if not names.get("kind"):
        causes.append(("FieldValueRequired", "spec.names.kind", "Required value"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(("FieldValueNotSupported", "spec.scope",
                       f'Unsupported value: "{spec.get("scope", "")}": supported values: "Cluster", "Namespaced"'))
    name = obj["metadata"].get("name", "")
    if group and plural and name != f"{plural}.{group}":
        causes.append(("FieldValueInvalid", "metadata.name",
                       f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group'))
    versions = spec.get("versions") or []
    if not versions:
        causes.append(("FieldValueInvalid", "spec.versions", "Invalid value: null: must have exactly one version"
                       " marked as storage version"))
    elif sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(("FieldValueInvalid", "spec.versions",
                       "Invalid value: " + repr(versions)[:60] + ": must have exactly one version marked as "
                       "storage version"))
    return causes


def types_of_crd(obj: Mapping[str, Any]) -> list[ResourceType]:
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    out = []
    for version in spec.get("versions") or ():
        if not version.get("served", True):
            continue
        sub = version.get("subresources") or spec.get("subresources") or {}
        schema = (version.get("schema") or spec.get("validation") or {}).get("openAPIV3Schema")
        scale = sub.get("scale") if isinstance(sub.get("scale"), dict) else None
        out.append(ResourceType(
            group=spec.get("group", ""), version=str(version.get("name")), plural=names.get("plural", ""),
            singular=names.get("singular") or str(names.get("kind", "")).lower(), kind=names.get("kind", ""),
            namespaced=spec.get("scope") == "Namespaced",
            short_names=tuple(names.get("shortNames") or ()), categories=tuple(names.get("categories") or ()),
            status="status" in sub, scale=scale is not None, generation=True, custom=True,
            crd_schema=schema,
            scale_paths=None if scale is None else (
                str(scale.get("specReplicasPath", ".spec.replicas")),
                str(scale.get("statusReplicasPath", ".status.replicas")),
                str(scale.get("labelSelectorPath") or "")),
        ))
    return out


class CrdController:
    """Establishes CRDs and keeps the cluster's custom resource table in step with them."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._pending: set[str] = set()
        self._registered: dict[str, list[ResourceType]] = {}

    def on_event(self, event: Event) -> None:
        if event.key != CRD_KEY:
            return
        name = event.obj["metadata"]["name"]
        if event.type == "DELETED":
            self._unregister(name)
            spec = event.obj.get("spec") or {}
            # Watches on the custom resources end with the type, as the real server closes them.
            self.cluster.store.close_subscriptions((spec.get("group", ""), (spec.get("names") or {}).get("plural", "")))
            return
        obj = event.obj
        accepted = condition_true(obj, "NamesAccepted")
        if accepted:
            self._register(name, obj)
        elif name not in self._pending and not obj["metadata"].get("deletionTimestamp"):
            self._pending.add(name)
            self.cluster.call_later(self.cluster.options.crd_establish_delay, self._establish, name)

    def _establish(self, name: str) -> None:
        from kubesim import registry

        self._pending.discard(name)
        store = self.cluster.store
        rt = self.cluster.resolve(*CRD_KEY[:1], "v1", CRD_KEY[1])
        obj = store.get(CRD_KEY, "", name)
        if rt is None or obj is None or obj["metadata"].get("deletionTimestamp"):
            return
        when = registry.now()
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
        types = types_of_crd(obj)
        # A terminating CRD stays in discovery (with fewer verbs) until it is gone.
        established = condition_true(obj, "Established")
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


# -- structural schema ------------------------------------------------------------------------------

_TYPES: Mapping[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def prune_and_default(rt: ResourceType, obj: Obj) -> None:
    schema = rt.crd_schema
    if not schema:
        return
    props = schema.get("properties") or {}
    for key in list(obj):
        if key in ("apiVersion", "kind", "metadata"):
            continue
        if key in props:
            obj[key] = _prune(props[key], obj[key])
        elif not schema.get("x-kubernetes-preserve-unknown-fields"):
            del obj[key]
    _apply_defaults(schema, obj, top=True)


def _prune(schema: Mapping[str, Any], value: Any) -> Any:
    if isinstance(value, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields") and not schema.get("properties"):
            return value
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if props is not None:
            for key in list(value):
                if key in props:
                    value[key] = _prune(props[key], value[key])
                elif not schema.get("x-kubernetes-preserve-unknown-fields"):
                    del value[key]
        elif isinstance(extra, Mapping):
            for key in value:
                value[key] = _prune(extra, value[key])
        elif not schema.get("x-kubernetes-preserve-unknown-fields") and schema.get("type") == "object" \
                and extra is not True:
            value.clear()
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [_prune(schema["items"], item) for item in value]
    return value


def _apply_defaults(schema: Mapping[str, Any], value: Any, *, top: bool = False) -> None:
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if top and key in ("apiVersion", "kind", "metadata"):
                continue
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                _apply_defaults(sub, value[key])
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for item in value.values():
                _apply_defaults(extra, item)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for item in value:
            _apply_defaults(schema["items"], item)


def validate_custom(rt: ResourceType, obj: Obj) -> list[Cause]:
    schema = rt.crd_schema
    if not schema:
        return []
    causes: list[Cause] = []
    for key, sub in (schema.get("properties") or {}).items():
        if key in ("apiVersion", "kind", "metadata"):
            continue
        if key in obj:
            _check(sub, obj[key], key, causes)
    for key in schema.get("required") or ():
        if key not in obj:
            causes.append(("FieldValueRequired", key, "Required value"))
    return causes


def _render(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if not isinstance(value, dict | list) else type(value).__name__


def _check(schema: Mapping[str, Any], value: Any, path: str, causes: list[Cause]) -> None:
    if value is None:
        if not schema.get("nullable"):
            causes.append(("FieldValueTypeInvalid", path,
                           f'Invalid value: "null": {path} in body must be of type {schema.get("type", "object")}: "null"'))
        return
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, int | str) or isinstance(value, bool):
            causes.append(("FieldValueTypeInvalid", path, f"Invalid value: {_render(value)}: {path} in body must be "
                           "of type int-or-string"))
        return
    kind = schema.get("type")
    allowed = _TYPES.get(kind or "")
    if allowed is not None:
        bad_bool = isinstance(value, bool) and kind in ("integer", "number")
        if not isinstance(value, allowed) or bad_bool:
            actual = {str: "string", bool: "boolean", int: "integer", float: "number", dict: "object",
                      list: "array"}.get(type(value), type(value).__name__)
            causes.append(("FieldValueTypeInvalid", path, f'Invalid value: "{actual}": {path} in body must be of '
                           f'type {kind}: "{actual}"'))
            return
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        supported = ", ".join(_render(e) for e in enum)
        causes.append(("FieldValueNotSupported", path, f"Unsupported value: {_render(value)}: supported values: "
                       f"{supported}"))
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key in value:
                _check(sub, value[key], f"{path}.{key}", causes)
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for key, item in value.items():
                _check(extra, item, f"{path}[{key}]", causes)
        for key in schema.get("required") or ():
            if key not in value:
                causes.append(("FieldValueRequired", f"{path}.{key}", "Required value"))
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            _check(schema["items"], item, f"{path}[{index}]", causes)
