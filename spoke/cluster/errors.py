"""The spoke's view of Kubernetes API failures.

Tree::

    ClusterError                      anything the cluster side refused or could not do
    ├── ApiError                      the API server answered with an error Status
    │   ├── NotFoundError             404
    │   ├── ConflictError             409 (stale resourceVersion, SSA conflict, AlreadyExists)
    │   └── InvalidError              422
    │       └── ImmutableFieldError   422 whose message says "field is immutable"
    ├── UnknownKindError              discovery has no resource for an apiVersion/kind
    └── ConnectionFailedError         no answer at all (reset, timeout, refused) after retries

``urllib3`` and ``kubernetes`` exceptions never leave this package: they are converted here and
chained as ``__cause__``. Every message starts with the object it is about (``str(ObjectRef)``).
"""

from __future__ import annotations

from protos.objects import ObjectRef

__all__ = [
    "ApiError",
    "ClusterError",
    "ConflictError",
    "ConnectionFailedError",
    "ImmutableFieldError",
    "InvalidError",
    "NotFoundError",
    "UnknownKindError",
    "api_error",
]


class ClusterError(Exception):
    """A cluster operation failed; ``what`` names the object or collection it was about."""

    def __init__(self, what: ObjectRef | str, message: str) -> None:
        self.what = what
        self.detail = message
        super().__init__(f"{what}: {message}")


class ApiError(ClusterError):
    """The API server answered with an error Status."""

    def __init__(self, what: ObjectRef | str, *, status: int, reason: str, message: str,
                 retry_after: float | None = None) -> None:
        self.status = status
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(what, f"{message} (HTTP {status} {reason})".strip())
        self.api_message = message


class NotFoundError(ApiError):
    pass


class ConflictError(ApiError):
    pass


class InvalidError(ApiError):
    pass


class ImmutableFieldError(InvalidError):
    """The change touches a field the API server does not allow to change after creation."""


class UnknownKindError(ClusterError):
    pass


class ConnectionFailedError(ClusterError):
    pass


def api_error(what: ObjectRef | str, *, status: int, reason: str, message: str,
              retry_after: float | None = None) -> ApiError:
    """The typed error for an HTTP error answer."""
    cls: type[ApiError] = ApiError
    if status == 404:
        cls = NotFoundError
    elif status == 409:
        cls = ConflictError
    elif status == 422:
        cls = ImmutableFieldError if "field is immutable" in message else InvalidError
    return cls(what, status=status, reason=reason, message=message, retry_after=retry_after)
