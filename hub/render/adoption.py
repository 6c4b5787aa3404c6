"""Adoption: the kustomize patches that make a cluster's desired state equal what drifted live.

Pure: the spoke's drift report (SSA field paths, live values as JSON text) and the object as the hub
rendered it in, kustomize patch entries (``patches:`` items of a Component) out. ``convoy drift adopt``
writes them into the cluster layer (or a shared overlay) and commits them.

Which patch for which change, chosen by what ``kubectl kustomize`` (v5) renders correctly:

* a changed or added value → one strategic-merge patch per object, nested maps, keyed list items
  as ``{key: value, field: live}`` (lists the built-in schema merges by key);
* a keyed list item removed by hand → the item with ``$patch: delete`` in that patch;
* a map key or field removed by hand → a JSON6902 ``remove`` op (a ``null`` in a targeted
  strategic-merge patch renders as the string ``"null"`` in kustomize v5);
* a path through an atomic list (``.args[1]``) or a keyed list the schema does not merge (custom
  resources) → a JSON6902 op at the index the rendered object has, since one item cannot rebuild the list;
* a deleted object → a strategic-merge patch that is only ``$patch: delete``.

Every patch has a ``target`` (group, version, kind, name; the namespace only when the object names one
other than the app's), because the app's namespace is given after kustomize ran, so a patch naming it
would match nothing. Secret data is never adopted: the spoke reports it redacted, and a sealed value
is what belongs in Git (``convoy seal``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from protos import k8s_schema
from protos.objects import ObjectRef

__all__ = [
    "ABSENT",
    "MISSING",
    "REDACTED",
    "AdoptError",
    "Change",
    "Drifted",
    "FieldKey",
    "FieldName",
    "Index",
    "SetValue",
    "commit_message",
    "mismatches",
    "moved_since",
    "parse_path",
    "patches_for",
    "same_drift",
    "value_at",
]

ABSENT = "<absent>"
REDACTED = "<redacted>"


class AdoptError(Exception):
    """A drift that cannot be written as a patch; the message names the object and the field."""


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """One drifted field: its SSA path, and the desired and live values as JSON text (or ABSENT/REDACTED)."""

    path: str
    desired: str
    live: str


@dataclasses.dataclass(frozen=True, slots=True)
class Drifted:
    """One drifted object as the spoke reported it."""

    ref: ObjectRef
    app: str
    kind_of_drift: str            #: modified | deleted
    changes: tuple[Change, ...]
    managers: tuple[str, ...] = ()
    detected_at: dt.datetime | None = None


# -- path elements ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class FieldName:
    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class FieldKey:
    """``[name="web"]``: the item of a keyed list with these key values."""

    keys: tuple[tuple[str, Any], ...]

    def matches(self, item: Any) -> bool:
        return isinstance(item, Mapping) and all(item.get(k) == v for k, v in self.keys)


@dataclasses.dataclass(frozen=True, slots=True)
class SetValue:
    """``[="x"]``: a member of a set list."""

    value: Any


@dataclasses.dataclass(frozen=True, slots=True)
class Index:
    """``[0]``: a position in an atomic list."""

    position: int


Element = FieldName | FieldKey | SetValue | Index


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts, current, quoted, escaped = [], "", False, False
    for char in text:
        if escaped:
            current, escaped = current + char, False
            continue
        if char == "\\" and quoted:
            current, escaped = current + char, True
            continue
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append(current)
            current = ""
            continue
        current += char
    parts.append(current)
    return parts


def _bracket_end(path: str, start: int) -> int:
    """The index of the ``]`` closing the bracket opened at ``start`` (quotes respected)."""
    quoted, escaped = False, False
    for position in range(start + 1, len(path)):
        char = path[position]
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "]" and not quoted:
            return position
    raise ValueError("unclosed [")


def _bracket(body: str) -> Element:
    if body.startswith("="):
        return SetValue(json.loads(body[1:]))
    if body.isdigit():
        return Index(int(body))
    keys = []
    for part in _split_outside_quotes(body, ","):
        name, sep, value = part.partition("=")
        if not sep or not name:
            raise ValueError(f"[{body}] is not a key, a set member or an index")
        keys.append((name, json.loads(value)))
    return FieldKey(tuple(keys))


def _child(node: Any, element: Element) -> Any:
    if isinstance(element, FieldName):
        return node.get(element.name) if isinstance(node, Mapping) else None
    if isinstance(element, FieldKey) and isinstance(node, list):
        return next((item for item in node if element.matches(item)), None)
    if isinstance(element, Index) and isinstance(node, list) and element.position < len(node):
        return node[element.position]
    return None


def _child_schema(schema: k8s_schema.ObjectSchema, element: Element) -> k8s_schema.ObjectSchema:
    if isinstance(element, FieldName):
        return schema.field(element.name)
    return schema.items()


def parse_path(path: str, obj: Mapping[str, Any] | None, schema: k8s_schema.ObjectSchema) -> list[Element]:
    """``.spec.template.spec.containers[name="web"].image`` as elements.

    A map key may hold dots (``.metadata.labels.app.kubernetes.io/name``): the schema says where a
    map of values starts, and the rest of the path is then one key when the values are scalars;
    otherwise a key the rendered object has is preferred, longest first.
    """
    elements: list[Element] = []
    node: Any = obj
    position = 0
    while position < len(path):
        char = path[position]
        if char == "[":
            end = _bracket_end(path, position)
            element = _bracket(path[position + 1:end])
            position = end + 1
        elif char == ".":
            rest = path[position + 1:]
            cut = min([i for i in (rest.find("."), rest.find("[")) if i >= 0], default=len(rest))
            name = rest[:cut]
            if schema.is_map_of_values or schema.is_untyped:
                known = sorted((key for key in (node if isinstance(node, Mapping) else {})
                                if rest == key or rest.startswith(key + ".") or rest.startswith(key + "[")),
                               key=len, reverse=True)
                if known:
                    name = known[0]
                elif schema.is_map_of_values and schema.field(rest).shape is k8s_schema.Shape.SCALAR:
                    name = rest
            element = FieldName(name)
            position += 1 + len(name)
        else:
            raise ValueError(f"unexpected {char!r} at {position}")
        elements.append(element)
        node = _child(node, element)
        schema = _child_schema(schema, element)
    return elements


# -- patches ------------------------------------------------------------------------------------


def _pointer(elements: Sequence[Element], obj: Mapping[str, Any], where: str) -> str:
    """A JSON pointer for ``elements`` in the rendered ``obj`` (keyed items resolved to their index)."""
    parts: list[str] = []
    node: Any = obj
    for element in elements:
        if isinstance(element, FieldName):
            parts.append(element.name.replace("~", "~0").replace("/", "~1"))
        elif isinstance(element, Index):
            parts.append(str(element.position))
        else:
            items = node if isinstance(node, list) else []
            matches = [i for i, item in enumerate(items)
                       if (element.matches(item) if isinstance(element, FieldKey) else item == element.value)]
            if not matches:
                raise AdoptError(f"{where}: the rendered object has no list item {_element_text(element)}")
            parts.append(str(matches[0]))
        node = _child(node, element) if not isinstance(element, SetValue) else element.value
    return "/" + "/".join(parts)


def _element_text(element: Element) -> str:
    if isinstance(element, FieldName):
        return "." + element.name
    if isinstance(element, Index):
        return f"[{element.position}]"
    if isinstance(element, SetValue):
        return f"[={json.dumps(element.value)}]"
    return "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in element.keys) + "]"


def _needs_json6902(elements: Sequence[Element], schema: k8s_schema.ObjectSchema) -> bool:
    """True when a strategic-merge patch cannot say this change (positions, lists SMP replaces)."""
    for element in elements:
        if isinstance(element, Index):
            return True
        if isinstance(element, FieldKey | SetValue) and not schema.list_or_atomic.merges:
            return True
        schema = _child_schema(schema, element)
    return False


def _set_smp(patch: dict[str, Any], elements: Sequence[Element], value: Any, *, delete_item: bool) -> None:
    """Put ``value`` at ``elements`` into the strategic-merge patch ``patch`` (keyed items by their keys)."""
    node: Any = patch
    for i, element in enumerate(elements):
        last = i == len(elements) - 1
        following = None if last else elements[i + 1]
        if isinstance(element, FieldName):
            if last:
                node[element.name] = value
            elif isinstance(following, FieldKey | SetValue):
                node = node.setdefault(element.name, [])
            else:
                node = node.setdefault(element.name, {})
        elif isinstance(element, FieldKey):
            item = next((entry for entry in node if element.matches(entry)), None)
            if item is None:
                item = dict(element.keys)
                node.append(item)
            if last:
                if delete_item:
                    item["$patch"] = "delete"
                elif isinstance(value, Mapping):
                    item.update(value)
            else:
                node = item
        elif isinstance(element, SetValue) and value not in node:
            node.append(element.value)


def _escaped(value: Any) -> Any:
    """``value`` with every ``${`` written ``$${``: the hub substitutes ``${var}`` after kustomize, and a
    live value is meant literally."""
    if isinstance(value, str):
        return value.replace("${", "$${")
    if isinstance(value, list):
        return [_escaped(item) for item in value]
    if isinstance(value, dict):
        return {key: _escaped(item) for key, item in value.items()}
    return value


def _target(ref: ObjectRef, api_version: str, app_namespace: str | None) -> dict[str, str]:
    group, _, version = api_version.rpartition("/")
    target = {"group": group, "version": version, "kind": ref.kind, "name": ref.name}
    if ref.namespace and ref.namespace != (app_namespace or ""):
        target["namespace"] = ref.namespace
    return {k: v for k, v in target.items() if v}


def _dump(document: Any) -> str:
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=1000).rstrip("\n")


def patches_for(drifted: Drifted, rendered: Mapping[str, Any] | None, *,
                app_namespace: str | None, schema: k8s_schema.ObjectSchema | None = None) -> list[dict[str, Any]]:
    """The ``patches:`` entries that turn ``rendered`` (the desired object) into the live one.

    Raises :class:`AdoptError` for what cannot be adopted (Secret data, an object the render lacks).
    """
    ref = drifted.ref
    for change in drifted.changes:
        if REDACTED in (change.live, change.desired):
            raise AdoptError(f"{ref} {change.path}: Secret data is redacted in drift reports and never adopted as "
                             "plain text; seal the new value with `convoy seal` and commit that instead")
    if rendered is None:
        raise AdoptError(f"{ref}: not in the cluster's rendered bundle at this revision; nothing to patch")
    api_version = str(rendered.get("apiVersion", ""))
    target = _target(ref, api_version, app_namespace)
    head = {"apiVersion": api_version, "kind": ref.kind, "metadata": {"name": ref.name}}
    if drifted.kind_of_drift == "deleted":
        return [{"target": target, "patch": _dump({**head, "$patch": "delete"})}]
    schema = schema or k8s_schema.schema_for(ref.group, ref.kind)
    smp: dict[str, Any] = {**head, "metadata": {"name": ref.name}}
    ops: list[dict[str, Any]] = []
    for change in drifted.changes:
        where = f"{ref} {change.path}"
        try:
            elements = parse_path(change.path, rendered, schema)
            live = None if change.live == ABSENT else _escaped(json.loads(change.live))
        except ValueError as exc:
            raise AdoptError(f"{where}: cannot read this field path or its live value ({exc})") from None
        if not elements:
            raise AdoptError(f"{where}: an empty field path")
        removed = change.live == ABSENT
        keyed_item = isinstance(elements[-1], FieldKey)
        if _needs_json6902(elements, schema) or (removed and not keyed_item):
            pointer = _pointer(elements, rendered, where)
            if removed:
                ops.append({"op": "remove", "path": pointer})
            else:
                exists = change.desired != ABSENT
                ops.append({"op": "replace" if exists else "add", "path": pointer, "value": live})
            continue
        _set_smp(smp, elements, live, delete_item=removed)
    entries: list[dict[str, Any]] = []
    # The ops' indices are the rendered object's: they go first, before the strategic-merge patch can
    # remove a list item, and removals last, deepest and highest index first, so none shifts another's.
    if ops:
        kept = [op for op in ops if op["op"] != "remove"]
        removals = sorted((op for op in ops if op["op"] == "remove"), key=_pointer_order, reverse=True)
        entries.append({"target": target, "patch": _dump(kept + removals)})
    if smp != {**head, "metadata": {"name": ref.name}}:
        entries.append({"target": target, "patch": _dump(smp)})
    return entries


def _pointer_order(op: Mapping[str, Any]) -> list[tuple[int, int | str]]:
    return [(0, int(part)) if part.isdigit() else (1, part) for part in str(op["path"]).split("/")]


def same_drift(a: Drifted, b: Drifted) -> bool:
    """The same object drifted the same way: same kind of drift, same paths and live values."""
    def key(d: Drifted) -> tuple[Any, ...]:
        return d.ref, d.kind_of_drift, sorted((c.path, c.live) for c in d.changes)
    return key(a) == key(b)


def _when(at: dt.datetime | None) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if at else "unknown time"


def commit_message(where: str, items: Sequence[Drifted]) -> str:
    """Subject ``Adopt manual change on <where>: <kind>/<name> <fields>``; a body line per field."""
    heads = [f"{d.ref.kind}/{d.ref.name} " + (", ".join(c.path for c in d.changes) if d.changes else "deleted")
             for d in items]
    subject = f"Adopt manual change on {where}: " + "; ".join(heads)
    if len(subject) > 120:
        subject = subject[:119].rstrip() + "…"
    body = []
    for d in items:
        by = ", ".join(d.managers) or "unknown manager"
        body.append(f"{d.ref} (app {d.app}, {d.kind_of_drift}), changed by {by}, detected {_when(d.detected_at)}:")
        if d.kind_of_drift == "deleted":
            body.append("  deleted by hand: the patch deletes it from the desired state")
        for c in d.changes:
            body.append(f"  {c.path}: {c.desired} -> {c.live}")
    return subject + "\n\n" + "\n".join(body) + "\n"


# -- the round trip -----------------------------------------------------------------------------


MISSING = object()


def value_at(obj: Mapping[str, Any], path: str) -> Any:
    """The value at SSA ``path`` in ``obj``, or :data:`MISSING`."""
    node: Any = obj
    schema = k8s_schema.schema_for(ObjectRef.of(obj).group, str(obj.get("kind", "")))
    for element in parse_path(path, obj, schema):
        if isinstance(element, SetValue):
            return element.value if isinstance(node, list) and element.value in node else MISSING
        if isinstance(element, FieldName) and isinstance(node, Mapping) and element.name in node:
            node = node[element.name]
        elif isinstance(element, FieldKey) and isinstance(node, list):
            node = next((item for item in node if element.matches(item)), MISSING)
        elif isinstance(element, Index) and isinstance(node, list) and element.position < len(node):
            node = node[element.position]
        else:
            return MISSING
        if node is MISSING:
            return MISSING
    return node


def mismatches(objects: Mapping[ObjectRef, Mapping[str, Any]], items: Sequence[Drifted]) -> list[str]:
    """Each adopted field whose rendered value is not its live value (empty: the adoption round-trips)."""
    wrong = []
    for item in items:
        obj = objects.get(item.ref)
        if item.kind_of_drift == "deleted":
            if obj is not None:
                wrong.append(f"{item.ref}: still rendered, but it was deleted live")
            continue
        if obj is None:
            wrong.append(f"{item.ref}: no longer rendered")
            continue
        for change in item.changes:
            rendered = value_at(obj, change.path)
            live = MISSING if change.live == ABSENT else json.loads(change.live)
            if rendered != live:
                shown = ABSENT if rendered is MISSING else json.dumps(rendered)
                wrong.append(f"{item.ref} {change.path}: renders {shown}, live is {change.live}")
    return wrong


def moved_since(objects: Mapping[ObjectRef, Mapping[str, Any]], items: Sequence[Drifted]) -> list[str]:
    """Fields whose rendered value is not the desired value the drift was measured against.

    The repository moved on since the spoke applied its bundle: adopting sets the live value over
    the newer one, which the user should hear about.
    """
    moved = []
    for item in items:
        obj = objects.get(item.ref)
        if obj is None or item.kind_of_drift == "deleted":
            continue
        for change in item.changes:
            if change.desired in (ABSENT, REDACTED):
                continue
            try:
                desired = json.loads(change.desired)
            except ValueError:
                continue
            rendered = value_at(obj, change.path)
            if rendered is not MISSING and rendered != desired:
                moved.append(f"{item.ref} {change.path}: HEAD renders {json.dumps(rendered)}, the drift was "
                             f"measured against {change.desired}; the patch sets the live value {change.live}")
    return moved
