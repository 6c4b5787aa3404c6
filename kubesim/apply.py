"""Server-side apply and the field ownership every write records, as kube-apiserver does them.

Pure functions over plain objects; the HTTP layer calls them and stores the result.

* :func:`server_side_apply` is SMD's ``Updater.Apply`` wrapped in the API server's field-manager
  chain: merge ``live ⊕ config`` by the kind's schema; the applier's set becomes the config's
  field set; fields it applied last time and omits now are pruned unless someone else owns them;
  every other manager (``Apply`` or ``Update``) that owns a field the apply changes is a
  conflict -- an equal value is not, and becomes shared -- which ``force`` resolves by taking
  the field; fields the apply removes leave every owner; empty entries go. The first apply to
  an object with no ``managedFields`` first records its existing fields under an ``Update``
  manager ``before-first-apply``. ``status`` (the ``reset_fields``) is neither applied nor owned
  on the main resource.
* :func:`record_update` is the ``Update`` path for POST/PUT/non-apply PATCH and ``/status``:
  the writer takes every field it added or changed (as if forced) and gains them into its entry,
  removed fields leave everyone, and an update of an object that has no ``managedFields`` stays
  untracked (``skipnonapplied.go``).

Neither function sets defaults: the caller defaults the returned object afterwards, so defaulted
fields stay unowned, as on a real server after an apply.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubesim import fieldsets, managedfields
from kubesim.fieldsets import MISSING, FieldSet, Path
from kubesim.managedfields import APPLY, BEFORE_FIRST_APPLY, UPDATE, Entry, ManagerKey
from protos.k8s_schema import ObjectSchema, Shape

__all__ = [
    "ApplyConflictError",
    "Conflict",
    "record_update",
    "server_side_apply",
    "zero_object",
]

# Struct fields Go types embed by value, so a freshly made object already has them as empty
# objects: an Update that fills them in does not "add" them (no `".": {}` in its entry).
_VALUE_STRUCT_FIELDS = frozenset({"metadata", "spec", "status", "template", "strategy", "updateStrategy",
                                  "jobTemplate", "resources"})

# The client-side-apply annotation, which the API server keeps in step for `kubectl` appliers.
KUBECTL = "kubectl"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_ANNOTATIONS_LIMIT = 256 * 1024  # total size of an object's annotations (apimachinery validation)


@dataclass(frozen=True, slots=True)
class Conflict:
    """One field another manager owns with a different value. ``manager`` is in display form."""

    manager: str
    path: str


class ApplyConflictError(Exception):
    """An apply would change fields other managers own; the API server answers 409."""

    def __init__(self, conflicts: list[Conflict], *, paths: Mapping[ManagerKey, FieldSet] | None = None) -> None:
        self.conflicts = conflicts
        # The conflicting paths per manager, for the client-side-apply upgrade (not part of the API).
        self._paths: Mapping[ManagerKey, FieldSet] = paths or {}
        super().__init__(self.message)

    @property
    def message(self) -> str:
        if len(self.conflicts) == 1:
            only = self.conflicts[0]
            return f"Apply failed with 1 conflict: conflict with {only.manager}: {only.path}"
        by_manager: dict[str, list[str]] = {}
        for conflict in self.conflicts:
            by_manager.setdefault(conflict.manager, []).append(conflict.path)
        lines: list[str] = []
        for manager, paths in by_manager.items():
            lines.append(f"conflicts with {manager}:")
            lines.extend(f"- {path}" for path in paths)
        return f"Apply failed with {len(self.conflicts)} conflicts: " + "\n".join(lines)

    def status_body(self) -> dict[str, Any]:
        """The exact ``Status`` body of the API server's 409 (no name or kind in ``details``)."""
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": "Conflict",
            "details": {
                "causes": [
                    {"reason": "FieldManagerConflict", "message": f"conflict with {c.manager}", "field": c.path}
                    for c in self.conflicts
                ]
            },
            "code": 409,
        }


# -- helpers ------------------------------------------------------------------------------------


def zero_object(schema: ObjectSchema) -> dict[str, Any]:
    """What a new, empty object of the kind looks like before decoding (Go's zero value)."""

    def build(node: ObjectSchema) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in node.field_names():
            if name in _VALUE_STRUCT_FIELDS:
                child = node.field(name)
                if child.shape is Shape.STRUCT and not child.atomic:
                    out[name] = build(child)
        return out

    return build(schema) if schema.shape is Shape.STRUCT and schema.name != "custom" else {}


def _with_zero(obj: Any, zero: Mapping[str, Any]) -> Any:
    """``obj`` as Go decodes it: value-struct fields it omits are present and empty."""
    if not zero or not isinstance(obj, dict):
        return obj
    out = dict(obj)
    for name, skeleton in zero.items():
        child = out.get(name)
        if child is None:
            out[name] = _with_zero({}, skeleton)
        elif isinstance(child, dict):
            out[name] = _with_zero(child, skeleton)
    return out


def _without_managed_fields(obj: Mapping[str, Any] | None) -> dict[str, Any]:
    copied: dict[str, Any] = fieldsets.json_copy(dict(obj)) if obj is not None else {}
    metadata = copied.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)
    return copied


# A /status write changes and owns the status only (the status strategies reset the rest).
_STATUS_WRITES = frozenset({"f:status"})


def _keep(subresource: str | None, reset_fields: Iterable[str]) -> Callable[[Path], bool]:
    """Which paths a write may own: ``/status`` owns only status, the main resource not ``reset_fields``."""
    if subresource == "status":
        return lambda path: not path or path[0] in _STATUS_WRITES
    ignored = frozenset("f:" + name for name in reset_fields)
    return lambda path: not path or path[0] not in ignored


def _with_managed_fields(obj: dict[str, Any], managed: dict[ManagerKey, Entry]) -> dict[str, Any]:
    encoded = managedfields.encode(managed)
    metadata = obj.setdefault("metadata", {})
    if encoded:
        metadata["managedFields"] = encoded
    else:
        metadata.pop("managedFields", None)
    return obj


def _sorted_conflicts(conflicts: Mapping[ManagerKey, FieldSet]) -> list[Conflict]:
    out: list[Conflict] = []
    for key in sorted(conflicts):
        out.extend(
            Conflict(manager=managedfields.display(key), path=fieldsets.path_string(path))
            for path in fieldsets.sorted_paths(conflicts[key])
        )
    return out


def _take_from_others(
    managed: dict[ManagerKey, Entry],
    comparison: fieldsets.Comparison,
    *,
    workflow: ManagerKey | None,
    force: bool,
) -> None:
    """SMD ``Updater.update``: conflicts (owned ∩ changed) and removals against every other manager."""
    changed = comparison.modified | comparison.added
    conflicts: dict[ManagerKey, FieldSet] = {}
    for key, entry in managed.items():
        if key == workflow:
            continue
        clash = entry.fields & changed
        if clash:
            conflicts[key] = frozenset(clash)
    if conflicts and not force:
        raise ApplyConflictError(_sorted_conflicts(conflicts), paths=conflicts)
    for key, entry in list(managed.items()):
        if key == workflow:
            continue
        remaining = entry.fields - conflicts.get(key, frozenset()) - comparison.removed
        managed[key] = entry.with_fields(remaining)
    for key in [key for key, entry in managed.items() if not entry.fields]:
        del managed[key]


def _prune(
    merged: Any, managed: Mapping[ManagerKey, Entry], last: FieldSet, schema: ObjectSchema
) -> Any:
    """SMD ``Updater.prune``: drop what the applier applied last time, omits now, and nobody else owns."""
    def members(paths: Iterable[Path]) -> FieldSet:
        return fieldsets.ensure_named_fields_are_members(paths, schema)

    last_members = members(last)
    pruned = fieldsets.remove_items(merged, last_members, schema)
    # addBackOwnedItems: restore whatever someone (the applier's new config included) owns.
    owned: set[Path] = set()
    for entry in managed.values():
        owned |= entry.fields
    merged_set = members(fieldsets.to_field_set(merged, schema))
    pruned_set = members(fieldsets.to_field_set(pruned, schema))
    pruned = fieldsets.remove_items(merged, merged_set - (pruned_set | members(owned)), schema)
    # addBackDanglingItems: only remove what the applier itself owned before.
    pruned_set = members(fieldsets.to_field_set(pruned, schema))
    return fieldsets.remove_items(merged, (merged_set - pruned_set) & last_members, schema)


def _update_set(old: Any, new: Any, schema: ObjectSchema,
                keep: Callable[[Path], bool]) -> tuple[fieldsets.Comparison, FieldSet]:
    comparison = fieldsets.compare(old, new, schema).filtered(keep)
    return comparison, frozenset(comparison.modified | comparison.added)


# -- apply --------------------------------------------------------------------------------------


def server_side_apply(
    live: dict[str, Any] | None,
    config: dict[str, Any],
    *,
    manager: str,
    force: bool,
    api_version: str,
    schema: ObjectSchema,
    now: str,
    reset_fields: Iterable[str] = ("status",),
    subresource: str | None = None,
) -> dict[str, Any]:
    """Apply ``config`` as ``manager``; returns the new object with ``metadata.managedFields`` updated.

    ``live`` is ``None`` when the apply creates the object. On the main resource the top-level
    ``reset_fields`` of ``config`` are ignored (pass ``()`` for a kind without a status
    subresource); with ``subresource="status"`` only ``status`` is applied and owned, under an
    entry with that subresource. Raises :class:`ApplyConflictError` when other managers own
    fields the apply changes and ``force`` is false. The applier's entry time moves to ``now``
    only when the object changed (as the API server does), so re-applying an unchanged
    manifest returns an identical object.

    For the field manager ``kubectl`` on an object with a client-side-apply annotation, the
    API server's upgrade path applies too: conflicts on fields the annotation lists with the
    live values are forced, and the annotation is rewritten to the applied configuration.
    """
    def run(forced: bool) -> dict[str, Any]:
        return _apply(live, config, manager=manager, force=forced, api_version=api_version, schema=schema,
                      now=now, reset_fields=reset_fields, subresource=subresource)

    try:
        result = run(force)
    except ApplyConflictError as conflict:
        if manager != KUBECTL or live is None:
            raise
        allowed = _allowed_by_last_applied(live, schema, api_version)
        if allowed is None:
            raise
        remaining = {key: paths - allowed for key, paths in conflict._paths.items() if paths - allowed}
        if remaining:
            raise ApplyConflictError(_sorted_conflicts(remaining), paths=remaining) from None
        result = run(True)
    if manager == KUBECTL:
        annotations = (result.get("metadata") or {}).get("annotations")
        if isinstance(annotations, dict) and annotations.get(LAST_APPLIED):
            value = _last_applied_value(config)
            # setLastApplied drops the annotation when it would exceed the size limit.
            if sum(len(k) + len(v) for k, v in {**annotations, LAST_APPLIED: value}.items()) <= _ANNOTATIONS_LIMIT:
                annotations[LAST_APPLIED] = value
            else:
                del annotations[LAST_APPLIED]
    return result


def _allowed_by_last_applied(live: Mapping[str, Any], schema: ObjectSchema, api_version: str) -> FieldSet | None:
    """Fields the client-side-apply annotation lists with the values the object still has."""
    raw = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not raw:
        return None
    try:
        last = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(last, dict) or last.get("apiVersion") != api_version:
        return None
    try:
        last_set = fieldsets.to_field_set(last, schema)
        comparison = fieldsets.compare(last, _without_managed_fields(live), schema)
    except fieldsets.FieldSetError:
        return None
    return frozenset(last_set - comparison.modified - comparison.added - comparison.removed)


def _last_applied_value(config: Mapping[str, Any]) -> str:
    """The applied configuration as Go's JSON encoder writes it (sorted keys, HTML escaped, newline)."""
    body: dict[str, Any] = fieldsets.json_copy(dict(config))
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("annotations"), dict):
        metadata["annotations"].pop(LAST_APPLIED, None)
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for raw, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"),
                         ("\u2029", "\\u2029")):
        text = text.replace(raw, escaped)
    return text + "\n"


def _apply(
    live: dict[str, Any] | None,
    config: dict[str, Any],
    *,
    manager: str,
    force: bool,
    api_version: str,
    schema: ObjectSchema,
    now: str,
    reset_fields: Iterable[str],
    subresource: str | None,
) -> dict[str, Any]:
    keep = _keep(subresource, reset_fields)
    applied = {key: value for key, value in _without_managed_fields(config).items()
               if keep(("f:" + key,)) or (subresource and key in ("apiVersion", "kind"))}

    current = _without_managed_fields(live)
    managed = managedfields.decode(((live or {}).get("metadata") or {}).get("managedFields"))
    if live is not None and not managed:
        # The object was written by something that did not track fields: what it has now is
        # recorded as one updater's, so the first applier meets the usual conflicts.
        zero = zero_object(schema)
        _, existing = _update_set(zero, _with_zero(current, zero), schema, keep)
        if existing:
            managed[ManagerKey.of(BEFORE_FIRST_APPLY, UPDATE, api_version)] = Entry(
                BEFORE_FIRST_APPLY, UPDATE, api_version, now, existing
            )
            managedfields.strip(managed)

    fieldsets.check_duplicates(applied, schema)
    merged = fieldsets.merge(current, applied, schema)
    sub = subresource or ""
    applier = ManagerKey.of(manager, APPLY, api_version, sub)
    last = managed.get(applier)
    config_set = frozenset(path for path in fieldsets.to_field_set(applied, schema) if keep(path))
    managed[applier] = Entry(manager, APPLY, api_version, last.time if last else None, config_set, sub)
    if last is not None and not last.fields <= config_set:
        # Only a manager that stopped applying something can prune.
        merged = _prune(merged, managed, last.fields, schema)
    if merged is MISSING:
        merged = {}

    zero = zero_object(schema)
    comparison = fieldsets.compare(_with_zero(current, zero), _with_zero(merged, zero), schema).filtered(keep)
    _take_from_others(managed, comparison, workflow=applier, force=force)
    if applier in managed and not managed[applier].fields:
        del managed[applier]
    managedfields.strip(managed)

    entry = managed.get(applier)
    # managedFieldsUpdater: the applier's time moves only when the object changed, so an entry
    # made by an apply that changed nothing (sharing equal values) has no time.
    if entry is not None and (comparison.added or comparison.modified or comparison.removed):
        managed[applier] = Entry(manager, APPLY, api_version, now, entry.fields, sub)
    managedfields.cap_update_managers(managed)
    return _with_managed_fields(merged, managed)


# -- update -------------------------------------------------------------------------------------


def record_update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    *,
    manager: str,
    api_version: str,
    subresource: str | None,
    schema: ObjectSchema,
    now: str,
    reset_fields: Iterable[str] = ("status",),
) -> list[dict[str, Any]]:
    """``managedFields`` after a non-apply write of ``new`` over ``old`` (``None`` on create).

    The managed fields come from ``new`` when it carries a valid non-empty list (clients may
    set them), else from ``old``; ``[{}]`` resets them. For ``subresource="status"`` only the
    status counts; on the main resource ``reset_fields`` do not.
    """
    keep = _keep(subresource, reset_fields)
    new_entries = (new.get("metadata") or {}).get("managedFields")
    old_entries = ((old or {}).get("metadata") or {}).get("managedFields")
    if subresource:
        managed = managedfields.decode(old_entries)
    elif managedfields.is_reset_request(new_entries):
        managed = {}
    else:
        try:
            managed = managedfields.decode(new_entries)
        except managedfields.ManagedFieldsError:
            managed = {}
        if not managed:
            managed = managedfields.decode(old_entries)
    if not managed and old is not None:
        return []  # an update of an untracked object stays untracked

    zero = zero_object(schema)
    before = _with_zero(_without_managed_fields(old) if old is not None else {}, zero)
    after = _with_zero(_without_managed_fields(new), zero)
    comparison, changed = _update_set(before, after, schema, keep)
    _take_from_others(managed, comparison, workflow=None, force=True)
    key = ManagerKey.of(manager, UPDATE, api_version, subresource or "")
    if changed:
        previous = managed.get(key)
        fields = changed | (previous.fields if previous else frozenset())
        managed[key] = Entry(manager, UPDATE, api_version, now, fields, subresource or "")
    managedfields.strip(managed)
    managedfields.cap_update_managers(managed)
    return managedfields.encode(managed)
