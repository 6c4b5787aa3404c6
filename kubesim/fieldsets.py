"""Field sets: which fields of an object someone owns, and the typed walks server-side apply needs.

A port of the parts of kubernetes-sigs/structured-merge-diff (``fieldpath``, ``typed``) the API
server uses for server-side apply, written against :mod:`protos.k8s_schema` (no Python
implementation of SMD exists). A path is a tuple of path elements in their FieldsV1 spelling:

* ``f:<field>`` a struct field or map key,
* ``k:{"name":"web"}`` an item of a keyed list (compact JSON, key fields sorted, with schema
  defaults for omitted key fields),
* ``v:<json>`` an item of a set, ``i:<n>`` a list index.

A :data:`FieldSet` is a plain ``frozenset`` of such paths: membership is exact, so set algebra
is Python's. What this module provides:

* :func:`to_field_set` -- the fields a (partial) object sets (``TypedValue.ToFieldSet``);
* :func:`compare` -- added / modified / removed paths between two objects (``Compare``);
* :func:`merge` -- ``live ⊕ config`` by the schema (``Merge``), keeping live list order and
  placing new items as SMD does;
* :func:`remove_items` -- an object without the given paths (``RemoveItems``);
* :func:`ensure_named_fields_are_members`, :func:`to_fields_v1` / :func:`from_fields_v1` (the
  ``managedFields`` trie) and :func:`path_string` (``.spec.containers[name="web"].image``).

Values are plain decoded JSON; ``None`` inside a map is an explicit null (owned, then dropped
from the merged object, as the typed conversion does).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from protos.k8s_schema import ATOMIC_LIST, ListSchema, ObjectSchema, Shape

__all__ = [
    "MISSING",
    "Comparison",
    "FieldSet",
    "FieldSetError",
    "Path",
    "check_duplicates",
    "compare",
    "element_sort_key",
    "ensure_named_fields_are_members",
    "from_fields_v1",
    "item_element",
    "json_copy",
    "merge",
    "path_string",
    "remove_items",
    "sorted_paths",
    "to_field_set",
    "to_fields_v1",
    "without_prefixes",
]

Path = tuple[str, ...]
FieldSet = frozenset[Path]


class _Missing:
    """An absent value (as opposed to an explicit JSON null)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


class FieldSetError(ValueError):
    """An object does not fit its schema well enough to track fields (a keyed item without keys...)."""


# -- path elements ------------------------------------------------------------------------------


def _json(value: Any) -> str:
    # Fast paths for the scalars keys are made of; json.dumps for anything else.
    if isinstance(value, str):
        return _encode_string(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return json.dumps(_normalise_number(value), separators=(",", ":"), ensure_ascii=False, sort_keys=True)


_encode_string: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]


def _normalise_number(value: Any) -> Any:
    # Go decodes every JSON number as float64 and prints 80.0 as 80.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def item_element(item: Any, list_schema: ListSchema, index: int) -> str:
    """The path element of one item of a non-atomic list."""
    if list_schema.type == "map":
        if not isinstance(item, dict):
            raise FieldSetError("associative list with keys may not have non-map elements")
        key: dict[str, Any] = {}
        defaults = dict(list_schema.key_defaults)
        for name in list_schema.keys:
            if name in item:
                key[name] = item[name]
            elif name in defaults:
                key[name] = defaults[name]
        if not key:
            raise FieldSetError(
                f"associative list with keys has an element that omits all key fields {list(list_schema.keys)}"
            )
        return "k:{" + ",".join(f"{_encode_string(name)}:{_json(key[name])}" for name in sorted(key)) + "}"
    if list_schema.type == "set":
        if isinstance(item, dict | list) or item is None:
            raise FieldSetError("associative list without keys has an element that is not a scalar")
        return "v:" + _json(item)
    return f"i:{index}"


def _value_rank(value: Any) -> tuple[int, Any]:
    # structured-merge-diff's value.Compare: numbers < strings < bools < lists < maps < null.
    if isinstance(value, bool):
        return (2, value)
    if isinstance(value, int | float):
        return (0, value)
    if isinstance(value, str):
        return (1, value)
    if isinstance(value, list):
        return (3, tuple(_value_rank(item) for item in value))
    if isinstance(value, dict):
        return (4, tuple((key, _value_rank(value[key])) for key in sorted(value)))
    return (5, 0)


def element_sort_key(element: str) -> tuple[int, Any]:
    """SMD's order of path elements: fields, then keys, then values, then indexes."""
    prefix, _, rest = element.partition(":")
    if prefix == "f":
        return (0, rest)
    if prefix == "k":
        key = json.loads(rest)
        return (1, tuple((name, _value_rank(key[name])) for name in sorted(key)))
    if prefix == "v":
        return (2, _value_rank(json.loads(rest)))
    if prefix == "i":
        return (3, int(rest))
    return (4, rest)


def sorted_paths(paths: Iterable[Path]) -> list[Path]:
    """Paths in SMD's iteration order (depth-first, elements in :func:`element_sort_key` order)."""
    return sorted(paths, key=lambda path: tuple(element_sort_key(element) for element in path))


def path_string(path: Path) -> str:
    """``.spec.template.spec.containers[name="web"].image`` -- the form conflict messages use."""
    out = []
    for element in path:
        prefix, _, rest = element.partition(":")
        if prefix == "f":
            out.append("." + rest)
        elif prefix == "k":
            key = json.loads(rest)
            out.append("[" + ",".join(f"{name}={_json(key[name])}" for name in key) + "]")
        elif prefix == "v":
            out.append("[=" + _json(json.loads(rest)) + "]")
        else:
            out.append(f"[{rest}]")
    return "".join(out)


# -- managedFields trie -------------------------------------------------------------------------


def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    """Encode a field set as the FieldsV1 trie (``{"f:spec":{"f:replicas":{}}}``), in SMD order."""
    root: dict[str, Any] = {}
    members: set[Path] = set()
    for path in paths:
        members.add(path)
        node = root
        for element in path:
            node = node.setdefault(element, {})
    return _ordered(root, (), members)


def _ordered(node: dict[str, Any], prefix: Path, members: set[Path]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    children = sorted(node, key=element_sort_key)
    for element in children:
        path = (*prefix, element)
        child = _ordered(node[element], path, members)
        if child and path in members:
            child = {".": {}, **child}
        out[element] = child
    return out


def from_fields_v1(trie: Mapping[str, Any]) -> FieldSet:
    """Decode a FieldsV1 trie into a field set."""
    paths: set[Path] = set()

    def walk(node: Mapping[str, Any], prefix: Path) -> None:
        for element, child in node.items():
            if element == ".":
                if prefix:
                    paths.add(prefix)
                continue
            path = (*prefix, element)
            if not isinstance(child, Mapping) or not child:
                paths.add(path)
            else:
                walk(child, path)

    walk(trie, ())
    return frozenset(paths)


# -- schema helpers -----------------------------------------------------------------------------


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "list"
    return "scalar"


def _list_schema(schema: ObjectSchema) -> ListSchema:
    return schema.list if schema.shape is Shape.LIST and schema.list is not None else ATOMIC_LIST


def _is_empty(value: Any) -> bool:
    return value is MISSING or value is None or (isinstance(value, dict | list) and not value)


def _is_leaf(lhs: Any, rhs: Any, schema: ObjectSchema) -> bool:
    """SMD treats scalars, atomic values and empty-on-both-sides containers as one leaf."""
    kinds = {_kind(value) for value in (lhs, rhs) if value is not MISSING and value is not None}
    if len(kinds) != 1:
        return True  # scalars, nulls, or a type change
    (kind,) = kinds
    if kind == "scalar":
        return True
    if _is_empty(lhs) and _is_empty(rhs):
        return True
    if kind == "map":
        return schema.atomic
    return _list_schema(schema).type == "atomic"


def _index_items(items: list[Any], list_schema: ListSchema) -> tuple[list[str], dict[str, Any]]:
    elements: list[str] = []
    observed: dict[str, Any] = {}
    for index, item in enumerate(items):
        element = item_element(item, list_schema, index)
        if element in observed:
            continue  # a duplicate: the first one wins (the API server rejects them on write)
        observed[element] = item
        elements.append(element)
    return elements, observed


# -- ToFieldSet ---------------------------------------------------------------------------------


def to_field_set(value: Any, schema: ObjectSchema) -> FieldSet:
    """The fields ``value`` sets: leaves, keyed items, map keys and empty/null values."""
    out: set[Path] = set()
    _to_field_set(value, schema, (), out)
    return frozenset(out)


def _to_field_set(value: Any, schema: ObjectSchema, path: Path, out: set[Path]) -> None:
    if isinstance(value, dict):
        if schema.atomic:
            out.add(path)
            return
        for key, child in value.items():
            child_path = (*path, "f:" + key)
            _to_field_set(child, schema.field(key), child_path, out)
            if child is None or (isinstance(child, dict) and not child) or not schema.has_field(key):
                out.add(child_path)
    elif isinstance(value, list):
        list_schema = _list_schema(schema)
        if list_schema.type == "atomic":
            out.add(path)
            return
        seen: set[str] = set()
        duplicated: set[str] = set()
        elements = [item_element(item, list_schema, index) for index, item in enumerate(value)]
        for element in elements:
            if element in seen:
                duplicated.add(element)
            seen.add(element)
        for element in duplicated:
            out.add((*path, element))
        for element, item in zip(elements, value, strict=True):
            if element in duplicated:
                continue
            item_path = (*path, element)
            _to_field_set(item, schema.items(), item_path, out)
            out.add(item_path)
    else:
        out.add(path)


# -- Compare ------------------------------------------------------------------------------------


@dataclass
class Comparison:
    """What changed from ``lhs`` to ``rhs``; no path is in more than one set."""

    added: set[Path] = field(default_factory=set)
    modified: set[Path] = field(default_factory=set)
    removed: set[Path] = field(default_factory=set)

    def filtered(self, keep: Any) -> Comparison:
        return Comparison(
            added={p for p in self.added if keep(p)},
            modified={p for p in self.modified if keep(p)},
            removed={p for p in self.removed if keep(p)},
        )


def compare(lhs: Any, rhs: Any, schema: ObjectSchema) -> Comparison:
    """Added, modified and removed paths from ``lhs`` to ``rhs`` (either may be :data:`MISSING`)."""
    result = Comparison()
    _compare(lhs, rhs, schema, (), result)
    return result


def _compare(lhs: Any, rhs: Any, schema: ObjectSchema, path: Path, out: Comparison) -> None:
    if _is_leaf(lhs, rhs, schema):
        if lhs is MISSING:
            out.added.add(path)
        elif rhs is MISSING:
            out.removed.add(path)
        elif not _equal(lhs, rhs):
            out.modified.add(path)
        return
    left = lhs if lhs is not MISSING and lhs is not None else None
    right = rhs if rhs is not MISSING and rhs is not None else None
    sample = left if left is not None else right
    if isinstance(sample, dict):
        keys = list(left or {}) + [key for key in (right or {}) if key not in (left or {})]
        for key in keys:
            _compare(
                (left or {}).get(key, MISSING), (right or {}).get(key, MISSING), schema.field(key),
                (*path, "f:" + key), out,
            )
    else:
        list_schema = _list_schema(schema)
        left_elements, left_items = _index_items(left or [], list_schema)
        right_elements, right_items = _index_items(right or [], list_schema)
        item_schema = schema.items()
        for element in left_elements + [e for e in right_elements if e not in left_items]:
            _compare(
                left_items.get(element, MISSING), right_items.get(element, MISSING), item_schema,
                (*path, element), out,
            )
    if lhs is MISSING:
        out.added.add(path)
    elif rhs is MISSING:
        out.removed.add(path)


def _equal(left: Any, right: Any) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(_equal(a, b) for a, b in zip(left, right, strict=True))
    return bool(left == right)


# -- Merge --------------------------------------------------------------------------------------


def merge(lhs: Any, rhs: Any, schema: ObjectSchema) -> Any:
    """``lhs ⊕ rhs``: maps merge by key, lists by the schema, everything else takes ``rhs``.

    Explicit nulls from ``rhs`` are dropped from the result (the typed object has no such field).
    """
    return _drop_nulls(_merge(lhs, rhs, schema))


def _merge(lhs: Any, rhs: Any, schema: ObjectSchema) -> Any:
    if rhs is MISSING:
        return lhs
    if lhs is MISSING or lhs is None or _is_leaf(lhs, rhs, schema):
        return rhs
    if isinstance(rhs, dict):
        out: dict[str, Any] = {}
        for key in list(lhs) + [key for key in rhs if key not in lhs]:
            merged = _merge(lhs.get(key, MISSING), rhs.get(key, MISSING), schema.field(key))
            if merged is not MISSING:
                out[key] = merged
        return out
    return _merge_list(lhs, rhs, schema)


def _merge_list(lhs: list[Any], rhs: list[Any], schema: ObjectSchema) -> list[Any]:
    # A port of SMD's mergingWalker.visitListItems: live order is kept, the applied items that
    # are shared keep their applied relative order, and new applied items land where they
    # appear relative to the shared ones.
    list_schema = _list_schema(schema)
    item_schema = schema.items()
    rhs_elements, observed_rhs = _index_items(rhs, list_schema)
    lhs_elements: list[str] = []
    observed_lhs: dict[str, Any] = {}
    for index, item in enumerate(lhs):
        element = item_element(item, list_schema, index)
        lhs_elements.append(element)
        observed_lhs.setdefault(element, item)
    shared = [element for element in rhs_elements if element in observed_lhs]
    shared_iter = iter(shared)
    next_shared = next(shared_iter, None)
    merged_rhs: set[str] = set()
    out: list[Any] = []
    left = right = 0
    while left < len(lhs_elements) or right < len(rhs_elements):
        if left < len(lhs_elements) and right < len(rhs_elements):
            element = lhs_elements[left]
            if element == rhs_elements[right]:
                merged_rhs.add(element)
                out.append(_merge(observed_lhs[element], observed_rhs[element], item_schema))
                left += 1
                right += 1
                next_shared = next(shared_iter, None)
                continue
            if element in observed_rhs and next_shared is not None and next_shared != element:
                left += 1
                continue
        if left < len(lhs_elements):
            element = lhs_elements[left]
            if element not in observed_rhs:
                out.append(lhs[left])
                left += 1
                continue
            if element in merged_rhs:
                left += 1
        if right < len(rhs_elements):
            element = rhs_elements[right]
            merged_rhs.add(element)
            out.append(_merge(observed_lhs.get(element, MISSING), observed_rhs[element], item_schema))
            right += 1
            if next_shared is not None and next_shared == element:
                next_shared = next(shared_iter, None)
    return out


def json_copy(value: Any) -> Any:
    """A deep copy of decoded JSON (much cheaper than :func:`copy.deepcopy`)."""
    if isinstance(value, dict):
        return {key: json_copy(child) for key, child in value.items()}
    if isinstance(value, list):
        return [json_copy(item) for item in value]
    return value


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _drop_nulls(child) for key, child in value.items() if child is not None}
    if isinstance(value, list):
        return [_drop_nulls(item) for item in value]
    return value


# -- RemoveItems --------------------------------------------------------------------------------


class _Trie:
    __slots__ = ("children", "members")

    def __init__(self) -> None:
        self.members: set[str] = set()
        self.children: dict[str, _Trie] = {}

    @classmethod
    def of(cls, paths: Iterable[Path]) -> _Trie:
        root = cls()
        for path in paths:
            if not path:
                continue
            node = root
            for element in path[:-1]:
                node = node.children.setdefault(element, cls())
            node.members.add(path[-1])
        return root


def remove_items(value: Any, paths: Iterable[Path], schema: ObjectSchema) -> Any:
    """``value`` without the given paths (a removed path takes its subtree with it).

    A map or list left with nothing is dropped from its parent, as the API server's typed
    conversion drops the null SMD leaves there.
    """
    result = _remove(value, _Trie.of(paths), schema)
    return {} if result is MISSING else result


def _remove(value: Any, trie: _Trie, schema: ObjectSchema) -> Any:
    if isinstance(value, dict):
        if not value or schema.atomic:
            return value
        out: dict[str, Any] = {}
        for key, child in value.items():
            element = "f:" + key
            if element in trie.members:
                continue
            sub = trie.children.get(element)
            if sub is not None:
                child = _remove(child, sub, schema.field(key))
                if child is MISSING:
                    continue
            out[key] = child
        return out if out else MISSING
    if isinstance(value, list):
        list_schema = _list_schema(schema)
        if not value or list_schema.type == "atomic":
            return value
        items: list[Any] = []
        for index, item in enumerate(value):
            element = item_element(item, list_schema, index)
            if element in trie.members:
                continue
            sub = trie.children.get(element)
            if sub is not None:
                item = _remove(item, sub, schema.items())
                if item is MISSING:
                    continue
            items.append(item)
        return items if items else MISSING
    return value


# -- EnsureNamedFieldsAreMembers ----------------------------------------------------------------


def ensure_named_fields_are_members(paths: Iterable[Path], schema: ObjectSchema) -> FieldSet:
    """``paths`` plus every ancestor that is a declared struct field (not a map key or list item)."""
    out: set[Path] = set()
    # prefix -> (schema at prefix, whether the prefix ends in a declared field)
    seen: dict[Path, tuple[ObjectSchema, bool]] = {(): (schema, False)}
    for path in paths:
        out.add(path)
        for depth in range(1, len(path)):
            prefix = path[:depth]
            known = seen.get(prefix)
            if known is None:
                parent, _ = seen[path[: depth - 1]]
                kind, _, rest = prefix[-1].partition(":")
                if kind == "f":
                    known = (parent.field(rest), parent.has_field(rest))
                else:
                    known = (parent.items(), False)
                seen[prefix] = known
            if known[1]:
                out.add(prefix)
    return frozenset(out)


def check_duplicates(value: Any, schema: ObjectSchema, path: Path = ()) -> None:
    """Raise :class:`FieldSetError` when a keyed list or set holds the same item twice (as SMD does)."""
    if isinstance(value, dict):
        if schema.atomic:
            return
        for key, child in value.items():
            check_duplicates(child, schema.field(key), (*path, "f:" + key))
    elif isinstance(value, list):
        list_schema = _list_schema(schema)
        if list_schema.type == "atomic":
            return
        seen: set[str] = set()
        for index, item in enumerate(value):
            element = item_element(item, list_schema, index)
            if element in seen:
                shown = path_string((element,))
                raise FieldSetError(f"{path_string(path)}: duplicate entries for key {shown}")
            seen.add(element)
            check_duplicates(item, schema.items(), (*path, element))


def without_prefixes(paths: Iterable[Path], prefixes: Iterable[Path]) -> FieldSet:
    """``paths`` minus every path equal to or below one of ``prefixes``."""
    cut = tuple(prefixes)
    return frozenset(p for p in paths if not any(p[: len(prefix)] == prefix for prefix in cut))
