"""Unknown fields of built-in kinds, handled as the API server's ``fieldValidation`` says.

``Ignore`` drops them silently, ``Warn`` (the server default) drops them and answers with a
``Warning`` header per field, ``Strict`` refuses the write with 400 ``strict decoding error``.
Dropping matters beyond validation: a manifest with a misspelt field never shows that field on
the live object, so a naive drift check keeps seeing a difference, as on a real cluster.

Pure: walks an object against its ``protos.k8s_schema`` schema.
"""

from __future__ import annotations

import contextvars
from typing import Any

from kubesim import errors
from protos.k8s_schema import ObjectSchema

__all__ = ["MODES", "REQUEST", "check", "drop_unknown", "warning_header"]

MODES = ("Ignore", "Warn", "Strict")

#: The current request's ``(fieldValidation mode, warnings to send)``, set by the HTTP edge;
#: unset for the simulated controllers, whose writes are never checked.
REQUEST: contextvars.ContextVar[tuple[str, list[str]] | None] = contextvars.ContextVar(
    "kubesim_field_validation", default=None)


def check(obj: dict[str, Any], schema: ObjectSchema) -> None:
    """Apply the current request's field validation to ``obj`` (a no-op outside a request)."""
    current = REQUEST.get()
    if current is not None:
        drop_unknown(obj, schema, mode=current[0], warnings=current[1])


def drop_unknown(obj: dict[str, Any], schema: ObjectSchema, *, mode: str, warnings: list[str]) -> None:
    """Remove fields the schema does not declare; ``Strict`` raises, ``Warn`` appends to ``warnings``."""
    if mode not in MODES:
        raise errors.bad_request(f'fieldValidation must be one of "Ignore", "Warn", "Strict", not "{mode}"')
    found: list[str] = []
    _walk(obj, schema, "", found, top=True)
    if not found:
        return
    if mode == "Strict":
        raise errors.bad_request("strict decoding error: " + ", ".join(f'unknown field "{p}"' for p in found))
    if mode == "Warn":
        warnings.extend(f'unknown field "{p}"' for p in found)


def _walk(value: Any, schema: ObjectSchema, path: str, found: list[str], *, top: bool = False) -> None:
    if isinstance(value, dict) and schema.is_struct:
        for key in list(value):
            if key in ("apiVersion", "kind") and top:
                continue
            child = f"{path}.{key}" if path else key
            if not schema.has_field(key):
                found.append(child)
                del value[key]
                continue
            _walk(value[key], schema.field(key), child, found)
    elif isinstance(value, dict) and schema.is_map_of_values:
        for key, item in value.items():
            _walk(item, schema.field(key), f"{path}[{key}]", found)
    elif isinstance(value, list) and schema.is_list:
        items = schema.items()
        for index, item in enumerate(value):
            _walk(item, items, f"{path}[{index}]", found)


def warning_header(message: str) -> str:
    """One ``Warning`` header value (RFC 7234 format the API server uses)."""
    escaped = message.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{escaped}"'
