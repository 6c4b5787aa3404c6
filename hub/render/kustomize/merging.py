"""Strategic merge as kustomize does it: kyaml's ``merge2.Merge`` with ``ListIncreaseDirection: Prepend``.

kustomize does not use the API server's strategic merge patch; it walks the
patch and the object together (``kyaml/yaml/walk``) and that walk has its own
rules, which the oracle test holds us to:

* maps merge field by field; a ``null`` in the patch deletes; ``$patch: delete``
  removes the map, ``$patch: replace`` takes the patch's map;
* a list merges by key only when the kind's schema gives it a ``merge`` patch
  strategy (keys: ``x-kubernetes-list-map-keys``, else the patch merge key;
  none for lists of scalars); every other list, and every list of a kind with no
  built-in schema (custom resources), is replaced by the patch's list;
* merged lists come out with the patch's elements first, in the patch's order,
  then the object's other elements in their order (lists keyed by several fields
  move the object's elements after the patch-only ones);
* ``$patch: delete|replace|merge`` as a list element acts on the whole list.

The schema (merge keys and strategies) is :mod:`protos.k8s_schema`'s; the walk
is ported from kyaml so that it agrees with ``kubectl kustomize`` element for
element. Inputs are merged in place into the object (the caller owns it); the
patch is copied first, as kustomize copies it per target.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

from hub.render.kustomize.resources import clone
from protos import k8s_schema

__all__ = ["MergeError", "merge", "schema_for"]

_MISSING: Any = object()  # the field is absent
#: The walk's empty values, as (id of mapping, key); a context variable rather than a parameter of
#: every walking function (the mappings are alive in the object, so their ids are not reused meanwhile).
_EMPTY_NULLS: ContextVar[frozenset[tuple[int, str]]] = ContextVar("empty_nulls", default=frozenset())
_KEEP_NULL: Any = object()  # an explicit null of the object that the patch does not touch: kept
_DIRECTIVE = "$patch"


class MergeError(Exception):
    """The patch and the object disagree on a value's kind, or a directive is unknown."""


def schema_for(group: str, kind: str) -> k8s_schema.ObjectSchema | None:
    """The built-in schema kustomize would use, or None (custom resources merge without one)."""
    if not k8s_schema.is_builtin(group, kind):
        return None
    return k8s_schema.schema_for(group, kind)


def merge(obj: dict[str, Any], patch: dict[str, Any], schema: k8s_schema.ObjectSchema | None, *,
          empty: Iterable[tuple[dict[str, Any], str]] = ()) -> dict[str, Any] | None:
    """``obj`` with ``patch`` merged into it (in place); None when the patch deletes the object.

    ``empty`` are the (mapping, key) of ``obj``'s empty values (``key:``): where the walk passes them
    untouched they are dropped, while a written ``null`` is kept (kyaml merge2 keeps a null node only
    when its text is not empty).
    """
    token = _EMPTY_NULLS.set(frozenset((id(mapping), key) for mapping, key in empty))
    try:
        result = _walk(obj, clone(patch), schema)
    finally:
        _EMPTY_NULLS.reset(token)
    return result if isinstance(result, dict) else None


def _kind(value: Any) -> str | None:
    if value is _MISSING or value is None:
        return None
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "seq"
    return "scalar"


def _text(value: Any) -> str:
    """A scalar as YAML text, the way kyaml compares keys; "" for null, empty or non-scalar values."""
    if value is None or value is _MISSING or isinstance(value, dict | list):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _walk(dest: Any, origin: Any, schema: k8s_schema.ObjectSchema | None) -> Any:
    kinds = [kind for kind in (_kind(dest), _kind(origin)) if kind is not None]
    if len(set(kinds)) > 1:
        raise MergeError(f"the patch has a {kinds[1]} where the object has a {kinds[0]}")
    kind = kinds[0] if kinds else None
    if kind == "seq":
        if _associative(schema):
            return _walk_associative(dest, origin, schema)
        return _origin_or_dest(dest, origin)
    if kind == "scalar":
        return _origin_or_dest(dest, origin)
    return _walk_map(dest, origin, schema)


def _origin_or_dest(dest: Any, origin: Any) -> Any:
    if origin is not _MISSING:
        return _MISSING if origin is None else origin
    return dest


def _associative(schema: k8s_schema.ObjectSchema | None) -> bool:
    if schema is None or schema.list is None:
        return False
    return "merge" in (schema.list.patch_strategy or "").split(",")


def _map_directive(origin: dict[str, Any]) -> str | None:
    if _DIRECTIVE not in origin:
        return None
    value = origin[_DIRECTIVE]
    if value not in {"delete", "replace", "merge"}:
        raise MergeError(f"unknown patch strategy {value!r}")
    del origin[_DIRECTIVE]
    return str(value)


def _walk_map(dest: Any, origin: Any, schema: k8s_schema.ObjectSchema | None) -> Any:
    directive = _map_directive(origin) if isinstance(origin, dict) else None
    if dest is _MISSING or dest is None:
        if directive == "delete":
            return _MISSING
        if origin is _MISSING:
            return _KEEP_NULL  # the object's own null, untouched by the patch
        if not isinstance(origin, dict):
            return _MISSING  # a null in the patch for a field the object lacks
        target = origin
    else:
        if origin is None:
            return _MISSING
        if directive == "delete":
            return _MISSING
        target = origin if directive == "replace" else dest
    fields = origin if isinstance(origin, dict) else {}
    for key in sorted(set(target) | set(fields)):
        child = _walk(target.get(key, _MISSING), fields.get(key, _MISSING),
                      schema.field(key) if schema is not None else None)
        if child is _MISSING:
            target.pop(key, None)
        elif child is _KEEP_NULL:
            if (id(target), key) in _EMPTY_NULLS.get():
                target.pop(key, None)
            else:
                target[key] = None
        else:
            target[key] = child
    return target


# -- associative lists (kyaml walk/associative_sequence.go) ---------------------------------------

def _list_directive(origin: list[Any]) -> str | None:
    for element in origin:
        if isinstance(element, dict) and _DIRECTIVE in element:
            if len(element) > 1:
                return None  # an element's own directive, not the list's
            value = element[_DIRECTIVE]
            if value not in {"delete", "replace", "merge"}:
                raise MergeError(f"unknown patch strategy {value!r}")
            origin[:] = _element_setter(origin, None, [_DIRECTIVE], [str(value)])
            return str(value)
    return None


def _field_matches(element: Any, key: str, value: str) -> bool:
    """kyaml's FieldMatcher with StringValue: an empty value matches any present field."""
    if element is None:
        return False
    if key == "":
        return not isinstance(element, dict | list) and _text(element) == value
    if not isinstance(element, dict) or key not in element:
        return False
    return value == "" or _text(element[key]) == value


def _element_setter(items: list[Any], element: Any, keys: list[str], values: list[str]) -> list[Any]:
    """kyaml's ElementSetter: replace the element matching keys/values, append it, or (None) delete it."""
    keys = keys or [""]
    mapping_setter = keys[0] != ""
    result: list[Any] = []
    found = False
    for item in items:
        if item is None or item == {}:
            continue  # kyaml drops empty elements whenever it sets one
        if not isinstance(item, dict) and mapping_setter:
            result.append(item)
            continue
        matched = True
        last = True
        for index, key in enumerate(keys):
            if index < len(values):
                last = _field_matches(item, key, values[index])
            if not last:
                matched = False
                break
        if not matched or not values:
            if values:
                result.append(item)
            continue
        found = True
        if element is not None:
            result.append(element)
    if element is None:
        return result
    if not found:
        result.append(element)
    return result


def _find(items: list[Any] | None, keys: list[str], values: list[str]) -> Any:
    """kyaml's MatchElementList: the first element whose key fields equal the values."""
    if items is None:
        return _MISSING
    if not keys or keys[0] == "":
        wanted = values[0] if values else ""
        for item in items:
            if not isinstance(item, dict | list) and item is not None and _text(item) == wanted:
                return item
        return _MISSING
    for item in items:
        if not isinstance(item, dict):
            continue
        if all(key in item and _text(item[key]) == value for key, value in zip(keys, values, strict=False)):
            return item
    return _MISSING


def _validate_keys(all_values: list[tuple[str, ...]], values: tuple[str, ...],
                   keys: list[str]) -> tuple[list[str], list[str]]:
    valid = {keys[i] for tup in all_values for i, value in enumerate(tup) if value != ""}
    if not valid:
        return list(keys), list(values)
    return ([key for key in keys if key in valid],
            [value for index, value in enumerate(values) if value != "" or keys[index] in valid])


def _merge_values(all_values: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    result = list(all_values)
    for i in range(len(result)):
        for j in range(len(result)):
            merged = _match(result[i], result[j])
            if merged is not None:
                result[i] = merged
                result[j] = merged
    return result


def _match(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...] | None:
    if len(first) != len(second):
        return None
    common = False
    merged = []
    for a, b in zip(first, second, strict=True):
        if a == b:
            common = True
            merged.append(a)
            continue
        if a and b:
            return None
        merged.append(a or b)
    return tuple(merged) if common else None


def _key_values(items: list[Any], keys: list[str]) -> list[tuple[str, ...]]:
    return [tuple(_text(item.get(key)) if isinstance(item, dict) else "" for key in keys) for item in items]


def _walk_associative(dest: Any, origin: Any, schema: k8s_schema.ObjectSchema | None) -> Any:
    assert schema is not None and schema.list is not None
    if dest is _MISSING or dest is None:
        target = origin
    else:
        if origin is None:
            return _MISSING
        directive = _list_directive(origin) if isinstance(origin, list) else None
        if directive == "delete":
            return _MISSING
        target = origin if directive == "replace" else dest
    patch_items: list[Any] | None = origin if isinstance(origin, list) else None
    keys = list(schema.list.keys) if schema.list.patch_strategy else []
    item_schema = schema.items()
    all_values: list[tuple[str, ...]] = []
    seen: set[tuple[str, ...]] = set()
    if keys:
        # Prepend: the patch's elements first, then the object's.
        for source in (patch_items, target):
            for values in _key_values(source or [], keys):
                if values and values not in seen:
                    seen.add(values)
                    all_values.append(values)
    else:
        keys = [""]
        for source in (patch_items, target):
            for item in source or []:
                values = (_text(item),)
                if values not in seen:
                    seen.add(values)
                    all_values.append(values)
    return _set_elements(all_values, keys, target, patch_items, item_schema)


def _set_elements(all_values: list[tuple[str, ...]], keys: list[str], target: list[Any],
                  patch_items: list[Any] | None, item_schema: k8s_schema.ObjectSchema) -> Any:
    items: list[Any] = []
    if len(keys) > 1:
        all_values = _merge_values(all_values)
    valid_keys: list[str] = list(keys)
    valid_values: list[str] = []
    for values in all_values:
        if not values:
            continue
        valid_keys, valid_values = _validate_keys(all_values, values, keys)
        match_keys, match_values = _validate_keys([tuple(valid_values)], tuple(valid_values), valid_keys)
        merged = _walk(_find(target, match_keys, match_values), _find(patch_items, match_keys, match_values),
                       item_schema)
        if merged is _MISSING or merged is _KEEP_NULL or merged is None or merged == {}:
            if valid_keys:
                target = _element_setter(target, None, valid_keys, valid_values)
            continue
        if isinstance(merged, dict):
            for key, value in zip(valid_keys, valid_values, strict=False):
                if key not in merged and value != "":
                    # kyaml writes the key back as an untagged scalar: YAML reads "80" as a number.
                    merged[key] = int(value) if value.isdigit() else value
        items = _element_setter(items, merged, valid_keys, valid_values)
    if all_values:
        target = _append_list_node(items, target, valid_keys)
    return target


def _append_list_node(items: list[Any], source: list[Any], keys: list[str]) -> list[Any]:
    """kyaml's appendListNode(dst=items, src=the object's list), Prepend direction."""
    for element in source:
        if not keys or keys[0] == "":
            items = _element_setter(items, element, [""], [_text(element)])
            continue
        values = []
        for key in keys:
            if not isinstance(element, dict) or element.get(key) is None:
                items.append(element)
                continue
            values.append(_text(element[key]))
        if len(keys) > 1:
            items = _element_setter(items, None, keys, values)
        items = _element_setter(items, element, keys, values)
    return items
