"""Simulated spokes for the fleet benchmark: many per process, real gRPC, no Kubernetes behind them.

Each simulated spoke does what a real spoke does on the wire: registers with a
bootstrap token, holds one Watch stream, takes its bundle when the desired digest
changes (from inside the notice when the hub inlined it, else by GetBundle; digest
and signature verified either way), and reports status as a spoke would after a
successful apply. Every fetch is written as one JSON line
to ``--out`` so the orchestrator (``bench/bench_fleet.py``) can compute
latencies across processes (same machine, same clock).

    python bench/loaddriver.py --hub 127.0.0.1:7443 --ca ca.pem --token ID.SECRET \
        --names c0001,c0002 --labels-json '{"c0001": {"env": "prod"}}' --out events.jsonl
    python bench/loaddriver.py ... --spokes-file spokes.json --out events.jsonl   # {"c0001": {"env": "prod"}}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from protos import bundle, codec  # noqa: E402
from protos.convoy.v1 import convoy_pb2 as pb  # noqa: E402
from protos.convoy.v1 import convoy_pb2_grpc as pb_grpc  # noqa: E402

MAX_BUNDLE = 64 * 1024 * 1024
#: How often the buffered event lines are written out (the orchestrator polls them).
FLUSH_SECONDS = 0.1
#: Register attempts per simulated spoke, retried only when the hub could not be reached in time.
REGISTER_ATTEMPTS = 5
RETRIED = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


class SimulatedSpoke:
    def __init__(self, *, name: str, labels: dict[str, str], args: argparse.Namespace, out: TextIO,
                 registering: asyncio.Semaphore) -> None:
        self.name = name
        #: Registrations in flight in this process: thousands of TLS handshakes at one instant is a
        #: storm no real fleet makes (each cluster joins when it is installed); Watch opens are not bounded.
        self.registering = registering
        self.labels = labels
        self.args = args
        self.out = out
        self.credential: str | None = None
        self.signing_key = b""
        self.applied_digest = ""
        self.applied_commit = ""
        self.watch_bytes = 0
        self._reports: Any = None   # the open StreamStatus call, as a spoke keeps one
        self.channel: grpc.aio.Channel | None = None   #: the spoke's connection, once it dialled

    def _channel(self) -> grpc.aio.Channel:
        # What a real spoke sets (spoke/hubclient.py): its keepalive, and a connection of its own, not
        # one shared through gRPC's process-wide subchannel pool (insecure channels with equal options
        # share one; TLS channels, with credentials each, get their own either way).
        options = [("grpc.max_receive_message_length", 8 * 1024 * 1024), ("grpc.keepalive_time_ms", 30_000),
                   ("grpc.keepalive_timeout_ms", 10_000), ("grpc.keepalive_permit_without_calls", 1),
                   ("grpc.use_local_subchannel_pool", 1)]
        if self.args.insecure:
            return grpc.aio.insecure_channel(self.args.hub, options=options)
        creds = grpc.ssl_channel_credentials(root_certificates=Path(self.args.ca).read_bytes())
        return grpc.aio.secure_channel(self.args.hub, creds, options=options)

    def emit(self, **fields: Any) -> None:
        # Buffered: main_async flushes every FLUSH_SECONDS. Each line carries its own time, so the
        # orchestrator's latencies do not include the wait, and thousands of spokes cost one write.
        self.out.write(json.dumps({"cluster": self.name, "t": time.time(), **fields}) + "\n")

    async def run(self) -> None:
        async with self._channel() as channel:
            self.channel = channel
            stub = pb_grpc.SpokeServiceStub(channel)  # type: ignore[no-untyped-call]
            started = time.perf_counter()
            request = pb.RegisterRequest(bootstrap_token=self.args.token, cluster_name=self.name,
                                         labels=self.labels, spoke_version="loaddriver")
            for attempt in range(REGISTER_ATTEMPTS):
                try:
                    async with self.registering:
                        response = await stub.Register(request, timeout=120)
                    break
                except grpc.aio.AioRpcError as exc:
                    if exc.code() in RETRIED and attempt + 1 < REGISTER_ATTEMPTS:
                        # A hub that could not take the connection in time: a real spoke's pod restarts
                        # and registers again. Counted, so a run that needed retries says so.
                        self.emit(event="register-retry", code=exc.code().name, details=exc.details() or "")
                        await asyncio.sleep(random.uniform(1, 5))
                        continue
                    # A refused registration ends this spoke only; the orchestrator counts these lines.
                    self.emit(event="register-error", code=exc.code().name, details=exc.details() or "")
                    return
            self.emit(event="registered", seconds=time.perf_counter() - started)
            self.credential = response.credential
            self.signing_key = response.bundle_signing_key
            metadata = (("authorization", f"Bearer {self.credential}"),)
            backoff = 0.5
            while True:
                try:
                    await self._watch(stub, metadata)
                    backoff = 0.5
                except grpc.aio.AioRpcError as exc:
                    self.emit(event="watch-error", code=exc.code().name)
                    await asyncio.sleep(random.uniform(0, backoff))
                    backoff = min(backoff * 2, 10)

    async def _watch(self, stub: pb_grpc.SpokeServiceStub, metadata: tuple[tuple[str, str], ...]) -> None:
        stream = stub.Watch(pb.WatchRequest(applied_digest=self.applied_digest), metadata=metadata)
        async for event in stream:
            size = event.ByteSize()
            self.watch_bytes += size
            if event.WhichOneof("event") == "heartbeat":
                self.emit(event="heartbeat", size=size, watch_bytes=self.watch_bytes)
                continue
            desired = event.desired
            self.emit(event="notice", digest=desired.digest, commit=desired.commit, size=size,
                      watch_bytes=self.watch_bytes)
            if desired.digest and desired.digest != self.applied_digest:
                await self._fetch_and_report(stub, metadata, desired)

    async def _fetch_and_report(self, stub: pb_grpc.SpokeServiceStub, metadata: tuple[tuple[str, str], ...],
                                desired: pb.DesiredState) -> None:
        if desired.inline_bundle:
            # Small bundles come inside the notice (hub setting inline_bundle_bytes), as a spoke takes them.
            fetched_bytes = len(desired.inline_bundle)
            data = bundle.decompress(desired.inline_bundle, max_size=MAX_BUNDLE)
            signature = desired.signature
            how = "inline"
        else:
            compressed = bytearray()
            header: pb.BundleChunk | None = None
            fetched_bytes = 0
            async for chunk in stub.GetBundle(pb.GetBundleRequest(digest=desired.digest), metadata=metadata):
                fetched_bytes += chunk.ByteSize()
                if header is None:
                    header = chunk
                compressed.extend(chunk.data)
            assert header is not None
            data = (bundle.decompress(bytes(compressed), max_size=MAX_BUNDLE) if header.compression
                    else bytes(compressed))
            signature = header.signature or desired.signature
            how = "GetBundle"
        parsed = bundle.decode(data, expected_digest=desired.digest)
        bundle.verify_signature(self.signing_key, desired.digest, signature)
        self.emit(event="fetched", digest=desired.digest, commit=desired.commit, bytes=fetched_bytes, how=how)
        self.applied_digest = desired.digest
        self.applied_commit = desired.commit
        objects = [pb.ObjectResult(ref=pb.ObjectRef(group=o.get("apiVersion", "").rpartition("/")[0],
                                                    kind=o.get("kind", ""),
                                                    namespace=o.get("metadata", {}).get("namespace", ""),
                                                    name=o.get("metadata", {}).get("name", "")),
                                   action="configured", health="Current")
                   for o in parsed["objects"]]
        report = pb.StatusReport(phase=pb.PHASE_READY, applied_commit=desired.commit,
                                 applied_digest=desired.digest, objects=objects, observed_at=codec.timestamp(),
                                 spoke_version="loaddriver")
        await self._report(stub, metadata, report)
        self.emit(event="reported", digest=desired.digest, commit=desired.commit)

    async def _report(self, stub: pb_grpc.SpokeServiceStub, metadata: tuple[tuple[str, str], ...],
                      report: pb.StatusReport) -> None:
        """Over the spoke's StreamStatus stream (opened again if it broke), waiting for the hub's ack."""
        for attempt in range(2):
            if self._reports is None:
                self._reports = stub.StreamStatus(metadata=metadata)
            try:
                await self._reports.write(report)
                ack = await asyncio.wait_for(self._reports.read(), 60)
                if ack is grpc.aio.EOF:
                    raise ConnectionError("the hub ended the report stream")
                return
            except (grpc.aio.AioRpcError, ConnectionError, asyncio.InvalidStateError):
                self._reports.cancel()
                self._reports = None
                if attempt:
                    raise


async def flood(args: argparse.Namespace, spokes: list[SimulatedSpoke], seconds: float, out: TextIO, *,
                kind: str) -> None:
    """Call the hub as fast as it answers, from every spoke, for ``seconds``.

    ``kind`` "status": reports over one StreamStatus stream per spoke, each awaited until the hub
    acknowledges it stored (what spokes do). "status-unary": one ReportStatus call per report (older
    spokes). "health": the standard gRPC Health/Check, which touches no Convoy code: the ceiling of
    unary calls this hub process can serve, the peer figure for the status rate. Channels are
    connected before the clock starts, so TLS handshakes are not counted.
    """
    errors: dict[str, int] = {}
    flooding = [s for s in spokes if s.credential]
    # Over each spoke's own connection, as a spoke reports: a second connection per spoke doubled the
    # hub's file descriptors (20,000 at 10,000 spokes, its limit here).
    own = [s.channel is None for s in flooding]
    channels = [s._channel() if s.channel is None else s.channel for s in flooding]
    try:
        await asyncio.gather(*(asyncio.wait_for(ch.channel_ready(), 60) for ch in channels))
        deadline = time.perf_counter() + seconds

        async def one(spoke: SimulatedSpoke, channel: grpc.aio.Channel) -> int:
            count = 0
            stub = pb_grpc.SpokeServiceStub(channel)  # type: ignore[no-untyped-call]
            health = health_pb2_grpc.HealthStub(channel)
            probe = health_pb2.HealthCheckRequest(service="convoy.v1.SpokeService")
            metadata = (("authorization", f"Bearer {spoke.credential}"),)
            stream: Any = None
            while time.perf_counter() < deadline:
                report = pb.StatusReport(phase=pb.PHASE_READY, applied_digest=spoke.applied_digest,
                                         applied_commit=spoke.applied_commit, observed_at=codec.timestamp(),
                                         message=f"flood {count}")
                try:
                    if kind == "health":
                        await health.Check(probe, timeout=30)
                    elif kind == "status-unary":
                        await stub.ReportStatus(report, metadata=metadata, timeout=30)
                    else:
                        if stream is None:
                            stream = stub.StreamStatus(metadata=metadata)
                        await stream.write(report)
                        if await asyncio.wait_for(stream.read(), 30) is grpc.aio.EOF:
                            raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(),
                                                       grpc.aio.Metadata(), "report stream ended")
                    count += 1
                except grpc.aio.AioRpcError as exc:
                    # Counted, not fatal: the figure is what the hub accepted; refusals show beside it.
                    errors[exc.code().name] = errors.get(exc.code().name, 0) + 1
                    stream = None
                    await asyncio.sleep(0.05)
            if stream is not None:
                await stream.done_writing()
            return count

        started = time.perf_counter()
        counts = await asyncio.gather(*(one(s, ch) for s, ch in zip(flooding, channels, strict=True)))
        elapsed = time.perf_counter() - started
    finally:
        await asyncio.gather(*(ch.close(None) for ch, made in zip(channels, own, strict=True) if made),
                             return_exceptions=True)
    out.write(json.dumps({"event": "flood", "kind": kind, "reports": sum(counts), "seconds": seconds,
                          "elapsed": elapsed, "errors": errors, "t": time.time()}) + "\n")
    out.flush()


async def main_async(args: argparse.Namespace) -> None:
    if args.spokes_file:
        labels: dict[str, dict[str, str]] = json.loads(Path(args.spokes_file).read_text())
        names = list(labels)
    else:
        labels = json.loads(args.labels_json) if args.labels_json else {}
        names = [n for n in args.names.split(",") if n]
    with open(args.out, "a", buffering=1024 * 1024) as out:
        registering = asyncio.Semaphore(args.register_concurrency)
        spokes = [SimulatedSpoke(name=n, labels=labels.get(n, {}), args=args, out=out, registering=registering)
                  for n in names]
        tasks = [asyncio.create_task(s.run()) for s in spokes]

        async def flush_lines() -> None:
            while True:
                await asyncio.sleep(FLUSH_SECONDS)
                out.flush()
        flusher = asyncio.create_task(flush_lines())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        floods = {"status": asyncio.Event(), "health": asyncio.Event(), "status-unary": asyncio.Event()}
        loop.add_signal_handler(signal.SIGUSR1, floods["status"].set)
        loop.add_signal_handler(signal.SIGUSR2, floods["health"].set)
        loop.add_signal_handler(signal.SIGHUP, floods["status-unary"].set)
        pending = set(tasks)
        while not stop.is_set():
            waiter = asyncio.create_task(stop.wait())
            flooders = [asyncio.create_task(event.wait()) for event in floods.values()]
            await asyncio.wait([waiter, *flooders, *pending], return_when=asyncio.FIRST_COMPLETED)
            for task in [t for t in pending if t.done()]:
                # A spoke whose registration was refused ends normally; only a crash stops the driver.
                pending.discard(task)
                if task.exception() is not None:
                    out.write(json.dumps({"event": "spoke-crashed", "error": repr(task.exception())}) + "\n")
                    stop.set()
            for kind, event in floods.items():
                if event.is_set():
                    event.clear()
                    await flood(args, spokes, args.flood_seconds, out, kind=kind)
            waiter.cancel()
            for flooder in flooders:
                flooder.cancel()
        for task in [*tasks, flusher]:
            task.cancel()
        await asyncio.gather(*tasks, flusher, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hub", required=True)
    parser.add_argument("--ca", default=None)
    parser.add_argument("--insecure", action="store_true")
    parser.add_argument("--token", required=True, help="bootstrap token ID.SECRET")
    spokes = parser.add_mutually_exclusive_group(required=True)
    spokes.add_argument("--names", help="comma-separated cluster names")
    spokes.add_argument("--spokes-file", help='JSON file {"name": {labels}, ...}: the spokes to simulate, in order')
    parser.add_argument("--labels-json", default="")
    parser.add_argument("--out", required=True)
    parser.add_argument("--flood-seconds", type=float, default=10.0)
    parser.add_argument("--register-concurrency", type=int, default=200,
                        help="Register calls in flight at once in this process")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
