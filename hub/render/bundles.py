"""Bundle assembly: stamp, order, check and encode one cluster's objects.

Apply order is a declared table (as in fluxcd/pkg ``ssa/sort.go``), not scattered
``if``\\ s. An object's sort key is ``(stage, app position, kind rank, position in
its app's render)``:

* stage 0: CustomResourceDefinitions and Namespaces (the spoke waits until they are
  established before applying anything else);
* stage 1: other cluster-scoped kinds (built-in table, plus custom kinds whose CRD in
  the same bundle says ``scope: Cluster``);
* stage 2: namespaced kinds (every kind not known to be cluster-scoped);

apps in dependsOn order, and kinds within an app by :data:`KIND_ORDER` (unknown kinds
after the known ones, keeping kustomize's order among themselves).

The canonical bytes are exactly ``protos.bundle.encode(bundle)``; :func:`assemble`
builds them from per-object pieces encoded once, so thousands of clusters sharing
objects do not re-encode them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hub.tree import errors
from protos import bundle, ordering
from protos.objects import ObjectRef, group_of

__all__ = [
    "BUILTIN_CLUSTER_SCOPED",
    "KIND_ORDER",
    "Assembled",
    "BundleTooLargeError",
    "DuplicateObjectError",
    "Item",
    "assemble",
    "crd_scopes",
    "encode_object",
    "is_cluster_scoped",
    "stage_of",
    "stamp",
]

CRD_GROUP_KIND = ("apiextensions.k8s.io", "CustomResourceDefinition")

#: The apply order and built-in scopes are one table shared with the spoke (protos.ordering).
BUILTIN_CLUSTER_SCOPED = ordering.BUILTIN_CLUSTER_SCOPED
KIND_ORDER = ordering.KIND_ORDER


class DuplicateObjectError(errors.RenderError):
    """Two objects with the same identity in one bundle."""


class BundleTooLargeError(errors.RenderError):
    """The canonical bundle is larger than the configured limit."""


def encode_object(obj: Mapping[str, Any]) -> bytes:
    """One object's canonical bytes, as :func:`protos.bundle.encode` would write it inside a bundle."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def crd_scopes(objects: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], bool]:
    """(group, kind) -> cluster-scoped?, for every CRD among ``objects``."""
    scopes: dict[tuple[str, str], bool] = {}
    for obj in objects:
        if obj.get("kind") != CRD_GROUP_KIND[1] or group_of(str(obj.get("apiVersion", ""))) != CRD_GROUP_KIND[0]:
            continue
        spec = obj.get("spec")
        if not isinstance(spec, Mapping):
            continue
        names = spec.get("names")
        if isinstance(names, Mapping) and isinstance(spec.get("group"), str) and isinstance(names.get("kind"), str):
            scopes[(spec["group"], names["kind"])] = spec.get("scope") == "Cluster"
    return scopes


def is_cluster_scoped(group: str, kind: str, custom: Mapping[tuple[str, str], bool]) -> bool:
    return (group, kind) in BUILTIN_CLUSTER_SCOPED or custom.get((group, kind), False)


def stage_of(group: str, kind: str, custom: Mapping[tuple[str, str], bool]) -> int:
    if (group, kind) in (CRD_GROUP_KIND, ("", "Namespace")):
        return 0
    return 1 if is_cluster_scoped(group, kind, custom) else 2


def stamp(obj: Mapping[str, Any], *, app: str, namespace: str | None, cluster_scoped: bool) -> dict[str, Any]:
    """A copy of ``obj``'s top level with Convoy's labels and, when namespaced and unset, the app's namespace.

    Only ``metadata`` and ``metadata.labels`` are copied; the rest is shared with ``obj``.
    """
    result = dict(obj)
    metadata = dict(obj.get("metadata") or {})
    labels = dict(metadata.get("labels") or {})
    labels[bundle.LABEL_MANAGED_BY] = bundle.MANAGED_BY_VALUE
    labels[bundle.LABEL_APP] = app
    metadata["labels"] = labels
    if namespace and not cluster_scoped and not metadata.get("namespace"):
        metadata["namespace"] = namespace
    result["metadata"] = metadata
    return result


@dataclasses.dataclass(frozen=True, slots=True)
class Item:
    """One stamped object of one app, with its canonical bytes and where it came from."""

    obj: dict[str, Any]
    ref: ObjectRef
    app: str
    source: str          #: the app's layers, for messages (``apps/web + overlays/env/prod``)
    data: bytes          #: encode_object(obj)
    stage: int
    kind_rank: int


def make_item(obj: dict[str, Any], *, app: str, source: str, custom: Mapping[tuple[str, str], bool],
              data: bytes | None = None) -> Item:
    ref = ObjectRef.of(obj)
    return Item(obj=obj, ref=ref, app=app, source=source,
                data=encode_object(obj) if data is None else data,
                stage=stage_of(ref.group, ref.kind, custom), kind_rank=ordering.kind_rank(ref.kind))


@dataclasses.dataclass(frozen=True, slots=True)
class Assembled:
    bundle: dict[str, Any]
    data: bytes
    digest: str


def app_header(*, name: str, namespace: str | None, depends_on: Sequence[str],
               drift_policy: str | None, ignore_differences: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    header: dict[str, Any] = {"name": name, "namespace": namespace, "dependsOn": list(depends_on),
                              "driftPolicy": drift_policy}
    if ignore_differences:  # only when set, so apps without any keep their bundles' digests
        header["ignoreDifferences"] = [dict(entry) for entry in ignore_differences]
    return header


def assemble(apps: Sequence[dict[str, Any]], items: Sequence[Sequence[Item]], *, cluster: str,
             max_bytes: int) -> Assembled:
    """The bundle of ``apps`` (in dependsOn order) and ``items[i]`` (app i's objects, in render order).

    Raises :class:`DuplicateObjectError` naming both apps and their layers, or
    :class:`BundleTooLargeError` when the canonical bytes exceed ``max_bytes``.
    """
    keyed: list[tuple[int, int, int, int, Item]] = []
    seen: dict[ObjectRef, Item] = {}
    for app_index, app_items in enumerate(items):
        for position, item in enumerate(app_items):
            first = seen.get(item.ref)
            if first is not None:
                where = (f"app {first.app} ({first.source}) and app {item.app} ({item.source})"
                         if first.app != item.app else f"app {item.app} ({item.source}), twice")
                raise DuplicateObjectError(f"declared by {where}; an object can belong to one app "
                                           "only", cluster=cluster, app=item.app, obj=str(item.ref))
            seen[item.ref] = item
            keyed.append((item.stage, app_index, item.kind_rank, position, item))
    keyed.sort(key=lambda entry: entry[:4])
    ordered = [entry[4] for entry in keyed]
    apps_list = list(apps)
    # Exactly protos.bundle.encode(document): keys in sorted order, compact separators.
    data = b"".join((
        b'{"apiVersion":', encode_object({"v": bundle.API_VERSION})[5:-1],
        b',"apps":', bundle.encode({"a": apps_list})[5:-1],
        b',"kind":"Bundle","objects":[', b",".join(item.data for item in ordered), b"]}",
    ))
    if len(data) > max_bytes:
        raise BundleTooLargeError(f"bundle is {len(data)} bytes, over the {max_bytes}-byte "
                                  "limit (split the apps or raise the limit)", cluster=cluster)
    document = {"apiVersion": bundle.API_VERSION, "kind": "Bundle", "apps": apps_list,
                "objects": [item.obj for item in ordered]}
    return Assembled(bundle=document, data=data, digest=bundle.digest_of(data))
