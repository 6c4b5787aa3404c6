"""`convoy hub serve` refuses bad settings with one clear line before starting anything."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from hub.commands import hubserve


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in ("CONVOY_HUB_REPO", "CONVOY_HUB_CONFIG", "CONVOY_HUB_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def test_serve_without_a_repository_says_how_to_give_one(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(hubserve.hub, ["serve", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "no fleet repository" in result.output and "--repo" in result.output
    assert not (tmp_path / "convoy.db").exists()  # nothing was started


def test_bad_value_names_the_flag(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(hubserve.hub, ["serve", "--repo", str(tmp_path), "--data-dir", str(tmp_path),
                                          "--poll-interval", "-1"])
    assert result.exit_code == 1 and "poll_interval" in result.output and "positive" in result.output
    assert "Traceback" not in result.output


def test_config_file_is_read(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text("grpc_listen: not-an-address\n")
    result = runner.invoke(hubserve.hub, ["serve", "--config", str(config), "--repo", str(tmp_path)])
    assert result.exit_code == 1 and "grpc_listen" in result.output


def test_port_in_use_is_one_clear_line(runner: CliRunner, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(hubserve.hub, ["serve", "--repo", str(tmp_path), "--data-dir", str(tmp_path / "d"),
                                              "--grpc-listen", f"127.0.0.1:{port}", "--http-listen", "127.0.0.1:0",
        "--registry-listen", "127.0.0.1:0"])
    assert result.exit_code == 1, result.output
    assert f"the hub cannot start: cannot listen for gRPC on 127.0.0.1:{port}" in result.output
