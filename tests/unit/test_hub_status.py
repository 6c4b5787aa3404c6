"""The one exception -> status table, and that nothing outside it leaks its message."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import sqlalchemy.exc as sa_exc
from grpc import aio

from hub.api import grpc_errors, limits
from hub.store import errors as store_errors


class FakeContext:
    """Only what the decorators touch: abort."""

    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None
        self.details = ""

    async def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        self.code, self.details = code, details
        raise aio.AbortError()


class Servicer:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    @grpc_errors.unary
    async def Call(self, request: Any, context: Any) -> str:
        raise self.exc

    @grpc_errors.stream
    async def Stream(self, request: Any, context: Any) -> AsyncIterator[str]:
        yield "first"
        raise self.exc


@pytest.mark.parametrize(("exc", "code"), [
    (grpc_errors.Unauthenticated("x"), grpc.StatusCode.UNAUTHENTICATED),
    (grpc_errors.PermissionDenied("x"), grpc.StatusCode.PERMISSION_DENIED),
    (grpc_errors.NotFound("x"), grpc.StatusCode.NOT_FOUND),
    (grpc_errors.ShuttingDown(), grpc.StatusCode.UNAVAILABLE),
    (limits.InvalidRequest("x"), grpc.StatusCode.INVALID_ARGUMENT),
    (limits.RateLimited("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
    (store_errors.TokenRefused("abc", store_errors.TokenRefusal.EXPIRED), grpc.StatusCode.UNAUTHENTICATED),
    (store_errors.ClusterExists("a"), grpc.StatusCode.ALREADY_EXISTS),
    (store_errors.UnknownCluster("a"), grpc.StatusCode.NOT_FOUND),
    (store_errors.StoreUnavailable("db away"), grpc.StatusCode.UNAVAILABLE),
])
async def test_known_errors_map_to_their_code_with_their_message(exc: Exception, code: grpc.StatusCode) -> None:
    context = FakeContext()
    with pytest.raises(aio.AbortError):
        await Servicer(exc).Call(None, context)
    assert context.code == code and context.details == str(exc)


async def test_anything_else_is_internal_without_detail(caplog: pytest.LogCaptureFixture) -> None:
    leak = sa_exc.OperationalError("SELECT secret_hash FROM clusters", {}, Exception("password=hunter2"))
    context = FakeContext()
    with pytest.raises(aio.AbortError):
        await Servicer(leak).Call(None, context)
    assert context.code == grpc.StatusCode.INTERNAL
    assert "hunter2" not in context.details and "SELECT" not in context.details
    assert "internal error" in context.details
    assert "Call failed unexpectedly" in caplog.text  # the operator still gets the traceback


async def test_stream_errors_after_items_are_mapped_too() -> None:
    context = FakeContext()
    received = []
    with pytest.raises(aio.AbortError):
        async for item in Servicer(grpc_errors.ShuttingDown()).Stream(None, context):
            received.append(item)
    assert received == ["first"]
    assert context.code == grpc.StatusCode.UNAVAILABLE and context.details == "hub shutting down; reconnect"
