"""Test helpers for the spoke's integration tests: a small SpokeService over real gRPC, bundle builders.

``FakeHub`` is a stand-in for the hub's SpokeService only where the spoke's own behaviour is under
test (the hub has its own tests, and the end-to-end tests run both). It speaks the real wire
protocol on a real socket: Register with a bootstrap token, Watch with heartbeats, chunked
GetBundle signed with Ed25519, ReportStatus recorded for assertions.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent import futures
from typing import Any

import grpc
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from protos import bundle as bundles
from protos import codec
from protos.codec import pb
from protos.convoy.v1 import convoy_pb2_grpc
from protos.status import Phase


def make_bundle(objects: Sequence[Mapping[str, Any]], *, apps: Sequence[Mapping[str, Any]] | None = None,
                app: str = "web") -> dict[str, Any]:
    """A bundle whose objects carry the app label (``app`` unless they have one)."""
    out = []
    for obj in objects:
        o = {**obj, "metadata": {**obj.get("metadata", {})}}
        labels = dict(o["metadata"].get("labels") or {})
        labels.setdefault(bundles.LABEL_APP, app)
        o["metadata"]["labels"] = labels
        out.append(o)
    names = sorted({o["metadata"]["labels"][bundles.LABEL_APP] for o in out})
    return {"apiVersion": bundles.API_VERSION, "kind": "Bundle",
            "apps": list(apps) if apps is not None else [{"name": n, "namespace": "", "dependsOn": []} for n in names],
            "objects": out}


def configmap(name: str, namespace: str, data: Mapping[str, str] | None = None, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace, **meta},
            "data": dict(data or {"key": "value"})}


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def deployment(name: str, ns: str, *, image: str = "nginx:1.27", replicas: int = 1,
               annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "annotations": dict(annotations or {})},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": name, "image": image}]}}}}


def self_signed(host: str = "127.0.0.1") -> tuple[bytes, bytes]:
    """A self-signed serving certificate and its key, as an impostor would make in a minute."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "convoy-hub")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host)),
                                                        x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


class FakeHub(convoy_pb2_grpc.SpokeServiceServicer):
    """SpokeService on 127.0.0.1:<port>; ``publish`` a bundle, read ``reports``."""

    def __init__(self, *, token: str = "abc123.bootstrapsecret", heartbeat: int = 1,
                 tls: tuple[bytes, bytes, bytes] | None = None, stream_status: bool = True) -> None:
        self.token = token
        #: Serve StreamStatus; False: a hub from before it existed (answers UNIMPLEMENTED).
        self.stream_status = stream_status
        self.report_streams = 0   #: StreamStatus calls opened
        self.heartbeat = heartbeat
        self.tls = tls                      # (chain PEM, key PEM, CA PEM)
        self.key = ed25519.Ed25519PrivateKey.generate()
        self.public_key = self.key.public_key().public_bytes(serialization.Encoding.Raw,
                                                             serialization.PublicFormat.Raw)
        self.credentials: dict[str, str] = {}
        self.blobs: dict[str, bytes] = {}
        self.desired: pb.DesiredState | None = None
        self.version = 0
        self.reports: list[pb.StatusReport] = []
        self.registrations = 0
        self.register_requests: list[pb.RegisterRequest] = []   #: every Register received, token or not
        self.bundle_fetches = 0
        self.tamper: Callable[[bytes], bytes] | None = None
        self._cond = threading.Condition()
        self._server: grpc.Server | None = None
        self._stopping = False
        self.port = 0

    # -- control ----------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> FakeHub:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        convoy_pb2_grpc.add_SpokeServiceServicer_to_server(self, server)
        listen = f"127.0.0.1:{self.port}"
        if self.tls is not None:
            creds = grpc.ssl_server_credentials([(self.tls[1], self.tls[0])])
            self.port = server.add_secure_port(listen, creds)
        else:
            self.port = server.add_insecure_port(listen)
        assert self.port, "could not bind the fake hub"
        self._stopping = False
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._server is not None:
            self._server.stop(grace=0.5).wait()
            self._server = None

    def publish(self, bundle: Mapping[str, Any], *, commit: str = "c0ffee", paused: bool = False,
                signature: bytes | None = None, inline: bytes | None = None) -> str:
        """Make ``bundle`` desired. ``inline``: bytes to send inside the notice as the compressed bundle
        (``b""``: the real compressed bundle), as the hub does for small bundles."""
        data = bundles.encode(bundle)
        digest = bundles.digest_of(data)
        self.blobs[digest] = data
        with self._cond:
            self.desired = pb.DesiredState(cluster_name="", commit=commit, digest=digest, size=len(data),
                                           paused=paused, signature=signature or bundles.sign(self.key, digest),
                                           since=codec.timestamp())
            if inline is not None:
                self.desired.inline_bundle = inline or bundles.compress(data)
                self.desired.inline_compression = "zlib"
            self.version += 1
            self._cond.notify_all()
        return digest

    def last_report(self) -> pb.StatusReport | None:
        with self._cond:
            return self.reports[-1] if self.reports else None

    def phase(self) -> Phase | None:
        report = self.last_report()
        return codec.PHASE_FROM_WIRE[report.phase] if report is not None else None

    # -- the service ----------------------------------------------------------------------------

    def _cluster(self, context: grpc.ServicerContext) -> str:
        for key, value in context.invocation_metadata():
            if key == "authorization" and value.startswith("Bearer "):
                cred = value[len("Bearer "):]
                for cluster, known in self.credentials.items():
                    if secrets.compare_digest(cred, known):
                        return cluster
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown credential")
        raise AssertionError("unreachable")

    def Register(self, request: pb.RegisterRequest, context: grpc.ServicerContext) -> pb.RegisterResponse:
        with self._cond:
            self.register_requests.append(request)
        if request.bootstrap_token != self.token:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "bootstrap token unknown or used up")
        self.registrations += 1
        cred = secrets.token_urlsafe(32)
        self.credentials[request.cluster_name] = cred
        return pb.RegisterResponse(cluster_name=request.cluster_name, credential=cred,
                                   hub_ca_pem=self.tls[2] if self.tls else b"",
                                   bundle_signing_key=self.public_key, labels=dict(request.labels))

    def Watch(self, request: pb.WatchRequest, context: grpc.ServicerContext) -> Iterator[pb.WatchEvent]:
        cluster = self._cluster(context)
        seen = -1
        while context.is_active():
            with self._cond:
                if self._stopping:
                    context.abort(grpc.StatusCode.UNAVAILABLE, "hub shutting down; reconnect")
                if self.version == seen or self.desired is None:
                    self._cond.wait(self.heartbeat)
                version, desired = self.version, self.desired
            if self._stopping:
                continue
            if desired is not None and version != seen:
                seen = version
                out = pb.DesiredState()
                out.CopyFrom(desired)
                out.cluster_name = cluster
                yield pb.WatchEvent(desired=out)
            else:
                yield pb.WatchEvent(heartbeat=pb.Heartbeat(sent_at=codec.timestamp(),
                                                           interval_seconds=self.heartbeat))

    def GetBundle(self, request: pb.GetBundleRequest, context: grpc.ServicerContext) -> Iterator[pb.BundleChunk]:
        self._cluster(context)
        data = self.blobs.get(request.digest)
        if data is None:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"digest {request.digest} was never desired")
            return
        self.bundle_fetches += 1
        if self.tamper is not None:
            data = self.tamper(data)
        packed = bundles.compress(data)
        with self._cond:
            signature = self.desired.signature if self.desired is not None else b""
        step = 64 * 1024
        for offset in range(0, max(len(packed), 1), step):
            chunk = pb.BundleChunk(data=packed[offset:offset + step], offset=offset)
            if offset == 0:
                chunk.digest, chunk.size, chunk.compression = request.digest, len(data), "zlib"
                chunk.signature, chunk.compressed_size = signature, len(packed)
            yield chunk

    def ReportStatus(self, request: pb.StatusReport, context: grpc.ServicerContext) -> pb.ReportStatusResponse:
        self._cluster(context)
        with self._cond:
            self.reports.append(request)
        return pb.ReportStatusResponse(accepted=True)

    def StreamStatus(self, request_iterator: Iterator[pb.StatusReport],
                     context: grpc.ServicerContext) -> Iterator[pb.ReportStatusResponse]:
        if not self.stream_status:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")
        self._cluster(context)
        with self._cond:
            self.report_streams += 1
        for request in request_iterator:
            with self._cond:
                self.reports.append(request)
            yield pb.ReportStatusResponse(accepted=True)
