"""CustomResourceDefinitions as objects: their strategy, validation and the types they define.

What the apiextensions registry does on a CRD write: a fresh ``status`` on create, the storage
version joining ``status.storedVersions`` on update, the checks on names, scope and versions, and
the resource types a CRD's served versions make (:func:`types_of_crd`). Pure. The controller that
establishes CRDs is ``kubesim.establishing``; the structural schema of their custom resources is
``kubesim.structural``; deleting a CRD (``kubesim.deleting``) puts the ``customresourcecleanup``
finalizer and a ``Terminating`` condition on it, and ``kubesim.collecting`` finishes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubesim.resources import ResourceType

__all__ = [
    "CLEANUP_FINALIZER",
    "CRD_KEY",
    "condition_true",
    "on_create",
    "on_update",
    "storage_version",
    "types_of_crd",
    "validate_crd",
]

CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")
CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
Obj = dict[str, Any]
Cause = tuple[str, str, str]


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
