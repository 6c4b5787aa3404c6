"""`convoy hub serve` as a real process: SIGTERM ends Watch streams with UNAVAILABLE "reconnect", the
process exits cleanly, and the log says where the operator's files are without showing secrets."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import grpc
import pytest
from grpc import aio

from protos.codec import pb
from tests.integration.hub_harness import (
    Admin,
    FleetRepo,
    Spoke,
    next_desired,
)

LISTENING = re.compile(r"gRPC listening on (\S+) \(TLS\)")


async def test_sigterm_closes_watches_with_unavailable(tmp_path: Path, fleet_repo: FleetRepo) -> None:
    data_dir = tmp_path / "hub"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from hub.cli import main; main()", "hub", "serve", "--repo", str(fleet_repo.path),
        "--data-dir", str(data_dir), "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
        "--registry-listen", "127.0.0.1:0",
        "--heartbeat-seconds", "0.5", stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL)
    assert proc.stderr is not None
    lines: list[str] = []
    address: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def drain() -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            line = raw.decode(errors="replace")
            lines.append(line)
            match = LISTENING.search(line)
            if match and not address.done():
                address.set_result(match.group(1))

    reader = asyncio.create_task(drain())
    try:
        hub_address = await asyncio.wait_for(address, 30)
        ca_pem = (data_dir / "tls" / "ca.crt").read_bytes()
        credentials = grpc.ssl_channel_credentials(root_certificates=ca_pem)
        async with aio.secure_channel(hub_address, credentials) as ch:
            admin = Admin(ch, (data_dir / "admin.credential").read_text().strip())
            spoke = Spoke(ch)
            await spoke.register(await admin.token(), "alpha")
            stream = spoke.watch()
            desired = await next_desired(stream, timeout=15)
            # A report stream idles between reports; it must not hold the shutdown up either.
            reports = spoke.stub.StreamStatus(metadata=spoke.metadata)
            await reports.write(pb.StatusReport(phase=pb.PHASE_READY, applied_digest=desired.digest))
            assert (await asyncio.wait_for(reports.read(), 10)).accepted

            stopping = asyncio.get_running_loop().time()
            proc.send_signal(signal.SIGTERM)
            for call in (stream, reports):
                with pytest.raises(aio.AioRpcError) as caught:
                    while True:
                        await asyncio.wait_for(call.read(), 10)
                assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
                assert caught.value.details() == "hub shutting down; reconnect"
        assert await asyncio.wait_for(proc.wait(), 20) == 0
        # Well inside the 10 s grace that in-flight calls get: nothing waited for the idle streams.
        assert asyncio.get_running_loop().time() - stopping < 8
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await reader
    log = "".join(lines)
    assert "admin credential:" in log and str(data_dir / "admin.credential") in log
    assert admin.credential not in log and spoke.credential not in log
    assert "stopped" in log


async def test_insecure_start_warns_loudly(tmp_path: Path, fleet_repo: FleetRepo) -> None:
    data_dir = tmp_path / "hub"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from hub.cli import main; main()", "hub", "serve", "--repo", str(fleet_repo.path),
        "--data-dir", str(data_dir), "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
        "--registry-listen", "127.0.0.1:0",
        "--insecure", stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL)
    assert proc.stderr is not None
    seen: list[str] = []
    try:
        async def until_listening() -> None:
            assert proc.stderr is not None
            async for raw in proc.stderr:
                seen.append(raw.decode(errors="replace"))
                if "gRPC listening on" in seen[-1]:
                    return
        await asyncio.wait_for(until_listening(), 30)
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = "".join(seen)
    assert "WARNING" in log and "INSECURE" in log and "plaintext" in log
    assert not (data_dir / "tls").exists()


async def test_migrate_command(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from hub.cli import main; main()", "hub", "migrate", "--data-dir", str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert b"is at revision" in out and (tmp_path / "convoy.db").exists()

