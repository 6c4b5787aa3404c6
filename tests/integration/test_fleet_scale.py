"""The hub stays correct with a fleet (issue 7, "Also"): 50 simulated spokes over real gRPC with TLS
against a real hub on port 0 (real Git, SQLite).

* no lost notifications: after several quick commits, each announced by a webhook without waiting
  for the previous one, every spoke has fetched, verified and reported the final commit's bundle;
* no duplicate registrations: a name registered twice, even concurrently, exists once;
  N registrations = N rows;
* Watch streams of spokes that vanish without closing are reaped: their TCP connections reset under
  a live stream (no gRPC cancel), or silent (no reset either: the hub's HTTP/2 ping every heartbeat
  goes unanswered); the connected-spokes gauge on /metrics drops back.

The simulated spoke is the harness's stand-in made of the plain generated stubs; the load
benchmark (bench/bench_fleet.py) runs the same protocol at 1,000 spokes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc import aio

from hub.commands import hubserve
from hub.source.webhooks import sign_hmac
from protos.codec import pb
from tests.integration.hub_harness import (
    FleetRepo,
    Spoke,
    admin_of,
    channel,
    configmap,
    hub_settings,
    running_hub,
)
from tests.polling import poll

N = 50
WEBHOOK_SECRET = "webhook-secret"  # the harness's hub_settings default


def fleet_settings(tmp_path: Path, repo: FleetRepo, **overrides: object) -> object:
    # Every simulated spoke dials from 127.0.0.1: lift the per-peer buckets meant for one peer per cluster.
    values: dict[str, object] = {"register_rate": 10_000.0, "register_burst": 10_000, "report_rate": 10_000.0,
                                 "report_burst": 10_000, "heartbeat_seconds": 0.5}
    values.update(overrides)
    return hub_settings(tmp_path / "hub", repo, **values)  # type: ignore[arg-type]


@dataclasses.dataclass
class SimulatedSpoke:
    """Registers, holds a Watch, fetches each new digest (digest and signature checked), reports Ready."""

    spoke: Spoke
    applied_digest: str = ""
    applied_commit: str = ""
    fetches: int = 0
    versions: list[str] = dataclasses.field(default_factory=list)

    async def run(self) -> None:
        # Reconnects like a real spoke: a stream that ends or fails is opened again.
        while True:
            try:
                async for event in self.spoke.watch(self.applied_digest):
                    if event.WhichOneof("event") == "desired":
                        await self._apply(event.desired)
            except aio.AioRpcError as exc:
                if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                    raise
            await asyncio.sleep(0.1)  # reconnect backoff, not a wait for a condition

    async def _apply(self, desired: pb.DesiredState) -> None:
        if not desired.digest or desired.digest == self.applied_digest:
            return
        bundle, _ = await self.spoke.bundle(desired.digest)  # checks digest and signature
        [configmap_obj] = bundle["objects"]
        assert configmap_obj["data"]["cluster"] == self.spoke.name
        self.fetches += 1
        self.versions.append(configmap_obj["data"]["version"])
        await self.spoke.report(phase=pb.PHASE_READY, applied_commit=desired.commit,
                                applied_digest=desired.digest, spoke_version="scale-test")
        self.applied_digest, self.applied_commit = desired.digest, desired.commit


class Relay:
    """A TCP relay on 127.0.0.1:0 whose connections can be reset at once, like a host that vanished."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, up_writer]
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()

    async def freeze(self) -> None:
        """Stop forwarding in both directions, closing nothing: a host that lost power, or a partition.

        No FIN and no RST reach the hub; the kernel still acknowledges what the hub sends. Only an
        unanswered HTTP/2 ping tells the hub that the peer is gone.
        """
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # self._writers keeps every socket referenced, so none is closed by garbage collection.

    async def vanish(self) -> None:
        """Refuse new connections and reset every open one: no FIN, no HTTP/2 GOAWAY or RST_STREAM."""
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def tls_channel(hub: hubserve.RunningHub, port: int) -> aio.Channel:
    credentials = grpc.ssl_channel_credentials(root_certificates=hub.ca_pem)
    return aio.secure_channel(f"127.0.0.1:{port}", credentials)


async def http(hub: hubserve.RunningHub, path: str, body: bytes | None = None) -> str:
    headers = {} if body is None else {"X-Convoy-Signature": "sha256=" + sign_hmac(body, WEBHOOK_SECRET.encode())}
    request = urllib.request.Request(f"http://127.0.0.1:{hub.http_port}{path}", data=body, headers=headers,
                                     method="GET" if body is None else "POST")

    def call() -> str:
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(response.read().decode())
    return await asyncio.to_thread(call)


async def metric(hub: hubserve.RunningHub, name: str) -> float:
    text = await http(hub, "/metrics")
    line = next(line for line in text.splitlines() if line.startswith(name + " "))
    return float(line.split()[-1])


async def connected_spokes(hub: hubserve.RunningHub) -> float:
    return await metric(hub, "convoy_hub_connected_spokes")


@contextlib.asynccontextmanager
async def running_spokes(spokes: list[SimulatedSpoke]) -> AsyncIterator[list[asyncio.Task[None]]]:
    tasks = [asyncio.create_task(s.run()) for s in spokes]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def names(prefix: str = "c") -> list[str]:
    return [f"{prefix}-{i:02d}" for i in range(N)]


async def test_fifty_spokes_lose_no_notification_and_register_once(tmp_path: Path, fleet_repo: FleetRepo) -> None:
    async with running_hub(fleet_settings(tmp_path, fleet_repo)) as hub:  # type: ignore[arg-type]
        channels = [channel(hub) for _ in range(N)]
        try:
            admin = admin_of(hub, channels[0])
            token = await admin.token(uses=N + 10)
            spokes = [SimulatedSpoke(Spoke(ch)) for ch in channels]
            await asyncio.gather(*(s.spoke.register(token, name, {"env": "prod" if i % 2 else "dev"})
                                   for i, (s, name) in enumerate(zip(spokes, names(), strict=True))))

            # The same name again is refused, and so is the loser of a race for a new name.
            again = await asyncio.gather(Spoke(channels[1]).register(token, "c-07"), return_exceptions=True)
            race = await asyncio.gather(*(Spoke(channels[i]).register(token, "late") for i in range(3)),
                                        return_exceptions=True)
            assert isinstance(again[0], aio.AioRpcError) and again[0].code() == grpc.StatusCode.ALREADY_EXISTS
            winners = [r for r in race if isinstance(r, pb.RegisterResponse)]
            losers = [r for r in race if isinstance(r, aio.AioRpcError)]
            assert len(winners) == 1 and len(losers) == 2
            assert all(e.code() == grpc.StatusCode.ALREADY_EXISTS for e in losers)
            listing = await admin.call("ListClusters", pb.ListClustersRequest())
            listed = [c.name for c in listing.clusters]
            assert sorted(listed) == sorted([*names(), "late"])  # N + 1 rows, each name once

            async with running_spokes(spokes):
                async def converged_on(commit: str) -> bool:
                    listing = await admin.call("ListClusters", pb.ListClustersRequest())
                    rows = {c.name: c for c in listing.clusters if c.name != "late"}
                    return all(r.desired_commit == commit and r.applied_digest == r.desired_digest
                               and r.applied_commit == commit for r in rows.values()) and len(rows) == N
                await poll(lambda: converged_on(fleet_repo.head()), timeout=30,
                           what="all 50 spokes to apply the first commit")
                assert await connected_spokes(hub) == N

                # Five commits in quick succession, each announced at once by a webhook.
                for version in range(2, 7):
                    head = fleet_repo.commit({"apps/web/configmap.yaml": configmap(str(version))},
                                             message=f"web v{version}")
                    body = json.dumps({"ref": "refs/heads/main", "after": head}).encode()
                    await http(hub, "/webhook", body)
                await poll(lambda: converged_on(head), timeout=45,
                           what="every spoke to end at the final commit's digest")

                listing = await admin.call("ListClusters", pb.ListClustersRequest())
                desired = {c.name: c.desired_digest for c in listing.clusters}
                for spoke in spokes:
                    assert spoke.applied_commit == head
                    assert spoke.applied_digest == desired[spoke.spoke.name]
                    assert spoke.versions[-1] == "6"           # the content of the final commit
                    assert spoke.versions == sorted(spoke.versions)  # never moved backwards
                assert len({s.applied_digest for s in spokes}) == N   # one bundle per cluster (${cluster_name})
                # Registrations in a burst share renders: one fleet render per registration made 1,000
                # spokes cost O(N^2) (issue 7). Renders = first sync + registration batches + webhook syncs.
                renders = await metric(hub, "convoy_hub_render_duration_seconds_count")
                assert renders < 1 + 5 + N // 2, f"{renders:.0f} renders for {N} registrations and 5 commits"
        finally:
            for ch in channels:
                await ch.close(None)


@pytest.mark.parametrize("how", ["reset", "silent"])
async def test_watch_streams_of_vanished_spokes_are_reaped(tmp_path: Path, fleet_repo: FleetRepo, how: str) -> None:
    """``reset``: the connections are reset (the host's kernel still answers). ``silent``: nothing at all
    comes back, not even a reset (power cut, partition); the hub's ping every heartbeat finds it."""
    async with running_hub(fleet_settings(tmp_path, fleet_repo)) as hub:  # type: ignore[arg-type]
        relay = Relay(hub.grpc_port)
        await relay.start()
        vanishing = N // 2
        # The first half dial through the relay (their "network"); the rest dial the hub directly.
        channels = [tls_channel(hub, relay.port if i < vanishing else hub.grpc_port) for i in range(N)]
        try:
            admin = admin_of(hub, channels[-1])
            token = await admin.token(uses=N)
            spokes = [SimulatedSpoke(Spoke(ch)) for ch in channels]
            await asyncio.gather(*(s.spoke.register(token, name) for s, name in zip(spokes, names(), strict=True)))
            async with running_spokes(spokes) as tasks:
                async def all_connected() -> bool:
                    return await connected_spokes(hub) == N and all(s.applied_digest for s in spokes)
                await poll(all_connected, timeout=30, what="50 Watch streams and first bundles")

                await (relay.vanish() if how == "reset" else relay.freeze())
                for task in tasks[:vanishing]:
                    task.cancel()  # the process is gone: nothing reconnects (and nothing reaches the hub)

                async def reaped() -> bool:
                    return await connected_spokes(hub) == N - vanishing
                await poll(reaped, timeout=20, what="the vanished spokes' Watch streams to be reaped")

                async def shown_offline() -> bool:
                    # The hub records each reaped stream in the database (a moment after it ends).
                    listing = await admin.call("ListClusters", pb.ListClustersRequest())
                    online = {c.name: c.online for c in listing.clusters}
                    return [online[n] for n in names()] == [False] * vanishing + [True] * (N - vanishing)
                await poll(shown_offline, timeout=5, what="exactly the vanished spokes to show offline")

                # The survivors still hear of the next commit.
                head = fleet_repo.commit({"apps/web/configmap.yaml": configmap("2")})
                await admin.call("SyncNow", pb.SyncNowRequest())

                async def survivors_moved() -> bool:
                    return all(s.applied_commit == head for s in spokes[vanishing:])
                await poll(survivors_moved, timeout=30, what="the remaining spokes to apply the new commit")
                assert await connected_spokes(hub) == N - vanishing
        finally:
            for ch in channels:
                await ch.close(None)
