"""`convoy spoke run` as a process: flags and environment, /healthz, Ready at the hub, clean SIGTERM."""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from protos import codec
from protos.status import Phase
from tests.integration.spoke_harness import FakeHub, configmap, make_bundle, namespace
from tests.polling import wait_for


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    fake = FakeHub().start()
    yield fake
    fake.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return int(response.status)
    except OSError:
        return 0


def test_spoke_run_process(hub: FakeHub, kubesim_server: Any, kube_cluster: str, tmp_path: pathlib.Path,
                           isolated_home: str) -> None:
    kubeconfig = kubesim_server.write_kubeconfig(tmp_path / "kubeconfig", [kube_cluster])
    hub.publish(make_bundle([namespace("cli"), configmap("from-cli", "cli")]))
    port = _free_port()
    env = {**os.environ, "CONVOY_SPOKE_HUB": hub.address, "CONVOY_SPOKE_CLUSTER": kube_cluster,
           "CONVOY_SPOKE_TOKEN": hub.token, "CONVOY_SPOKE_INSECURE": "true",
           "CONVOY_SPOKE_HEALTH_PORT": str(port), "CONVOY_SPOKE_HEALTH_HOST": "127.0.0.1",
           "CONVOY_SPOKE_LABELS": "env=test"}
    log = tmp_path / "spoke.log"
    with log.open("w") as sink:  # a file, not a pipe: a chatty process must never block on a full pipe
        proc = subprocess.Popen([sys.executable, "-m", "hub", "spoke", "run", "--kubeconfig", str(kubeconfig),
                                 "--context", kube_cluster, "--heartbeat", "1"],
                                env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _healthz(port) == 200, timeout=30, what="/healthz answering 200")
        wait_for(lambda: hub.phase() == Phase.READY, timeout=30, what="Ready reported by the process")
        report = hub.last_report()
        assert report is not None and codec.PHASE_FROM_WIRE[report.phase] == Phase.READY
        assert {o.ref.name for o in report.objects} == {"cli", "from-cli"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text()
    assert "registered as cluster" in output and hub.token not in output


def test_spoke_run_names_the_missing_setting(isolated_home: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVOY_SPOKE_")}
    done = subprocess.run([sys.executable, "-m", "hub", "spoke", "run", "--hub", "h:1"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "CONVOY_SPOKE_CLUSTER" in done.stderr
