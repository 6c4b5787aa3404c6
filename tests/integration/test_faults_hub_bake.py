"""The hub SIGKILLed while a canary wave bakes and kept down past the bake time and the progress
deadline (issue 22, item 2), with real `convoy hub serve` processes.

The canary said Ready before the crash and degrades while the hub is down. The restarted hub must not
finish the bake on that old Ready report: it waits for the canary's next report, which says Degraded,
and rolls back; the second wave never gets the new bundle.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
from grpc import aio

from protos.codec import pb
from tests.integration.hub_harness import (
    FLEET_YAML,
    Admin,
    FleetRepo,
    Spoke,
    configmap,
    next_desired,
    standard_fleet,
)

LISTENING = re.compile(r"gRPC listening on (\S+) \(TLS\)")
BAKE = 2.0
ROLLOUT = f"""\
rollout:
  bakeTime: {BAKE:g}s
  progressDeadline: 3s
  onFailure: rollback
  waves:
    - name: canary
      selector: {{matchLabels: {{canary: "true"}}}}
"""


@asynccontextmanager
async def hub_process(repo: FleetRepo, data_dir: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from hub.cli import main; main()", "hub", "serve", "--repo", str(repo.path),
        "--data-dir", str(data_dir), "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
        "--registry-listen", "127.0.0.1:0",
        "--heartbeat-seconds", "1", "--poll-interval", "3600", stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL)
    address: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def drain() -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            match = LISTENING.search(raw.decode(errors="replace"))
            if match and not address.done():
                address.set_result(match.group(1))

    reader = asyncio.create_task(drain())
    try:
        yield proc, await asyncio.wait_for(address, 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        reader.cancel()


def secure(data_dir: Path, address: str) -> aio.Channel:
    credentials = grpc.ssl_channel_credentials(root_certificates=(data_dir / "tls" / "ca.crt").read_bytes())
    return aio.secure_channel(address, credentials)


async def until(check: Callable[[], Awaitable[bool]], *, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, f"timed out after {timeout}s waiting for {what}"
        await asyncio.sleep(0.05)


async def test_a_canary_that_degrades_while_the_hub_is_down_is_not_passed_on_its_old_report(
        tmp_path: Path) -> None:
    repo = FleetRepo(tmp_path / "fleet")
    standard_fleet(repo)
    repo.commit({"fleet.yaml": FLEET_YAML + ROLLOUT})
    data_dir = tmp_path / "hub"
    labels = {"canary": {"canary": "true"}, "rest": {"env": "prod"}}
    async with hub_process(repo, data_dir) as (proc, address), secure(data_dir, address) as ch:
        admin = Admin(ch, (data_dir / "admin.credential").read_text().strip())
        spokes = {}
        for name, wanted in labels.items():
            spokes[name] = Spoke(ch)
            await spokes[name].register(await admin.token(), name, wanted)
        before = {}
        for name, spoke in spokes.items():
            stream = spoke.watch()
            before[name] = await next_desired(stream, timeout=15)
            await spoke.report(phase=pb.PHASE_READY, applied_commit=before[name].commit,
                               applied_digest=before[name].digest)
            stream.cancel()
        canary_stream = spokes["canary"].watch(before["canary"].digest)
        newer = repo.commit({"apps/web/configmap.yaml": configmap("2")})
        await admin.call("SyncNow", pb.SyncNowRequest())
        target = await next_desired(canary_stream, timeout=15)
        while target.commit != newer:  # a new stream first says what is desired now
            target = await next_desired(canary_stream, timeout=15)
        await spokes["canary"].report(phase=pb.PHASE_READY, applied_commit=newer, applied_digest=target.digest)

        async def baking() -> bool:
            status = await admin.call("RolloutStatus", pb.RolloutStatusRequest())
            return bool(status.waves and status.waves[0].state == "baking")
        await until(baking, timeout=15, what="the canary wave to bake")
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        killed_at = dt.datetime.now(dt.UTC)
        canary_credential, rest_credential = spokes["canary"].credential, spokes["rest"].credential

    # Down past the bake time and the progress deadline; the canary degrades meanwhile (its report
    # cannot reach the hub).
    async def outage_over() -> bool:
        return dt.datetime.now(dt.UTC) - killed_at > dt.timedelta(seconds=4)
    await until(outage_over, timeout=10, what="the outage")

    async with hub_process(repo, data_dir) as (proc, address), secure(data_dir, address) as ch:
        admin = Admin(ch, (data_dir / "admin.credential").read_text().strip())
        canary = Spoke(ch, name="canary", credential=canary_credential)
        rest = Spoke(ch, name="rest", credential=rest_credential)
        canary_stream = canary.watch(target.digest)  # the spoke reconnects: online again, no report yet
        rest_stream = rest.watch(before["rest"].digest)

        async def canary_online() -> bool:
            listing = await admin.call("ListClusters", pb.ListClustersRequest())
            return any(c.name == "canary" and c.online for c in listing.clusters)
        await until(canary_online, timeout=15, what="the canary to reconnect")
        # Several rollout ticks (one a second) with the canary online and its old Ready report stored.
        ticks_over = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2.5)

        async def ticked() -> bool:
            return dt.datetime.now(dt.UTC) > ticks_over
        await until(ticked, timeout=10, what="a few rollout ticks")
        status = await admin.call("RolloutStatus", pb.RolloutStatusRequest())
        assert status.state == "progressing" and status.waves[0].state == "baking", status
        detail = await admin.call("GetCluster", pb.GetClusterRequest(name="rest"))
        assert detail.summary.desired_digest == before["rest"].digest  # the second wave did not go

        # The canary's report, kept while the hub was away, arrives: Degraded. The rollout rolls back.
        await canary.report(phase=pb.PHASE_DEGRADED, applied_commit=newer, applied_digest=target.digest,
                            message="degraded while the hub was down")

        async def rolled_back() -> bool:
            return str((await admin.call("RolloutStatus", pb.RolloutStatusRequest())).state) == "rolled_back"
        await until(rolled_back, timeout=15, what="the rollout to roll back")
        back = await next_desired(canary_stream, timeout=15)
        while back.digest != before["canary"].digest:  # the stream first says what was desired on opening
            back = await next_desired(canary_stream, timeout=15)
        detail = await admin.call("GetCluster", pb.GetClusterRequest(name="rest"))
        assert detail.summary.desired_digest == before["rest"].digest
        rest_stream.cancel()
        canary_stream.cancel()
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
