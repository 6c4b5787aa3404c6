"""``${var}`` substitution in rendered objects, Flux postBuild style.

After kustomize rendering, every *string value* (never a key) of every object
has ``${name}`` replaced by the variable's value and ``${name:=default}`` by
the value or, when the variable is undefined, the default; ``$${x}`` is an
escape that leaves ``${x}``. An undefined variable without a default is an
error naming the cluster, the app, the object and the field. Anything else
between ``${`` and ``}`` is refused rather than passed on silently.

The variables of a cluster: ``cluster_name``, one ``label_<key>`` per label
(characters other than letters, digits and ``_`` become ``_``:
``topology.kubernetes.io/region`` -> ``label_topology_kubernetes_io_region``)
and the ``vars`` of its cluster.yaml.

Hand-written because no maintained Python library implements exactly this
grammar (``string.Template`` has no defaults, and Flux's envsubst dialect is Go).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from hub.tree import errors
from protos.objects import ObjectRef

__all__ = [
    "Budget",
    "SubstitutionError",
    "cluster_variables",
    "label_variable",
    "referenced_variables",
    "substitute_object",
    "substitute_string",
]

# `$${` (escape) or `${...}` (an expression, checked below).
_TOKEN_RE = re.compile(r"\$\$\{|\$\{([^{}]*)\}")
_EXPRESSION_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::=(.*))?", re.DOTALL)
_NON_IDENTIFIER_RE = re.compile(r"[^A-Za-z0-9_]")


class SubstitutionError(errors.RenderError):
    """An undefined variable without a default, or a malformed ``${...}``."""

    def __init__(self, message: str, *, variable: str, field: str, cluster: str | None = None,
                 app: str | None = None, obj: str | None = None) -> None:
        self.variable = variable
        self.field = field
        super().__init__(message, cluster=cluster, app=app, obj=obj)


class Budget:
    """Characters substituted values may add to one cluster's objects (``max_bundle_bytes``).

    A 7 MiB variable referenced a thousand times would otherwise build gigabytes before the bundle's
    own size check ran.
    """

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.used = 0


class _TooBig(Exception):
    pass


class _Undefined(Exception):
    def __init__(self, variable: str, reason: str) -> None:
        super().__init__(variable)
        self.variable = variable
        self.reason = reason


def label_variable(key: str) -> str:
    """The variable a label is visible as: ``label_`` + the key with non-identifier characters as ``_``."""
    return "label_" + _NON_IDENTIFIER_RE.sub("_", key)


def cluster_variables(name: str, labels: Mapping[str, str], variables: Mapping[str, str]) -> dict[str, str]:
    """Every variable of one cluster (its vars cannot shadow the built-in names; clusters.py refuses that)."""
    result = dict(variables)
    for key, value in labels.items():
        result[label_variable(key)] = value
    result["cluster_name"] = name
    return result


def substitute_string(text: str, variables: Mapping[str, str], *, budget: Budget | None = None) -> str:
    """Substitute one string; raises ``_Undefined`` or ``_TooBig`` (internal) for the caller to place."""

    def replace(match: re.Match[str]) -> str:
        value = _value(match)
        if budget is not None:
            budget.used += len(value)
            if budget.used > budget.max_chars:
                raise _TooBig
        return value

    def _value(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return "${"
        expression = _EXPRESSION_RE.fullmatch(match.group(1))
        if expression is None:
            raise _Undefined(match.group(0), f"{match.group(0)} is not a supported expression "
                             "(use ${name} or ${name:=default}; write $${...} for a literal)")
        name, default = expression.group(1), expression.group(2)
        value = variables.get(name)
        if value is not None:
            return value
        if default is not None:
            return default
        raise _Undefined(name, f"undefined variable ${{{name}}} and no default "
                         f"(define it in the cluster's vars or write ${{{name}:=default}})")

    return _TOKEN_RE.sub(replace, text)


def referenced_variables(values: Iterable[Any]) -> frozenset[str]:
    """Names of the variables the string values inside ``values`` refer to."""
    found: set[str] = set()
    stack = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if "${" in value:
                for match in _TOKEN_RE.finditer(value):
                    expression = _EXPRESSION_RE.fullmatch(match.group(1) or "")
                    if expression is not None:
                        found.add(expression.group(1))
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return frozenset(found)


def _field(path: list[str | int]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text


def _walk(value: Any, variables: Mapping[str, str], path: list[str | int], budget: Budget | None = None) -> Any:
    # Returns the same object when nothing inside changed, so shared structure is not copied.
    if isinstance(value, str):
        return substitute_string(value, variables, budget=budget) if "${" in value else value
    if isinstance(value, dict):
        changed: dict[str, Any] | None = None
        for key, item in value.items():
            path.append(key)
            new = _walk(item, variables, path, budget)
            path.pop()
            if new is not item:
                if changed is None:
                    changed = dict(value)
                changed[key] = new
        return value if changed is None else changed
    if isinstance(value, list):
        changed_list: list[Any] | None = None
        for index, item in enumerate(value):
            path.append(index)
            new = _walk(item, variables, path, budget)
            path.pop()
            if new is not item:
                if changed_list is None:
                    changed_list = list(value)
                changed_list[index] = new
        return value if changed_list is None else changed_list
    return value


def substitute_object(obj: dict[str, Any], variables: Mapping[str, str], *, cluster: str,
                      app: str, budget: Budget | None = None) -> dict[str, Any]:
    """``obj`` with its string values substituted; ``obj`` itself is never modified.

    Parts that contain no variable are shared with ``obj``, not copied. Values substituted beyond
    ``budget`` raise :class:`~hub.tree.errors.LimitError`.
    """
    path: list[str | int] = []
    try:
        result: dict[str, Any] = _walk(obj, variables, path, budget)
    except _TooBig:
        raise errors.LimitError(
            f"{_field(path)}: substituted values add more than {budget.max_chars if budget else 0} characters to "
            "the cluster's objects", setting="max_bundle_bytes", cluster=cluster, app=app,
            obj=str(ObjectRef.of(obj))) from None
    except _Undefined as exc:
        ref = str(ObjectRef.of(obj))
        field = _field(path)
        raise SubstitutionError(f"{field}: {exc.reason}",
                                variable=exc.variable, field=field, cluster=cluster, app=app,
                                obj=ref) from None
    return result
