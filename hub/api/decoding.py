"""Request bytes that do not parse: INVALID_ARGUMENT, a bounded log, and the caller's rate limits.

Left to itself, grpc answers a request deserializer that raises with UNKNOWN, protobuf's
internal error text, and an ERROR traceback in the hub's log per request (200 garbage
requests made 145 KB of log), and the method's own checks (Register's rate limit) never
run. :class:`DecodeGuard` is a server interceptor that wraps every method's
``request_deserializer`` so that bytes that do not parse become a :class:`Malformed` marker
instead of an exception, and wraps the method so that the marker is refused:

* ``on_malformed(method, peer)`` runs first, so a method's per-peer limits still count the
  call (it raises :class:`~hub.api.limits.RateLimited` to refuse with RESOURCE_EXHAUSTED);
* the caller gets INVALID_ARGUMENT naming the method and the size, never protobuf's text;
* the log gets one WARNING line per peer per ``log_interval`` seconds, with how many it held back.

Every handler it guards must be ``async`` (all of the hub's are).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import grpc
from grpc import aio

from hub.api import grpc_errors, limits

__all__ = ["DecodeGuard", "Malformed", "MalformedRequest"]

log = logging.getLogger(__name__)


class Malformed:
    """What the guarded deserializer returns for bytes that do not parse."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size


class MalformedRequest(limits.InvalidRequest):
    """A message of a client stream did not parse (mapped to INVALID_ARGUMENT like any invalid request)."""


class DecodeGuard(aio.ServerInterceptor):  # type: ignore[type-arg]  # generic only in the stubs
    def __init__(self, *, on_malformed: Callable[[str, str], None] | None = None, log_interval: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.on_malformed = on_malformed
        self._throttle = limits.LogThrottle(interval=log_interval, clock=clock)
        self._guarded: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        self.refused = 0   #: malformed requests refused so far (tests and metrics read it)

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(details)
        # None for a method no service has: grpc answers UNIMPLEMENTED then.
        if handler is None or handler.request_deserializer is None:
            return handler
        method: str = details.method
        # The generic handlers hand out the same handler per method; wrap each once.
        guarded = self._guarded.get(method)
        if guarded is None:
            guarded = self._guarded[method] = self._guard(method, handler)
        return guarded

    # -- wrapping ----------------------------------------------------------------------------------

    def _guard(self, method: str, handler: Any) -> Any:
        decode = handler.request_deserializer

        def deserialize(raw: bytes) -> Any:
            try:
                return decode(raw)
            except Exception:  # any failure to parse: DecodeError, or worse from a broken message
                return Malformed(len(raw))

        if handler.unary_unary is not None:
            return handler._replace(request_deserializer=deserialize,
                                    unary_unary=self._unary_unary(method, handler.unary_unary))
        if handler.unary_stream is not None:
            return handler._replace(request_deserializer=deserialize,
                                    unary_stream=self._unary_stream(method, handler.unary_stream))
        if handler.stream_unary is not None:
            return handler._replace(request_deserializer=deserialize,
                                    stream_unary=self._stream_unary(method, handler.stream_unary))
        return handler._replace(request_deserializer=deserialize,
                                stream_stream=self._stream_stream(method, handler.stream_stream))

    def _unary_unary(self, method: str, behavior: Any) -> Any:
        async def unary_unary(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
            if isinstance(request, Malformed):
                await self._refuse(method, request, context)
            return await behavior(request, context)
        return unary_unary

    def _unary_stream(self, method: str, behavior: Any) -> Any:
        async def unary_stream(request: Any, context: aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            if isinstance(request, Malformed):
                await self._refuse(method, request, context)
            result = behavior(request, context)
            if inspect.isawaitable(result):  # a handler that writes with context.write()
                await result
                return
            async with contextlib.aclosing(result):  # its finally blocks run when the call ends
                async for response in result:
                    yield response
        return unary_stream

    def _stream_unary(self, method: str, behavior: Any) -> Any:
        async def stream_unary(requests: AsyncIterator[Any], context: aio.ServicerContext[Any, Any]) -> Any:
            try:
                return await behavior(self._checked(method, requests, context), context)
            except MalformedRequest as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return stream_unary

    def _stream_stream(self, method: str, behavior: Any) -> Any:
        async def stream_stream(requests: AsyncIterator[Any],
                                context: aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            try:
                result = behavior(self._checked(method, requests, context), context)
                if inspect.isawaitable(result):
                    await result
                    return
                async with contextlib.aclosing(result):
                    async for response in result:
                        yield response
            except MalformedRequest as exc:
                # Convoy's handlers map it themselves (hub.api.grpc_errors); this is for the others.
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return stream_stream

    async def _checked(self, method: str, requests: AsyncIterator[Any],
                       context: aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        async for request in requests:
            if isinstance(request, Malformed):
                self._note(method, request, context)
                raise MalformedRequest(_message(method, request))
            yield request

    # -- refusing ----------------------------------------------------------------------------------

    def _note(self, method: str, request: Malformed, context: aio.ServicerContext[Any, Any]) -> str:
        self.refused += 1
        peer = limits.peer_host(context.peer() or "unknown")
        held_back = self._throttle.allow(peer)
        if held_back is not None:
            more = f"; {held_back} more from this peer since the last such line" if held_back else ""
            log.warning("%s from %s: %d request bytes are not a valid message, refused%s",
                        method, peer, request.size, more)
        return peer

    async def _refuse(self, method: str, request: Malformed, context: aio.ServicerContext[Any, Any]) -> NoReturn:
        peer = self._note(method, request, context)
        if self.on_malformed is not None:
            try:
                self.on_malformed(method, peer)
            except limits.RequestRejected as exc:
                await context.abort(grpc_errors.code_for(exc) or grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _message(method, request))


def _message(method: str, request: Malformed) -> str:
    return f"{method}: the request ({request.size} bytes) is not a valid protobuf message of this method"
