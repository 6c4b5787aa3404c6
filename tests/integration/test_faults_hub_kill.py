"""The hub SIGKILLed in the middle of a sync (issue 22, item 1), as real `convoy hub serve` processes.

The sync writes its render in batches; the hub is killed between two batches, after every batch but
before the rollout row, or before the deployed commit is recorded (``CONVOY_TEST_CRASH_AT``, a test-only
hook in hub/service.py). A restarted hub must finish the job as if nothing happened: every desired
digest is the render's, one desired-change event per cluster moved, one commit-seen event, at most one
rollout started, and the deployed commit is the head.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub import service
from hub.security import secrets as hub_secrets
from hub.store import db as store_db
from hub.store import models
from hub.store import repository as store
from tests.integration.fault_harness import (
    _BATCHED_HUB,
    CLUSTERS,
    _deployed,
    _deployed_or_none,
    _desired,
    _events,
    _fleet,
    _history,
    _render,
)
from tests.integration.hub_harness import FleetRepo, configmap


class _Hub:
    """One `convoy hub serve` process on a data directory (SQLite in it)."""

    def __init__(self, repo: FleetRepo, data_dir: Path, *, crash_at: str = "") -> None:
        env = {**os.environ}
        env.pop(service.CRASH_AT_ENV, None)
        if crash_at:
            env[service.CRASH_AT_ENV] = crash_at
        self.log = open(data_dir.parent / f"hub-{data_dir.name}-{time.monotonic_ns()}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _BATCHED_HUB, "hub", "serve", "--repo", str(repo.path), "--data-dir",
             str(data_dir), "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
        "--registry-listen", "127.0.0.1:0", "--poll-interval",
             "0.3"], env=env, stdout=subprocess.DEVNULL, stderr=self.log)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        self.log.close()


@pytest.fixture
def hubs() -> Iterator[list[_Hub]]:
    started: list[_Hub] = []
    yield started
    for hub in started:
        if hub.proc.poll() is None:
            hub.proc.kill()
            hub.proc.wait(10)
        hub.log.close()


def _wait_deployed(db: store_db.Database, sha: str, hub: _Hub) -> None:
    deadline = time.monotonic() + 45
    while _deployed_or_none(db) != sha:
        assert hub.proc.poll() is None, f"the hub exited ({hub.proc.returncode}) before deploying {sha[:12]}"
        assert time.monotonic() < deadline, f"commit {sha[:12]} not deployed within 45 s"
        time.sleep(0.05)


@pytest.mark.parametrize(("crash_at", "rollout"), [
    ("after-batch-1", False), ("after-batch-2", True), ("before-rollout", True), ("before-rollout", False),
    ("before-deployed-commit", True),
])
def test_a_hub_killed_mid_sync_finishes_it_on_restart_without_duplicates(
        tmp_path: Path, hubs: list[_Hub], crash_at: str, rollout: bool) -> None:
    repo = _fleet(tmp_path, rollout=rollout)
    data_dir = tmp_path / "hub"
    db = store_db.Database(store_db.default_sqlite_url(data_dir))
    try:
        hubs.append(first := _Hub(repo, data_dir))
        _wait_deployed(db, repo.head(), first)
        first.stop()
        with db.session() as s:  # registered (as their spokes would be), so the rollout can move them
            for name in CLUSTERS:
                store.register_cluster(s, name=name, labels={}, credential_hash=hub_secrets.hash_secret(
                    hub_secrets.new_credential()))
        before = _desired(db)
        assert sorted(before) == CLUSTERS

        head = repo.commit({"apps/web/configmap.yaml": configmap("2")}, message="web v2")
        rendered = _render(repo, head, tmp_path / "reference-mirror")

        hubs.append(killed := _Hub(repo, data_dir, crash_at=crash_at))
        assert killed.proc.wait(45) == -signal.SIGKILL, "the hub was not killed at " + crash_at
        assert _deployed(db) != head

        hubs.append(again := _Hub(repo, data_dir))
        _wait_deployed(db, head, again)
        again.stop()

        desired = _desired(db)
        moved = [name for name in CLUSTERS if desired[name] != before[name]]
        started = _events(db, models.EventKind.ROLLOUT_STARTED, head)
        if rollout:
            # Only the canary wave is released; the rest keep their bundle until it has baked.
            assert len(started) == 1
            assert moved == ["c1"] and desired["c1"] == rendered["c1"], _history(db)
        else:
            assert started == []
            assert desired == {name: rendered[name] for name in CLUSTERS}
            assert moved == CLUSTERS
        changes = _events(db, models.EventKind.DESIRED_CHANGED, head)
        assert sorted(e.cluster or "" for e in changes) == moved  # exactly one per cluster that moved
        assert len(_events(db, models.EventKind.COMMIT_SEEN, head)) == 1
        assert _deployed(db) == head
    finally:
        db.dispose()
