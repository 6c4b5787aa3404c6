"""The generic registry: create, get, list, update and patch with the API server's strategy rules.

Each verb follows ``k8s.io/apiserver/pkg/registry/generic/registry/store.go`` and the per-kind
strategies: server-owned metadata (uid, creationTimestamp, generation, resourceVersion), status
reset and the status subresource, defaults (``kubesim.defaults``), managed fields
(``kubesim.apply``), optimistic concurrency and skipped no-op writes. Deletion is in
``kubesim.deleting``; the HTTP edge (``kubesim.server``) only parses requests and encodes answers.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import random
import re
from typing import Any

import jsonpatch
import yaml

from kubesim import apply as ssa
from kubesim import (
    clock,
    crds,
    decoding,
    defaults,
    errors,
    immutability,
    strategic_merge,
    structural,
    unknownfields,
    validation,
)
from kubesim.clusters import Cluster
from kubesim.resources import ResourceType
from kubesim.selectors import FieldSelector, LabelSelector
from protos import k8s_schema

__all__ = [
    "create",
    "get",
    "list_objects",
    "patch",
    "present",
    "schema_of",
    "update",
    "write_status",
]

Obj = dict[str, Any]

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN_HELP = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_HELP = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_SERVER_OWNED = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation")
PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)


def schema_of(rt: ResourceType) -> k8s_schema.ObjectSchema:
    if rt.custom:
        return k8s_schema.schema_for(rt.group, rt.kind, crd_schema=rt.crd_schema)
    return k8s_schema.schema_for(rt.group, rt.kind)


def present(rt: ResourceType, obj: Obj) -> Obj:
    """The object as served by ``rt``'s version (custom resources convert with strategy None)."""
    if obj.get("apiVersion") == rt.api_version:
        return obj
    return dict(obj, apiVersion=rt.api_version)


# -- reads ------------------------------------------------------------------------------------------


def get(cluster: Cluster, rt: ResourceType, namespace: str, name: str) -> Obj:
    obj = cluster.store.get(rt.key, namespace if rt.namespaced else "", name)
    if obj is None:
        raise errors.not_found(rt.group, rt.plural, name)
    return obj


def list_objects(
    cluster: Cluster,
    rt: ResourceType,
    namespace: str | None,
    *,
    labels: LabelSelector,
    fields: FieldSelector,
    limit: int = 0,
    continue_token: str = "",
) -> tuple[list[Obj], str, str]:
    """Matching objects in (namespace, name) order, the list resourceVersion and the next token."""
    store = cluster.store
    store.seed(rt.key)  # the list's resourceVersion must cover objects written on this first touch
    list_rv = store.revision
    start: tuple[str, str] | None = None
    if continue_token:
        list_rv, start = _decode_continue(continue_token)
        if list_rv < store.oldest_revision:
            raise errors.expired(
                "The provided continue parameter is too old to display a consistent list result. You can "
                "start a new list without the continue parameter, or use the continue token in this "
                "response to retrieve the remainder of the results. Continuing with the provided token "
                "results in an inconsistent list - objects that were created, modified, or deleted between "
                "the time the first chunk was returned and now may show up in the list."
            )
    items: list[Obj] = []
    next_token = ""
    names = fields.names()
    for obj in store.list(rt.key, namespace if rt.namespaced else None):
        meta = obj["metadata"]
        position = (meta.get("namespace") or "", meta["name"])
        if start is not None and position <= start:
            continue
        if names is not None and meta["name"] not in names:
            continue
        if not labels.matches(obj) or not fields.matches(obj):
            continue
        if limit and len(items) >= limit:
            last = items[-1]["metadata"]
            next_token = _encode_continue(list_rv, (last.get("namespace") or "", last["name"]))
            break
        items.append(obj)
    return items, str(list_rv), next_token


def _encode_continue(rv: int, start: tuple[str, str]) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": list(start)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return int(raw["rv"]), (str(raw["start"][0]), str(raw["start"][1]))
    except (ValueError, KeyError, IndexError, TypeError, binascii.Error) as exc:
        raise errors.bad_request(f"continue key is not valid: {exc}") from exc


# -- create -----------------------------------------------------------------------------------------


def create(
    cluster: Cluster,
    rt: ResourceType,
    namespace: str,
    body: Any,
    *,
    manager: str,
    dry_run: bool = False,
    managed: list[Obj] | None = None,
) -> Obj:
    """POST: a new object with uid, creationTimestamp, generation and defaults; 409 when the name is taken."""
    obj = _check_body(rt, body)
    meta = obj["metadata"]
    if meta.get("resourceVersion"):
        raise errors.ApiError(500, "InternalError", "resourceVersion should not be set on objects to be created")
    _settle_namespace(rt, meta, namespace)
    if not meta.get("name"):
        base = meta.get("generateName")
        if not base:
            raise errors.invalid(rt.group, rt.kind, "", [
                ("FieldValueRequired", "metadata.name", "Required value: name or generateName is required")])
        meta["name"] = str(base)[:58] + "".join(random.choices(_NAME_CHARS, k=5))
    _validate_name(rt, meta["name"])
    ns = meta.get("namespace") or ""
    if rt.namespaced:
        _check_namespace_open(cluster, rt, ns, meta["name"])
    for key in ("deletionTimestamp", "deletionGracePeriodSeconds"):
        meta.pop(key, None)
    meta["uid"] = cluster.new_uid()
    meta["creationTimestamp"] = clock.now()
    if rt.generation or rt.custom:
        meta["generation"] = 1
    else:
        meta.pop("generation", None)
    if rt.custom:
        if rt.status:
            obj.pop("status", None)
    elif rt.initial_status is not None:
        obj["status"] = copy.deepcopy(dict(rt.initial_status))
    _kind_rules_on_create(cluster, rt, obj)
    _default(cluster, rt, obj, None)
    _validate(rt, obj)
    # An apply that creates brings its own entries; any other create is recorded as an Update.
    meta["managedFields"] = managed if managed is not None else _record(
        rt, None, obj, manager=manager, subresource=None)
    if not meta["managedFields"]:
        meta.pop("managedFields")
    return _store_new(cluster, rt, obj, dry_run=dry_run)


def _store_new(cluster: Cluster, rt: ResourceType, obj: Obj, *, dry_run: bool) -> Obj:
    meta = obj["metadata"]
    existing = cluster.store.get(rt.key, meta.get("namespace") or "", meta["name"])
    if existing is not None:
        raise errors.already_exists(rt.group, rt.plural, meta["name"],
                                    terminating=bool(existing["metadata"].get("deletionTimestamp")))
    if dry_run:
        return obj
    return cluster.store.put(rt.key, obj)


def _kind_rules_on_create(cluster: Cluster, rt: ResourceType, obj: Obj) -> None:
    if rt.key == ("", "namespaces"):
        obj.setdefault("spec", {})["finalizers"] = ["kubernetes"]
    elif rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        crds.on_create(obj)


def _check_body(rt: ResourceType, body: Any) -> Obj:
    if not isinstance(body, dict):
        raise errors.bad_request(f"the body of the request was not a JSON object: {type(body).__name__}")
    # Bodies are freshly decoded per request (or built by the caller), so a shallow copy suffices:
    # only the top level and metadata are rewritten here, nested values are replaced, not shared.
    obj: Obj = dict(body)
    if isinstance(obj.get("metadata"), dict):
        obj["metadata"] = dict(obj["metadata"])
    api_version = obj.get("apiVersion")
    kind = obj.get("kind")
    if api_version and api_version != rt.api_version:
        raise errors.bad_request(
            f"the API version in the data ({api_version}) does not match the expected API version ({rt.api_version})")
    if kind and kind != rt.kind:
        raise errors.bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
    obj["apiVersion"] = rt.api_version
    obj["kind"] = rt.kind
    meta = obj.get("metadata")
    if meta is None:
        meta = obj["metadata"] = {}
    if not isinstance(meta, dict):
        raise errors.bad_request("metadata must be a JSON object")
    obj.pop("selfLink", None)
    meta.pop("selfLink", None)
    if not rt.custom:
        decoding.check(rt.group, rt.version, rt.kind, obj)
    # Canonical key order: apiVersion, kind, metadata first, as the API server encodes objects.
    return {"apiVersion": obj.pop("apiVersion"), "kind": obj.pop("kind"), "metadata": obj.pop("metadata"), **obj}


def _settle_namespace(rt: ResourceType, meta: dict[str, Any], namespace: str) -> None:
    if not rt.namespaced:
        meta.pop("namespace", None)
        return
    body_ns = meta.get("namespace")
    if body_ns and namespace and body_ns != namespace:
        raise errors.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request")
    if not body_ns:
        if not namespace:
            raise errors.bad_request("the namespace of the provided object must be set")
        meta["namespace"] = namespace


def _check_namespace_open(cluster: Cluster, rt: ResourceType, ns: str, name: str) -> None:
    ns_obj = cluster.store.get(("", "namespaces"), "", ns)
    if ns_obj is None:
        raise errors.not_found("", "namespaces", ns)
    if ns_obj["metadata"].get("deletionTimestamp"):
        raise errors.forbidden(
            rt.group, rt.plural, name,
            f"unable to create new content in namespace {ns} because it is being terminated",
            cause="NamespaceTerminating")


def _validate_name(rt: ResourceType, name: str) -> None:
    if rt.group == "rbac.authorization.k8s.io":
        bad = "/" in name or "%" in name or name in (".", "..")
        help_text = "may not contain '/' or '%'"
    elif rt.key == ("", "namespaces"):
        bad = len(name) > 63 or not _LABEL.fullmatch(name)
        help_text = _LABEL_HELP
    elif rt.key == ("apiregistration.k8s.io", "apiservices") and name.endswith(".") and "." not in name[:-1]:
        # "<version>." names the legacy core group's APIService (e.g. "v1."): not a subdomain, yet valid.
        bad = not _LABEL.fullmatch(name[:-1])
        help_text = _LABEL_HELP
    else:
        bad = len(name) > 253 or not _SUBDOMAIN.fullmatch(name)
        help_text = _SUBDOMAIN_HELP
    if bad:
        raise errors.invalid(rt.group, rt.kind, name, [
            ("FieldValueInvalid", "metadata.name", f'Invalid value: "{name}": {help_text}')])


def _default(cluster: Cluster, rt: ResourceType, obj: Obj, old: Obj | None) -> None:
    if rt.custom:
        structural.prune_and_default(rt, obj)
        return
    if rt.key == ("", "secrets"):
        _fold_string_data(obj)
    unknownfields.check(obj, schema_of(rt))
    if old is not None and rt.key == ("", "services"):
        defaults.preserve_service_allocations(old, obj)
    defaults.apply_defaults(
        rt.group, rt.version, rt.kind, obj,
        allocate_cluster_ip=cluster.allocate_cluster_ip if old is None else None,
        allocate_node_port=cluster.allocate_node_port,
    )


def _fold_string_data(secret: Obj) -> None:
    # The API server merges stringData into data (base64) and never stores stringData.
    string_data = secret.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = secret.get("data") if isinstance(secret.get("data"), dict) else {}
        assert isinstance(data, dict)
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        secret["data"] = data


def _validate(rt: ResourceType, obj: Obj) -> None:
    causes: list[tuple[str, str, str]] = []
    if rt.custom:
        causes = structural.validate_custom(rt, obj)
    elif rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        causes = crds.validate_crd(obj)
    else:
        causes = validation.violations(rt.group, rt.kind, obj)
    meta = obj["metadata"]
    if rt.custom:
        for field_name in ("labels", "annotations"):
            values = meta.get(field_name)
            if values is not None and (not isinstance(values, dict)
                                       or not all(isinstance(v, str) for v in values.values())):
                causes.append(("FieldValueInvalid", f"metadata.{field_name}",
                               "Invalid value: must be a map of string values"))
    if causes:
        raise errors.invalid(rt.group, rt.kind, meta.get("name", ""), causes)


def _record(rt: ResourceType, old: Obj | None, new: Obj, *, manager: str, subresource: str | None) -> list[Obj]:
    return ssa.record_update(old, new, manager=manager, api_version=rt.api_version, subresource=subresource,
                             schema=schema_of(rt), now=clock.now(), reset_fields=_reset_fields(rt))


def _reset_fields(rt: ResourceType) -> tuple[str, ...]:
    # Kinds with a status subresource ignore status on the main resource (GetResetFields).
    return ("status",) if rt.status else ()


# -- update -----------------------------------------------------------------------------------------


def update(
    cluster: Cluster,
    rt: ResourceType,
    namespace: str,
    name: str,
    body: Any,
    *,
    manager: str,
    dry_run: bool = False,
    subresource: str | None = None,
) -> Obj:
    """PUT: replace an existing object (never creates); 409 on a stale resourceVersion."""
    old = get(cluster, rt, namespace, name)
    new = _check_body(rt, body)
    meta = new["metadata"]
    if meta.get("name") and meta["name"] != name:
        raise errors.bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
    meta["name"] = name
    _settle_namespace(rt, meta, namespace)
    rv = meta.get("resourceVersion")
    if not rv:
        if rt.custom or rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            raise errors.invalid(rt.group, rt.kind, name, [
                ("FieldValueInvalid", "metadata.resourceVersion",
                 "Invalid value: 0x0: must be specified for an update")])
    elif rv != old["metadata"]["resourceVersion"]:
        raise _stale(rt, name)
    return _finish_update(cluster, rt, old, new, manager=manager, subresource=subresource, dry_run=dry_run)


def _stale(rt: ResourceType, name: str) -> errors.ApiError:
    return errors.conflict(rt.group, rt.plural, name,
                           "the object has been modified; please apply your changes to the latest version and "
                           "try again")


def write_status(cluster: Cluster, rt: ResourceType, obj: Obj, status: Obj, *, manager: str) -> Obj:
    """A controller's status write (``PUT …/status``), as the real controllers do it."""
    new = copy.deepcopy(obj)
    new["status"] = status
    return _finish_update(cluster, rt, obj, new, manager=manager, subresource="status", dry_run=False)


def write(cluster: Cluster, rt: ResourceType, old: Obj, new: Obj, *, manager: str) -> Obj:
    """A controller's write to the main resource (finalizers, ownerReferences)."""
    return _finish_update(cluster, rt, old, new, manager=manager, subresource=None, dry_run=False)


def _finish_update(
    cluster: Cluster,
    rt: ResourceType,
    old: Obj,
    new: Obj,
    *,
    manager: str,
    subresource: str | None,
    dry_run: bool,
    managed: list[Obj] | None = None,
) -> Obj:
    old_meta = old["metadata"]
    if subresource == "status":
        # Only .status (and the managed fields of this write) come from a status write.
        result = copy.deepcopy(old)
        if "status" in new:
            result["status"] = new["status"]
        else:
            result.pop("status", None)
        new = result
    elif subresource is None and rt.status:
        if "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        else:
            new.pop("status", None)
    meta = new["metadata"]
    for key in _SERVER_OWNED:
        if key in old_meta:
            meta[key] = old_meta[key]
        else:
            meta.pop(key, None)
    meta["namespace"] = old_meta.get("namespace")
    if not rt.namespaced:
        meta.pop("namespace", None)
    if rt.key == ("", "namespaces") and subresource is None:
        new["spec"] = copy.deepcopy(old.get("spec") or {})
    if subresource is None:
        _default(cluster, rt, new, old)
        _validate(rt, new)
        if not rt.custom:
            causes = immutability.violations(rt.group, rt.kind, old, new)
            if causes:
                raise errors.invalid(rt.group, rt.kind, meta["name"], causes)
        if rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            crds.on_update(old, new)
    if (rt.generation or rt.custom) and "generation" in old_meta and _spec_changed(rt, old, new):
        meta["generation"] = int(old_meta["generation"]) + 1
    if managed is not None:
        meta["managedFields"] = managed
    else:
        # A write without managedFields keeps the live ones (fieldmanager decodeLiveOrNew).
        if subresource == "status" or not meta.get("managedFields"):
            meta["managedFields"] = copy.deepcopy(old_meta.get("managedFields") or [])
        meta["managedFields"] = _record(rt, old, new, manager=manager, subresource=subresource)
    if not meta.get("managedFields"):
        meta.pop("managedFields", None)
    if meta.get("deletionTimestamp") and not meta.get("finalizers") and _spec_finalizers_done(rt, new):
        if dry_run:
            return new
        removed = cluster.store.remove(rt.key, meta.get("namespace") or "", meta["name"])
        assert removed is not None
        return removed
    if _same(old, new):
        return old
    if dry_run:
        meta["resourceVersion"] = old_meta["resourceVersion"]
        return new
    return cluster.store.put(rt.key, new)


def _spec_finalizers_done(rt: ResourceType, obj: Obj) -> bool:
    if rt.key != ("", "namespaces"):
        return True
    return not bool((obj.get("spec") or {}).get("finalizers"))


def _spec_changed(rt: ResourceType, old: Obj, new: Obj) -> bool:
    if rt.custom:
        skip = {"metadata", "status"} if rt.status else {"metadata"}
        keys = (set(old) | set(new)) - skip
        return any(old.get(k) != new.get(k) for k in keys)
    if old.get("spec") != new.get("spec"):
        return True
    if rt.generation_on_annotations:
        return bool(old["metadata"].get("annotations") != new["metadata"].get("annotations"))
    return False


def _same(old: Obj, new: Obj) -> bool:
    """Byte-equal apart from resourceVersion and managedFields timestamps (the no-op rule)."""
    if old.keys() != new.keys():
        return False
    for key, value in old.items():
        if key != "metadata" and new[key] != value:
            return False
    om, nm = old["metadata"], new["metadata"]
    if {k for k in om if k != "resourceVersion"} != {k for k in nm if k != "resourceVersion"}:
        return False
    for key, value in om.items():
        if key in ("resourceVersion", "managedFields"):
            continue
        if nm[key] != value:
            return False
    return bool(_strip_times(om.get("managedFields")) == _strip_times(nm.get("managedFields")))


def _strip_times(entries: Any) -> Any:
    if not isinstance(entries, list):
        return entries
    return [{k: v for k, v in e.items() if k != "time"} if isinstance(e, dict) else e for e in entries]


# -- patch ------------------------------------------------------------------------------------------


def patch(
    cluster: Cluster,
    rt: ResourceType,
    namespace: str,
    name: str,
    raw: bytes,
    content_type: str,
    *,
    manager: str | None,
    force: bool | None,
    dry_run: bool = False,
    subresource: str | None = None,
) -> tuple[int, Obj]:
    """PATCH in any of the four patch types; returns the status code (201 when an apply creates)."""
    content_type = content_type.split(";")[0].strip().lower()
    if content_type not in PATCH_TYPES or (rt.custom and content_type == PATCH_TYPES[2]):
        accepted = [t for t in PATCH_TYPES if not (rt.custom and t == PATCH_TYPES[2])]
        raise errors.ApiError(
            415, "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: "
            + ", ".join(accepted))
    if content_type == PATCH_TYPES[3]:
        return _apply(cluster, rt, namespace, name, raw, manager=manager, force=bool(force),
                      dry_run=dry_run, subresource=subresource)
    if force is not None:
        raise errors.ApiError(422, "Invalid",
                              'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified '
                              "for non-apply patch",
                              {"group": "meta.k8s.io", "kind": "PatchOptions",
                               "causes": [{"reason": "FieldValueForbidden",
                                           "message": "Forbidden: may not be specified for non-apply patch",
                                           "field": "force"}]})
    old = get(cluster, rt, namespace, name)
    try:
        doc = json.loads(raw or b"null")
    except ValueError as exc:
        raise errors.bad_request(f"error decoding patch: {exc}") from exc
    current = copy.deepcopy(old)
    if content_type == PATCH_TYPES[0]:
        if not isinstance(doc, list):
            raise errors.bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
        if len(doc) > 10000:
            raise errors.ApiError(422, "RequestEntityTooLarge",
                                  f"The allowed maximum operations in a JSON patch is 10000, got {len(doc)}")
        try:
            patched = jsonpatch.JsonPatch(doc).apply(current)
        except jsonpatch.InvalidJsonPatch as exc:
            raise errors.bad_request(str(exc)) from exc
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise errors.ApiError(422, "Invalid", f"the server rejected our request due to an error in our "
                                  f"request: {exc}") from exc
    elif content_type == PATCH_TYPES[1]:
        if not isinstance(doc, dict):
            raise errors.bad_request("a merge patch must be a JSON object")
        patched = _merge_patch(current, doc)
    else:
        if not isinstance(doc, dict):
            raise errors.bad_request("a strategic merge patch must be a JSON object")
        try:
            patched = strategic_merge.apply_patch(current, doc, schema=schema_of(rt))
        except strategic_merge.StrategicMergeError as exc:
            raise errors.bad_request(str(exc)) from exc
    if not isinstance(patched, dict):
        raise errors.bad_request("the patch did not produce a JSON object")
    meta = patched.get("metadata")
    if not isinstance(meta, dict):
        raise errors.bad_request("metadata must be a JSON object")
    if meta.get("name") != name:
        raise errors.bad_request(
            f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})")
    wanted_rv = (doc.get("metadata") or {}).get("resourceVersion") if isinstance(doc, dict) else None
    if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
        raise _stale(rt, name)
    meta["resourceVersion"] = old["metadata"]["resourceVersion"]
    new = _check_body(rt, patched)
    result = _finish_update(cluster, rt, old, new, manager=manager or "unknown", subresource=subresource,
                            dry_run=dry_run)
    return 200, result


def _merge_patch(target: Any, patch_doc: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch_doc, dict):
        return copy.deepcopy(patch_doc)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch_doc.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge_patch(out.get(key), value)
    return out


def _apply(
    cluster: Cluster,
    rt: ResourceType,
    namespace: str,
    name: str,
    raw: bytes,
    *,
    manager: str | None,
    force: bool,
    dry_run: bool,
    subresource: str | None,
) -> tuple[int, Obj]:
    if not manager:
        raise errors.ApiError(
            422, "Invalid",
            'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
            {"group": "meta.k8s.io", "kind": "PatchOptions",
             "causes": [{"reason": "FieldValueRequired", "message": "Required value: is required for apply patch",
                         "field": "fieldManager"}]})
    if len(manager) > 128 or not manager.isprintable():
        raise errors.ApiError(
            422, "Invalid",
            'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Too long: must have at most 128 bytes',
            {"group": "meta.k8s.io", "kind": "PatchOptions"})
    try:
        # Clients send JSON (a YAML subset); parse it as such first, it is much faster.
        config = json.loads(raw) if raw[:1] == b"{" else None
    except ValueError:
        config = None
    if config is None:
        try:
            config = yaml.load(raw.decode("utf-8") if raw else "", Loader=yaml.CSafeLoader)
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise errors.bad_request(f"error decoding YAML: {exc}") from exc
    if not isinstance(config, dict):
        raise errors.bad_request("the body of an apply patch must be an object")
    api_version, kind = config.get("apiVersion"), config.get("kind")
    if kind != rt.kind or not api_version:
        raise errors.bad_request(f"invalid object type: {api_version or '/'}, Kind={kind or ''}")
    if api_version != rt.api_version:
        raise errors.bad_request(
            f"Incorrect version specified in apply patch. Specified patch version: {api_version}, "
            f"expected: {rt.api_version}")
    meta = config.get("metadata")
    if not isinstance(meta, dict):
        raise errors.bad_request("metadata must be a JSON object")
    if meta.get("managedFields") is not None:
        raise errors.bad_request("metadata.managedFields must be nil")
    if meta.get("name") and meta["name"] != name:
        raise errors.bad_request(
            f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
    meta["name"] = name
    _settle_namespace(rt, meta, namespace)
    if subresource == "status":
        config = {k: v for k, v in config.items() if k in ("apiVersion", "kind", "metadata", "status")}
    elif rt.status:
        # Apply to the main resource never sets or owns status (GetResetFields).
        config.pop("status", None)
    if not rt.custom:
        unknownfields.check(config, schema_of(rt))
    live = cluster.store.get(rt.key, meta.get("namespace") or "", name)
    wanted_rv = meta.get("resourceVersion")
    if wanted_rv and (live is None or wanted_rv != live["metadata"]["resourceVersion"]):
        raise _stale(rt, name)
    if live is None and subresource is not None:
        raise errors.not_found(rt.group, rt.plural, name)
    if live is None and rt.namespaced:
        _check_namespace_open(cluster, rt, meta["namespace"], name)
    try:
        merged = ssa.server_side_apply(live, config, manager=manager, force=force, api_version=rt.api_version,
                                       schema=schema_of(rt), now=clock.now(),
                                       reset_fields=() if subresource == "status" else _reset_fields(rt))
    except ssa.ApplyConflictError as exc:
        raise errors.ApiError(409, "Conflict", str(exc), body=exc.status_body()) from exc
    if live is None:
        managed = merged["metadata"].pop("managedFields", None)
        merged["metadata"].pop("resourceVersion", None)
        return 201, create(cluster, rt, namespace, merged, manager=manager, dry_run=dry_run,
                           managed=managed or [])
    managed_fields = merged["metadata"].get("managedFields") or []
    new = _check_body(rt, merged)
    new["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
    return 200, _finish_update(cluster, rt, live, new, manager=manager, subresource=subresource,
                               dry_run=dry_run, managed=managed_fields)


# -- scale subresource ------------------------------------------------------------------------------


def _selector_string(selector: Any) -> str:
    if not isinstance(selector, dict):
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or ():
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def _at(obj: Any, path: str) -> Any:
    for part in [p for p in path.split(".") if p]:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _set_at(obj: Obj, path: str, value: Any) -> None:
    parts = [p for p in path.split(".") if p]
    for part in parts[:-1]:
        obj = obj.setdefault(part, {})
    obj[parts[-1]] = value


def _scale_paths(rt: ResourceType) -> tuple[str, str, str]:
    if rt.scale_paths is not None:
        return rt.scale_paths
    return (".spec.replicas", ".status.replicas", "")


def scale_of(rt: ResourceType, obj: Obj) -> Obj:
    """The ``autoscaling/v1`` Scale view of a Deployment, ReplicaSet, StatefulSet or scalable custom resource."""
    meta = obj["metadata"]
    spec_path, status_path, selector_path = _scale_paths(rt)
    if rt.custom:
        selector = _at(obj, selector_path) if selector_path else ""
        replicas = _at(obj, spec_path)
    else:
        selector = _selector_string((obj.get("spec") or {}).get("selector"))
        replicas = _at(obj, spec_path) if _at(obj, spec_path) is not None else 1
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                     if k in meta},
        "spec": {"replicas": replicas or 0},
        "status": {"replicas": _at(obj, status_path) or 0, "selector": selector or ""},
    }


def scale(
    cluster: Cluster,
    rt: ResourceType,
    namespace: str,
    name: str,
    *,
    method: str,
    raw: bytes,
    content_type: str,
    manager: str,
    dry_run: bool = False,
) -> Obj:
    """GET, PUT or PATCH ``…/{name}/scale``: only ``spec.replicas`` of the object changes."""
    obj = get(cluster, rt, namespace, name)
    current = scale_of(rt, obj)
    if method == "GET":
        return current
    try:
        doc = json.loads(raw or b"null")
    except ValueError as exc:
        raise errors.bad_request(f"error decoding body: {exc}") from exc
    kind = content_type.split(";")[0].strip().lower()
    if method == "PUT":
        wanted = doc
    elif kind == PATCH_TYPES[0] and isinstance(doc, list):
        try:
            wanted = jsonpatch.JsonPatch(doc).apply(current)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise errors.ApiError(422, "Invalid", str(exc)) from exc
    elif kind in (PATCH_TYPES[1], PATCH_TYPES[2]) and isinstance(doc, dict):
        wanted = _merge_patch(current, doc)
    else:
        raise errors.ApiError(415, "UnsupportedMediaType",
                              "the body of the request was in an unknown format - accepted media types include: "
                              + ", ".join(PATCH_TYPES[:3]))
    if not isinstance(wanted, dict):
        raise errors.bad_request("the body of the request was not a JSON object")
    rv = (wanted.get("metadata") or {}).get("resourceVersion")
    if rv and rv != obj["metadata"]["resourceVersion"] and method == "PUT":
        raise _stale(rt, name)
    replicas = (wanted.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise errors.ApiError(422, "Invalid", f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid '
                              f"value: {replicas}: must be greater than or equal to 0",
                              {"name": name, "group": "autoscaling", "kind": "Scale"})
    new = copy.deepcopy(obj)
    _set_at(new, _scale_paths(rt)[0], replicas)
    written = _finish_update(cluster, rt, obj, new, manager=manager, subresource="scale", dry_run=dry_run)
    return scale_of(rt, written)
