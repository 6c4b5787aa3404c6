"""Protobuf request bodies (``application/vnd.kubernetes.protobuf``) decoded into the JSON form.

client-go's typed clients (``kubectl create namespace``, ``kubectl create configmap``, ``kubectl auth
can-i``) send protobuf. A body is the ``k8s\\x00`` magic and a ``runtime.Unknown`` envelope
(``typeMeta`` = 1 {apiVersion = 1, kind = 2}, ``raw`` = 2) around the kind's generated message.
Decoding needs each kind's field numbers (``generated.proto`` of ``k8s.io/api``), so only the kinds
kubectl's imperative commands and reviews write are known here; any other kind is refused with the
415 a server that does not accept protobuf for it answers, and the client can send JSON instead.

Pure: ``decode(raw) -> (apiVersion, kind, object)`` or :class:`UnknownKind`.
"""

from __future__ import annotations

import base64
from typing import Any

__all__ = ["MAGIC", "ProtobufError", "UnknownKind", "decode"]

MAGIC = b"k8s\x00"

Schema = dict[int, tuple[str, Any]]

_STR, _BYTES, _INT, _BOOL, _STRMAP, _BYTESMAP = "str", "bytes", "int", "bool", "strmap", "bytesmap"


class ProtobufError(ValueError):
    """The bytes are not a well-formed Kubernetes protobuf body."""


class UnknownKind(ProtobufError):
    """A well-formed body of a kind whose field numbers kubesim does not carry."""


_OWNER_REF: Schema = {1: ("kind", _STR), 3: ("name", _STR), 4: ("uid", _STR), 5: ("apiVersion", _STR),
                      6: ("controller", _BOOL), 7: ("blockOwnerDeletion", _BOOL)}
_OBJECT_META: Schema = {1: ("name", _STR), 2: ("generateName", _STR), 3: ("namespace", _STR),
                        6: ("resourceVersion", _STR), 11: ("labels", _STRMAP), 12: ("annotations", _STRMAP),
                        13: ("ownerReferences", [_OWNER_REF]), 14: ("finalizers", [_STR])}
_RESOURCE_ATTRS: Schema = {1: ("namespace", _STR), 2: ("verb", _STR), 3: ("group", _STR), 4: ("version", _STR),
                           5: ("resource", _STR), 6: ("subresource", _STR), 7: ("name", _STR)}
_NON_RESOURCE_ATTRS: Schema = {1: ("path", _STR), 2: ("verb", _STR)}
_OBJECT_REF: Schema = {1: ("kind", _STR), 2: ("namespace", _STR), 3: ("name", _STR), 4: ("uid", _STR),
                       5: ("apiVersion", _STR)}

#: (apiVersion, kind) → the message's schema (field number → (JSON name, type)).
KINDS: dict[tuple[str, str], Schema] = {
    ("v1", "Namespace"): {1: ("metadata", _OBJECT_META), 2: ("spec", {1: ("finalizers", [_STR])})},
    ("v1", "ConfigMap"): {1: ("metadata", _OBJECT_META), 2: ("data", _STRMAP), 3: ("binaryData", _BYTESMAP),
                          4: ("immutable", _BOOL)},
    ("v1", "Secret"): {1: ("metadata", _OBJECT_META), 2: ("data", _BYTESMAP), 3: ("type", _STR),
                       4: ("stringData", _STRMAP), 5: ("immutable", _BOOL)},
    ("v1", "ServiceAccount"): {1: ("metadata", _OBJECT_META), 4: ("automountServiceAccountToken", _BOOL)},
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): {
        1: ("metadata", _OBJECT_META),
        2: ("spec", {1: ("resourceAttributes", _RESOURCE_ATTRS), 2: ("nonResourceAttributes", _NON_RESOURCE_ATTRS)})},
    ("authorization.k8s.io/v1", "SubjectAccessReview"): {
        1: ("metadata", _OBJECT_META),
        2: ("spec", {1: ("resourceAttributes", _RESOURCE_ATTRS), 2: ("nonResourceAttributes", _NON_RESOURCE_ATTRS),
                     3: ("user", _STR), 4: ("groups", [_STR]), 6: ("uid", _STR)})},
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): {
        1: ("metadata", _OBJECT_META), 2: ("spec", {1: ("namespace", _STR)})},
    ("authentication.k8s.io/v1", "TokenRequest"): {
        1: ("metadata", _OBJECT_META),
        2: ("spec", {1: ("audiences", [_STR]), 3: ("boundObjectRef", _OBJECT_REF), 4: ("expirationSeconds", _INT)})},
    ("meta.k8s.io/v1", "DeleteOptions"): {
        1: ("gracePeriodSeconds", _INT), 2: ("preconditions", {1: ("uid", _STR), 2: ("resourceVersion", _STR)}),
        3: ("orphanDependents", _BOOL), 4: ("propagationPolicy", _STR), 5: ("dryRun", [_STR])},
    ("v1", "DeleteOptions"): {
        1: ("gracePeriodSeconds", _INT), 2: ("preconditions", {1: ("uid", _STR), 2: ("resourceVersion", _STR)}),
        3: ("orphanDependents", _BOOL), 4: ("propagationPolicy", _STR), 5: ("dryRun", [_STR])},
}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, varint value or length-delimited bytes) in wire order; fixed-width fields skipped."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("truncated field")
            out.append((number, data[pos:pos + length]))
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return out


def _scalar(kind: str, value: int | bytes) -> Any:
    if kind == _STR:
        if not isinstance(value, bytes):
            raise ProtobufError("expected a string")
        return value.decode("utf-8")
    if kind == _BYTES:
        if not isinstance(value, bytes):
            raise ProtobufError("expected bytes")
        return base64.b64encode(value).decode()
    if not isinstance(value, int):
        raise ProtobufError("expected a number")
    if kind == _BOOL:
        return bool(value)
    return value - (1 << 64) if value >= 1 << 63 else value  # int64 two's complement


def _message(data: bytes, schema: Schema) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, value in _fields(data):
        entry = schema.get(number)
        if entry is None:
            continue  # a field kubesim does not model (the real server would keep it; none matter here)
        name, kind = entry
        if kind in (_STRMAP, _BYTESMAP):
            if not isinstance(value, bytes):
                raise ProtobufError(f"{name}: expected a map entry")
            pair = _message(value, {1: ("key", _STR), 2: ("value", _STR if kind == _STRMAP else _BYTES)})
            out.setdefault(name, {})[pair.get("key", "")] = pair.get("value", "")
        elif isinstance(kind, list):
            item = kind[0]
            if isinstance(item, dict):
                if not isinstance(value, bytes):
                    raise ProtobufError(f"{name}: expected a message")
                out.setdefault(name, []).append(_message(value, item))
            else:
                out.setdefault(name, []).append(_scalar(item, value))
        elif isinstance(kind, dict):
            if not isinstance(value, bytes):
                raise ProtobufError(f"{name}: expected a message")
            out[name] = _message(value, kind)
        else:
            out[name] = _scalar(kind, value)
    return out


def decode(raw: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf body (``apiVersion`` and ``kind`` set from its envelope)."""
    if not raw.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    envelope = dict(_fields(raw[len(MAGIC):]))
    meta_bytes, body_bytes = envelope.get(1, b""), envelope.get(2, b"")
    if not isinstance(meta_bytes, bytes) or not isinstance(body_bytes, bytes):
        raise ProtobufError("the runtime.Unknown envelope is malformed")
    type_meta = _message(meta_bytes, {1: ("apiVersion", _STR), 2: ("kind", _STR)})
    api_version, kind = str(type_meta.get("apiVersion", "")), str(type_meta.get("kind", ""))
    schema = KINDS.get((api_version, kind))
    if schema is None:
        raise UnknownKind(f"{api_version}/{kind}")
    body = _message(body_bytes, schema)
    return {"apiVersion": api_version, "kind": kind, **body}
