"""``metadata.managedFields``: decoding, encoding, identities and the bookkeeping rules around them.

The rules are apimachinery's ``managedfields/internal``:

* an entry is identified by (manager, operation, subresource) and, for ``Update``, also its
  apiVersion -- an applier keeps one entry whatever version it applies with
  (``BuildManagerIdentifier``);
* entries are written sorted: ``Apply`` before ``Update``, then by time, manager, apiVersion,
  subresource (``sortEncodedManagedFields``);
* at most 10 ``Update`` entries are kept; the oldest are merged, per apiVersion, into an
  ``ancient-changes`` entry (``capmanagers.go``);
* ``apiVersion``, ``kind`` and the server-owned metadata fields are never owned by anyone
  (``stripmeta.go``);
* a conflict names its manager as ``"name"`` for appliers and ``"name" using apps/v1`` for
  updaters (``conflict.go`` ``printManager``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from kubesim import fieldsets
from kubesim.fieldsets import FieldSet, Path

__all__ = [
    "ANCIENT_CHANGES",
    "APPLY",
    "BEFORE_FIRST_APPLY",
    "MAX_UPDATE_MANAGERS",
    "STRIPPED_PATHS",
    "UPDATE",
    "Entry",
    "ManagedFieldsError",
    "ManagerKey",
    "cap_update_managers",
    "decode",
    "display",
    "encode",
    "is_reset_request",
    "strip",
]

APPLY = "Apply"
UPDATE = "Update"
BEFORE_FIRST_APPLY = "before-first-apply"
ANCIENT_CHANGES = "ancient-changes"
MAX_UPDATE_MANAGERS = 10

# Fields nobody owns: the object's identity and what the server maintains.
STRIPPED_PATHS: FieldSet = frozenset(
    {
        ("f:apiVersion",),
        ("f:kind",),
        ("f:metadata",),
        *(
            ("f:metadata", "f:" + name)
            for name in (
                "name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName", "generation",
                "managedFields", "resourceVersion",
            )
        ),
    }
)


class ManagedFieldsError(ValueError):
    """``metadata.managedFields`` in an object cannot be decoded."""


@dataclass(frozen=True, slots=True, order=True)
class ManagerKey:
    """The identity of a managedFields entry (apiVersion only for updaters)."""

    manager: str
    operation: str
    api_version: str
    subresource: str

    @classmethod
    def of(cls, manager: str, operation: str, api_version: str, subresource: str = "") -> ManagerKey:
        return cls(manager, operation, "" if operation == APPLY else api_version, subresource)


@dataclass(frozen=True, slots=True)
class Entry:
    """One managedFields entry, with its field set decoded."""

    manager: str
    operation: str
    api_version: str
    time: str | None
    fields: FieldSet
    subresource: str = ""

    @property
    def key(self) -> ManagerKey:
        return ManagerKey.of(self.manager, self.operation, self.api_version, self.subresource)

    def with_fields(self, fields: Iterable[Path]) -> Entry:
        return replace(self, fields=frozenset(fields))


def is_reset_request(entries: Any) -> bool:
    """``managedFields: [{}]`` in a write asks the server to clear them."""
    return isinstance(entries, list) and len(entries) == 1 and entries[0] == {}


def decode(entries: Any) -> dict[ManagerKey, Entry]:
    """Decode ``metadata.managedFields`` (``None`` or ``[]`` gives an empty mapping)."""
    managed: dict[ManagerKey, Entry] = {}
    if entries is None:
        return managed
    if not isinstance(entries, list):
        raise ManagedFieldsError("metadata.managedFields must be a list")
    for index, raw in enumerate(entries):
        if not isinstance(raw, Mapping):
            raise ManagedFieldsError(f"metadata.managedFields[{index}] must be an object")
        operation = raw.get("operation")
        if operation not in (APPLY, UPDATE):
            raise ManagedFieldsError(
                f"metadata.managedFields[{index}].operation: must be {APPLY} or {UPDATE}, not {operation!r}"
            )
        if raw.get("fieldsType", "FieldsV1") != "FieldsV1":
            raise ManagedFieldsError(f"metadata.managedFields[{index}].fieldsType: only FieldsV1 is supported")
        trie = raw.get("fieldsV1") or {}
        if not isinstance(trie, Mapping):
            raise ManagedFieldsError(f"metadata.managedFields[{index}].fieldsV1 must be an object")
        entry = Entry(
            manager=str(raw.get("manager", "")),
            operation=operation,
            api_version=str(raw.get("apiVersion", "")),
            time=raw.get("time"),
            fields=fieldsets.from_fields_v1(trie),
            subresource=str(raw.get("subresource") or ""),
        )
        if entry.key in managed:
            raise ManagedFieldsError(f"metadata.managedFields[{index}]: duplicate entry for manager {entry.manager!r}")
        managed[entry.key] = entry
    return managed


def _time_order(time: str | None) -> str:
    # RFC 3339 UTC timestamps with whole seconds sort as strings; a missing time sorts first.
    return time or ""


def encode(managed: Mapping[ManagerKey, Entry]) -> list[dict[str, Any]]:
    """Entries in the server's order, each in the API's field order; empty sets are dropped."""
    ordered = sorted(
        (entry for entry in managed.values() if entry.fields),
        key=lambda e: (e.operation, _time_order(e.time), e.manager, e.api_version, e.subresource),
    )
    out: list[dict[str, Any]] = []
    for entry in ordered:
        encoded: dict[str, Any] = {"manager": entry.manager, "operation": entry.operation,
                                   "apiVersion": entry.api_version}
        if entry.time is not None:
            encoded["time"] = entry.time
        encoded["fieldsType"] = "FieldsV1"
        encoded["fieldsV1"] = fieldsets.to_fields_v1(entry.fields)
        if entry.subresource:
            encoded["subresource"] = entry.subresource
        out.append(encoded)
    return out


def display(key: ManagerKey) -> str:
    """How a conflict message names a manager: ``"kubectl"`` or ``"OpenAPI-Generator" using apps/v1``."""
    shown = f'"{key.manager}"'
    if key.subresource:
        shown += f' with subresource "{key.subresource}"'
    if key.operation == UPDATE:
        shown += f" using {key.api_version}"
    return shown


def strip(managed: dict[ManagerKey, Entry], ignored: Iterable[Path] = ()) -> None:
    """Remove never-owned fields (and ``ignored`` subtrees) from every entry; drop empty entries."""
    ignored = tuple(ignored)
    for key, entry in list(managed.items()):
        fields = entry.fields - STRIPPED_PATHS
        if ignored:
            fields = fieldsets.without_prefixes(fields, ignored)
        if fields:
            managed[key] = entry.with_fields(fields)
        else:
            del managed[key]


def cap_update_managers(managed: dict[ManagerKey, Entry], maximum: int = MAX_UPDATE_MANAGERS) -> None:
    """Merge the oldest ``Update`` entries into per-version ``ancient-changes`` entries until ``maximum`` remain."""
    updaters = [entry for entry in managed.values() if entry.operation == UPDATE]
    if len(updaters) <= maximum:
        return
    updaters.sort(key=lambda e: (_time_order(e.time), e.manager))
    first_of_version: dict[str, ManagerKey] = {}
    remaining = len(updaters)
    for entry in updaters:
        if remaining <= maximum:
            break
        bucket = ManagerKey.of(ANCIENT_CHANGES, UPDATE, entry.api_version)
        first = first_of_version.get(entry.api_version)
        if first is None:
            first_of_version[entry.api_version] = entry.key
            continue
        if bucket not in managed:
            # The first entry of this version becomes the bucket.
            seed = managed.pop(first)
            managed[bucket] = replace(seed, manager=ANCIENT_CHANGES, subresource="")
        merged = managed[bucket].fields | entry.fields
        managed[bucket] = replace(managed[bucket], fields=merged, time=entry.time)
        del managed[entry.key]
        remaining -= 1
