"""Kubernetes labels and label selectors: the one parser the hub, the spoke and the CLI use.

Labels: :func:`check_label` holds the key and value grammar; :func:`parse_labels` reads the
``k=v,k2=v2`` text of ``--labels`` options and ``CONVOY_SPOKE_LABELS``.

Selectors: the fleet.yaml mapping form and the CLI text form (also kustomize's patch targets).

Both forms produce one :class:`Selector`, a conjunction of :class:`Requirement`\\ s
with the Kubernetes semantics: ``In`` needs the key present with one of the values,
``NotIn`` matches when the key is absent or has none of them, ``Exists`` and
``DoesNotExist`` look at the key only. The empty selector matches every cluster.

The text form is the one ``kubectl -l`` accepts::

    env=prod,region in (eu,us),!canary,tier!=batch,gpu,zone notin (a)

It is hand-parsed because no maintained Python library implements the
Kubernetes selector grammar (the official client only passes the string on to
the API server).
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "EVERYTHING",
    "Operator",
    "Requirement",
    "Selector",
    "SelectorError",
    "check_label",
    "from_mapping",
    "parse",
    "parse_labels",
]

# A qualified name (`app.kubernetes.io/name`): optional DNS-subdomain prefix, 63-char name.
_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_KEY_RE = re.compile(rf"([a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_NAME}")
_VALUE_RE = re.compile(rf"({_NAME})?")


class SelectorError(ValueError):
    """A selector or label set that cannot be parsed; the message says where and what is wrong."""


class Operator(enum.StrEnum):
    """The set-based operators of ``matchExpressions``."""

    IN = "In"                      #: key present, value one of ``values``
    NOT_IN = "NotIn"               #: key absent, or value none of ``values``
    EXISTS = "Exists"              #: key present (``values`` must be empty)
    DOES_NOT_EXIST = "DoesNotExist"  #: key absent (``values`` must be empty)


@dataclasses.dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator is Operator.IN:
            return self.key in labels and labels[self.key] in self.values
        if self.operator is Operator.NOT_IN:
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator is Operator.EXISTS:
            return self.key in labels
        return self.key not in labels

    def __str__(self) -> str:
        if self.operator is Operator.EXISTS:
            return self.key
        if self.operator is Operator.DOES_NOT_EXIST:
            return "!" + self.key
        if len(self.values) == 1:
            return f"{self.key}{'=' if self.operator is Operator.IN else '!='}{self.values[0]}"
        word = "in" if self.operator is Operator.IN else "notin"
        return f"{self.key} {word} ({','.join(self.values)})"


@dataclasses.dataclass(frozen=True, slots=True)
class Selector:
    """All requirements must hold; no requirement at all selects everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(requirement.matches(labels) for requirement in self.requirements)

    @property
    def is_everything(self) -> bool:
        return not self.requirements

    def __str__(self) -> str:
        return ",".join(str(requirement) for requirement in self.requirements) or "<all>"


EVERYTHING = Selector()


def _check_key(key: object, where: str) -> str:
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        raise SelectorError(f"{where}: {key!r} is not a valid label key")
    return key


def _check_value(value: object, where: str) -> str:
    # YAML turns `canary: true` into a bool; a label value is always a string.
    if not isinstance(value, str) or not _VALUE_RE.fullmatch(value):
        raise SelectorError(f"{where}: {value!r} is not a valid label value (quote it: \"{value}\")"
                            if isinstance(value, bool | int | float)
                            else f"{where}: {value!r} is not a valid label value")
    return value


def check_label(key: object, value: object, *, where: str) -> tuple[str, str]:
    """``(key, value)`` if both follow the Kubernetes label grammar, else :class:`SelectorError`."""
    key = _check_key(key, where)
    return key, _check_value(value, f"{where}: label {key}")


def parse_labels(text: str, *, where: str = "labels") -> dict[str, str]:
    """``env=prod,region=eu`` -> ``{"env": "prod", "region": "eu"}``; empty text gives ``{}``.

    Spaces around items, keys and values are ignored; ``where`` names the option for errors.
    """
    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise SelectorError(f"{where}: {item!r} is not key=value")
        key, value = check_label(key.strip(), value.strip(), where=where)
        labels[key] = value
    return labels


def _requirement(key: str, operator: Operator, values: tuple[str, ...], where: str) -> Requirement:
    if operator in (Operator.IN, Operator.NOT_IN) and not values:
        raise SelectorError(f"{where}: operator {operator} on {key!r} needs at least one value")
    if operator in (Operator.EXISTS, Operator.DOES_NOT_EXIST) and values:
        raise SelectorError(f"{where}: operator {operator} on {key!r} takes no values")
    return Requirement(key, operator, tuple(sorted(set(values))))


def from_mapping(data: Any, *, where: str) -> Selector:
    """A selector from its YAML form (``matchLabels`` / ``matchExpressions``) or its text form.

    ``where`` names the field for error messages (``fleet.yaml: apps[0].targets``).
    ``None`` and ``{}`` select everything.
    """
    if data is None:
        return EVERYTHING
    if isinstance(data, str):
        return parse(data, where=where)
    if not isinstance(data, Mapping):
        raise SelectorError(f"{where}: a selector is a mapping with matchLabels/matchExpressions or a string")
    unknown = sorted(set(data) - {"matchLabels", "matchExpressions"})
    if unknown:
        raise SelectorError(f"{where}: unknown field {unknown[0]!r} (expected matchLabels, matchExpressions)")
    requirements: list[Requirement] = []
    match_labels = data.get("matchLabels") or {}
    if not isinstance(match_labels, Mapping):
        raise SelectorError(f"{where}.matchLabels: must be a mapping of label key to value")
    for key, value in match_labels.items():
        here = f"{where}.matchLabels.{key}"
        requirements.append(Requirement(_check_key(key, here), Operator.IN, (_check_value(value, here),)))
    expressions = data.get("matchExpressions") or []
    if not isinstance(expressions, list):
        raise SelectorError(f"{where}.matchExpressions: must be a list")
    for index, expression in enumerate(expressions):
        here = f"{where}.matchExpressions[{index}]"
        if not isinstance(expression, Mapping):
            raise SelectorError(f"{here}: must be a mapping with key, operator, values")
        unknown = sorted(set(expression) - {"key", "operator", "values"})
        if unknown:
            raise SelectorError(f"{here}: unknown field {unknown[0]!r} (expected key, operator, values)")
        key = _check_key(expression.get("key"), here + ".key")
        try:
            operator = Operator(str(expression.get("operator")))
        except ValueError:
            raise SelectorError(f"{here}.operator: {expression.get('operator')!r} is not one of "
                                f"{', '.join(op.value for op in Operator)}") from None
        raw_values = expression.get("values") or []
        if not isinstance(raw_values, list):
            raise SelectorError(f"{here}.values: must be a list of strings")
        values = tuple(_check_value(value, f"{here}.values") for value in raw_values)
        requirements.append(_requirement(key, operator, values, here))
    return Selector(tuple(requirements))


# One token at a time: `(`, `)`, `,`, `!=`, `==`, `=`, `!`, or a bare word.
_TOKEN_RE = re.compile(r"\s*(\(|\)|,|!=|==|=|!|[^\s(),!=]+)")


def _tokens(text: str, where: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN_RE.match(text, position)
        if match is None:  # pragma: no cover - the pattern accepts any non-space character
            raise SelectorError(f"{where}: cannot parse {text[position:]!r}")
        tokens.append(match.group(1))
        position = match.end()
    return tokens


def parse(text: str, *, where: str = "selector") -> Selector:
    """Parse the ``kubectl -l`` syntax: ``env=prod,region in (eu,us),!canary``."""
    tokens = _tokens(text, where)
    requirements: list[Requirement] = []
    index = 0

    def expect_word(what: str) -> str:
        nonlocal index
        if index >= len(tokens) or tokens[index] in {"(", ")", ",", "=", "==", "!=", "!"}:
            found = tokens[index] if index < len(tokens) else "end of input"
            raise SelectorError(f"{where}: expected {what} in {text!r}, found {found!r}")
        index += 1
        return tokens[index - 1]

    while index < len(tokens):
        if tokens[index] == "!":
            index += 1
            key = _check_key(expect_word("a label key after '!'"), where)
            requirements.append(Requirement(key, Operator.DOES_NOT_EXIST))
        else:
            key = _check_key(expect_word("a label key"), where)
            following = tokens[index] if index < len(tokens) else ","
            if following in {"=", "==", "!="}:
                index += 1
                # `env=` selects an empty value, as kubectl does.
                value = "" if index >= len(tokens) or tokens[index] == "," else expect_word("a value")
                operator = Operator.NOT_IN if following == "!=" else Operator.IN
                requirements.append(Requirement(key, operator, (_check_value(value, where),)))
            elif following.lower() in {"in", "notin"}:
                index += 1
                operator = Operator.IN if following.lower() == "in" else Operator.NOT_IN
                if index >= len(tokens) or tokens[index] != "(":
                    raise SelectorError(f"{where}: expected '(' after {following!r} in {text!r}")
                index += 1
                values: list[str] = []
                while True:
                    values.append(_check_value(expect_word("a value"), where))
                    if index < len(tokens) and tokens[index] == ",":
                        index += 1
                        continue
                    if index < len(tokens) and tokens[index] == ")":
                        index += 1
                        break
                    raise SelectorError(f"{where}: expected ',' or ')' in {text!r}")
                requirements.append(_requirement(key, operator, tuple(values), where))
            elif following == ",":
                requirements.append(Requirement(key, Operator.EXISTS))
            else:
                raise SelectorError(f"{where}: unexpected {following!r} after {key!r} in {text!r}")
        if index < len(tokens):
            if tokens[index] != ",":
                raise SelectorError(f"{where}: expected ',' before {tokens[index]!r} in {text!r}")
            index += 1
            if index >= len(tokens):
                raise SelectorError(f"{where}: trailing ',' in {text!r}")
    return Selector(tuple(requirements))
