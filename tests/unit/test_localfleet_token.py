"""The sandbox hands spokes their join token in the environment, never on a command line (`ps` shows those)."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from hub import localfleet

JOIN = "convoy-join.v1.secret-looking-token"


class Recorded:
    calls: list[tuple[list[str], dict[str, str]]] = []

    def __init__(self, name: str, argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None) -> None:
        Recorded.calls.append((list(argv), dict(env or {})))


def test_spoke_commands_get_the_token_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Recorded.calls = []
    monkeypatch.setattr(localfleet, "_Process", Recorded)

    def run(argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        Recorded.calls.append((list(argv), dict(kwargs.get("env") or {})))
        return subprocess.CompletedProcess(list(argv), 0, "", "")

    monkeypatch.setattr(localfleet.subprocess, "run", run)
    fleet = localfleet.LocalFleet(workdir=tmp_path, clusters=[localfleet.SandboxCluster("c1", {"env": "dev"})])
    fleet.join_token = JOIN
    fleet.install_spoke("c1")
    fleet.start_spoke("c1")
    assert len(Recorded.calls) == 2
    for argv, env in Recorded.calls:
        assert JOIN not in " ".join(argv) and "--token" not in argv
        assert env["CONVOY_SPOKE_TOKEN"] == JOIN
