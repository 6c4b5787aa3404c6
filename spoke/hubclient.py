"""The spoke's gRPC edge to the hub: register, watch (small bundles and rotated credentials arrive on
it), fetch bundles, report status (over one StreamStatus stream; one ReportStatus call each with older hubs).

All ``grpc.RpcError`` s are converted here through one table (``_ERRORS``); the rest of the spoke
sees only ``HubError`` subclasses::

    HubError
    ├── HubUnavailable        UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, RESOURCE_EXHAUSTED, ... (retry)
    ├── HubUnauthenticated    UNAUTHENTICATED (bad/expired token or credential)
    ├── HubDenied             PERMISSION_DENIED
    ├── HubRefused            everything else the hub answered (ALREADY_EXISTS, INVALID_ARGUMENT, ...)
    └── HubTrustError         the hub's CA does not match the pinned fingerprint

First contact is pinned like ``kubeadm join --discovery-token-ca-cert-hash``: the spoke reads the
certificate chain the hub presents (a TLS handshake over which nothing is sent) and trusts the
certificate whose SHA-256 fingerprint equals the join token's, provided the hub's own certificate
chains to it through the presented certificates. Only then is a gRPC channel opened that trusts that
CA alone, and only over it is the bootstrap token sent. A hub that does not present the pinned CA in
its chain (a lone leaf of some other CA, an impostor) is refused before anything is sent: the hub
serves its CA in the chain for this (``convoy hub serve`` does, with its own CA or ``--tls-ca``).
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import grpc

from protos import bundle as bundles
from protos import codec, jointoken
from protos.codec import pb
from protos.convoy.v1 import convoy_pb2_grpc
from spoke import report

__all__ = [
    "CredentialRotation",
    "Desired",
    "FetchedBundle",
    "FirstContact",
    "Heartbeat",
    "HubClient",
    "HubDenied",
    "HubError",
    "HubRefused",
    "HubSilentError",
    "HubTrustError",
    "HubUnauthenticated",
    "HubUnavailable",
    "Registration",
    "first_contact",
    "inline_bundle",
    "status_to_wire",
]

log = logging.getLogger(__name__)

SPOKE_VERSION = "0.1.0"
_GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    # A client made to replace one whose connection froze must open its own connection, not share
    # the frozen one through gRPC's process-wide subchannel pool.
    ("grpc.use_local_subchannel_pool", 1),
]


class HubError(Exception):
    def __init__(self, address: str, message: str) -> None:
        self.address = address
        super().__init__(f"hub {address}: {message}")


class HubUnavailable(HubError):
    pass


class HubSilentError(HubUnavailable):
    """The Watch stream went silent past its heartbeats: the connection is dead though never closed.

    The channel's connection is as dead as the stream; the caller opens a new client rather than a
    new call on this one (which would wait on the same frozen connection)."""


class HubUnauthenticated(HubError):
    pass


class HubDenied(HubError):
    pass


class HubRefused(HubError):
    pass


class HubTrustError(HubError):
    pass


_ERRORS: dict[grpc.StatusCode, type[HubError]] = {
    grpc.StatusCode.UNAVAILABLE: HubUnavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: HubUnavailable,
    grpc.StatusCode.CANCELLED: HubUnavailable,
    grpc.StatusCode.RESOURCE_EXHAUSTED: HubUnavailable,
    grpc.StatusCode.ABORTED: HubUnavailable,
    grpc.StatusCode.INTERNAL: HubUnavailable,
    grpc.StatusCode.UNKNOWN: HubUnavailable,
    grpc.StatusCode.UNAUTHENTICATED: HubUnauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: HubDenied,
}


def _convert(address: str, what: str, exc: grpc.RpcError) -> HubError:
    call: Any = exc
    code = call.code() if hasattr(call, "code") else grpc.StatusCode.UNKNOWN
    details = call.details() if hasattr(call, "details") else str(exc)
    cls = _ERRORS.get(code, HubRefused)
    return cls(address, f"{what}: {code.name if code else 'UNKNOWN'}: {details}")


@dataclasses.dataclass(frozen=True)
class Registration:
    cluster: str
    credential: str = dataclasses.field(repr=False)
    hub_ca_pem: bytes
    signing_key: bytes
    labels: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class Desired:
    cluster: str
    commit: str
    digest: str
    size: int
    paused: bool
    signature: bytes
    rollout_wave: str = ""
    #: The bundle sent inside the notice (compressed as ``inline_compression``), or empty: call GetBundle.
    inline_bundle: bytes = dataclasses.field(default=b"", repr=False)
    inline_compression: str = ""
    #: Where the hub pushed the bundle (REGISTRY/REPOSITORY@sha256:...), or "": see ``--bundle-source``.
    oci_reference: str = ""


@dataclasses.dataclass(frozen=True)
class Heartbeat:
    interval: int


@dataclasses.dataclass(frozen=True)
class AgeKeyRotation:
    """The hub asks for a new age key: make one, keep the previous one, reconnect sending the new recipient."""


@dataclasses.dataclass(frozen=True)
class CredentialRotation:
    """The hub rotates the cluster's credential: store this one and reconnect with it."""

    credential: str = dataclasses.field(repr=False)
    old_valid_seconds: int = 0


@dataclasses.dataclass(frozen=True)
class FetchedBundle:
    digest: str
    data: bytes           #: canonical bytes, decompressed, not yet verified
    signature: bytes


def inline_bundle(desired: Desired, *, max_size: int) -> FetchedBundle | None:
    """The bundle carried by a Watch notice, inflated; None when there is none or it is unusable
    (the caller then fetches it with GetBundle). Integrity is the caller's to check."""
    if not desired.inline_bundle:
        return None
    if desired.inline_compression != "zlib":
        log.warning("bundle %s arrived inline with unknown compression %r; fetching it instead",
                    desired.digest, desired.inline_compression)
        return None
    try:
        data = bundles.decompress(desired.inline_bundle, max_size=max_size)
    except bundles.BundleError as exc:
        log.warning("bundle %s arrived inline but cannot be inflated (%s); fetching it instead",
                    desired.digest, exc)
        return None
    return FetchedBundle(digest=desired.digest, data=data, signature=desired.signature)


@dataclasses.dataclass(frozen=True)
class FirstContact:
    """How to trust the hub for the first Register call."""

    root_pem: bytes            #: the pinned CA as the hub presented it: what the first channel trusts
    leaf_pem: bytes            #: the hub's own certificate as presented


def first_contact(address: str, fingerprint: str, *, timeout: float = 10.0) -> FirstContact:
    """Read the chain the hub presents and find the pinned CA in it, before anything is sent.

    The handshake is deliberately unverified and nothing is sent over it. The certificate with the
    pinned fingerprint must be in the chain, and the hub's own certificate must chain to it through
    the presented certificates (checked here to refuse an impostor with a clear error; the gRPC
    channel that trusts only the pinned CA checks it again, with the host name). Anything else is
    refused with :class:`HubTrustError`.
    """
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host) as tls:
            # Python 3.13 makes this public as SSLSocket.get_unverified_chain; 3.11 has it on _sslobj.
            sslobj: Any = getattr(tls, "_sslobj", None)
            getter = getattr(tls, "get_unverified_chain", None) or getattr(sslobj, "get_unverified_chain", None)
            chain = list(getter() or []) if getter is not None else []
            if chain:
                chain_pems = [_pem(cert) for cert in chain]
            else:
                leaf = tls.getpeercert(binary_form=True)
                chain_pems = [ssl.DER_cert_to_PEM_cert(leaf).encode()] if leaf else []
    except (OSError, ValueError) as exc:
        raise HubUnavailable(address, f"cannot open TLS to read the hub's certificate: {exc}") from exc
    if not chain_pems:
        raise HubTrustError(address, "refusing the hub: it presented no certificate")
    fingerprints = [jointoken.fingerprint_of(pem) for pem in chain_pems]
    if fingerprint not in fingerprints:
        raise HubTrustError(address, f"refusing the hub before sending the token: no certificate it presented "
                                     f"matches the join token's CA fingerprint {fingerprint} (presented: "
                                     f"{', '.join(fingerprints)}); check the hub address and the token")
    pinned = chain_pems[fingerprints.index(fingerprint)]
    if not _chains_to(chain_pems, fingerprints, fingerprint):
        raise HubTrustError(address, f"refusing the hub before sending the token: it presents the join token's "
                                     f"CA ({fingerprint}) but its own certificate was not issued by it")
    return FirstContact(root_pem=pinned, leaf_pem=chain_pems[0])


def _chains_to(chain_pems: list[bytes], fingerprints: list[str], pinned: str) -> bool:
    """Whether the first certificate is, or was issued (through the others) by, the pinned one."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    certs = [x509.load_pem_x509_certificate(pem) for pem in chain_pems]
    current = 0
    for _ in range(len(certs)):  # each step moves one issuer up; a loop cannot go on longer
        if fingerprints[current] == pinned:
            return True
        for index, candidate in enumerate(certs):
            if index == current:
                continue
            try:
                certs[current].verify_directly_issued_by(candidate)
            except (ValueError, TypeError, InvalidSignature):
                continue
            current = index
            break
        else:
            return False
    return fingerprints[current] == pinned


def _pem(cert: Any) -> bytes:
    data = cert.public_bytes()
    return data.encode() if isinstance(data, str) else bytes(data)


def _ref_to_wire(ref: Any) -> pb.ObjectRef:
    return codec.ref_to_wire(ref)


#: Fields and field managers one drift event carries at most (history, not a full diff).
EVENT_FIELDS = 20
EVENT_MANAGERS = 8


def _clip(text: str, limit: int = 1024) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def status_to_wire(status: report.Status, *, backlog: int = 0) -> pb.StatusReport:
    objects = [
        pb.ObjectResult(ref=_ref_to_wire(o.ref), app=o.app, action=str(o.action or ""), health=str(o.health),
                        reason=o.reason, error=o.error)
        for o in status.objects
    ]
    drift = [
        pb.DriftItem(ref=_ref_to_wire(d.ref), app=d.app, kind_of_drift=d.kind_of_drift,
                     fields=[pb.FieldDrift(path=f.path, desired=f.desired, live=f.live) for f in d.fields],
                     detected_at=codec.timestamp(d.detected_at), managers=list(d.managers))
        for d in status.drift
    ]
    events = [
        # History needs what changed, not every byte of it: clipped well inside the hub's limits.
        pb.DriftEvent(ref=_ref_to_wire(e.ref), app=e.app, action=str(e.action), kind_of_drift=e.kind_of_drift,
                      fields=[pb.FieldDrift(path=_clip(f.path), desired=_clip(f.desired), live=_clip(f.live))
                              for f in e.fields[:EVENT_FIELDS]],
                      managers=[_clip(m, 128) for m in e.managers[:EVENT_MANAGERS]], at=codec.timestamp(e.at),
                      message=_clip(e.message))
        for e in status.drift_events
    ]
    phase: Any = codec.PHASE_TO_WIRE[status.phase]  # the stub types enums as their names; ints are valid too
    return pb.StatusReport(
        phase=phase, applied_commit=status.commit, applied_digest=status.digest,
        objects=objects, drift=drift, errors=list(status.errors), observed_at=codec.timestamp(status.observed_at),
        message=status.message, backlog=backlog, spoke_version=SPOKE_VERSION, drift_events=events,
    )


#: Codes with which a stream that worked before may simply have outlived its connection.
_STALE_STREAM_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED})
_END_OF_REPORTS = object()


class _StreamEnded(Exception):
    """A StreamStatus stream failed; ``code`` is its gRPC status code."""

    def __init__(self, code: grpc.StatusCode, details: str, cause: grpc.RpcError | None = None) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.cause = cause

    def hub_error(self, address: str) -> HubError:
        if self.cause is not None and self.code is not grpc.StatusCode.DEADLINE_EXCEEDED:
            return _convert(address, "StreamStatus", self.cause)
        return HubUnavailable(address, f"StreamStatus: {self.details}")


class _StatusStream:
    """One open StreamStatus call: reports go in through a queue, acknowledgements come back in order.

    The synchronous gRPC API has no per-message timeout, so a timer cancels the call when an
    acknowledgement is late; the caller then opens a new stream.
    """

    def __init__(self, stub: Any, metadata: list[tuple[str, str]]) -> None:
        self._requests: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._call = stub.StreamStatus(iter(self._requests.get, _END_OF_REPORTS), metadata=metadata)
        self.acknowledged = 0   #: reports the hub has acknowledged on this stream

    def send(self, message: pb.StatusReport, *, timeout: float) -> None:
        late = threading.Event()

        def cancel() -> None:
            late.set()
            self._call.cancel()
        timer = threading.Timer(timeout, cancel)
        timer.daemon = True
        self._requests.put(message)
        timer.start()
        try:
            next(self._call)
        except StopIteration:
            raise _StreamEnded(grpc.StatusCode.UNAVAILABLE, "the hub ended the report stream") from None
        except grpc.RpcError as exc:
            if late.is_set():
                raise _StreamEnded(grpc.StatusCode.DEADLINE_EXCEEDED,
                                   f"no acknowledgement within {timeout:g}s") from exc
            raise _StreamEnded(exc.code(), exc.details() or "", exc) from exc
        finally:
            timer.cancel()
        self.acknowledged += 1

    def close(self) -> None:
        self._requests.put(_END_OF_REPORTS)
        self._call.cancel()


#: A Watch stream silent this many heartbeat intervals is presumed dead (a partition that drops
#: packets sends no FIN or RST, and the channel keepalive takes 40 s to notice).
SILENT_HEARTBEATS = 3
#: Silence allowed before the first heartbeat says the interval (the hub's default is 30 s).
FIRST_MESSAGE_TIMEOUT = 90.0


class _Watchdog:
    """Cancels a streaming call when no message arrived for ``limit`` seconds; ``fed`` restarts the count."""

    def __init__(self, call: Any, limit: float) -> None:
        self._call = call
        self.limit = limit
        self._deadline = time.monotonic() + limit
        self._done = threading.Event()
        self.fired = False
        threading.Thread(target=self._run, name="convoy-watch-watchdog", daemon=True).start()

    def fed(self, limit: float | None = None) -> None:
        if limit is not None:
            self.limit = limit
        self._deadline = time.monotonic() + self.limit

    def stop(self) -> None:
        self._done.set()

    def _run(self) -> None:
        # Short naps: ``fed`` may shorten the limit (the first heartbeat says the interval).
        while not self._done.wait(min(max(0.0, self._deadline - time.monotonic()), 0.5)):
            if time.monotonic() >= self._deadline:
                self.fired = True
                self._call.cancel()
                return


class HubClient:
    """One channel to the hub. Thread-safe: the watch, the reporter and the agent share it."""

    def __init__(self, address: str, *, ca_pem: bytes | None, credential: str | None = None,
                 insecure: bool = False, rpc_timeout: float = 30.0) -> None:
        self.address = address
        self._credential = credential
        self._timeout = rpc_timeout
        if insecure:
            self._channel = grpc.insecure_channel(address, options=_GRPC_OPTIONS)
        else:
            creds = grpc.ssl_channel_credentials(root_certificates=ca_pem)
            self._channel = grpc.secure_channel(address, creds, options=_GRPC_OPTIONS)
        stub_cls: Any = convoy_pb2_grpc.SpokeServiceStub
        self._stub = stub_cls(self._channel)
        self._watch_call: Any = None
        self._report_lock = threading.Lock()
        self._status_stream: _StatusStream | None = None
        self._stream_reports = True

    def close(self) -> None:
        self.cancel_watch()
        with self._report_lock:
            self._drop_status_stream()
        self._channel.close()

    def abandon(self) -> None:
        """Close now, not waiting for a report in flight: closing the channel fails it (it is retried)."""
        self.cancel_watch()
        self._channel.close()

    def with_credential(self, credential: str) -> None:
        self._credential = credential
        with self._report_lock:
            self._drop_status_stream()   # opened with the old credential

    def _metadata(self) -> list[tuple[str, str]]:
        if not self._credential:
            raise HubUnauthenticated(self.address, "no credential; the spoke has not registered")
        return [("authorization", f"Bearer {self._credential}")]

    def register(self, *, token: str, cluster: str, labels: Mapping[str, str],
                 age_recipient: str = "") -> Registration:
        request = pb.RegisterRequest(bootstrap_token=token, cluster_name=cluster, labels=dict(labels),
                                     spoke_version=SPOKE_VERSION, age_recipient=age_recipient)
        try:
            response = self._stub.Register(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            raise _convert(self.address, "Register", exc) from exc
        return Registration(cluster=response.cluster_name, credential=response.credential,
                            hub_ca_pem=bytes(response.hub_ca_pem), signing_key=bytes(response.bundle_signing_key),
                            labels=dict(response.labels))

    def watch(self, *, applied_digest: str,
              heartbeat: float | None = None,
              age_recipient: str = "") -> Iterator[Desired | Heartbeat | CredentialRotation | AgeKeyRotation]:
        """The Watch stream as values; ends by raising ``HubError`` (or returning when cancelled).

        ``heartbeat``: the interval an earlier stream's heartbeats announced, so a stream that freezes
        before its own first heartbeat is noticed as soon (``HubSilentError``). ``age_recipient``: the
        cluster's public age key, so the hub learns it from spokes registered before sealed secrets.
        """
        call = self._stub.Watch(pb.WatchRequest(applied_digest=applied_digest, age_recipient=age_recipient),
                                metadata=self._metadata())
        self._watch_call = call
        # The synchronous API has no per-message deadline: a watchdog cancels a stream that went silent
        # for SILENT_HEARTBEATS of the hub's own heartbeat intervals.
        watchdog = _Watchdog(call, SILENT_HEARTBEATS * heartbeat if heartbeat else FIRST_MESSAGE_TIMEOUT)
        try:
            for event in call:
                which = event.WhichOneof("event")
                interval = event.heartbeat.interval_seconds if which == "heartbeat" else 0
                watchdog.fed(SILENT_HEARTBEATS * interval if interval > 0 else None)
                if which == "desired":
                    d = event.desired
                    yield Desired(cluster=d.cluster_name, commit=d.commit, digest=d.digest, size=d.size,
                                  paused=d.paused, signature=bytes(d.signature), rollout_wave=d.rollout_wave,
                                  inline_bundle=bytes(d.inline_bundle), inline_compression=d.inline_compression,
                                  oci_reference=d.oci_reference)
                elif which == "heartbeat":
                    yield Heartbeat(interval=event.heartbeat.interval_seconds)
                elif which == "rotation" and event.rotation.credential:
                    yield CredentialRotation(credential=event.rotation.credential,
                                             old_valid_seconds=event.rotation.old_valid_seconds)
                elif which == "age_key_rotation":
                    yield AgeKeyRotation()
        except grpc.RpcError as exc:
            if watchdog.fired:
                raise HubSilentError(self.address, f"Watch: nothing from the hub for {watchdog.limit:g}s "
                                                   "(heartbeats were due every "
                                                   f"{watchdog.limit / SILENT_HEARTBEATS:g}s); "
                                                   "the connection is presumed dead") from exc
            raise _convert(self.address, "Watch", exc) from exc
        finally:
            watchdog.stop()
            self._watch_call = None
        raise HubUnavailable(self.address, "Watch stream ended")

    def cancel_watch(self) -> None:
        call = self._watch_call
        if call is not None:
            call.cancel()

    def get_bundle(self, digest: str, *, max_size: int) -> FetchedBundle:
        """Fetch a bundle's chunks and inflate them; integrity is the caller's to check."""
        parts: list[bytes] = []
        compression = ""
        signature = b""
        total = 0
        try:
            for i, chunk in enumerate(self._stub.GetBundle(pb.GetBundleRequest(digest=digest),
                                                           metadata=self._metadata(), timeout=self._timeout * 4)):
                if i == 0:
                    compression = chunk.compression
                    signature = bytes(chunk.signature)
                    if chunk.digest and chunk.digest != digest:
                        raise HubRefused(self.address, f"GetBundle {digest}: hub sent {chunk.digest} instead")
                    if chunk.size > max_size:
                        raise HubRefused(self.address, f"GetBundle {digest}: {chunk.size} bytes is over the "
                                                       f"{max_size}-byte limit")
                total += len(chunk.data)
                if total > max_size:
                    raise HubRefused(self.address, f"GetBundle {digest}: more than {max_size} bytes sent")
                parts.append(bytes(chunk.data))
        except grpc.RpcError as exc:
            raise _convert(self.address, f"GetBundle {digest}", exc) from exc
        data = b"".join(parts)
        if compression == "zlib":
            try:
                data = bundles.decompress(data, max_size=max_size)
            except bundles.BundleError as exc:
                raise HubRefused(self.address, f"GetBundle {digest}: {exc}") from exc
        elif compression:
            raise HubRefused(self.address, f"GetBundle {digest}: unknown compression {compression!r}")
        return FetchedBundle(digest=digest, data=data, signature=signature)

    def report(self, status: report.Status, backlog: int = 0) -> None:
        """Send one report and wait until the hub has stored it.

        Over a StreamStatus stream kept open between reports (a hub serves a message on an open
        stream several times more cheaply than a call); a stream that went stale since its last
        report (hub restarted) is replaced once at once; a hub without StreamStatus gets calls.
        """
        message = status_to_wire(status, backlog=backlog)
        with self._report_lock:
            if self._stream_reports:
                for _attempt in range(2):
                    stream = self._status_stream
                    if stream is None:
                        stream = self._status_stream = _StatusStream(self._stub, self._metadata())
                    try:
                        stream.send(message, timeout=self._timeout)
                        return
                    except _StreamEnded as exc:
                        self._drop_status_stream()
                        if exc.code == grpc.StatusCode.UNIMPLEMENTED:
                            self._stream_reports = False   # an older hub: one call per report
                            break
                        if not stream.acknowledged or exc.code not in _STALE_STREAM_CODES:
                            raise exc.hub_error(self.address) from exc
        try:
            self._stub.ReportStatus(message, metadata=self._metadata(), timeout=self._timeout)
        except grpc.RpcError as exc:
            raise _convert(self.address, "ReportStatus", exc) from exc

    def _drop_status_stream(self) -> None:
        stream, self._status_stream = self._status_stream, None
        if stream is not None:
            stream.close()
