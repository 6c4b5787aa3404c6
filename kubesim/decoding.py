"""Type errors the API server hits while decoding a body into its Go types (400 BadRequest).

Not the whole schema -- only the mistakes manifests commonly carry: non-string values in labels,
annotations and ConfigMap/Secret maps, and Secret ``data`` that is not base64. Messages follow
``encoding/json`` as the API server wraps them: ``ConfigMap in version "v1" cannot be handled as a
ConfigMap: json: cannot unmarshal number into Go struct field ConfigMap.data of type string``.

Pure: ``check(group, version, kind, obj)`` raises :class:`kubesim.errors.ApiError`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from kubesim import errors

__all__ = ["check"]


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def _fail(version: str, kind: str, detail: str) -> errors.ApiError:
    return errors.bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: {detail}')


def _strings(value: Any, field: str, version: str, kind: str) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise _fail(version, kind, f"json: cannot unmarshal {_json_type(value)} into Go struct field {field} of "
                                   "type map[string]string")
    for item in value.values():
        if not isinstance(item, str):
            raise _fail(version, kind, f"json: cannot unmarshal {_json_type(item)} into Go struct field {field} "
                                       "of type string")


def check(group: str, version: str, kind: str, obj: Mapping[str, Any]) -> None:
    meta = obj.get("metadata") or {}
    for name in ("labels", "annotations"):
        _strings(meta.get(name), f"ObjectMeta.metadata.{name}", version, kind)
    if group != "":
        return
    if kind == "ConfigMap":
        _strings(obj.get("data"), "ConfigMap.data", version, kind)
    if kind in ("ConfigMap", "Secret"):
        binary_field = "binaryData" if kind == "ConfigMap" else "data"
        values = obj.get(binary_field)
        _strings(values, f"{kind}.{binary_field}", version, kind)
        for item in (values or {}).values():
            try:
                base64.b64decode(item, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise _fail(version, kind, f"illegal base64 data at input byte {_bad_byte(item)}") from exc
    if kind == "Secret":
        _strings(obj.get("stringData"), "Secret.stringData", version, kind)


def _bad_byte(text: str) -> int:
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
    for index, char in enumerate(text):
        if char not in alphabet:
            return index
    return len(text) - len(text) % 4 if len(text) % 4 else len(text)
