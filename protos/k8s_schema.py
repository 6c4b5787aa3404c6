"""How Kubernetes merges each field of each kind: the schema strategic merge and server-side apply walk.

Both merge algorithms need to know, at every point of an object, whether a value is a struct
(named fields), a map of values (labels, ConfigMap data), a list -- and for a list whether it is
keyed (``containers`` by ``name``), a set (``finalizers``) or atomic (``tolerations``) -- plus
the strategic-merge markers (``patchStrategy``, ``patchMergeKey``, ``retainKeys``).

For built-in kinds that comes from ``k8s_listschema.json``, a compact reduction of the
Kubernetes OpenAPI document (its header names the source; ``bench/tools/make_k8s_listschema.py``
made it). For custom resources it comes from the CRD's ``openAPIV3Schema``, where every list is
atomic unless ``x-kubernetes-list-type`` says otherwise; a kind with neither is untyped, which
makes every list atomic and every object a map.

The schema is permissive: a field it does not know is untyped rather than an error, because
validation is the API server's business, not the merge's.

Pure: imports nothing from hub, spoke or kubesim, reads only its packaged data file.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from typing import Any, Literal

__all__ = [
    "ATOMIC_LIST",
    "UNTYPED",
    "ListSchema",
    "ObjectSchema",
    "Shape",
    "is_builtin",
    "schema_for",
]

ListType = Literal["map", "set", "atomic"]


@dataclass(frozen=True, slots=True)
class ListSchema:
    """How one list merges.

    ``type`` and ``keys`` drive server-side apply (``x-kubernetes-list-type`` and
    ``-list-map-keys``; a ``patchStrategy: merge`` list without a list type counts as ``map``
    keyed by its merge key, or ``set`` for scalars, as the API server's converter does).
    ``patch_strategy`` and ``patch_merge_key`` drive strategic merge patch.
    """

    type: ListType
    keys: tuple[str, ...] = ()
    patch_strategy: str | None = None
    patch_merge_key: str | None = None
    # Values the API server's schema defaults for key fields, used when an item omits one
    # (a container port without ``protocol`` is keyed as TCP).
    key_defaults: tuple[tuple[str, Any], ...] = ()

    @property
    def merges(self) -> bool:
        """True when strategic merge patch merges this list instead of replacing it."""
        return "merge" in _strategies(self.patch_strategy)


ATOMIC_LIST = ListSchema(type="atomic")


class Shape(StrEnum):
    """What kind of value a schema node describes."""

    STRUCT = "struct"  # named fields, each with its own schema
    MAP = "map"  # arbitrary keys, one schema for every value (labels, data)
    LIST = "list"
    SCALAR = "scalar"
    UNTYPED = "untyped"  # anything: objects behave as maps of untyped values, lists as atomic


def _strategies(patch_strategy: str | None) -> tuple[str, ...]:
    return tuple(part for part in (patch_strategy or "").split(",") if part)


class ObjectSchema:
    """One node of a kind's schema; navigate with :meth:`field` and :meth:`items`.

    ``list`` is set only on list nodes; any other node holding a list treats it as atomic.
    ``patch_strategy`` is the strategic-merge marker the parent put on this field (for
    structs: ``retainKeys``); ``atomic`` is ``x-kubernetes-map-type: atomic`` (the whole
    object is one value for server-side apply).
    """

    __slots__ = (
        "_fields",
        "_items",
        "_raw_fields",
        "_resolve",
        "_values",
        "atomic",
        "list",
        "name",
        "patch_strategy",
        "shape",
    )

    def __init__(
        self,
        shape: Shape,
        *,
        name: str = "",
        fields: Mapping[str, Any] | None = None,
        resolve: _Resolver | None = None,
        values: ObjectSchema | None = None,
        items: ObjectSchema | None = None,
        list_schema: ListSchema | None = None,
        patch_strategy: str | None = None,
        atomic: bool = False,
    ) -> None:
        self.shape = shape
        self.name = name
        self.list = list_schema
        self.patch_strategy = patch_strategy
        self.atomic = atomic
        self._raw_fields: Mapping[str, Any] = fields or {}
        self._fields: dict[str, ObjectSchema] = {}
        self._resolve = resolve
        self._values = values
        self._items = items

    def __repr__(self) -> str:
        return f"ObjectSchema({self.shape.value}{' ' + self.name if self.name else ''})"

    # -- navigation -------------------------------------------------------------------------

    def field(self, name: str) -> ObjectSchema:
        """Schema of the child ``name`` (a struct field or a map key); unknown -> untyped."""
        if self.shape is Shape.STRUCT:
            cached = self._fields.get(name)
            if cached is not None:
                return cached
            raw = self._raw_fields.get(name)
            if raw is not None:
                node = raw if isinstance(raw, ObjectSchema) else self._resolver()(raw)
                self._fields[name] = node
                return node
            return self._values or UNTYPED
        if self.shape is Shape.MAP:
            return self._values or UNTYPED
        return UNTYPED

    def has_field(self, name: str) -> bool:
        """True when ``name`` is a declared field of a struct (not a map key or an unknown)."""
        return self.shape is Shape.STRUCT and name in self._raw_fields

    def items(self) -> ObjectSchema:
        """Schema of the items of a list (untyped for anything else)."""
        if self.shape is Shape.LIST and self._items is not None:
            return self._items
        return UNTYPED

    def field_names(self) -> tuple[str, ...]:
        """The declared fields of a struct, sorted."""
        return tuple(sorted(self._raw_fields)) if self.shape is Shape.STRUCT else ()

    # -- shape helpers ------------------------------------------------------------------------

    @property
    def is_map_of_values(self) -> bool:
        return self.shape is Shape.MAP

    @property
    def is_struct(self) -> bool:
        return self.shape is Shape.STRUCT

    @property
    def is_list(self) -> bool:
        return self.shape is Shape.LIST

    @property
    def is_untyped(self) -> bool:
        return self.shape is Shape.UNTYPED

    @property
    def list_or_atomic(self) -> ListSchema:
        """The list semantics to use for a list value found at this node."""
        return self.list if self.list is not None else ATOMIC_LIST

    def _resolver(self) -> _Resolver:
        if self._resolve is None:  # pragma: no cover - only nodes built from raw data have raw fields
            raise RuntimeError(f"{self!r} has raw fields but no resolver")
        return self._resolve


class _Resolver:
    """Turns the compact nodes of ``k8s_listschema.json`` into :class:`ObjectSchema` lazily."""

    def __init__(self, types: Mapping[str, Any]) -> None:
        self._types = types
        self._structs: dict[str, ObjectSchema] = {}

    def __call__(self, raw: Any) -> ObjectSchema:
        if raw == "s":
            return SCALAR
        if raw == "*":
            return UNTYPED
        if isinstance(raw, str):
            return self.struct(raw)
        if "r" in raw:
            base = self.struct(raw["r"])
            return ObjectSchema(
                Shape.STRUCT,
                name=base.name,
                fields=base._raw_fields,
                resolve=self,
                patch_strategy=raw.get("ps"),
                atomic=base.atomic or raw.get("mt") == "atomic",
            )
        if "l" in raw:
            list_schema = _list_schema(raw)
            if list_schema.keys and isinstance(raw["l"], str):
                defaults = tuple(
                    (key, _KEY_DEFAULTS[(raw["l"], key)])
                    for key in list_schema.keys if (raw["l"], key) in _KEY_DEFAULTS
                )
                if defaults:
                    list_schema = dataclasses.replace(list_schema, key_defaults=defaults)
            return ObjectSchema(
                Shape.LIST, items=self(raw["l"]), list_schema=list_schema, patch_strategy=raw.get("ps")
            )
        if "m" in raw:
            return ObjectSchema(
                Shape.MAP, values=self(raw["m"]), atomic=raw.get("mt") == "atomic", patch_strategy=raw.get("ps")
            )
        raise ValueError(f"k8s_listschema.json: unknown node {raw!r}")

    def struct(self, name: str) -> ObjectSchema:
        node = self._structs.get(name)
        if node is None:
            raw = self._types[name]
            node = ObjectSchema(
                Shape.STRUCT, name=name, fields=raw["f"], resolve=self, atomic=raw.get("mt") == "atomic"
            )
            self._structs[name] = node
        return node


# Defaults of list-map key fields. The OpenAPI v2 document the table comes from carries no
# `default`s; these are the ones the API server's v3 schema declares for key fields.
_KEY_DEFAULTS: Mapping[tuple[str, str], Any] = {
    ("core.v1.ContainerPort", "protocol"): "TCP",
    ("core.v1.ServicePort", "protocol"): "TCP",
    ("core.v1.EndpointPort", "protocol"): "TCP",
    ("discovery.v1.EndpointPort", "protocol"): "TCP",
}


def _list_schema(raw: Mapping[str, Any]) -> ListSchema:
    strategy = raw.get("ps")
    merge_key = raw.get("pk")
    declared = raw.get("t")
    keys: tuple[str, ...] = tuple(raw.get("k") or ())
    list_type: ListType
    if declared in ("map", "set", "atomic"):
        list_type = "map" if declared == "map" else "set" if declared == "set" else "atomic"
    elif "merge" in _strategies(strategy):
        # The API server's OpenAPI-to-SMD converter: patchStrategy=merge without a list type is
        # a map keyed by the merge key, or a set when there is no key; anything else is atomic.
        list_type, keys = ("map", (merge_key,)) if merge_key else ("set", ())
    else:
        list_type = "atomic"
    if list_type != "map":
        keys = ()
    return ListSchema(type=list_type, keys=keys, patch_strategy=strategy, patch_merge_key=merge_key)


SCALAR = ObjectSchema(Shape.SCALAR)
UNTYPED = ObjectSchema(Shape.UNTYPED)


@dataclass(frozen=True, slots=True)
class _Table:
    kinds: Mapping[str, Any]
    resolver: _Resolver


@functools.cache
def _table() -> _Table:
    text = resources.files("protos").joinpath("k8s_listschema.json").read_text(encoding="utf-8")
    data = json.loads(text)
    return _Table(kinds=data["kinds"], resolver=_Resolver(data["types"]))


def _group_key(group: str, kind: str) -> str:
    return f"{'' if group == 'core' else group}/{kind}"


def is_builtin(group: str, kind: str) -> bool:
    """True for the kinds the Kubernetes API server serves itself (``core`` or ``""`` for core)."""
    return _group_key(group, kind) in _table().kinds


@functools.cache
def _builtin(group: str, kind: str) -> ObjectSchema:
    table = _table()
    return table.resolver(table.kinds[_group_key(group, kind)]["t"])


def schema_for(group: str, kind: str, *, crd_schema: Mapping[str, Any] | None = None) -> ObjectSchema:
    """The schema of a kind: built-ins from the table, custom resources from their CRD schema.

    ``crd_schema`` is the ``openAPIV3Schema`` of the served version; without it a custom
    resource is untyped (every list atomic), apart from ``metadata``, which is always
    ``ObjectMeta``.
    """
    if crd_schema is None and is_builtin(group, kind):
        return _builtin(group, kind)
    key = json.dumps(crd_schema, sort_keys=True) if crd_schema is not None else ""
    return _custom(key)


@functools.lru_cache(maxsize=256)
def _custom(crd_schema_json: str) -> ObjectSchema:
    table = _table()
    meta = table.resolver.struct("meta.v1.ObjectMeta")
    fields: dict[str, Any] = {}
    rest: ObjectSchema = UNTYPED
    if crd_schema_json:
        root = from_openapi_v3(json.loads(crd_schema_json))
        if root.shape is Shape.STRUCT:
            fields.update({name: root.field(name) for name in root.field_names()})
            rest = root._values or UNTYPED
    fields.update({"apiVersion": SCALAR, "kind": SCALAR, "metadata": meta})
    return ObjectSchema(Shape.STRUCT, name="custom", fields=fields, values=rest)


def from_openapi_v3(spec: Mapping[str, Any]) -> ObjectSchema:
    """Convert one (structural) OpenAPI v3 schema node of a CRD into an :class:`ObjectSchema`."""
    if spec.get("x-kubernetes-int-or-string"):
        return SCALAR
    kind = spec.get("type")
    preserve = bool(spec.get("x-kubernetes-preserve-unknown-fields"))
    properties: Mapping[str, Any] = spec.get("properties") or {}
    if kind == "array":
        items_spec = spec.get("items")
        items = from_openapi_v3(items_spec) if isinstance(items_spec, Mapping) else UNTYPED
        declared = spec.get("x-kubernetes-list-type")
        list_type: ListType = "map" if declared == "map" else "set" if declared == "set" else "atomic"
        keys = tuple(spec.get("x-kubernetes-list-map-keys") or ()) if list_type == "map" else ()
        item_properties = items_spec.get("properties") or {} if isinstance(items_spec, Mapping) else {}
        key_defaults = tuple(
            (key, item_properties[key]["default"])
            for key in keys
            if isinstance(item_properties.get(key), Mapping) and "default" in item_properties[key]
        )
        return ObjectSchema(
            Shape.LIST, items=items, list_schema=ListSchema(type=list_type, keys=keys, key_defaults=key_defaults)
        )
    if kind == "object" or properties or spec.get("x-kubernetes-embedded-resource"):
        atomic = spec.get("x-kubernetes-map-type") == "atomic"
        additional = spec.get("additionalProperties")
        if properties or spec.get("x-kubernetes-embedded-resource"):
            fields: dict[str, Any] = {name: from_openapi_v3(sub) for name, sub in properties.items()}
            if spec.get("x-kubernetes-embedded-resource"):
                fields.setdefault("apiVersion", SCALAR)
                fields.setdefault("kind", SCALAR)
                fields.setdefault("metadata", _table().resolver.struct("meta.v1.ObjectMeta"))
            return ObjectSchema(Shape.STRUCT, name="crd", fields=fields, values=UNTYPED, atomic=atomic)
        if isinstance(additional, Mapping):
            return ObjectSchema(Shape.MAP, values=from_openapi_v3(additional), atomic=atomic)
        if preserve or additional is True or kind == "object":
            return ObjectSchema(Shape.MAP, values=UNTYPED, atomic=atomic) if not preserve else UNTYPED
    if preserve or kind is None:
        return UNTYPED
    return SCALAR
