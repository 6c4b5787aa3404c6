"""Reading YAML safely: CSafeLoader, a cap on alias expansion, errors that name the file."""

from __future__ import annotations

import re
from typing import Any

import yaml

from hub.tree.errors import KustomizeError

__all__ = ["MAX_ALIAS_EXPANSION", "MAX_DEPTH", "FieldPath", "load_yaml_any", "load_yaml_documents", "load_yaml_mapping",
           "load_yaml_resources"]

#: Nodes that aliases may add to a file (over all its documents) before it is refused as an alias bomb.
#: PyYAML shares aliased objects, so the bomb costs nothing at load time; it explodes later, in every
#: JSON encoding, merge or patch of the objects. Nodes written out count once however big the file
#: (its size is bounded on its own); real manifests reuse an anchor a few times at most.
MAX_ALIAS_EXPANSION = 100_000

#: Deepest nesting of mappings and lists in a document. libyaml stops at 1,000, but the JSON encoding,
#: copies and merges of an object recurse once or more per level and Python's stack ends near 1,000
#: frames: a 990-deep value would crash the render instead of failing its file. Real manifests (CRD
#: schemas included) stay far below this.
MAX_DEPTH = 128

_BaseLoader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc]
    """CSafeLoader with kustomize's (go-yaml v3, YAML 1.2) scalars instead of PyYAML's YAML 1.1 ones.

    ``yes``/``on``/``no``, ``12:30``, dates and a plain ``=`` (YAML 1.1's "value" key, which PyYAML cannot
    even construct: CRD schemas list it as an operator) stay strings, as they do through kustomize; otherwise
    ``value: "on"`` written unquoted would become ``true`` here and ``"on"`` in kubectl's output, and a
    date would become a Python date that no JSON encoder takes.
    """

    yaml_implicit_resolvers: dict[Any, Any] = {}

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # go-yaml v3 refuses a key written twice in one mapping (kubectl: 'mapping key "a" already
        # defined'); PyYAML would silently keep the last value. Keys merged in with "<<" may be overridden.
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"mapping key {key_node.value!r} already defined", key_node.start_mark)
                seen.add(key)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


for _first, _resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items():
    _Loader.yaml_implicit_resolvers[_first] = [
        (tag, regexp) for tag, regexp in _resolvers
        if tag not in {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
                       "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value"}]
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)\Z"),
                              list("tTfF"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?(?:0|[1-9][0-9_]*)|0x[0-9a-fA-F_]+|0b[01_]+|0[0-7_]+)\Z"),
    list("-+0123456789"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?|[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))\Z"),
    list("-+0123456789."))


class _KustomizationLoader(_Loader):
    """For kustomization files, which kustomize reads with go-yaml v2 (YAML 1.1 booleans).

    ``commonLabels: {enabled: yes}`` is the boolean true there, and so an error, not the label "yes".
    """

    yaml_implicit_resolvers = {first: list(resolvers) for first, resolvers in _Loader.yaml_implicit_resolvers.items()}

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # kustomize reads its own file without the duplicate-key check (its TODO): the last value wins.
        mapping: dict[Any, Any] = _BaseLoader.construct_mapping(self, node, deep=deep)
        return mapping


for _first in list(_KustomizationLoader.yaml_implicit_resolvers):
    _KustomizationLoader.yaml_implicit_resolvers[_first] = [
        (tag, regexp) for tag, regexp in _KustomizationLoader.yaml_implicit_resolvers[_first]
        if tag != "tag:yaml.org,2002:bool"]
_KustomizationLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)\Z"),
    list("yYnNtTfFoO"))


# PyYAML's bool constructor knows only its own spellings; these are go-yaml v2's.
_V2_BOOLS = {"y": True, "yes": True, "true": True, "on": True, "n": False, "no": False, "false": False,
             "off": False}


def _construct_bool(loader: Any, node: yaml.Node) -> bool:
    return _V2_BOOLS[str(loader.construct_scalar(node)).lower()]


_KustomizationLoader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)


#: What a node that contains itself (a recursive alias) counts as: more than any bound.
_INFINITE = 1 << 62


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes of ``node`` with every alias written out; ``memo`` ends up holding each distinct node once.

    Each distinct node is visited once (an alias reuses its anchor's memoised size), so this costs
    the file's size, not the expansion's.
    """
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = _INFINITE
    size = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            size += _expanded_size(child, memo)
    elif isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            size += _expanded_size(key_node, memo) + _expanded_size(value_node, memo)
    memo[key] = size
    return size


def _too_deep(document: Any) -> bool:
    """True when ``document`` nests mappings and lists deeper than :data:`MAX_DEPTH` (iteratively: no recursion).

    Shared (aliased) values are visited once per place they appear; aliases are bounded before this runs.
    """
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _non_string_keys(document: Any) -> list[Any]:
    """The first mapping key that is not a string (``1:``, ``true:``, ``~:``) in a list, or []; iteratively."""
    stack = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, str):
                    return [key]  # in a list: the key may be None
            stack.extend(child for child in value.values() if isinstance(child, dict | list))
        elif isinstance(value, list):
            stack.extend(child for child in value if isinstance(child, dict | list))
    return []


def _checked(documents: list[Any], file: str) -> list[Any]:
    if any(_too_deep(document) for document in documents):
        raise KustomizeError(f"a document nests deeper than {MAX_DEPTH} levels; refused", file=file)
    for document in documents:
        # kustomize refuses them too (JSON has only string keys); here they would break sorting and encoding.
        for key in _non_string_keys(document):
            raise KustomizeError(f"mapping key {key!r} ({type(key).__name__}) is not a string; quote it", file=file)
    return documents


def _problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return f"invalid YAML: {problem}"


def _load_all(data: bytes, file: str, loader_class: type[Any] = _Loader) -> list[Any]:
    return _checked(_construct(data, file, loader_class)[0], file)


def _construct(data: bytes, file: str, loader_class: type[Any]) -> tuple[list[Any], bool]:
    """The documents, and whether the loader met an empty value (only a :class:`_MarkingLoader` notes it)."""
    try:
        loader = loader_class(data)
        try:
            documents = []
            if b"*" not in data or b"&" not in data:
                # An alias needs an anchor ('&') and a reference ('*'): without both, take the fast path.
                while loader.check_data():
                    documents.append(loader.get_data())
                return documents, bool(getattr(loader, "saw_empty", False))
            added = 0
            while loader.check_node():
                node = loader.get_node()
                memo: dict[int, int] = {}
                # What aliases add is the expansion less the nodes written out; summed over the file, so
                # many documents each just under a per-document cap cannot add up to a bomb.
                added += _expanded_size(node, memo) - len(memo)
                if added > MAX_ALIAS_EXPANSION:
                    raise KustomizeError(
                        f"YAML aliases expand to more than {MAX_ALIAS_EXPANSION} extra nodes (alias bomb?); "
                        "refused", file=file)
                documents.append(loader.construct_document(node))
            return documents, bool(getattr(loader, "saw_empty", False))
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise KustomizeError(_problem(exc), file=file) from exc
    except UnicodeDecodeError as exc:
        raise KustomizeError(f"not valid UTF-8 text: {exc.reason}", file=file) from exc


class _EmptyValue:
    """What :class:`_MarkingLoader` makes of an empty value (``key:``) until :func:`_unmark` turns it into None."""

    __slots__ = ()


_EMPTY = _EmptyValue()


class _MarkingLoader(_Loader):
    """:class:`_Loader` that tells an empty value (``key:``) from a written null (``null``, ``~``).

    Both are null, but kustomize's strategic merge keeps an object's written null that the patch does not
    touch and drops an empty one (kyaml merge2 keeps a null node only when its text is not empty).
    """

    saw_empty = False

    def construct_null_or_empty(self, node: yaml.ScalarNode) -> Any:
        if node.value == "":
            self.saw_empty = True
            return _EMPTY
        return None


_MarkingLoader.add_constructor("tag:yaml.org,2002:null", _MarkingLoader.construct_null_or_empty)

#: Where an empty value sits in a document: its keys and list indexes from the top.
FieldPath = tuple[str | int, ...]


def _unmark(document: Any) -> tuple[Any, list[FieldPath]]:
    """``document`` with its empty values made None, and the paths of those that are mapping values."""
    if document is _EMPTY:
        return None, []
    paths: list[FieldPath] = []
    stack: list[tuple[Any, FieldPath]] = [(document, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            if _EMPTY in value:
                value[None] = value.pop(_EMPTY)  # an empty key: refused later as a non-string key
            for key, child in value.items():
                if child is _EMPTY:
                    value[key] = None
                    paths.append((*path, key))
                elif isinstance(child, dict | list):
                    stack.append((child, (*path, key)))
        elif isinstance(value, list):
            for index, child in enumerate(value):
                if child is _EMPTY:
                    value[index] = None
                elif isinstance(child, dict | list):
                    stack.append((child, (*path, index)))
    return document, paths


def load_yaml_documents(data: bytes, *, file: str) -> list[dict[str, Any]]:
    """The mapping documents of a multi-document YAML file; empty documents are skipped.

    ``kind: *List`` documents are expanded into their ``items``, as kustomize does.
    """
    return [document for document, _ in _objects(_load_all(data, file), [], file)]


def load_yaml_resources(data: bytes, *, file: str) -> list[tuple[dict[str, Any], list[FieldPath]]]:
    """As :func:`load_yaml_documents`, each object with the paths of its empty values (``key:``)."""
    documents, saw_empty = _construct(data, file, _MarkingLoader)
    if not saw_empty:
        return _objects(_checked(documents, file), [], file)
    unmarked = [_unmark(document) for document in documents]
    return _objects(_checked([document for document, _ in unmarked], file), [paths for _, paths in unmarked], file)


def _objects(documents: list[Any], paths: list[list[FieldPath]],
             file: str) -> list[tuple[dict[str, Any], list[FieldPath]]]:
    result: list[tuple[dict[str, Any], list[FieldPath]]] = []
    for index, document in enumerate(documents):
        if document is None:
            continue
        if not isinstance(document, dict):
            raise KustomizeError(
                f"document {index + 1} is a {type(document).__name__}, not a Kubernetes object (a mapping)",
                file=file)
        own = paths[index] if paths else []
        kind = document.get("kind")
        if isinstance(kind, str) and kind.endswith("List") and "items" in document:
            items = document.get("items") or []
            if not isinstance(items, list):
                raise KustomizeError(f"document {index + 1}: items of {kind} is not a list", file=file)
            for item in items:
                if not isinstance(item, dict):
                    raise KustomizeError(f"document {index + 1}: an item of {kind} is not a mapping", file=file)
                # kustomize re-encodes a List's items: their empty values become written nulls.
                result.append((item, []))
            continue
        result.append((document, own))
    return result


def load_yaml_any(data: bytes, *, file: str) -> list[Any]:
    """Every non-empty document, whatever its shape (patch lists)."""
    return [document for document in _load_all(data, file) if document is not None]


def load_yaml_mapping(data: bytes, *, file: str) -> dict[str, Any]:
    """Exactly one mapping document (a kustomization file); an empty file is an empty mapping."""
    documents = [document for document in _load_all(data, file, _KustomizationLoader) if document is not None]
    if not documents:
        return {}
    if len(documents) > 1:
        raise KustomizeError("expected one YAML document, found several", file=file)
    if not isinstance(documents[0], dict):
        raise KustomizeError(f"expected a mapping, found a {type(documents[0]).__name__}", file=file)
    return documents[0]
