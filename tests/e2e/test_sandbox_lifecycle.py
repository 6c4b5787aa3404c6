"""`convoy sandbox up` starts kubesim, a hub and spokes; whatever ends it, nothing is left behind.

Real processes throughout: `sandbox up` runs as a subprocess with its own TMPDIR and XDG state
directory, and what it left running is read from /proc (every part names its work directory on its
command line), not from the sandbox's own records.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.polling import wait_for

#: kubesim and the hub, besides one spoke per cluster
PARTS = 2


def _pids_mentioning(text: str, *, also: tuple[str, ...] = ()) -> set[int]:
    """Processes whose command line names ``text`` (and one of ``also``, if given): what the sandbox
    started and left running."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z" and (not also or any(a in cmdline for a in also)):
            found.add(int(entry.name))
    return found


def _listening(pids: set[int]) -> dict[int, list[str]]:
    """The TCP addresses each process listens on (hex from /proc/net/tcp{,6}, as ``ip:port``)."""
    inodes: dict[str, int] = {}
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes[target[8:-1]] = pid
        except OSError:
            continue
    listening: dict[int, list[str]] = {pid: [] for pid in pids}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address, port = fields[1].split(":")
                listening[inodes[fields[9]]].append(f"{_ip(address)}:{int(port, 16)}")
    return listening


def _ip(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    # /proc/net prints each 32-bit word in host (little-endian) order.
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    if len(words) == 4:
        return ".".join(str(b) for b in words)
    if words[:12] == b"\0" * 10 + b"\xff\xff":
        return ".".join(str(b) for b in words[12:])
    return "[" + words.hex() + "]"


class Sandbox:
    """``convoy sandbox up`` in a subprocess. Four clusters, because the sample fleet's canary wave is
    prod-eu-1: with fewer, the walkthrough's rollout stops."""

    def __init__(self, tmp_path: Path, *args: str, clusters: int = 4) -> None:
        self.parts = PARTS + clusters
        self.tmp = tmp_path / "tmp"
        self.tmp.mkdir()
        self.env = {**os.environ, "TMPDIR": str(self.tmp), "XDG_STATE_HOME": str(tmp_path / "state")}
        self.output = tmp_path / "up.log"
        with self.output.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hub", "sandbox", "up", "--clusters", str(clusters), "--timeout", "120", *args],
                stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=tmp_path)

    @property
    def pointer(self) -> Path:
        return Path(self.env["XDG_STATE_HOME"]) / "convoy" / "sandbox.json"

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def workdir(self) -> Path:
        return wait_for(lambda: next(iter(self.tmp.glob("convoy-sandbox-*")), None), timeout=60,
                        what="the sandbox's temporary directory")

    def wait_parts_listening(self) -> set[int]:
        """Every part runs and listens (the spokes' health ports included)."""
        workdir = str(self.workdir())

        def parts() -> set[int] | None:
            assert self.process.poll() is None, self.text()[-3000:]
            pids = _pids_mentioning(workdir, also=("kubesim serve", "hub serve", "spoke run"))
            listening = _listening(pids)
            return pids if len(pids) == self.parts and all(listening.values()) else None

        return wait_for(parts, timeout=180, what=f"{self.parts} sandbox parts to listen", interval=0.2)

    def down(self, cwd: Path) -> subprocess.CompletedProcess[str]:
        # Another shell: another process, another directory; only the environment is shared.
        return subprocess.run([sys.executable, "-m", "hub", "sandbox", "down"], capture_output=True, text=True,
                              env=self.env, cwd=cwd, timeout=120, check=False)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)
        for pid in _pids_mentioning(str(self.tmp)):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def sandboxes(tmp_path: Path) -> Iterator[list[Sandbox]]:
    started: list[Sandbox] = []
    yield started
    for sandbox in started:
        sandbox.kill()


def test_sigterm_stops_every_part_and_removes_the_temporary_directory(
        tmp_path: Path, sandboxes: list[Sandbox]) -> None:
    sandbox = Sandbox(tmp_path, "--keep")
    sandboxes.append(sandbox)
    workdir = sandbox.workdir()
    sandbox.wait_parts_listening()
    running = _pids_mentioning(str(workdir))
    assert len(running) >= sandbox.parts
    addresses = [a for addrs in _listening(running).values() for a in addrs]

    sandbox.process.send_signal(signal.SIGTERM)
    code = sandbox.process.wait(120)
    output = sandbox.text()
    assert code == (0 if "What just happened" in output else 128 + signal.SIGTERM), output[-3000:]
    assert "stopping (SIGTERM)" in output and "Traceback" not in output
    wait_for(lambda: not _pids_mentioning(str(workdir)), timeout=30, what="no sandbox part left running")
    assert not workdir.exists(), sorted(str(p) for p in workdir.rglob("*"))[:20]
    assert not sandbox.pointer.exists()
    # Nothing the sandbox started was reachable from another machine.
    assert addresses and all(a.startswith("127.0.0.1:") for a in addresses), addresses


def test_down_from_another_shell_stops_a_kept_sandbox(tmp_path: Path, sandboxes: list[Sandbox]) -> None:
    sandbox = Sandbox(tmp_path, "--keep")
    sandboxes.append(sandbox)
    workdir = sandbox.workdir()
    wait_for(lambda: "run `convoy sandbox down` from any shell" in sandbox.text() or sandbox.process.poll(),
             timeout=400, what="the walkthrough to finish and the sandbox to stay up", interval=0.5)
    assert sandbox.process.poll() is None, sandbox.text()[-3000:]
    assert len(_pids_mentioning(str(workdir))) >= sandbox.parts

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = sandbox.down(elsewhere)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (f"Stopped the sandbox in {workdir}: "
                                     f"convoy sandbox up (pid {sandbox.process.pid}), "
                                     "kubesim, hub, spoke prod-eu-1, spoke dev-eu-1, spoke prod-ap-1, spoke prod-us-1.")
    # `up` stopped its parts and cleaned up as on Ctrl-C, and says so.
    assert sandbox.process.wait(60) == 0
    assert "stopping (SIGTERM)" in sandbox.text()
    assert not _pids_mentioning(str(workdir))
    assert not workdir.exists() and not sandbox.pointer.exists()
    # Once more: nothing to stop, and that is not an error.
    again = sandbox.down(elsewhere)
    assert again.returncode == 0 and again.stdout.startswith("No sandbox to stop")


def test_down_stops_the_parts_of_a_sandbox_that_was_killed(tmp_path: Path, sandboxes: list[Sandbox]) -> None:
    sandbox = Sandbox(tmp_path, "--keep")
    sandboxes.append(sandbox)
    workdir = sandbox.workdir()
    sandbox.wait_parts_listening()
    sandbox.process.kill()  # SIGKILL: `up` cannot stop anything itself
    sandbox.process.wait(30)
    orphans = _pids_mentioning(str(workdir))
    assert len(orphans) >= sandbox.parts

    result = sandbox.down(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Stopped the sandbox in {workdir}: kubesim, hub, spoke ")
    assert not _pids_mentioning(str(workdir)) and not workdir.exists()


def test_down_while_up_is_still_starting(tmp_path: Path, sandboxes: list[Sandbox]) -> None:
    sandbox = Sandbox(tmp_path, "--keep")
    sandboxes.append(sandbox)
    wait_for(sandbox.pointer.exists, timeout=60, what="`up` to record itself")
    workdir = sandbox.workdir()
    result = sandbox.down(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Stopped the sandbox in {workdir}: convoy sandbox up (pid {sandbox.process.pid})")
    assert sandbox.process.wait(60) == 128 + signal.SIGTERM, sandbox.text()[-6000:]
    wait_for(lambda: not _pids_mentioning(str(workdir)), timeout=30, what="no sandbox part left running")
    assert not workdir.exists()
