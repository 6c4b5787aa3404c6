"""Helpers every per-kind health rule shares: typed reads of a plain object and the result type."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from protos.status import HealthStatus

__all__ = [
    "BadStatusError",
    "HealthResult",
    "condition",
    "current",
    "describe",
    "failed",
    "in_progress",
    "int_at",
    "str_at",
    "unknown",
]


@dataclasses.dataclass(frozen=True, slots=True)
class HealthResult:
    """A kstatus verdict on one object: its status and why, in words a user can act on."""

    status: HealthStatus
    reason: str


class BadStatusError(ValueError):
    """A field has a type its kind's rule cannot read (``compute`` turns this into Unknown)."""


def current(reason: str) -> HealthResult:
    return HealthResult(HealthStatus.CURRENT, reason)


def in_progress(reason: str) -> HealthResult:
    return HealthResult(HealthStatus.IN_PROGRESS, reason)


def failed(reason: str) -> HealthResult:
    return HealthResult(HealthStatus.FAILED, reason)


def unknown(reason: str) -> HealthResult:
    return HealthResult(HealthStatus.UNKNOWN, reason)


def _walk(obj: Mapping[str, Any], path: str) -> Any:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def int_at(obj: Mapping[str, Any], path: str, default: int) -> int:
    """The integer at a dotted path, ``default`` when absent (bools are not integers here)."""
    value = _walk(obj, path)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadStatusError(f".{path} is {value!r}, not an integer")
    return value


def str_at(obj: Mapping[str, Any], path: str, default: str = "") -> str:
    value = _walk(obj, path)
    if value is None:
        return default
    if not isinstance(value, str):
        raise BadStatusError(f".{path} is {value!r}, not a string")
    return value


def condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    """The ``status.conditions`` entry of type ``kind``, or None."""
    conditions = _walk(obj, "status.conditions")
    if conditions is None:
        return None
    if not isinstance(conditions, Sequence) or isinstance(conditions, str):
        raise BadStatusError(f".status.conditions is {conditions!r}, not a list")
    for entry in conditions:
        if isinstance(entry, Mapping) and entry.get("type") == kind:
            return entry
    return None


def describe(cond: Mapping[str, Any]) -> str:
    """``Reason: message`` of a condition, whichever parts it has."""
    reason = str(cond.get("reason") or "")
    message = str(cond.get("message") or "")
    if reason and message:
        return f"{reason}: {message}"
    return reason or message or f"{cond.get('type')}={cond.get('status')}"
