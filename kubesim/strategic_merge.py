"""Strategic merge patch, as the Kubernetes API server and ``kubectl patch`` apply it.

A port of the apply half of apimachinery ``pkg/util/strategicpatch`` (v0.36, ``MergeOptions``
``MergeParallelList`` and ``IgnoreUnmatchedNulls`` on, as the API server and kubectl use them),
hand-written because no Python library implements it. Semantics:

* maps merge key by key; ``null`` deletes a key; a value of another type replaces;
* a list whose field has ``patchStrategy: merge`` merges -- maps by ``patchMergeKey``, scalars
  as a de-duplicated union -- and any other list is replaced by the patch's list;
* directives: ``$patch: replace | delete`` in a map (``merge`` is only legal inside lists and
  is rejected there too, as upstream does), list items ``{"<key>": v, "$patch": "delete"}``
  and ``{"$patch": "replace"}``, ``$retainKeys``, ``$deleteFromPrimitiveList/<field>`` and
  ``$setElementOrder/<field>``;
* order of a merged list: the patch's items in the patch's (or ``$setElementOrder``'s) order,
  interleaved with the live-only items by their live order -- so a new item that the live
  object does not know comes *first* (checked against ``kubectl patch --local``);
* a value the original lacks is taken from the patch with its nulls and ``$patch`` items
  removed.

The original and the patch are never modified; :func:`apply_patch` returns a new object.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from protos.k8s_schema import ObjectSchema

__all__ = ["StrategicMergeError", "apply_patch"]

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"
_SET_ELEMENT_ORDER = "$setElementOrder"
_REPLACE, _MERGE, _DELETE = "replace", "merge", "delete"


class StrategicMergeError(ValueError):
    """The patch is not a valid strategic merge patch for this object (the API server's 400/422)."""


def apply_patch(
    original: dict[str, Any], patch: dict[str, Any], *, schema: ObjectSchema, strip_directives: bool = False
) -> dict[str, Any]:
    """Apply ``patch`` to ``original`` by the strategic-merge rules of ``schema``; returns a new dict.

    Like ``kubectl patch --local`` (and kustomize), directives the merge did not consume -- a
    ``$retainKeys`` in an item the original lacked, say -- stay in the result. The API server
    decodes the result into its typed object, which drops them: ``strip_directives=True``
    does the same.
    """
    if not isinstance(patch, dict):
        raise StrategicMergeError(f"a strategic merge patch must be a JSON object, not {_json(patch)}")
    merged = _merge_map(copy.deepcopy(original), copy.deepcopy(patch), schema)
    if strip_directives:
        _strip_directives(merged)
    return merged


def _strip_directives(value: Any) -> None:
    if isinstance(value, dict):
        for key in [key for key in value if _is_directive_key(key)]:
            del value[key]
        for child in value.values():
            _strip_directives(child)
    elif isinstance(value, list):
        for item in value:
            _strip_directives(item)


def _is_directive_key(key: str) -> bool:
    return key in (_DIRECTIVE, _RETAIN_KEYS) or key.startswith(
        (_SET_ELEMENT_ORDER + "/", _DELETE_FROM_PRIMITIVE_LIST + "/")
    )


# -- maps ---------------------------------------------------------------------------------------


def _merge_map(original: dict[str, Any] | None, patch: dict[str, Any], schema: ObjectSchema) -> dict[str, Any]:
    if _DIRECTIVE in patch:
        directive = patch[_DIRECTIVE]
        if directive == _REPLACE:
            del patch[_DIRECTIVE]
            return patch
        if directive == _DELETE:
            return {}
        raise StrategicMergeError(f"unknown patch type: {directive} in map: {_json(patch)}")
    if original is None:
        original = {}
    _apply_retain_keys(original, patch)
    _merge_ordered_lists(original, patch, schema)

    for raw_key, patch_value in list(patch.items()):
        key = raw_key
        is_delete_list = False
        if raw_key.startswith(_DELETE_FROM_PRIMITIVE_LIST + "/") or raw_key == _DELETE_FROM_PRIMITIVE_LIST:
            key = _strip_prefix(raw_key, _DELETE_FROM_PRIMITIVE_LIST, "invalid patch format of primitive list")
            is_delete_list = True

        if patch_value is None:
            original.pop(key, None)
            continue

        if key not in original or _kind(original[key]) != _kind(patch_value):
            if not is_delete_list:
                _discard_nulls(patch_value)
                cleaned, keep = _remove_directives(patch_value)
                if keep:
                    original[key] = cleaned
                else:
                    original.pop(key, None)
            continue

        child = schema.field(key)
        current = original[key]
        if isinstance(current, dict):
            strategy = _strategy_without_retain_keys(child.patch_strategy)
            original[key] = patch_value if strategy == _REPLACE else _merge_map(current, patch_value, child)
        elif isinstance(current, list):
            list_schema = child.list_or_atomic
            strategy = _strategy_without_retain_keys(list_schema.patch_strategy)
            original[key] = _merge_list_handler(
                current, patch_value, child, strategy, list_schema.patch_merge_key or "", is_delete_list
            )
        else:
            cleaned, keep = _remove_directives(patch_value)
            if keep:
                original[key] = cleaned
            else:
                original.pop(key, None)
    return original


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    if _RETAIN_KEYS not in patch:
        return
    retain = patch.pop(_RETAIN_KEYS)
    if not isinstance(retain, list):
        raise StrategicMergeError("invalid patch format of retainKeys")
    allowed = {json.dumps(item) for item in retain}
    for key, value in patch.items():
        if value is None or key.startswith((_DELETE_FROM_PRIMITIVE_LIST, _SET_ELEMENT_ORDER)):
            continue
        if json.dumps(key) not in allowed:
            raise StrategicMergeError(
                f"invalid patch format of retainKeys: {key!r} is in the patch but not in $retainKeys"
            )
    for key in list(original):
        if json.dumps(key) not in allowed:
            del original[key]


def _merge_ordered_lists(original: dict[str, Any], patch: dict[str, Any], schema: ObjectSchema) -> None:
    """Process ``$setElementOrder/<field>`` together with ``<field>`` and drop both from the patch."""
    for directive_key in [key for key in patch if key.startswith(_SET_ELEMENT_ORDER)]:
        order = patch.pop(directive_key)
        if not isinstance(order, list):
            raise StrategicMergeError("invalid patch format of setElementOrder list")
        key = _strip_prefix(directive_key, _SET_ELEMENT_ORDER, "invalid patch format of setElementOrder list")
        found_original, found_patch = key in original, key in patch
        original_list = original.get(key) if found_original else []
        patch_list = patch.get(key) if found_patch else []
        if not isinstance(original_list, list) or not isinstance(patch_list, list):
            raise StrategicMergeError(f"{key}: $setElementOrder applies to a list, but the field is not one")
        child = schema.field(key)
        list_schema = child.list_or_atomic
        merge_key = list_schema.patch_merge_key or ""
        _validate_set_order(patch_list, order, merge_key)

        if found_original and not found_patch:
            merged = original_list
        elif found_patch and not found_original:
            merged, _ = _remove_directives(patch_list)
        elif found_original and found_patch:
            strategy = _strategy_without_retain_keys(list_schema.patch_strategy)
            merged = _merge_list_handler(original_list, patch_list, child, strategy, merge_key, False)
        else:
            continue
        in_order, server_only = _partition(merged, order, merge_key)
        original[key] = _normalize_order(in_order, server_only, order, original_list, merge_key)
        patch.pop(key, None)


def _validate_set_order(patch_list: list[Any], order: list[Any], merge_key: str) -> None:
    if not order or not patch_list:
        return
    items = [item for item in patch_list if not _is_delete_item(item)] if merge_key else patch_list
    patch_index = order_index = 0
    while patch_index < len(items) and order_index < len(order):
        if isinstance(items[patch_index], dict) and _DIRECTIVE in items[patch_index]:
            patch_index += 1
            continue
        if _key_equal(items[patch_index], order[order_index], merge_key):
            patch_index += 1
        order_index += 1
    if patch_index < len(items) and order_index >= len(order):
        raise StrategicMergeError(
            f"the order in patch list:\n{_json(patch_list)}\n doesn't match {_SET_ELEMENT_ORDER} list:\n{_json(order)}"
        )


# -- lists --------------------------------------------------------------------------------------


def _merge_list_handler(
    original: list[Any],
    patch: list[Any],
    schema: ObjectSchema,
    strategy: str,
    merge_key: str,
    is_delete_list: bool,
) -> list[Any]:
    # Deletion lists are handled the same way whatever the field's strategy is.
    if strategy == _MERGE or is_delete_list:
        return _merge_list(original, patch, schema, merge_key, is_delete_list)
    return patch


def _merge_list(
    original: list[Any], patch: list[Any], schema: ObjectSchema, merge_key: str, is_delete_list: bool
) -> list[Any]:
    if not original and not patch:
        return original
    element_kind = _element_kind(original, patch)
    if element_kind != "map":
        if is_delete_list:
            return [item for item in original if not any(_same(item, gone) for gone in patch)]
        merged = _deduplicate([*original, *patch])
    else:
        if not merge_key:
            raise StrategicMergeError(f"cannot merge lists without merge key for {schema.name or 'this field'}")
        original, patch = _apply_list_directives(original, patch, merge_key)
        merged = _merge_keyed_items(original, patch, schema.items(), merge_key)
    in_patch, server_only = _partition(merged, patch, merge_key)
    return _normalize_order(in_patch, server_only, patch, original, merge_key)


def _apply_list_directives(
    original: list[Any], patch: list[Any], merge_key: str
) -> tuple[list[Any], list[Any]]:
    """Handle ``$patch`` items: deletions by merge key, and ``replace`` of the whole list."""
    plain: list[Any] = []
    replace = False
    for item in patch:
        if _DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[_DIRECTIVE]
        if directive == _DELETE:
            if merge_key not in item:
                raise StrategicMergeError(f"map: {_json(item)} does not contain declared merge key: {merge_key}")
            original = [entry for entry in original if not _key_matches(entry, merge_key, item[merge_key])]
        elif directive == _REPLACE:
            replace = True  # keep going: other $patch items are dropped with it
        elif directive == _MERGE:
            raise StrategicMergeError("merging lists cannot yet be specified in the patch")
        else:
            raise StrategicMergeError(f"unknown patch type: {directive} in map: {_json(item)}")
    if replace:
        return plain, []
    return original, plain


def _merge_keyed_items(
    original: list[Any], patch: list[Any], item_schema: ObjectSchema, merge_key: str
) -> list[Any]:
    merged = list(original)
    for item in patch:
        if merge_key not in item:
            raise StrategicMergeError(f"map: {_json(item)} does not contain declared merge key: {merge_key}")
        for index, entry in enumerate(merged):
            if not isinstance(entry, dict):
                raise StrategicMergeError(f"value for key {index} is not a map")
            if _key_matches(entry, merge_key, item[merge_key]):
                merged[index] = _merge_map(entry, item, item_schema)
                break
        else:
            merged.append(item)
    return merged


def _partition(items: list[Any], by: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    """Split ``items`` into those present in ``by`` and the rest (by merge key for maps)."""
    inside: list[Any] = []
    outside: list[Any] = []
    for item in items:
        if merge_key:
            if not isinstance(item, dict) or merge_key not in item:
                raise StrategicMergeError(f"map: {_json(item)} does not contain declared merge key: {merge_key}")
            present = any(_key_matches(other, merge_key, item[merge_key]) for other in by if isinstance(other, dict))
        else:
            present = any(_same(item, other) for other in by)
        (inside if present else outside).append(item)
    return inside, outside


def _normalize_order(
    in_patch: list[Any], server_only: list[Any], patch_order: list[Any], server_order: list[Any], merge_key: str
) -> list[Any]:
    """Patch items in patch order, live-only items in live order, interleaved by live order."""
    in_patch = _sort_by(in_patch, patch_order, merge_key)
    server_only = _sort_by(server_only, server_order, merge_key)

    def position(item: Any) -> int:
        return _index(server_order, item, merge_key)

    result: list[Any] = []
    left = right = 0
    while left < len(server_only) and right < len(in_patch):
        live_position, patch_position = position(server_only[left]), position(in_patch[right])
        if live_position >= 0 and patch_position >= 0 and live_position < patch_position:
            result.append(server_only[left])
            left += 1
        else:
            result.append(in_patch[right])
            right += 1
    return [*result, *server_only[left:], *in_patch[right:]]


def _sort_by(items: list[Any], order: list[Any], merge_key: str) -> list[Any]:
    deletions: list[Any] = []
    if merge_key:
        for item in [*items, *order]:
            if not isinstance(item, dict) or merge_key not in item:
                raise StrategicMergeError(f"map: {_json(item)} does not contain declared merge key: {merge_key}")
        deletions = [item for item in items if _is_delete_item(item)]
        items = [item for item in items if not _is_delete_item(item)]
    # Every item is found in `order` on the paths that reach here; a stable sort keeps ties.
    ranked = sorted(enumerate(items), key=lambda pair: (_index(order, pair[1], merge_key), pair[0]))
    return [item for _, item in ranked] + deletions


def _index(items: list[Any], wanted: Any, merge_key: str) -> int:
    probe = _merge_value(wanted, merge_key)
    for index, item in enumerate(items):
        if _same(_merge_value(item, merge_key), probe):
            return index
    return -1


def _merge_value(item: Any, merge_key: str) -> Any:
    if not merge_key:
        return item
    return item.get(merge_key) if isinstance(item, dict) else None


# -- helpers ------------------------------------------------------------------------------------


def _remove_directives(value: Any) -> tuple[Any, bool]:
    """The value to keep for a patch value the original lacks, and whether to keep it at all."""
    if isinstance(value, dict):
        if _DIRECTIVE in value:
            return None, False
        for key in list(value):
            cleaned, keep = _remove_directives(value[key])
            if keep:
                value[key] = cleaned
            else:
                del value[key]
        return value, True
    if isinstance(value, list):
        kept = []
        for item in value:
            cleaned, keep = _remove_directives(item)
            if keep:
                kept.append(cleaned)
        return kept, True
    return value, True


def _discard_nulls(value: Any) -> None:
    if isinstance(value, dict):
        for key in list(value):
            if value[key] is None:
                del value[key]
            else:
                _discard_nulls(value[key])
    elif isinstance(value, list):
        for item in value:
            _discard_nulls(item)


def _strip_prefix(key: str, prefix: str, message: str) -> str:
    head, sep, rest = key.partition("/")
    if not sep or head != prefix:
        raise StrategicMergeError(message)
    return rest


def _strategy_without_retain_keys(patch_strategy: str | None) -> str:
    parts = [part for part in (patch_strategy or "").split(",") if part]
    others = [part for part in parts if part != "retainKeys"]
    if len(parts) > 2 or len(others) > 1:
        raise StrategicMergeError(f"unexpected patch strategy: {patch_strategy}")
    return others[0] if others else ""


def _kind(value: Any) -> str:
    """Go's notion of 'same type' for decoded JSON: map, list, string, number, bool, null."""
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "list"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if value is None:
        return "null"
    return type(value).__name__


def _element_kind(*lists: list[Any]) -> str:
    kind = ""
    for items in lists:
        for item in items:
            current = _kind(item)
            if current == "list":
                raise StrategicMergeError("lists of lists are not supported")
            if kind and current != kind:
                raise StrategicMergeError(f"list element types are not identical: {_json(list(lists))}")
            kind = current
    return kind


def _same(left: Any, right: Any) -> bool:
    return _kind(left) == _kind(right) and left == right


def _key_matches(item: Any, merge_key: str, value: Any) -> bool:
    return isinstance(item, dict) and merge_key in item and _same(item[merge_key], value)


def _key_equal(left: Any, right: Any, merge_key: str) -> bool:
    if not merge_key:
        return _same(left, right)
    for side in (left, right):
        if not isinstance(side, dict) or merge_key not in side:
            raise StrategicMergeError(f"map: {_json(side)} does not contain declared merge key: {merge_key}")
    return _same(left[merge_key], right[merge_key])


def _is_delete_item(item: Any) -> bool:
    return isinstance(item, dict) and item.get(_DIRECTIVE) == _DELETE


def _deduplicate(items: list[Any]) -> list[Any]:
    unique: list[Any] = []
    for item in items:
        if not any(_same(item, seen) for seen in unique):
            unique.append(item)
    return unique


def _json(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return repr(value)
