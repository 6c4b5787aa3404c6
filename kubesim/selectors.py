"""Label and field selectors, parsed as apimachinery ``labels.Parse`` and ``fields.ParseSelector`` do.

Pure: a selector is parsed once per request into a predicate over a stored object.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubesim import errors

__all__ = ["FieldSelector", "LabelSelector", "parse_field_selector", "parse_label_selector"]

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VALUE = r"[-A-Za-z0-9_.]*"


@dataclass(frozen=True, slots=True)
class _Requirement:
    key: str
    op: str  # = != in notin exists !exists > <
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return present and value == self.values[0]
        if self.op == "!=":
            return not present or value != self.values[0]
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        # > and <: both sides must be integers, otherwise the label does not match.
        try:
            number = int(str(value))
        except ValueError:
            return False
        limit = int(self.values[0])
        return number > limit if self.op == ">" else number < limit


@dataclass(frozen=True, slots=True)
class LabelSelector:
    requirements: tuple[_Requirement, ...]

    def matches(self, obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


_TOKEN = re.compile(r"\s*(!=|==|=|!|\(|\)|,|>|<|[^\s!=,()<>]+)")


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None:  # pragma: no cover - the pattern matches any non-space
            raise errors.bad_request(f"unable to parse requirement: {text!r}")
        out.append(m.group(1))
        pos = m.end()
    return out


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse the full ``labelSelector`` syntax; a bad selector is a 400 like the API server's."""
    if not text:
        return LabelSelector(())
    toks = _tokens(text)
    reqs: list[_Requirement] = []
    i = 0

    def fail(why: str) -> errors.ApiError:
        return errors.bad_request(f"unable to parse requirement: {why}")

    def key_at(j: int) -> str:
        if j >= len(toks) or not re.fullmatch(_KEY, toks[j]):
            raise fail(f"found '{toks[j] if j < len(toks) else ''}', expected: identifier")
        return toks[j]

    while i < len(toks):
        if toks[i] == "!":
            reqs.append(_Requirement(key_at(i + 1), "!exists"))
            i += 2
        else:
            key = key_at(i)
            op = toks[i + 1] if i + 1 < len(toks) else ","
            if op == ",":
                reqs.append(_Requirement(key, "exists"))
                i += 1
            elif op in ("=", "==", "!=", ">", "<"):
                value = toks[i + 2] if i + 2 < len(toks) and toks[i + 2] != "," else ""
                if not re.fullmatch(_VALUE, value):
                    raise fail(f"invalid label value: {value!r}")
                if op in (">", "<") and not re.fullmatch(r"-?\d+", value):
                    raise fail(f"for 'Gt', 'Lt' operators, the value must be an integer: {value!r}")
                reqs.append(_Requirement(key, "=" if op == "==" else op, (value,)))
                i += 3 if value else 2
            elif op in ("in", "notin"):
                if i + 2 >= len(toks) or toks[i + 2] != "(":
                    raise fail("found '" + (toks[i + 2] if i + 2 < len(toks) else "") + "', expected: '('")
                j = i + 3
                values: list[str] = []
                while j < len(toks) and toks[j] != ")":
                    if toks[j] != ",":
                        values.append(toks[j])
                    j += 1
                if j >= len(toks):
                    raise fail("found '', expected: ')'")
                reqs.append(_Requirement(key, op, tuple(values)))
                i = j + 1
            else:
                raise fail(f"found '{op}', expected: in, notin, =, ==, !=, gt, lt")
        if i < len(toks):
            if toks[i] != ",":
                raise fail(f"found '{toks[i]}', expected: ','")
            i += 1
    return LabelSelector(tuple(reqs))


@dataclass(frozen=True, slots=True)
class FieldSelector:
    terms: tuple[tuple[str, bool, str], ...]  # (path, equal?, value)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for path, equal, value in self.terms:
            actual = _field_value(obj, path)
            if (actual == value) != equal:
                return False
        return True

    @property
    def empty(self) -> bool:
        return not self.terms

    def names(self) -> set[str] | None:
        """The single name an equality on ``metadata.name`` pins, to look it up directly."""
        names = {v for p, eq, v in self.terms if p == "metadata.name" and eq}
        return names if names else None


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def parse_field_selector(text: str | None, supported: Sequence[str]) -> FieldSelector:
    """Parse ``fieldSelector`` (``=``, ``==``, ``!=``); unsupported fields are the API server's 400."""
    if not text:
        return FieldSelector(())
    terms: list[tuple[str, bool, str]] = []
    for raw in _split_unescaped(text):
        if not raw:
            continue
        op = next((o for o in ("!=", "==", "=") if o in raw), None)
        if op is None:
            raise errors.bad_request(f"invalid selector: '{text}'; can't understand '{raw}'")
        path, _, value = raw.partition(op)
        equal = op != "!="
        path = path.strip()
        if path not in supported:
            raise errors.bad_request(f'field label not supported: {path}')
        terms.append((path, equal, _unescape(value.strip())))
    return FieldSelector(tuple(terms))


def _split_unescaped(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            current.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)

