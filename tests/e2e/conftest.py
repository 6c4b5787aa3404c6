"""End-to-end fixtures: a real hub, real spokes, kubesim clusters and a real Git repo, as processes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub import localfleet


def fleet_without_rollout(source: Path, dest: Path) -> Path:
    """The sample fleet with its `rollout:` section removed, so commits reach clusters at once."""
    import shutil

    shutil.copytree(source, dest)
    text = (dest / "fleet.yaml").read_text()
    (dest / "fleet.yaml").write_text(re.split(r"(?m)^rollout:", text)[0])
    return dest


@pytest.fixture(scope="module")
def e2e_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[localfleet.LocalFleet]:
    base = tmp_path_factory.mktemp("e2e")
    source = fleet_without_rollout(localfleet.sample_fleet_path(), base / "sample")
    clusters = localfleet.sandbox_clusters(source, 5)
    fleet = localfleet.LocalFleet(workdir=base / "fleet", clusters=clusters, fleet_source=source,
                                  poll_interval=1.0, heartbeat_seconds=1.0, spoke_heartbeat=2.0,
                                  health_timeout=20.0, workload_delay=0.2)
    try:
        fleet.start()
        fleet.wait_all_ready(timeout=120)
        yield fleet
    finally:
        fleet.stop()
