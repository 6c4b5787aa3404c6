"""``vars``: kustomize's ``$(VAR)`` substitution, with its matching, merging, lookup and formatting rules.

Mirrors v5.5.0's ``ResAccumulator.MergeVars``/``ResolveVars``, ``types.VarSet`` and
``filters/refvar``. A kustomization's vars are matched, once its own transformers
ran, to the one object each names (by any name it had: "the raw name, before
prefixes"); vars of bases and components join the overlay's set, and a name
declared twice is an error. At the very end of the build — after hash suffixes
and name-reference fixes, so a value carries every prefix — each var's value
is read from its object's ``fieldref.fieldpath`` and substituted wherever the
var-reference field specs point (the built-in ones plus ``varReference`` of
``configurations``). An unknown ``$(X)`` stays as written; ``$$`` is a literal
``$``; a value standing alone keeps its type (``replicas: $(N)`` stays a number).
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hub.render import budgets
from hub.render.kustomize.resources import (
    DEFAULT_NAMESPACE,
    FieldSpec,
    Resource,
    apply_field_spec,
    split_api_version,
)
from hub.tree.errors import KustomizeError, LimitError

__all__ = ["Var", "absorb", "declare", "do_replacements", "field_value", "parse_vars", "resolve"]

#: kustomize's ``DefaultReplacementFieldPath``.
DEFAULT_FIELD_PATH = "metadata.name"


@dataclass(frozen=True, slots=True)
class Var:
    """One entry of ``vars``: a name, the object it reads (``objref``) and where in it (``fieldref``)."""

    name: str
    group: str
    version: str
    kind: str
    obj_name: str
    namespace: str
    field_path: str
    #: The kustomization that declared it, for messages.
    file: str

    def describe(self) -> str:
        group_version = "/".join(part for part in (self.group, self.version) if part) or "no apiVersion"
        where = f" in namespace {self.namespace}" if self.namespace else ""
        return f"{self.kind} {self.obj_name!r} ({group_version}){where}, field {self.field_path}"


# -- parsing -----------------------------------------------------------------------------------

def _folded(raw: dict[str, Any], known: tuple[str, ...], *, where: str, file: str) -> dict[str, Any]:
    # kustomize decodes vars with Go's encoding/json, which matches keys case-insensitively
    # (`fieldRef: {fieldPath: ...}` is as good as `fieldref: {fieldpath: ...}`) and refuses unknown ones.
    by_lower = {key.lower(): key for key in known}
    result: dict[str, Any] = {}
    for key, value in raw.items():
        name = by_lower.get(str(key).lower())
        if name is None:
            raise KustomizeError(f"{where}: unknown field {str(key)!r}", file=file)
        result[name] = value
    return result


def _string(raw: dict[str, Any], key: str, *, where: str, file: str) -> str:
    value = raw.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise KustomizeError(f"{where}: {key} must be a string, not {value!r}", file=file)
    return value


def parse_vars(raw: Any, *, file: str) -> list[Var]:
    """The ``vars`` field of a kustomization, checked as kustomize decodes it."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise KustomizeError("vars must be a list of mappings", file=file)
    result = []
    for item in raw:
        entry = _folded(item, ("name", "objref", "fieldref"), where="vars", file=file)
        name = _string(entry, "name", where="vars", file=file)
        where = f"vars: {name or '(no name)'}"
        objref = entry.get("objref") or {}
        fieldref = entry.get("fieldref") or {}
        if not isinstance(objref, dict) or not isinstance(fieldref, dict):
            raise KustomizeError(f"{where}: objref and fieldref must be mappings", file=file)
        ref = _folded(objref, ("apiVersion", "group", "version", "kind", "name", "namespace"),
                      where=f"{where}: objref", file=file)
        group, version = (_string(ref, key, where=f"{where}: objref", file=file) for key in ("group", "version"))
        api_version = _string(ref, "apiVersion", where=f"{where}: objref", file=file)
        if api_version:
            # types.Target.GVK(): apiVersion, when given, overrides group and version ("a/b/c" sets neither).
            parts = api_version.split("/")
            if len(parts) == 2:
                group, version = parts
            elif len(parts) == 1:
                version = parts[0]
        path = _string(_folded(fieldref, ("fieldPath",), where=f"{where}: fieldref", file=file), "fieldPath",
                       where=f"{where}: fieldref", file=file)
        result.append(Var(name=name, group=group, version=version,
                          kind=_string(ref, "kind", where=f"{where}: objref", file=file),
                          obj_name=_string(ref, "name", where=f"{where}: objref", file=file),
                          namespace=_string(ref, "namespace", where=f"{where}: objref", file=file),
                          field_path=path or DEFAULT_FIELD_PATH, file=file))
    return result


# -- declaring and merging -----------------------------------------------------------------------

def _names(res: Resource, var: Var) -> bool:
    # kustomize's targetId.GvknEquals (exact group, version, kind and name: an objref without its
    # apiVersion names nothing), plus the effective namespace when the objref gives one; against every
    # id the object has had.
    group, version = split_api_version(res.api_version)
    if (group, version) != (var.group, var.version):
        return False
    wanted_ns = var.namespace if var.namespace not in ("", DEFAULT_NAMESPACE) else DEFAULT_NAMESPACE
    return any(kind == var.kind and name == var.obj_name and (not var.namespace or ns == wanted_ns)
               for kind, name, ns in res.any_ids())


def declare(declared: dict[str, Var], incoming: Iterable[Var], resources: list[Resource], *, file: str) -> None:
    """Add a kustomization's ``incoming`` vars to ``declared``, marking the object each names (``MergeVars``)."""
    incoming = list(incoming)
    for var in incoming:
        matched = [res for res in resources if _names(res, var)]
        if len(matched) > 1:
            raise KustomizeError(
                f"var {var.name!r} could read any of {len(matched)} objects "
                f"({', '.join(res.describe() for res in matched)}); give its objref a namespace", file=file)
        if matched:
            matched[0].var_names.append(var.name)
    absorb(declared, incoming, file=file)


def absorb(declared: dict[str, Var], incoming: Iterable[Var], *, file: str) -> None:
    """Merge vars into ``declared``; a name already there is an error, as in kustomize (``VarSet.Merge``)."""
    for var in incoming:
        first = declared.get(var.name)
        if first is not None:
            raise KustomizeError(f"var {var.name!r} is declared twice (in {first.file} and {var.file})", file=file)
        declared[var.name] = var


# -- reading a value (kyaml's RNode.GetFieldValue) -------------------------------------------------

class _Missing(Exception):
    """The field path leads nowhere in the object."""


def _split_path(path: str) -> list[str]:
    """kyaml's ``SmarterPathSplitter(path, ".")`` then ``convertSliceIndex`` then ``cleanPath``."""
    pieces = path.split(".")
    if len(pieces) > 1 and pieces[0] == "":
        pieces = pieces[1:]
    split = [pieces[0]]
    for piece in pieces[1:]:
        if split[-1].endswith("\\"):
            split[-1] = split[-1][:-1] + "." + piece
        else:
            split.append(piece)
    smarter: list[str] = []
    index = 0
    while index < len(split):
        elem = split[index]
        if elem.startswith("[") and not elem.endswith("]"):
            bracketed = [elem]
            while index < len(split) - 1:
                index += 1
                bracketed.append(split[index])
                if split[index].endswith("]"):
                    break
            joined = ".".join(bracketed)
            smarter.append(joined if "=" in joined else joined.strip("[]"))
        else:
            smarter.append(elem)
        index += 1
    result: list[str] = []
    for elem in smarter:
        match = re.fullmatch(r"(.*)\[(\d+)\]", elem, flags=re.DOTALL) if elem.endswith("]") else None
        if match is None:
            result.append(elem)
            continue
        if match.group(1):
            result.append(match.group(1))
        result.append(match.group(2))
    return [elem.strip() for elem in result if elem.strip()]


def _scalar_text(value: Any) -> str:
    """The text a YAML scalar node holds (what kyaml compares and what Go prints for a node's Value)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, float):
        return _go_float(value, "f")
    return str(value)


def _step(node: Any, part: str) -> Any:
    if re.fullmatch(r"[+-]?[0-9]+", part):
        index = int(part)
        if index < 0 or not isinstance(node, list):
            raise _Missing
        if index >= len(node):
            raise _Missing
        return node[index]
    if part == "-":
        if not isinstance(node, list) or not node:
            raise _Missing
        return node[-1]
    if part.startswith("[") and part.endswith("]"):
        name, equals, wanted = part[1:-1].partition("=")
        if not equals or not isinstance(node, list):
            raise _Missing
        for element in node:
            if not name:
                if not isinstance(element, dict | list) and _scalar_text(element) == wanted:
                    return element
            elif isinstance(element, dict) and any(
                    _scalar_text(key) == name and not isinstance(value, dict | list) and _scalar_text(value) == wanted
                    for key, value in element.items()):
                return element
        raise _Missing
    if part == "*" or not isinstance(node, dict):
        raise _Missing
    for key, value in node.items():
        if _scalar_text(key) == part:
            return value
    raise _Missing


def field_value(obj: dict[str, Any], path: str) -> Any:
    """The value at kustomize field path ``path`` (``spec.ports[0].port``, ``spec.containers.[name=web].image``).

    Raises ``LookupError`` when there is none.
    """
    node: Any = obj
    parts = _split_path(path)
    for index, part in enumerate(parts):
        if node is None and index > 0:
            raise LookupError(path)  # kyaml never matches below a null
        try:
            node = _step(node, part)
        except _Missing:
            raise LookupError(path) from None
    return "" if node is None else node


# -- formatting as Go does ------------------------------------------------------------------------

def _go_float(value: float, verb: str) -> str:
    """``strconv.FormatFloat(value, 'f', -1, 64)`` (verb "f") or ``fmt.Sprintf("%v", value)`` (verb "v")."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    exact = decimal.Decimal(repr(value))  # repr is the shortest text that reads back, as Go's -1 precision
    if verb == "f":
        text = format(exact, "f")
        return text[:-2] if text.endswith(".0") else text
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digits, exponent = exact.normalize().as_tuple()
    assert isinstance(exponent, int)
    point = len(digits) + exponent  # decimal point position after the first digit run
    x = point - 1
    prefix = "-" if sign else ""
    if x < -4 or x >= 6:
        # %v on a float64 is %g with the shortest digits, whose exponent threshold is then 6 (strconv's rule).
        mantissa = "".join(map(str, digits))
        body = mantissa[0] + ("." + mantissa[1:] if len(mantissa) > 1 else "")
        return f"{prefix}{body}e{'-' if x < 0 else '+'}{abs(x):02d}"
    return prefix + format(abs(exact).normalize(), "f")


def _go_print(value: Any) -> str:
    """``fmt.Sprintf("%v", value)`` for the primitive values a var can hold."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value, "v")
    return str(value)


def _is_primitive(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


class ExpansionTooLarge(Exception):
    """Expanding a value would pass the length it was allowed."""


def do_replacements(text: str, mapping: Callable[[str], Any], *, max_chars: int | None = None) -> Any:
    """refvar's ``DoReplacements``: expand every ``$(NAME)`` of ``text``; ``text`` that is one reference keeps its type.

    ``max_chars`` bounds the result as it grows (:class:`ExpansionTooLarge`): a short value can hold
    thousands of references to a long one.
    """
    out: list[str] = []
    size = 0
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            rest = text[cursor + 1:]
            if rest[0] == "$":
                read, is_var, advance = "$", False, 1
            elif rest[0] == "(":
                close = rest.find(")", 1)
                if close >= 0:
                    read, is_var, advance = rest[1:close], True, close + 1
                else:
                    read, is_var, advance = "$(", False, 1
            else:
                read, is_var, advance = "$" + rest[0], False, 1
            if is_var:
                mapped = mapping(read)
                if text == f"$({read})":
                    return mapped
                printed = _go_print(mapped)
                out.append(printed)
                size += len(printed) + cursor - checkpoint
                if max_chars is not None and size > max_chars:
                    raise ExpansionTooLarge
            else:
                out.append(read)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


# -- resolving ------------------------------------------------------------------------------------

def resolve(resources: list[Resource], declared: dict[str, Var], specs: Iterable[FieldSpec], *,
            max_growth: int | None = None) -> None:
    """Substitute every declared var in the var-reference fields of ``resources`` (kustomize's ``ResolveVars``).

    ``max_growth``: most characters the substitutions may add to the build in all (None: no bound).
    """
    if not declared:
        return
    values: dict[str, Any] = {}
    for name in sorted(declared):  # kustomize's VarSet.AsSlice order, so the first error is its first error
        var = declared[name]
        res = next((res for res in resources if name in res.var_names), None)
        if res is None:
            raise KustomizeError(f"var {name!r} reads {var.describe()}, and the build has no such object "
                                 "(objref needs its apiVersion and the name before prefixes)", file=var.file)
        try:
            values[name] = field_value(res.obj, var.field_path)
        except LookupError:
            raise KustomizeError(f"var {name!r}: {res.describe()} has no field {var.field_path}",
                                 file=var.file) from None

    def mapping(key: str) -> Any:
        value = values.get(key)
        if key in values and _is_primitive(value):
            return value
        return f"$({key})"  # unknown, or a map or list: left as written, as kustomize does

    # Most of the ~70 built-in specs name one kind: index them, so each object walks only its own.
    by_kind: dict[str, list[FieldSpec]] = {}
    for spec in specs:
        by_kind.setdefault(spec.kind, []).append(spec)
    growth = [max_growth]
    for res in resources:
        budgets.check(file=res.source)
        setter = _Setter(res, mapping, growth, max_growth=max_growth)
        for spec in (*by_kind.get(res.kind, ()), *by_kind.get("", ())) if res.kind else by_kind.get("", ()):
            apply_field_spec(res.obj, spec, setter)


class _Setter:
    """refvar.Filter's ``set`` at the end of one field spec's path."""

    def __init__(self, res: Resource, mapping: Callable[[str], Any], growth: list[int | None], *,
                 max_growth: int | None) -> None:
        self.res = res
        self.mapping = mapping
        self.growth = growth  # [characters the substitutions may still add], shared by the whole build
        self.max_growth = max_growth

    def _fail(self, what: str) -> KustomizeError:
        return KustomizeError(f"cannot substitute vars: {what}", obj=self.res.describe(), file=self.res.source)

    def _replace(self, value: str) -> Any:
        remaining = self.growth[0]
        if remaining is None:
            return do_replacements(value, self.mapping)
        try:
            result = do_replacements(value, self.mapping, max_chars=len(value) + remaining)
        except ExpansionTooLarge:
            raise LimitError(f"vars expand the build by more than {self.max_growth} characters",
                             setting="max_build_bytes", obj=self.res.describe(), file=self.res.source) from None
        if isinstance(result, str):
            self.growth[0] = remaining - max(0, len(result) - len(value))
        return result

    def __call__(self, parent: dict[str, Any], key: str) -> None:
        value = parent.get(key)
        annotations = parent is self.res.obj.get("metadata") and key == "annotations"
        if isinstance(value, str):
            parent[key] = self._replace(value)
        elif isinstance(value, dict):
            for map_key, item in value.items():
                if not isinstance(map_key, str):
                    raise self._fail(f"map key {map_key!r} of {key} is not a string")
                if isinstance(item, str):
                    replaced = self._replace(item)
                    # kustomize writes all annotations back as strings at the end of a build.
                    value[map_key] = _scalar_text(replaced) if annotations else replaced
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if not isinstance(item, str):
                    raise self._fail(f"{key} holds {item!r}, not a string")
                value[index] = self._replace(item)
