"""The API server's error ``Status`` bodies (apimachinery ``pkg/api/errors``), as one exception type.

Every failure the emulator reports travels as :class:`ApiError`; the HTTP edge turns it into the
exact JSON body and code a real API server sends, so clients classify it the same way.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ApiError",
    "already_exists",
    "bad_request",
    "conflict",
    "expired",
    "forbidden",
    "invalid",
    "not_found",
    "status_body",
]


def status_body(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A failure ``Status`` with empty fields omitted, as the API server encodes it."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details:
        body["details"] = {k: v for k, v in details.items() if v not in (None, "", [], {})}
    body["code"] = code
    return body


class ApiError(Exception):
    """A request the API server refuses; ``body`` is the exact ``Status`` it answers with."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None,
                 *, headers: dict[str, str] | None = None, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.headers = headers or {}
        self.body = body if body is not None else status_body(code, reason, message, details)


def _gr(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(group: str, plural: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{_gr(group, plural)} "{name}" not found',
                    {"name": name, "group": group, "kind": plural})


def already_exists(group: str, plural: str, name: str, *, terminating: bool = False) -> ApiError:
    prefix = "object is being deleted: " if terminating else ""
    return ApiError(409, "AlreadyExists", f'{prefix}{_gr(group, plural)} "{name}" already exists',
                    {"name": name, "group": group, "kind": plural})


def conflict(group: str, plural: str, name: str, why: str) -> ApiError:
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {_gr(group, plural)} "{name}": {why}',
                    {"name": name, "group": group, "kind": plural})


def forbidden(group: str, plural: str, name: str, why: str, *, cause: str = "") -> ApiError:
    details: dict[str, Any] = {"name": name, "group": group, "kind": plural}
    if cause:
        details["causes"] = [{"reason": cause, "message": why}]
    return ApiError(403, "Forbidden", f'{_gr(group, plural)} "{name}" is forbidden: {why}', details)


def invalid(group: str, kind: str, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """422 Invalid; each cause is ``(reason, field, message)`` where message is the part after the field."""
    group_kind = f"{kind}.{group}" if group else kind
    rendered = [f"{field}: {message}" for _reason, field, message in causes]
    text = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    return ApiError(
        422, "Invalid", f'{group_kind} "{name}" is invalid: {text}',
        {"name": name, "group": group, "kind": kind,
         "causes": [{"reason": r, "message": m, "field": f} for r, f, m in causes]},
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)
