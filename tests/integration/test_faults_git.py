"""Git faults under a real hub (issue 22, item 9): a remote that stalls mid-fetch, a fetch cut midway,
an object deleted from the hub's mirror.

The remote is a real HTTP server on 127.0.0.1 serving the fleet repository with Git's "dumb" HTTP
protocol (static files), so ``git fetch`` runs unmodified; the test makes it stall or cut a response.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

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


class _Remote:
    """What the server does with object requests: serve them, hang, or cut them halfway."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.stalled = threading.Event()  #: set once a request is being stalled
        self.release = threading.Event()  #: stalled requests end (unanswered) when set


def _handler(remote: _Remote, root: Path) -> type[http.server.SimpleHTTPRequestHandler]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if "/objects/" in self.path and remote.mode == "stall":
                remote.stalled.set()
                remote.release.wait(60)  # no FIN, no RST, no byte: the connection just hangs
                return
            if "/objects/" in self.path and remote.mode == "cut":
                target = root / self.path.lstrip("/")
                if target.is_file():
                    data = target.read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
            super().do_GET()

    return Handler


@contextlib.contextmanager
def dumb_http_remote(repo: FleetRepo) -> Iterator[tuple[str, _Remote]]:
    remote = _Remote()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(remote, repo.path))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.git", remote
    finally:
        remote.release.set()
        server.shutdown()
        server.server_close()


def _commit(repo: FleetRepo, version: str) -> str:
    sha = repo.commit({"apps/web/configmap.yaml": configmap(version)}, message=f"web v{version}")
    repo.git("update-server-info")  # what the dumb HTTP protocol reads
    return sha


async def test_a_stalled_remote_is_cut_and_does_not_block_registration(tmp_path: Path, fleet_repo: FleetRepo) -> None:
    fleet_repo.git("update-server-info")
    with dumb_http_remote(fleet_repo) as (url, remote):
        settings = dataclasses.replace(hub_settings(tmp_path / "hub", fleet_repo, git_stall_seconds=2.0,
                                                    git_timeout=30.0), repo=url)
        async with running_hub(settings) as hub, channel(hub) as ch:
            alpha = await registered_spoke(hub, ch, "alpha")
            first = await next_desired(alpha.watch())
            admin = admin_of(hub, ch)

            remote.mode = "stall"
            newer = _commit(fleet_repo, "2")
            sync = asyncio.ensure_future(admin.call("SyncNow", pb.SyncNowRequest()))
            await asyncio.to_thread(remote.stalled.wait, 20)
            assert remote.stalled.is_set() and not sync.done()
            # A cluster registering while the fetch hangs is rendered at the deployed commit at once.
            beta = await registered_spoke(hub, ch, "beta")
            beta_desired = await next_desired(beta.watch(), timeout=10)
            assert beta_desired.commit == first.commit
            assert not sync.done(), "the stall must still be under way, or the test proves nothing"

            reply = await asyncio.wait_for(sync, 40)  # cut after git_stall_seconds, not git's 300 s
            assert "fetch failed" in reply.message and "git fetch" in reply.message
            with hub.db.session() as session:
                assert "fetch" in (store.get_state(session, store.StateKey.LAST_FETCH_ERROR) or "")
                assert store.get_state(session, store.StateKey.LAST_DEPLOYED_COMMIT) == first.commit

            remote.release.set()
            remote.mode = "ok"
            reply = await admin.call("SyncNow", pb.SyncNowRequest())
            assert reply.commit == newer, reply.message
            assert (await next_desired(alpha.watch(first.digest))).commit == newer
            with hub.db.session() as session:
                assert store.get_state(session, store.StateKey.LAST_FETCH_ERROR) == ""


async def test_a_fetch_cut_midway_is_an_error_and_the_next_fetch_recovers(
        tmp_path: Path, fleet_repo: FleetRepo) -> None:
    fleet_repo.git("update-server-info")
    with dumb_http_remote(fleet_repo) as (url, remote):
        settings = dataclasses.replace(hub_settings(tmp_path / "hub", fleet_repo, git_stall_seconds=2.0,
                                                    git_timeout=30.0), repo=url)
        async with running_hub(settings) as hub, channel(hub) as ch:
            alpha = await registered_spoke(hub, ch, "alpha")
            first = await next_desired(alpha.watch())
            admin = admin_of(hub, ch)

            remote.mode = "cut"
            newer = _commit(fleet_repo, "2")
            reply = await asyncio.wait_for(admin.call("SyncNow", pb.SyncNowRequest()), 40)
            assert "fetch failed" in reply.message
            with hub.db.session() as session:
                assert store.get_state(session, store.StateKey.LAST_DEPLOYED_COMMIT) == first.commit

            remote.mode = "ok"
            reply = await admin.call("SyncNow", pb.SyncNowRequest())
            assert reply.commit == newer, reply.message
            assert (await next_desired(alpha.watch(first.digest))).commit == newer


async def test_an_object_deleted_from_the_mirror_is_fetched_afresh(tmp_path: Path, fleet_repo: FleetRepo) -> None:
    settings = hub_settings(tmp_path / "hub", fleet_repo)
    async with running_hub(settings) as hub, channel(hub) as ch:
        alpha = await registered_spoke(hub, ch, "alpha")
        first = await next_desired(alpha.watch())
        # The blob of the app's kustomization: unchanged by the next commit, so it is never re-sent.
        blob = fleet_repo.git("rev-parse", "HEAD:apps/web/kustomization.yaml")
        mirror = tmp_path / "hub" / "mirror"
        loose = mirror / "objects" / blob[:2] / blob[2:]
        packs = list((mirror / "objects" / "pack").glob("*.pack"))
        assert loose.exists() or packs
        if loose.exists():
            loose.unlink()
        for pack in packs:
            pack.unlink()

        newer = _commit(fleet_repo, "2")
        reply = await admin_of(hub, ch).call("SyncNow", pb.SyncNowRequest())
        assert reply.commit == newer, reply.message
        assert not reply.render_error_clusters, reply.message
        desired = await next_desired(alpha.watch(first.digest))
        assert desired.commit == newer
        _, _ = await alpha.bundle(desired.digest)
