"""Structural schemas: custom resources pruned, defaulted and type-checked against their CRD's schema.

As the apiextensions server treats a version's ``openAPIV3Schema``: unknown fields are dropped unless
``x-kubernetes-preserve-unknown-fields`` says to keep them, ``default`` values fill what is absent,
and ``type``, ``required``, ``enum``, ``nullable`` and ``x-kubernetes-int-or-string`` are checked,
each violation a cause with the field's path. Pure: the schema comes with the resource type.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from kubesim.resources import ResourceType

__all__ = ["prune_and_default", "validate_custom"]

Obj = dict[str, Any]
Cause = tuple[str, str, str]

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
                           f'Invalid value: "null": {path} in body must be of type '
                           f'{schema.get("type", "object")}: "null"'))
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
