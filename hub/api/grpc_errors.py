"""The one table from hub exceptions to gRPC status codes, and the decorators that apply it.

Servicer methods raise typed exceptions (their own, the store's, the limits');
:func:`unary` and :func:`stream` turn them into a status with the exception's
message. Anything not in the table is a bug: it is logged with its traceback and
the caller gets INTERNAL with no library detail, so SQLAlchemy, Git or gRPC
internals never leak to a spoke or the CLI.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
from grpc import aio

from hub.api import limits
from hub.store import errors as store_errors
from protos import bundle as bundles

__all__ = [
    "STATUS_BY_ERROR",
    "ApiError",
    "LeaderUnavailable",
    "NotFound",
    "PermissionDenied",
    "ShuttingDown",
    "Unauthenticated",
    "Unimplemented",
    "abort_with",
    "code_for",
    "stream",
    "unary",
]

log = logging.getLogger(__name__)

S = TypeVar("S")
Req = TypeVar("Req")
Resp = TypeVar("Resp")


class ApiError(Exception):
    """An error of the API layer itself; the message is shown to the caller."""


class Unauthenticated(ApiError):
    """No credential, or one the hub does not know."""


class PermissionDenied(ApiError):
    """A known caller asked for something that is not theirs."""


class NotFound(ApiError):
    """The named cluster, token or bundle does not exist."""


class Unimplemented(ApiError):
    """A call the contract has but this hub does not serve yet."""


class ShuttingDown(ApiError):
    """The hub is stopping; the spoke should reconnect (to this hub when it is back, or another)."""

    def __init__(self) -> None:
        super().__init__("hub shutting down; reconnect")


class LeaderUnavailable(ApiError):
    """A replica handed work to the leader (another replica) and got no answer in time, or there is no leader."""


#: Most specific first is not needed: :func:`code_for` walks the exception's MRO.
STATUS_BY_ERROR: dict[type[BaseException], grpc.StatusCode] = {
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    NotFound: grpc.StatusCode.NOT_FOUND,
    Unimplemented: grpc.StatusCode.UNIMPLEMENTED,
    ShuttingDown: grpc.StatusCode.UNAVAILABLE,
    # Not UNAVAILABLE or DEADLINE_EXCEEDED: the CLI would call the hub it reached "unreachable".
    LeaderUnavailable: grpc.StatusCode.ABORTED,
    limits.InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    limits.RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
    store_errors.TokenRefused: grpc.StatusCode.UNAUTHENTICATED,
    store_errors.TokenNotForName: grpc.StatusCode.PERMISSION_DENIED,
    store_errors.ClusterExists: grpc.StatusCode.ALREADY_EXISTS,
    store_errors.UnknownCluster: grpc.StatusCode.NOT_FOUND,
    store_errors.StoreUnavailable: grpc.StatusCode.UNAVAILABLE,
    # A stored bundle that no longer matches its digest or cannot be inflated.
    bundles.BundleError: grpc.StatusCode.DATA_LOSS,
}


def code_for(exc: BaseException) -> grpc.StatusCode | None:
    for cls in type(exc).__mro__:
        code = STATUS_BY_ERROR.get(cls)
        if code is not None:
            return code
    return None


async def abort_with(context: aio.ServicerContext[Any, Any], exc: BaseException, *, method: str) -> NoReturn:
    code = code_for(exc)
    if code is None:
        log.error("%s failed unexpectedly", method, exc_info=exc)
        await context.abort(grpc.StatusCode.INTERNAL, f"{method}: internal error in the hub (see its log)")
    await context.abort(code, str(exc))


def unary(
    method: Callable[[S, Req, aio.ServicerContext[Req, Resp]], Awaitable[Resp]],
) -> Callable[[S, Req, aio.ServicerContext[Req, Resp]], Awaitable[Resp]]:
    """Map exceptions of a unary handler through :data:`STATUS_BY_ERROR`."""

    async def wrapper(self: S, request: Req, context: aio.ServicerContext[Req, Resp]) -> Resp:
        try:
            return await method(self, request, context)
        except aio.AbortError:
            raise
        except Exception as exc:
            await abort_with(context, exc, method=method.__name__)

    return functools.update_wrapper(wrapper, method)


def stream(
    method: Callable[[S, Req, aio.ServicerContext[Req, Resp]], AsyncIterator[Resp]],
) -> Callable[[S, Req, aio.ServicerContext[Req, Resp]], AsyncIterator[Resp]]:
    """Map exceptions of a server-streaming handler (an async generator) likewise."""

    async def wrapper(self: S, request: Req, context: aio.ServicerContext[Req, Resp]) -> AsyncIterator[Resp]:
        try:
            async for item in method(self, request, context):
                yield item
        except aio.AbortError:
            raise
        except Exception as exc:
            await abort_with(context, exc, method=method.__name__)

    return functools.update_wrapper(wrapper, method)
