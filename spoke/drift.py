"""Drift: which fields Convoy manages differ between the desired manifest and the live object.

Pure: plain dicts in, :class:`FieldDiff` values out; the caller fetches and watches.

What counts as drift: only fields the desired manifest sets — exactly the fields Convoy's
server-side apply owns. Defaults the API server fills in, status, and fields other managers added
are not drift. The walk follows the merge semantics of each list, from
``protos.k8s_schema.schema_for`` for built-in kinds and, for custom resources whose CRD schema the
caller does not pass, from the keys in Convoy's own ``managedFields`` entry on the live object
(the ``k:{...}`` elements name the list's keys, so no schema is needed):

* keyed lists (``containers`` by ``name``) match items by key, whatever their position; an item
  only the live object has belongs to someone else;
* sets (``finalizers``) need each desired member present;
* atomic lists need the same length, then compare item by item (fields the manifest does not set
  inside an item are defaults, not drift).

Paths use server-side apply's syntax (structured-merge-diff ``fieldpath``):
``.spec.template.spec.containers[name="web"].image``, ``.metadata.finalizers[="x"]``, ``.args[0]``.
Values are JSON text; a field missing on one side is :data:`ABSENT`. Secret ``data`` and
``stringData`` values never leave this module: both sides read :data:`REDACTED`.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from protos import k8s_schema
from protos.objects import group_of

__all__ = ["ABSENT", "REDACTED", "FieldDiff", "FieldSet", "changed_by", "diff", "managed_paths"]

ABSENT = "<absent>"
REDACTED = "<redacted>"

#: Top-level and metadata fields no manager owns (SMD ``stripmeta.go``), plus status.
_TOP_SKIP = frozenset({"apiVersion", "kind", "status"})
_META_SKIP = frozenset({"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                        "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"})
#: Maps whose values are resource quantities, which the API server re-serialises ("0.5" -> "500m").
_QUANTITY_MAPS = frozenset({"limits", "requests", "hard", "capacity", "allocatable"})
_MISSING = object()


@dataclasses.dataclass(frozen=True, slots=True)
class FieldDiff:
    """One managed field whose live value differs from the desired one."""

    path: str     #: SSA path, e.g. ``.spec.replicas``
    desired: str  #: JSON text, :data:`ABSENT` or :data:`REDACTED`
    live: str     #: JSON text, :data:`ABSENT` or :data:`REDACTED`

    def __str__(self) -> str:
        return f"{self.path}: desired {self.desired}, live {self.live}"


@dataclasses.dataclass(frozen=True, slots=True)
class FieldSet:
    """A manager's field set: the ``fieldsV1`` trie (``f:``, ``k:``, ``v:``, ``i:`` and ``"."``)."""

    tree: Mapping[str, Any]

    def child(self, element: str) -> FieldSet | None:
        node = self.tree.get(element)
        return FieldSet(node) if isinstance(node, Mapping) else None

    def list_keys(self) -> tuple[str, ...] | None:
        """The key field names of a keyed list, from its first ``k:`` element (None if it has none)."""
        for element in self.tree:
            if element.startswith("k:"):
                try:
                    keys = json.loads(element[2:])
                except ValueError:
                    return None
                if isinstance(keys, dict) and keys:
                    return tuple(keys)
        return None

    def paths(self) -> list[str]:
        """Every owned leaf (and ``"."``-marked node) as an SSA path, in trie order."""
        return list(_trie_paths(self.tree, ""))

    def __bool__(self) -> bool:
        return bool(self.tree)


def _trie_paths(tree: Mapping[str, Any], prefix: str) -> Iterator[str]:
    for element, sub in tree.items():
        if element == ".":
            continue
        path = prefix + _element_text(element)
        if not isinstance(sub, Mapping) or not sub or "." in sub:
            yield path
        if isinstance(sub, Mapping):
            yield from _trie_paths(sub, path)


def _element_text(element: str) -> str:
    kind, _, body = element.partition(":")
    if kind == "f":
        return "." + body
    if kind == "i":
        return f"[{body}]"
    if kind == "v":
        return f"[={body}]"
    if kind == "k":
        try:
            keys = json.loads(body)
        except ValueError:
            return f"[{body}]"
        return "[" + ",".join(f"{k}={_json(v)}" for k, v in keys.items()) + "]"
    return element


def managed_paths(managed_fields: Sequence[Mapping[str, Any]] | None, *, manager: str = "convoy") -> FieldSet:
    """The fields ``manager`` owns by server-side apply (its ``Apply`` entries' ``fieldsV1``, merged)."""
    merged: dict[str, Any] = {}
    for entry in managed_fields or ():
        if entry.get("manager") != manager or entry.get("operation") != "Apply":
            continue
        if entry.get("subresource"):
            continue
        fields = entry.get("fieldsV1")
        if isinstance(fields, Mapping):
            _merge_trie(merged, fields)
    return FieldSet(merged)


def changed_by(managed_fields: Sequence[Mapping[str, Any]] | None, fields: Sequence[FieldDiff], *,
               manager: str = "convoy") -> tuple[str, ...]:
    """The field managers other than ``manager`` that own a drifted field (or a field inside or
    around it), most recent first: who made the change.

    The API server hands a field to whoever last updated it (an ``Update`` takes it from the
    applier; a forced apply takes it too), so the owner of a drifted field is its changer.
    ``status`` subresource writers (controllers) never own spec fields and are left out; the ``scale``
    subresource (``kubectl scale``) is not. Empty when nobody else owns any of them.
    """
    latest: dict[str, str] = {}
    for entry in managed_fields or ():
        name = entry.get("manager")
        if not isinstance(name, str) or not name or entry.get("subresource") == "status":
            continue
        if name == manager and entry.get("operation") == "Apply":
            continue
        tree = entry.get("fieldsV1")
        if not isinstance(tree, Mapping):
            continue
        owned = FieldSet(tree).paths()
        if any(_related(path, f.path) for path in owned for f in fields):
            when = str(entry.get("time") or "")
            latest[name] = max(latest.get(name, ""), when)
    return tuple(sorted(latest, key=lambda n: (latest[n], n), reverse=True))


def _related(a: str, b: str) -> bool:
    """One SSA path is the other, or lies inside it."""
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    return long == short or (long.startswith(short) and long[len(short)] in ".[")


def _merge_trie(into: dict[str, Any], tree: Mapping[str, Any]) -> None:
    for key, sub in tree.items():
        if isinstance(sub, Mapping):
            _merge_trie(into.setdefault(key, {}), sub)
        else:
            into.setdefault(key, {})


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


_QUANTITY = re.compile(r"([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?")
_SUFFIX: dict[str, Decimal | int] = {"": 1, "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
           "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "Ki": 2**10, "Mi": 2**20,
           "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


def _quantity(value: Any) -> Decimal | None:
    # Hand-written: no maintained Python package parses Kubernetes quantities, and this needs
    # only equality, not the canonical form.
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    if not isinstance(value, str):
        return None
    match = _QUANTITY.fullmatch(value.strip())
    if match is None:
        return None
    try:
        return Decimal(match.group(1)) * Decimal(_SUFFIX[match.group(2) or ""])
    except InvalidOperation:
        return None


class _Walker:
    def __init__(self, *, secret: bool) -> None:
        self.secret = secret
        self.out: list[FieldDiff] = []

    def report(self, path: str, desired: Any, live: Any, *, redact: bool = False) -> None:
        d = REDACTED if redact else _json(desired)
        lv = ABSENT if live is _MISSING else REDACTED if redact else _json(live)
        self.out.append(FieldDiff(path, d, lv))

    def value(self, path: str, desired: Any, live: Any, schema: k8s_schema.ObjectSchema,
              owned: FieldSet | None, *, parent_key: str = "", redact: bool = False) -> None:
        if desired is None:
            return  # null in an apply body owns nothing
        if isinstance(desired, Mapping):
            self.mapping(path, desired, live, schema, owned, redact=redact)
        elif isinstance(desired, list):
            self.sequence(path, desired, live, schema, owned)
        elif not _scalars_equal(desired, live, quantity=parent_key in _QUANTITY_MAPS):
            self.report(path, desired, live, redact=redact)

    def mapping(self, path: str, desired: Mapping[str, Any], live: Any, schema: k8s_schema.ObjectSchema,
                owned: FieldSet | None, *, redact: bool) -> None:
        if live is not _MISSING and not isinstance(live, Mapping):
            self.report(path, desired, live, redact=redact)
            return
        if not desired:
            if live is _MISSING:
                self.report(path, desired, live)
            return
        live_map: Mapping[str, Any] = live if isinstance(live, Mapping) else {}
        key_name = path.rpartition(".")[2]
        for key, sub in desired.items():
            if path == "" and key in _TOP_SKIP:
                continue
            if path == ".metadata" and key in _META_SKIP:
                continue
            child_owned = owned.child(f"f:{key}") if owned is not None else None
            self.value(f"{path}.{key}", sub, live_map.get(key, _MISSING), schema.field(key), child_owned,
                       parent_key=key_name,
                       redact=redact or (self.secret and path in {".data", ".stringData"}))

    def sequence(self, path: str, desired: list[Any], live: Any, schema: k8s_schema.ObjectSchema,
                 owned: FieldSet | None) -> None:
        if live is _MISSING or not isinstance(live, list):
            self.report(path, desired, live)
            return
        semantics = schema.list_or_atomic
        keys: tuple[str, ...] = semantics.keys if semantics.type == "map" else ()
        if semantics.type == "atomic" and owned is not None:
            keys = owned.list_keys() or ()  # a custom resource's keyed list, learnt from managedFields
        if keys and all(isinstance(item, Mapping) for item in desired):
            self.keyed(path, desired, live, keys, schema.items(), owned)
        elif semantics.type == "set":
            for member in desired:
                if not any(_scalars_equal(member, m) for m in live):
                    self.report(f"{path}[={_json(member)}]", member, _MISSING)
        elif len(desired) != len(live):
            self.report(path, desired, live)
        else:
            for i, (d, lv) in enumerate(zip(desired, live, strict=True)):
                child_owned = owned.child(f"i:{i}") if owned is not None else None
                self.value(f"{path}[{i}]", d, lv, schema.items(), child_owned)

    def keyed(self, path: str, desired: list[Any], live: list[Any], keys: tuple[str, ...],
              items: k8s_schema.ObjectSchema, owned: FieldSet | None) -> None:
        for item in desired:
            # Keys the manifest leaves out (protocol: TCP) are server defaults; match on the rest.
            given = {k: item[k] for k in keys if k in item}
            element = "[" + ",".join(f"{k}={_json(v)}" for k, v in given.items()) + "]"
            match = next((lv for lv in live if isinstance(lv, Mapping)
                          and all(_scalars_equal(v, lv.get(k, _MISSING)) for k, v in given.items())), _MISSING)
            if match is _MISSING:
                self.report(path + element, item, match)  # the whole item is gone, not field by field
                continue
            child_owned = None
            if owned is not None:
                child_owned = next((owned.child(e) for e in owned.tree if e.startswith("k:")
                                    and _key_matches(e, given)), None)
            self.value(path + element, item, match, items, child_owned)


def _key_matches(element: str, given: Mapping[str, Any]) -> bool:
    try:
        keys = json.loads(element[2:])
    except ValueError:
        return False
    return isinstance(keys, dict) and all(keys.get(k) == v for k, v in given.items())


def _scalars_equal(desired: Any, live: Any, *, quantity: bool = False) -> bool:
    if live is _MISSING:
        return False
    if isinstance(desired, bool) or isinstance(live, bool):
        return isinstance(desired, bool) and isinstance(live, bool) and desired == live
    if desired == live:
        return True
    if quantity:
        dq, lq = _quantity(desired), _quantity(live)
        return dq is not None and dq == lq
    return False


def _secret_as_data(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A Secret with ``stringData`` folded into ``data``, as the API server stores it."""
    out = dict(obj)
    string_data = out.pop("stringData", None)
    if isinstance(string_data, Mapping) and string_data:
        data = dict(out.get("data") or {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode("utf-8")).decode("ascii")
        out["data"] = data
    return out


def diff(desired: Mapping[str, Any], live: Mapping[str, Any], *, manager: str = "convoy",
         crd_schema: Mapping[str, Any] | None = None) -> list[FieldDiff]:
    """The managed fields whose live value differs from ``desired``, in manifest order.

    ``desired`` is the manifest as applied (after the spoke stamped its labels); ``live`` the whole
    live object, including ``metadata.managedFields``. ``crd_schema`` (the ``openAPIV3Schema`` of a
    custom resource's served version) makes its keyed lists match by key; without it the keys come
    from ``manager``'s managed fields, or the list is compared position by position.
    """
    group = group_of(str(desired.get("apiVersion", "")))
    kind = str(desired.get("kind", ""))
    schema = k8s_schema.schema_for(group, kind, crd_schema=crd_schema)
    secret = group == "" and kind == "Secret"
    if secret:
        desired, live = _secret_as_data(desired), _secret_as_data(live)
    owned = managed_paths((live.get("metadata") or {}).get("managedFields"), manager=manager)
    walker = _Walker(secret=secret)
    walker.mapping("", desired, live, schema, owned if owned else None, redact=False)
    return walker.out
