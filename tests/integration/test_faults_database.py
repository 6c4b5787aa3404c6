"""Database faults under a running hub (issue 22, item 8): its PostgreSQL restarted with spokes connected.

The test runs a PostgreSQL of its own (``initdb``/``pg_ctl`` from the server packages, on a free port in
a temporary directory) so stopping it disturbs no other test. While it is down, ``/readyz`` says so
(503), reports are refused with UNAVAILABLE (the spoke keeps them and retries), and nothing else
breaks; once it is back the hub is ready again without a restart, the report is stored, and the next
commit deploys to the connected spoke.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from grpc import aio

from hub.store import db as store_db
from hub.store import repository as store
from protos.codec import pb
from tests.integration.hub_harness import (
    FleetRepo,
    admin_of,
    channel,
    configmap,
    hub_settings,
    next_desired,
    registered_spoke,
    running_hub,
)
from tests.polling import poll


class PrivatePostgres:
    """A throwaway PostgreSQL server, run as the ``postgres`` user when the test runs as root."""

    def __init__(self, bindir: Path, root: Path) -> None:
        self.bindir, self.root = bindir, root
        self.data, self.sockets = root / "data", root / "sock"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"postgresql+psycopg://convoy@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:  # initdb refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, f"{args[0]} failed: {result.stderr or result.stdout}"

    def init(self) -> None:
        self.sockets.mkdir(parents=True)
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            for path in (self.root, self.sockets):
                os.chown(path, user.pw_uid, user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "convoy", "--no-sync")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "30", "-o",
                  f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    bindir = _bindir()
    if bindir is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        if os.environ.get("CI"):
            pytest.fail("the PostgreSQL server binaries (initdb, pg_ctl) are needed for this test")
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    root = Path(tempfile.mkdtemp(prefix="convoy-pg-"))
    server = PrivatePostgres(bindir, root)
    try:
        server.init()
        server.start()
        yield server
    finally:
        with contextlib.suppress(AssertionError):
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


async def _ready(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, object]]:
    async with http.get(url) as response:
        return response.status, await response.json()


async def test_postgres_restarted_under_a_running_hub(tmp_path: Path, fleet_repo: FleetRepo,
                                                      private_postgres: PrivatePostgres) -> None:
    settings = hub_settings(tmp_path / "hub", fleet_repo, database_url=private_postgres.url)
    async with running_hub(settings) as hub, channel(hub) as ch, aiohttp.ClientSession() as http:
        readyz = f"http://127.0.0.1:{hub.http_port}/readyz"
        await poll(lambda: _is_ready(http, readyz), timeout=20, what="/readyz after the first sync")
        spoke = await registered_spoke(hub, ch, "alpha")
        stream = spoke.watch()
        first = await next_desired(stream)
        await spoke.report(phase=pb.PHASE_READY, applied_commit=first.commit, applied_digest=first.digest)

        await asyncio.to_thread(private_postgres.stop)
        status, body = await poll(lambda: _unready(http, readyz), timeout=15, what="/readyz to turn unready")
        assert status == 503 and "database unreachable" in str(body["detail"])
        with pytest.raises(aio.AioRpcError) as refused:
            await spoke.report(phase=pb.PHASE_DEGRADED, applied_commit=first.commit, applied_digest=first.digest,
                               message="while the database was down")
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # retryable: the spoke keeps the report

        await asyncio.to_thread(private_postgres.start)
        await poll(lambda: _is_ready(http, readyz), timeout=20, what="/readyz to recover")
        # The spoke's retry of the report it kept is stored.
        await spoke.report(phase=pb.PHASE_DEGRADED, applied_commit=first.commit, applied_digest=first.digest,
                           message="while the database was down")
        with hub.db.session(write=False) as session:
            row = store.get_status(session, "alpha")
            assert row is not None and row.message == "while the database was down"

        # The Watch stream open during the outage was ended as retryable (a replica that cannot read its
        # database cannot confirm the desired state); the spoke's reconnect gets the next commit.
        with pytest.raises(aio.AioRpcError) as ended:
            await next_desired(stream, timeout=15)
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE

        async def reconnected() -> tuple[object, pb.DesiredState] | None:
            # As a spoke does: reconnect until the replica has its database back (it re-listens first).
            fresh = spoke.watch()
            try:
                return fresh, await next_desired(fresh, timeout=5)
            except aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
                return None

        stream, again = await poll(reconnected, timeout=30, what="a Watch stream served again", interval=0.5)
        assert again.digest == first.digest
        newer = fleet_repo.commit({"apps/web/configmap.yaml": configmap("2")})
        reply = await admin_of(hub, ch).call("SyncNow", pb.SyncNowRequest())
        assert reply.commit == newer, reply.message
        desired = await next_desired(stream, timeout=15)
        assert desired.commit == newer


async def _unready(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, object]] | None:
    status, body = await _ready(http, url)
    return (status, body) if status != 200 else None


async def _is_ready(http: aiohttp.ClientSession, url: str) -> bool:
    return (await _ready(http, url))[0] == 200


# -- SQLite: a write lock held by another process, a full disk ---------------------------------------------

_HOLD_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


async def _outage_and_recovery(hub: Any, ch: aio.Channel, fleet_repo: FleetRepo, http: aiohttp.ClientSession,
                               *, begin: Callable[[], None], end: Callable[[], None], reason: str) -> None:
    """Fault on, a report refused, /readyz unready naming ``reason``; fault off, all recovers."""
    readyz = f"http://127.0.0.1:{hub.http_port}/readyz"
    await poll(lambda: _is_ready(http, readyz), timeout=20, what="/readyz after the first sync")
    spoke = await registered_spoke(hub, ch, "alpha")
    stream = spoke.watch()
    first = await next_desired(stream)
    await spoke.report(phase=pb.PHASE_READY, applied_commit=first.commit, applied_digest=first.digest)

    await asyncio.to_thread(begin)
    with pytest.raises(aio.AioRpcError) as refused:
        await spoke.report(phase=pb.PHASE_DEGRADED, applied_commit=first.commit, applied_digest=first.digest,
                           message="during the fault")
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # retryable: the spoke keeps the report
    status, body = await _ready(http, readyz)
    assert status == 503 and reason in str(body["detail"]), body

    await asyncio.to_thread(end)
    await poll(lambda: _is_ready(http, readyz), timeout=20, what="/readyz to recover")
    await spoke.report(phase=pb.PHASE_DEGRADED, applied_commit=first.commit, applied_digest=first.digest,
                       message="during the fault")
    with hub.db.session(write=False) as session:
        row = store.get_status(session, "alpha")
        assert row is not None and row.message == "during the fault"
    newer = fleet_repo.commit({"apps/web/configmap.yaml": configmap("2")})
    reply = await admin_of(hub, ch).call("SyncNow", pb.SyncNowRequest())
    assert reply.commit == newer, reply.message
    assert (await next_desired(stream, timeout=15)).commit == newer


async def test_an_sqlite_write_lock_held_past_the_busy_timeout(
        tmp_path: Path, fleet_repo: FleetRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_db, "SQLITE_BUSY_TIMEOUT_MS", 1_000)  # the fault in 1 s, not 30
    settings = hub_settings(tmp_path / "hub", fleet_repo)
    holder: list[subprocess.Popen[str]] = []

    def lock() -> None:
        proc = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(tmp_path / "hub" / "convoy.db")],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        holder.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"

    def unlock() -> None:
        proc = holder.pop()
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(10) == 0

    try:
        async with running_hub(settings) as hub, channel(hub) as ch, aiohttp.ClientSession() as http:
            await _outage_and_recovery(hub, ch, fleet_repo, http, begin=lock, end=unlock,
                                       reason="database is locked")
    finally:
        for proc in holder:
            proc.kill()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs for the hub's data directory."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs for the full-disk test: {result.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


async def test_a_full_disk_under_the_data_directory(tmp_path: Path, fleet_repo: FleetRepo, small_disk: Path) -> None:
    settings = hub_settings(small_disk / "hub", fleet_repo)
    filler = small_disk / "filler"

    def fill() -> None:
        with open(filler, "wb") as out, contextlib.suppress(OSError):
            while True:
                out.write(b"\0" * 65536)
                out.flush()

    async with running_hub(settings) as hub, channel(hub) as ch, aiohttp.ClientSession() as http:
        await _outage_and_recovery(hub, ch, fleet_repo, http, begin=fill, end=filler.unlink,
                                   reason="full")
