"""The gRPC server: both services, the standard health service and reflection, on one port.

:func:`create_server` only builds and binds (tests pass port 0 and read the port
back); starting, stopping and everything around it is the caller's
(:mod:`hub.commands.hubserve`).
"""

from __future__ import annotations

import dataclasses

import grpc
from grpc import aio
from grpc_health.v1 import _async as health_aio  # the asyncio servicer; public as health.aio at runtime
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from hub import presence
from hub.api import admin_servicer as admin_api
from hub.api import decoding, limits
from hub.api import spoke as spoke_api
from protos.codec import pb
from protos.convoy.v1 import convoy_pb2_grpc as pb_grpc

__all__ = ["SERVICE_NAMES", "ServerParts", "TlsMaterial", "create_server", "keepalive_timeout"]

SERVICE_NAMES = (
    pb.DESCRIPTOR.services_by_name["SpokeService"].full_name,
    pb.DESCRIPTOR.services_by_name["AdminService"].full_name,
)


@dataclasses.dataclass(frozen=True)
class TlsMaterial:
    cert_pem: bytes
    key_pem: bytes = dataclasses.field(repr=False)

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials([(self.key_pem, self.cert_pem)])


@dataclasses.dataclass(frozen=True)
class ServerParts:
    server: aio.Server
    port: int
    health: health_aio.HealthServicer


def keepalive_timeout(heartbeat_seconds: float) -> float:
    """Seconds the hub waits for a peer to answer its HTTP/2 ping before dropping the connection."""
    return presence.ping_timeout(heartbeat_seconds)  # the presence rule counts on this bound


def create_server(*, listen: str, spoke: spoke_api.SpokeServicer, admin: admin_api.AdminServicer,
                  tls: TlsMaterial | None, max_message_bytes: int = limits.MAX_MESSAGE_BYTES,
                  heartbeat_seconds: float = 30.0) -> ServerParts:
    """Build the server and bind ``listen`` (``host:port``; port 0 picks one). Not started yet.

    A spoke that vanishes without closing its connection (power cut, network partition) is found
    by an HTTP/2 ping every heartbeat that goes unanswered for :func:`keepalive_timeout`: its Watch
    stream ends then. The pings are answered inside gRPC's C core on both sides, so they cost the
    hub's event loop nothing, unlike a heartbeat the spoke would have to answer.
    """
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        # Bundles stream in chunks, so nothing we send comes near the limit; keep the default bound.
        ("grpc.max_send_message_length", limits.MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", max(1, round(heartbeat_seconds * 1000))),
        ("grpc.keepalive_timeout_ms", round(keepalive_timeout(heartbeat_seconds) * 1000)),
        # Any unanswered ping, not only a keepalive one: when the peer vanishes with another ping in
        # flight (flow control sends them after data), the keepalive ping waits behind it, and gRPC
        # gives that one a minute by default.
        ("grpc.http2.ping_timeout_ms", round(keepalive_timeout(heartbeat_seconds) * 1000)),
        # Ping idle streams too: a Watch between heartbeats sends no data, and that is when peers vanish.
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.so_reuseport", 0),
        # After a hub restart every spoke reconnects at once. The asyncio server accepts calls one
        # by one, and gRPC core cancels calls still waiting beyond its default of 1,000 (measured:
        # 3,000 simultaneous Watch opens lost ~700 to CANCELLED); a deeper queue absorbs the storm.
        ("grpc.server.max_pending_requests", 50_000),
        ("grpc.server.max_pending_requests_hard_limit", 100_000),
    ]
    # Request bytes that do not parse get INVALID_ARGUMENT and still count against the peer's limits.
    guard = decoding.DecodeGuard(on_malformed=spoke.malformed_request)
    server = aio.server(options=options, interceptors=[guard])
    pb_grpc.add_SpokeServiceServicer_to_server(spoke, server)  # type: ignore[no-untyped-call]
    pb_grpc.add_AdminServiceServicer_to_server(admin, server)  # type: ignore[no-untyped-call]
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server)
    try:
        port = server.add_secure_port(listen, tls.credentials()) if tls else server.add_insecure_port(listen)
    except RuntimeError as exc:  # grpc reports a failed bind as a bare RuntimeError
        raise OSError(f"cannot listen for gRPC on {listen} (in use, or not an address of this machine)") from exc
    if port == 0:
        raise OSError(f"cannot listen for gRPC on {listen} (in use, or not an address of this machine)")
    return ServerParts(server=server, port=port, health=health_servicer)


async def mark_serving(parts: ServerParts) -> None:
    """Health: overall and each service SERVING."""
    for name in ("", *SERVICE_NAMES):
        await parts.health.set(name, health_pb2.HealthCheckResponse.SERVING)
