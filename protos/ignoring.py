"""``ignoreDifferences``: fields of an object Convoy leaves alone on purpose.

An app's entry (in fleet.yaml and in the bundle's ``apps`` entry) names objects by ``kind`` and
optionally ``group``, ``name`` and ``namespace``, and the fields by ``jsonPointers`` (RFC 6901:
``/spec/replicas``, ``/metadata/annotations/a~1b``, ``/spec/containers/0/image``) and/or
``fieldPaths`` (server-side apply's syntax, as ``convoy diff`` prints it: ``.spec.replicas``,
``.webhooks[name="x"].clientConfig.caBundle``, ``.args[0]``, ``.finalizers[="x"]``).

The hub validates the syntax (:func:`parse_rule`); the spoke resolves each path against an object
(:func:`locate`) to leave the field out of drift (:func:`without`) and out of what it applies
(:func:`for_apply`). Pure: plain dicts in and out.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from protos.objects import group_of

__all__ = [
    "ENTRY_FIELDS",
    "IgnoreError",
    "Rule",
    "for_apply",
    "locate",
    "parse_field_path",
    "parse_json_pointer",
    "parse_rule",
    "rules_by_app",
    "without",
]

#: The keys of one entry as the bundle carries it (fleet.yaml adds ``selector`` and ``clusters``).
ENTRY_FIELDS = ("group", "kind", "name", "namespace", "jsonPointers", "fieldPaths")

# One path element: ("field", name) a map key; ("index", n) a list position; ("key", {k: v}) the item of a
# keyed list whose fields have those values; ("value", v) the member of a set; ("segment", text) a JSON
# pointer segment, a map key or (when the object holds a list there) a list position.
Element = tuple[str, Any]
Path = tuple[Element, ...]

#: Fields Convoy needs to find, label and own the object; ignoring them (or a map holding them) is refused.
_PROTECTED: tuple[tuple[str, ...], ...] = (
    ("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace"),
    ("metadata", "labels", "app.kubernetes.io/managed-by"), ("metadata", "labels", "convoy.dev/cluster"),
    ("metadata", "labels", "convoy.dev/app"),
)
_FIELD_NAME = re.compile(r"[^.\[\]]+")
_MISSING = object()


class IgnoreError(ValueError):
    """An ``ignoreDifferences`` entry or path that cannot be used; the message says what is wrong."""


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    """One entry: which objects, and the paths ignored in them (text as written, parsed alongside)."""

    kind: str
    group: str | None = None        #: None: any group; "" the core group
    name: str | None = None
    namespace: str | None = None
    json_pointers: tuple[str, ...] = ()
    field_paths: tuple[str, ...] = ()
    paths: tuple[Path, ...] = dataclasses.field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Parsed once: the spoke resolves them on every drift check. Raises IgnoreError on a bad path.
        object.__setattr__(self, "paths", tuple(parse_json_pointer(p) for p in self.json_pointers)
                           + tuple(parse_field_path(p) for p in self.field_paths))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        metadata = obj.get("metadata") or {}
        return (str(obj.get("kind", "")) == self.kind
                and (self.group is None or group_of(str(obj.get("apiVersion", ""))) == self.group)
                and (self.name is None or metadata.get("name") == self.name)
                and (self.namespace is None or (metadata.get("namespace") or "") == self.namespace))

    def to_entry(self) -> dict[str, Any]:
        """The canonical bundle form: unset filters and empty path lists left out."""
        entry: dict[str, Any] = {"kind": self.kind}
        for key, value in (("group", self.group), ("name", self.name), ("namespace", self.namespace)):
            if value is not None:
                entry[key] = value
        if self.json_pointers:
            entry["jsonPointers"] = list(self.json_pointers)
        if self.field_paths:
            entry["fieldPaths"] = list(self.field_paths)
        return entry


def parse_json_pointer(text: str) -> Path:
    """``/spec/replicas`` → segments; ``~1`` is ``/`` and ``~0`` is ``~`` (RFC 6901)."""
    if not isinstance(text, str) or not text.startswith("/"):
        raise IgnoreError(f"{text!r} is not a JSON pointer (it must start with '/', e.g. /spec/replicas)")
    segments = []
    for raw in text[1:].split("/"):
        if re.search(r"~(?![01])", raw):
            raise IgnoreError(f"{text!r}: '~' must be followed by 0 ('~') or 1 ('/') in a JSON pointer")
        if not raw:
            raise IgnoreError(f"{text!r} has an empty segment")
        segments.append(("segment", raw.replace("~1", "/").replace("~0", "~")))
    path = tuple(segments)
    _check_protected(path, text)
    return path


def parse_field_path(text: str) -> Path:
    """``.spec.template.spec.containers[name="web"].image`` → elements (values in brackets are JSON)."""
    if not isinstance(text, str) or not text.startswith("."):
        raise IgnoreError(f"{text!r} is not a field path (it must start with '.', e.g. .spec.replicas)")
    elements: list[Element] = []
    position = 0
    while position < len(text):
        if text[position] == ".":
            match = _FIELD_NAME.match(text, position + 1)
            if match is None:
                raise IgnoreError(f"{text!r}: a field name is missing after the '.' at position {position}")
            elements.append(("field", match.group()))
            position = match.end()
        elif text[position] == "[":
            end = _closing_bracket(text, position)
            elements.append(_bracket(text, text[position + 1:end]))
            position = end + 1
        else:
            raise IgnoreError(f"{text!r}: unexpected {text[position]!r} at position {position}")
    path = tuple(elements)
    _check_protected(path, text)
    return path


def _closing_bracket(text: str, start: int) -> int:
    in_string = False
    escaped = False
    for index in range(start + 1, len(text)):
        char = text[index]
        if in_string:
            escaped = char == "\\" and not escaped
            if char == '"' and not escaped:
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char == "]":
            return index
    raise IgnoreError(f"{text!r}: '[' at position {start} is never closed")


def _json_value(text: str, body: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: brackets nested ~1,000 deep
        raise IgnoreError(f"{text!r}: {body!r} is not a JSON value (quote strings: [name=\"web\"])") from None


def _bracket(text: str, body: str) -> Element:
    if body.isascii() and body.isdigit():
        return ("index", int(body))
    if body.startswith("="):
        return ("value", _json_value(text, body[1:]))
    keys: dict[str, Any] = {}
    # Split on commas outside JSON strings: [name="a,b",port=80]
    for part in _split_outside_strings(body):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise IgnoreError(f"{text!r}: {'[' + body + ']'!r} is neither an index ([0]), a value ([=\"x\"]) nor keys "
                              "([name=\"web\"])")
        keys[name.strip()] = _json_value(text, value.strip())
    return ("key", keys)


def _split_outside_strings(body: str) -> Iterator[str]:
    start, in_string, escaped = 0, False, False
    for index, char in enumerate(body):
        if in_string:
            escaped = char == "\\" and not escaped
            if char == '"' and not escaped:
                in_string = False
        elif char == '"':
            in_string = True
        elif char == ",":
            yield body[start:index]
            start = index + 1
    yield body[start:]


def _check_protected(path: Path, text: str) -> None:
    names = []
    for kind, value in path:
        if kind not in ("field", "segment"):
            return
        names.append(str(value))
    for protected in _PROTECTED:
        if tuple(names) == protected[:len(names)]:
            raise IgnoreError(f"{text!r} covers {'.'.join(protected)}, which Convoy needs to find and own the "
                              "object (use the convoy.dev/ssa annotation to leave a whole object alone)")


def parse_rule(data: Any) -> Rule:
    """One bundle entry (the keys of :data:`ENTRY_FIELDS`), validated; :class:`IgnoreError` says what is wrong."""
    if not isinstance(data, Mapping):
        raise IgnoreError(f"an entry must be a mapping, not {type(data).__name__}")
    unknown = [key for key in data if key not in ENTRY_FIELDS]
    if unknown:
        raise IgnoreError(f"unknown field {unknown[0]!r} (allowed: {', '.join(ENTRY_FIELDS)})")
    kind = data.get("kind")
    if not isinstance(kind, str) or not kind:
        raise IgnoreError("kind is required (e.g. kind: Deployment)")
    filters: dict[str, str | None] = {}
    for key in ("group", "name", "namespace"):
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            raise IgnoreError(f"{key} must be a string, not {value!r}")
        if key != "group" and value == "":
            raise IgnoreError(f"{key} must not be empty (leave it out to match any)")
        filters[key] = value
    lists: dict[str, tuple[str, ...]] = {}
    for key in ("jsonPointers", "fieldPaths"):
        value = data.get(key)
        if value is None:
            value = []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise IgnoreError(f"{key} must be a list of strings")
        lists[key] = tuple(value)
    if not lists["jsonPointers"] and not lists["fieldPaths"]:
        raise IgnoreError("names no field: give jsonPointers and/or fieldPaths")
    return Rule(kind=kind, group=filters["group"], name=filters["name"], namespace=filters["namespace"],
                json_pointers=lists["jsonPointers"], field_paths=lists["fieldPaths"])


def rules_by_app(bundle: Mapping[str, Any]) -> tuple[dict[str, tuple[Rule, ...]], list[str]]:
    """Each app's rules from a bundle; a bad entry is left out and named in the problems."""
    found: dict[str, tuple[Rule, ...]] = {}
    problems: list[str] = []
    for app in bundle.get("apps") or []:
        rules = []
        for index, entry in enumerate(app.get("ignoreDifferences") or []):
            try:
                rules.append(parse_rule(entry))
            except IgnoreError as exc:
                problems.append(f"app {app.get('name')}: ignoreDifferences[{index}]: {exc}; not ignored")
        if rules:
            found[str(app.get("name"))] = tuple(rules)
    return found, problems


# -- resolving paths against an object --------------------------------------------------------------

def locate(obj: Any, path: Path) -> list[tuple[Any, Any]] | None:
    """The trail of (container, key-or-index) steps from ``obj`` to the field ``path`` names, or None if absent."""
    trail: list[tuple[Any, Any]] = []
    node = obj
    for kind, value in path:
        step: Any = _MISSING
        if isinstance(node, Mapping):
            if kind in ("field", "segment") and value in node:
                step = value
        elif isinstance(node, list):
            if kind == "index" and value < len(node):
                step = value
            elif kind == "segment" and value.isascii() and value.isdigit() and int(value) < len(node):
                step = int(value)
            elif kind == "key":
                step = next((i for i, item in enumerate(node) if isinstance(item, Mapping)
                             and all(k in item and _same(item[k], v) for k, v in value.items())), _MISSING)
            elif kind == "value":
                step = next((i for i, item in enumerate(node) if _same(item, value)), _MISSING)
        if step is _MISSING:
            return None
        trail.append((node, step))
        node = node[step]
    return trail


def _same(a: Any, b: Any) -> bool:
    return (type(a) is type(b) and a == b) or (isinstance(a, int | float) and isinstance(b, int | float)
                                            and not isinstance(a, bool) and not isinstance(b, bool) and a == b)


def _copy(obj: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(obj))
    return out


def _remove(trail: list[tuple[Any, Any]]) -> None:
    container, key = trail[-1]
    del container[key]


def without(obj: Mapping[str, Any], rules: Sequence[Rule]) -> dict[str, Any]:
    """A copy of ``obj`` without the fields the rules that match it ignore (what drift compares)."""
    matching = [r for r in rules if r.matches(obj)]
    if not matching:
        return dict(obj)
    out = _copy(obj)
    for path in _paths_deepest_last(matching):
        trail = locate(out, path)
        if trail:
            _remove(trail)
    return out


def _paths_deepest_last(rules: Sequence[Rule]) -> list[Path]:
    # Removing list items by index shifts later ones: remove from the highest index down.
    paths = [p for r in rules for p in r.paths]
    return sorted(paths, key=lambda p: [v if isinstance(v, int) else -1 for _, v in p], reverse=True)


def for_apply(manifest: Mapping[str, Any], live: Mapping[str, Any] | None, rules: Sequence[Rule], *,
              manager: str) -> dict[str, Any]:
    """What to server-side apply for ``manifest`` when ``rules`` ignore some of its fields.

    Creating (``live`` None), the manifest is applied whole, so the object starts with the Git value
    (as Argo CD's ``RespectIgnoreDifferences``). Updating, an ignored field is left out of the apply so
    Convoy owns it no longer and another manager's value stays, with one exception: a field only
    ``manager`` owns would be *deleted* by the API server if its sole owner applied without it, so it
    is applied with its live value instead (no change; Convoy keeps owning it until another manager
    writes it, and the next apply leaves it out).
    """
    matching = [r for r in rules if r.matches(manifest)]
    if live is None or not matching:
        return dict(manifest)
    out = _copy(manifest)
    managed = (live.get("metadata") or {}).get("managedFields") or []
    for path in _paths_deepest_last(matching):
        trail = locate(out, path)
        if not trail:
            continue
        live_trail = locate(live, path)
        if live_trail is not None and _sole_owner(managed, live_trail, manager):
            container, key = trail[-1]
            live_container, live_key = live_trail[-1]
            container[key] = json.loads(json.dumps(live_container[live_key]))
        else:
            _remove(trail)
    return out


def _sole_owner(managed: Sequence[Mapping[str, Any]], trail: list[tuple[Any, Any]], manager: str) -> bool:
    """``manager`` (by ``Apply``) owns the field at ``trail`` or something inside it, and no other manager does."""
    ours = False
    for entry in managed:
        tree = entry.get("fieldsV1")
        if not isinstance(tree, Mapping) or entry.get("subresource") == "status":
            continue
        if not _owns(tree, trail):
            continue
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            ours = True
        else:
            return False
    return ours


def _owns(tree: Mapping[str, Any], trail: list[tuple[Any, Any]]) -> bool:
    """The ``fieldsV1`` trie holds the field at ``trail`` (or, for an atomic list on the way, the list)."""
    node: Any = tree
    for container, key in trail:
        if not isinstance(node, Mapping):
            return False
        if isinstance(container, Mapping):
            node = node.get(f"f:{key}")
        else:
            item = container[key]
            elements = [e for e in node if e.startswith(("k:", "v:", "i:"))]
            if not elements:
                return True  # an atomic list: owned whole by whoever owns the list
            node = next((node[e] for e in elements if _element_matches(e, key, item)), None)
        if node is None:
            return False
    return True


def _element_matches(element: str, index: int, item: Any) -> bool:
    kind, _, body = element.partition(":")
    if kind == "i":
        return body == str(index)
    try:
        value = json.loads(body)
    except ValueError:
        return False
    if kind == "v":
        return _same(value, item)
    return (isinstance(value, dict) and isinstance(item, Mapping)
            and all(k in item and _same(item[k], v) for k, v in value.items()))
