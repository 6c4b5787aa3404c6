"""Helpers of the end-to-end rollout tests: commit a bump, read and drive the rollout, run the CLI."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

from hub import localfleet
from protos import codec
from protos.convoy.v1 import convoy_pb2 as pb

#: The sample fleet's web ConfigMap: every bump changes it, so every cluster's bundle changes.
CONFIGMAP = "apps/web/base/configmap.yaml"


def bump(fleet: localfleet.LocalFleet, version: str, extra: dict[str, str | None] | None = None) -> str:
    """Commit a new VERSION in the web ConfigMap (every cluster's bundle changes) and sync the hub now."""
    text = re.sub(r"(?m)^  VERSION: .*\n", "", fleet.read(CONFIGMAP)) + f'  VERSION: "{version}"\n'
    sha = fleet.commit(f"web: version {version}", {CONFIGMAP: text, **(extra or {})})
    with fleet.admin() as admin:
        admin.sync_now()
    return sha


def rollout(fleet: localfleet.LocalFleet) -> pb.RolloutStatusResponse:
    with fleet.admin() as admin:
        response: pb.RolloutStatusResponse = admin.rollout_status()
    return response


def control(fleet: localfleet.LocalFleet, action: str) -> pb.RolloutStatusResponse:
    with fleet.admin() as admin:
        response: pb.RolloutStatusResponse = admin.rollout_control(action)
    return response


def events(fleet: localfleet.LocalFleet, commit: str) -> list[pb.Event]:
    with fleet.admin() as admin:
        found = admin.history(pb.HistoryRequest(all=True, limit=2000)).events
    return [e for e in found if e.commit == commit]


def at(event: pb.Event) -> dt.datetime:
    when = codec.datetime_from_wire(event.at)
    assert when is not None
    return when


def wait_state(fleet: localfleet.LocalFleet, commit: str, state: str, timeout: float = 90) -> pb.RolloutStatusResponse:
    def reached() -> pb.RolloutStatusResponse | None:
        fleet.check_alive()
        current = rollout(fleet)
        return current if current.commit == commit and current.state == state else None

    return localfleet.wait_until(reached, timeout=timeout, what=f"rollout of {commit[:8]} {state}", interval=0.3)


def convoy(fleet: localfleet.LocalFleet, *args: str,
           credential: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real CLI as a user types it; ``credential``: a named admin credential's file instead of ``admin``."""
    env = {**os.environ, "CONVOY_CONFIG": str(fleet.cli_config)}
    if credential is not None:
        env["CONVOY_CREDENTIAL_FILE"] = str(credential)
    return subprocess.run([sys.executable, "-m", "hub", *args], capture_output=True, text=True, env=env, timeout=60,
                          check=False)
