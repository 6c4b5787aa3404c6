"""The hub's gRPC edge.

* :mod:`hub.api.server` — ``create_server(...) -> ServerParts(server, port, health)``: both services, the
  standard health service and reflection on one port (bound, not started).
* :mod:`hub.api.spoke` — SpokeService: Register, Watch, GetBundle (chunked), ReportStatus, StreamStatus.
* :mod:`hub.api.admin_servicer` — AdminService for the CLI (admin credential).
* :mod:`hub.api.auth` — bearer credentials of clusters and of the admin (remembered, failures bounded per peer).
* :mod:`hub.api.batching` — group commit: concurrent reads/writes in one worker-thread call (a member that
  fails, fails alone).
* :mod:`hub.api.limits` — per-peer token buckets and request field bounds (pure).
* :mod:`hub.api.grpc_errors` — the one table from exceptions to gRPC status codes.
* :mod:`hub.api.decoding` — request bytes that do not parse: INVALID_ARGUMENT, a bounded log, rate limits.
"""
