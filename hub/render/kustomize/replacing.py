"""``replacements``: copy one field of one object into fields of other objects, as kustomize does.

Mirrors ``api/filters/replacement`` and ``api/internal/builtins/ReplacementTransformer.go`` of
kustomize v5.5.0 (the version ``kubectl`` embeds), quirks included:

* the source is the one object whose current or any previous id matches ``source`` exactly (kind, name,
  namespace, group, version); ``fieldPath`` defaults to ``metadata.name``; a missing or empty value is
  an error;
* a target is every object matched by ``select`` (id exactly, label and annotation selectors) and by no
  ``reject``; each of its ``fieldPaths`` must exist unless ``options.create`` is set;
* field paths are dot-separated (``\\.`` escapes a dot, ``[a.b]`` keeps one); ``[name=value]`` selects
  list elements — in targets ``value`` is an *unanchored* regular expression, in the source an exact
  value —, a number selects by index (``-`` is the last element in the source), and ``*`` every
  element of a list (targets only);
* a scalar target keeps its type when the value fits it (``replicas: 1`` stays a number, a string stays a
  string); a created field takes the value as YAML reads it unquoted; a list or mapping target is
  replaced by a copy of the value; a list or mapping copied into a scalar leaves an empty string;
* ``delimiter``/``index`` pick a part of the source value, and replace (or, out of range, prepend or
  append) a part of the target value.

A number, boolean or null target keeps its type, and a value that does not fit it is refused (kubectl fails
to write such an object); a null annotation takes the text, as kubectl's rewriting of annotations does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from hub.render.kustomize import patching
from hub.render.kustomize.kustomization import Kustomization
from hub.render.kustomize.resources import (
    NOT_NAMESPACEABLE,
    Resource,
    clone,
    is_cluster_scoped,
)
from hub.tree import repofs
from hub.tree.errors import KustomizeError
from hub.tree.loading import load_yaml_any

__all__ = ["apply_replacements", "load_replacements", "split_field_path"]

_ID_FIELDS = frozenset({"group", "version", "kind", "name", "namespace"})
_SOURCE_FIELDS = _ID_FIELDS | {"fieldPath", "options"}
_SELECTOR_FIELDS = _ID_FIELDS | {"labelSelector", "annotationSelector"}
_TARGET_FIELDS = frozenset({"select", "reject", "fieldPaths", "options"})
_OPTION_FIELDS = frozenset({"delimiter", "index", "encoding", "create"})
_DEFAULT_FIELD_PATH = "metadata.name"



class _Created:
    """A created leaf or list element before it gets its value.

    kustomize creates an untagged node, so the value it then takes is read as plain YAML (the string
    ``"8080"`` becomes the number 8080).
    """

    def __init__(self, text: str = "") -> None:
        self.text = text

_Path = list[str]
_Place = tuple[Any, Any]  # (parent mapping or list, key or index)


# -- reading the configuration ---------------------------------------------------------------------

def _check_keys(value: Any, allowed: frozenset[str], where: str, file: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise KustomizeError(f"replacements: {where} must be a mapping", file=file)
    unknown = set(value) - allowed
    if unknown:
        raise KustomizeError(f"replacements: {where}: unknown field {sorted(unknown)[0]!r}", file=file)
    return value


def _options(value: Any, where: str, file: str) -> dict[str, Any]:
    if value is None:
        return {}
    options = _check_keys(value, _OPTION_FIELDS, f"{where}.options", file)
    if not isinstance(options.get("delimiter", ""), str) or not isinstance(options.get("index", 0), int):
        raise KustomizeError(f"replacements: {where}.options: delimiter must be a string and index an integer",
                             file=file)
    return options


def _check_replacement(raw: Any, where: str, file: str, *, strict: bool) -> dict[str, Any]:
    """One replacement; ``strict`` (inline in a kustomization) refuses unknown fields, as kustomize does."""
    if not isinstance(raw, dict):
        raise KustomizeError(f"replacements: {where} must be a mapping", file=file)
    if strict:
        _check_keys(raw, frozenset({"source", "targets", "path"}), where, file)
    source, targets = raw.get("source"), raw.get("targets")
    if source is None or not targets:
        raise KustomizeError(f"replacements: {where} must specify a source and at least one target", file=file)
    source = _check_keys(source, _SOURCE_FIELDS if strict else frozenset(source), f"{where}.source", file)
    _options(source.get("options"), f"{where}.source", file)
    if not isinstance(targets, list):
        raise KustomizeError(f"replacements: {where}.targets must be a list", file=file)
    for number, target in enumerate(targets):
        at = f"{where}.targets[{number}]"
        target = _check_keys(target, _TARGET_FIELDS if strict else frozenset(target), at, file)
        if target.get("select") is None:
            raise KustomizeError(f"replacements: {at} must specify resources to select", file=file)
        _check_keys(target["select"], _SELECTOR_FIELDS, f"{at}.select", file)
        rejects = target.get("reject") or []
        if not isinstance(rejects, list):
            raise KustomizeError(f"replacements: {at}.reject must be a list", file=file)
        for reject in rejects:
            _check_keys(reject, _SELECTOR_FIELDS, f"{at}.reject", file)
        paths = target.get("fieldPaths") or []
        if not isinstance(paths, list) or not all(isinstance(path, str) for path in paths):
            raise KustomizeError(f"replacements: {at}.fieldPaths must be a list of strings", file=file)
        _options(target.get("options"), at, file)
    return raw


def load_replacements(fs: repofs.RepoFS, k: Kustomization, *, restrict: bool) -> list[dict[str, Any]]:
    """The kustomization's replacements in order: inline ones, and those of each ``path:`` file."""
    result: list[dict[str, Any]] = []
    for number, entry in enumerate(k.replacements):
        where = f"replacements[{number}]"
        path = entry.get("path")
        if path is None:
            result.append(_check_replacement(entry, where, k.file, strict=True))
            continue
        if not isinstance(path, str) or entry.get("source") is not None or entry.get("targets"):
            raise KustomizeError(f"{where}: cannot specify both path and inline replacement", file=k.file)
        full = repofs.normalize(path, base=k.directory, file=k.file)
        if restrict and k.directory and not full.startswith(k.directory + "/"):
            raise KustomizeError(
                f"replacements file {path!r} is outside the kustomization directory (load restrictor RootOnly)",
                file=k.file)
        if not fs.is_file(full):
            raise KustomizeError(f"replacements file {path!r} does not exist", file=k.file)
        documents = load_yaml_any(fs.read_bytes(full), file=full)
        if len(documents) != 1 or not isinstance(documents[0], list | dict):
            raise KustomizeError("a replacements file holds one replacement or one list of them", file=full)
        loaded = documents[0] if isinstance(documents[0], list) else [documents[0]]
        # kustomize reads these files leniently (unknown fields ignored), unlike the kustomization itself.
        result.extend(_check_replacement(item, f"{path}[{index}]", full, strict=False)
                      for index, item in enumerate(loaded))
    return result


# -- field paths -----------------------------------------------------------------------------------

def split_field_path(path: str) -> _Path:
    """kyaml's ``SmarterPathSplitter(path, ".")``: ``\\.`` escapes, ``[a=b.c]`` and ``[a.b]`` stay whole."""
    parts = path.split(".")
    if len(parts) > 1 and parts[0] == "":
        parts = parts[1:]
    escaped: list[str] = [parts[0]]
    for part in parts[1:]:
        if escaped[-1].endswith("\\"):
            escaped[-1] = escaped[-1][:-1] + "." + part
        else:
            escaped.append(part)
    result: list[str] = []
    index = 0
    while index < len(escaped):
        elem = escaped[index]
        if elem.startswith("[") and not elem.endswith("]"):
            bracketed = [elem]
            while index < len(escaped) - 1:
                index += 1
                bracketed.append(escaped[index])
                if escaped[index].endswith("]"):
                    break
            joined = ".".join(bracketed)
            result.append(joined if "=" in joined else joined.strip("[]"))
        else:
            result.append(elem)
        index += 1
    return result


def _is_index(part: str) -> bool:
    return bool(re.fullmatch(r"[+-]?[0-9]+", part)) and int(part) >= 0


def _is_list_match(part: str) -> bool:
    return part.startswith("[") and part.endswith("]") and "=" in part


def _split_match(part: str) -> tuple[str, str]:
    name, _, value = part[1:-1].partition("=")
    return name, value


def _text(value: Any) -> str:
    """The text of a scalar as kustomize reads it (its YAML value); a list or mapping has none."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _Created):
        return value.text
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value)


def _plain(text: str) -> Any:
    """``text`` as YAML reads it unquoted (go-yaml v3 rules: ``8080`` a number, ``on`` a string)."""
    try:
        documents = load_yaml_any(text.encode("utf-8"), file="<replacement value>")
    except KustomizeError:
        return text
    value = documents[0] if len(documents) == 1 else None
    return value if isinstance(value, str | int | float | bool) else text


def _new_node(next_part: str | None, leaf: Any) -> Any:
    # kyaml's getPathPartKind: a list before an index or [a=b], the value's kind at the end, else a mapping.
    if next_part is None:
        return leaf() if callable(leaf) else leaf
    if _is_list_match(next_part) or _is_index(next_part):
        return []
    return {}


# -- the source (kyaml PathGetter) ---------------------------------------------------------------

def _lookup(node: Any, path: _Path, fp: str, file: str) -> Any:
    for part in (p.strip() for p in path):
        if not part:
            continue
        if node is None:
            return None
        if _is_index(part) or part == "-":
            if not isinstance(node, list):
                raise KustomizeError(f"replacements: source fieldPath {fp!r}: {part} indexes a non-list", file=file)
            index = -1 if part == "-" else int(part)
            node = node[index] if node and index < len(node) else None
        elif part == "*":
            raise KustomizeError(f"replacements: source fieldPath {fp!r}: wildcard is not supported in a source",
                                 file=file)
        elif _is_list_match(part):
            if not isinstance(node, list):
                raise KustomizeError(f"replacements: source fieldPath {fp!r}: {part} selects in a non-list",
                                     file=file)
            name, value = _split_match(part)
            found = [elem for elem in node
                     if (not name and _text(elem) == value)
                     or (name and isinstance(elem, dict) and name in elem and _text(elem[name]) == value)]
            node = found[0] if found else None
        else:
            if not isinstance(node, dict):
                raise KustomizeError(f"replacements: source fieldPath {fp!r}: {part!r} is not a mapping field",
                                     file=file)
            node = node.get(part)
    return node


# -- targets (kyaml PathMatcher) -----------------------------------------------------------------

class _Matcher:
    def __init__(self, fp: str, *, create: bool, leaf: Any, file: str, obj: str) -> None:
        self.fp, self.create, self.leaf, self.file, self.obj = fp, create, leaf, file, obj

    def fail(self, why: str) -> KustomizeError:
        verb = "find or create" if self.create else "find"
        return KustomizeError(f"replacements: unable to {verb} field {self.fp!r} in {self.obj}: {why}",
                              file=self.file)

    def fail_set(self, why: str) -> KustomizeError:
        return KustomizeError(f"replacements: cannot set field {self.fp!r} in {self.obj}: {why}", file=self.file)

    def match(self, parent: Any, key: Any, path: _Path) -> list[_Place]:
        node = parent[key]
        if not path:
            return [(parent, key)]
        part, rest = path[0], path[1:]
        following = rest[0] if rest else None
        if _is_index(part):
            if node is None:
                node = []
            if not isinstance(node, list):
                raise self.fail(f"{part} indexes a {type(node).__name__}, not a list")
            index = int(part)
            if index == len(node) and self.create:
                node.append(_new_node(following, self.leaf))
                parent[key] = node
            if index >= len(node):
                raise self.fail(f"index {index} specified but only {len(node)} elements found")
            return self.match(node, index, rest)
        if _is_list_match(part):
            return self._match_elements(parent, key, part, rest)
        if part == "*":
            if node is None:
                return []
            if not isinstance(node, list):
                raise self.fail(f"* applies to a list, not a {type(node).__name__}")
            return [place for index in range(len(node)) for place in self.match(node, index, rest)]
        if node is None:
            if not self.create:
                return []
            node = parent[key] = {}
        if not isinstance(node, dict):
            raise self.fail(f"{part!r} is looked up in a {type(node).__name__}, not a mapping")
        if part not in node:
            if not self.create:
                return []
            node[part] = _new_node(following, self.leaf)
        return self.match(node, part, rest)

    def _match_elements(self, parent: Any, key: Any, part: str, rest: _Path) -> list[_Place]:
        node = parent[key]
        if node is not None and not isinstance(node, list):
            raise self.fail(f"{part} selects in a {type(node).__name__}, not a list")
        name, value = _split_match(part)
        try:
            pattern = re.compile(value)
        except re.error as exc:
            raise self.fail(f"invalid regular expression {value!r}: {exc}") from exc
        places: list[_Place] = []
        for index, elem in enumerate(node or []):
            if not name:
                if pattern.search(_text(elem)):
                    places.append((node, index))  # kyaml stops here for a list of scalars
            elif isinstance(elem, dict) and elem.get(name) is not None and pattern.search(_text(elem[name])):
                places.extend(self.match(node, index, rest))
        if places or not self.create:
            return places
        if node is None:
            node = parent[key] = []
        node.append(_Created(value) if not name else {name: _plain(value)})
        return self._match_elements(parent, key, part, rest)


# -- setting ---------------------------------------------------------------------------------------

def _join(target: Any, value: Any, options: dict[str, Any], where: Callable[[str], KustomizeError]) -> str:
    if isinstance(target, dict | list):
        raise where("delimiter option can only be used with scalar nodes")
    parts = _text(target).split(options["delimiter"])
    index = int(options.get("index") or 0)
    if index < 0:
        parts.insert(0, _text(value))
    elif index >= len(parts):
        parts.append(_text(value))
    else:
        parts[index] = _text(value)
    return str(options["delimiter"]).join(parts)


def _set(place: _Place, value: Any, options: dict[str, Any], where: Callable[[str], KustomizeError], *,
         annotation: bool) -> None:
    parent, key = place
    target = parent[key]
    text: str | None = None
    if options.get("delimiter"):
        text = _join(target, value, options, where)
    new_text = text if text is not None else _text(value)
    if isinstance(target, _Created):
        parent[key] = _plain(new_text)
    elif isinstance(target, dict | list):
        parent[key] = clone(value) if text is None else text
    elif isinstance(target, str) or (target is None and annotation):
        # kustomize rewrites annotations as strings at the end, so a null one takes the text too.
        parent[key] = new_text
    else:
        # A number, boolean or null keeps its YAML tag in kustomize, and the output cannot be written when
        # the new text is not of that type (kubectl: 'cannot decode !!str `a.b` as a !!int'): refused here.
        new = _plain(new_text)
        fits = (type(new) is type(target) or (isinstance(target, float) and type(new) is int)
                or (target is None and new_text in {"", "null", "~"}))
        if not fits:
            kind = "null" if target is None else {bool: "a boolean", int: "an integer"}.get(type(target), "a number")
            raise where(f"the field is {kind} and {new_text!r} is not")
        parent[key] = new


# -- selection -------------------------------------------------------------------------------------

_Id = tuple[str, str, str, str, str]  # group, version, kind, name, effective namespace


def _ids(res: Resource) -> list[_Id]:
    return [(res.group, res.version, kind, name, ns) for kind, name, ns in res.any_ids()]


def _selected_by(ident: _Id, selector: dict[str, Any]) -> bool:
    group, version, kind, name, ns = ident
    s_group, s_version, s_kind, s_name, s_ns = (str(selector.get(key) or "")
                                                for key in ("group", "version", "kind", "name", "namespace"))
    if s_ns:
        api_version = f"{s_group}/{s_version}" if s_group else s_version
        effective = NOT_NAMESPACEABLE if is_cluster_scoped(api_version, s_kind) else s_ns
        if effective != ns:
            return False
    return ((not s_name or s_name == name) and (not s_group or s_group == group)
            and (not s_version or s_version == version) and (not s_kind or s_kind == kind))


def _describe(selector: dict[str, Any]) -> str:
    text = "/".join(str(selector[key]) for key in ("kind", "namespace", "name") if selector.get(key))
    return text or "(anything)"


def _labels_match(res: Resource, selector: dict[str, Any], file: str) -> bool:
    for key, values in (("labelSelector", res.labels()), ("annotationSelector", res.annotations())):
        if selector.get(key):
            parsed = patching.parse_label_selector(str(selector[key]), file=file, field=key)
            if not patching.matches(parsed, values):
                return False
    return True


def _source_value(resources: list[Resource], source: dict[str, Any], file: str) -> Any:
    matches = [res for res in resources if any(_selected_by(ident, source) for ident in _ids(res))]
    if not matches:
        raise KustomizeError(f"replacements: nothing selected by source {_describe(source)}", file=file)
    if len(matches) > 1:
        raise KustomizeError(f"replacements: several objects match source {_describe(source)}: "
                             f"{', '.join(res.describe() for res in matches)}", file=file)
    fp = str(source.get("fieldPath") or _DEFAULT_FIELD_PATH)
    value = _lookup(matches[0].obj, split_field_path(fp), fp, file)
    if value is None or value == {} or value == []:  # kyaml IsNilOrEmpty: "" is a value
        raise KustomizeError(f"replacements: fieldPath {fp!r} is missing for replacement source "
                             f"{matches[0].describe()}", file=file)
    options = source.get("options") or {}
    if not options.get("delimiter"):
        return value
    if isinstance(value, dict | list):
        raise KustomizeError("replacements: delimiter option can only be used with scalar nodes", file=file)
    parts = _text(value).split(options["delimiter"])
    index = int(options.get("index") or 0)
    if index < 0 or index >= len(parts):
        raise KustomizeError(f"replacements: options.index {index} is out of bounds for value {_text(value)!r}",
                             file=file)
    return parts[index] if isinstance(value, str) else _plain(parts[index])


def _is_target(res: Resource, target: dict[str, Any], file: str) -> bool:
    select, rejects = target["select"], target.get("reject") or []
    if not _labels_match(res, select, file):
        return False
    for reject in rejects:
        if (reject.get("labelSelector") or reject.get("annotationSelector")) and _labels_match(res, reject, file):
            return False
    ids = _ids(res)
    for reject in rejects:
        if any(reject.get(key) for key in _ID_FIELDS) and any(_selected_by(ident, reject) for ident in ids):
            return False
    return any(_selected_by(ident, select) for ident in ids)


def _copy_to(res: Resource, value: Any, target: dict[str, Any], file: str) -> None:
    options = target.get("options") or {}
    create = bool(options.get("create"))
    leaf: Any = _Created if not isinstance(value, dict | list) else (dict if isinstance(value, dict) else list)
    for fp in target.get("fieldPaths") or [_DEFAULT_FIELD_PATH]:
        matcher = _Matcher(fp, create=create, leaf=leaf, file=file, obj=res.describe())
        holder = [res.obj]
        path = split_field_path(fp)
        places = matcher.match(holder, 0, path)
        if not places:
            raise matcher.fail("no such field")
        annotation = [part.strip() for part in path[:2]] == ["metadata", "annotations"]
        for place in places:
            _set(place, value, options, matcher.fail_set, annotation=annotation)
        res.obj = holder[0]


def apply_replacements(resources: list[Resource], replacements: list[dict[str, Any]], *, file: str) -> None:
    """Run ``replacements`` (checked by :func:`load_replacements`) over ``resources``, in order, in place."""
    for replacement in replacements:
        value = _source_value(resources, replacement["source"], file)
        for target in replacement["targets"]:
            for res in resources:
                if _is_target(res, target, file):
                    _copy_to(res, value, target, file)
