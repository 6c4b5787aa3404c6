"""What the fault tests share: a seven-cluster fleet written in three store batches, a reference
render, and reads of the hub's database; a TCP relay that freezes like a partition; a real
``convoy hub serve`` process."""

from __future__ import annotations

import re
import select
import socket
import subprocess
import sys
import threading
from pathlib import Path

from hub.fleet import clusters as fleet_clusters
from hub.render import pipeline
from hub.source import git as gitsource
from hub.store import db as store_db
from hub.store import models
from hub.store import repository as store
from tests.integration.hub_harness import FLEET_YAML, FleetRepo, standard_fleet
from tests.polling import wait_for

#: Three clusters per write batch, so seven clusters take three batches.
_BATCHED_HUB = "import hub.service as s; s._WRITE_BATCH = 3; from hub.cli import main; main()"
CLUSTERS = [f"c{n}" for n in range(1, 8)]
ROLLOUT = """\
rollout:
  bakeTime: 1h
  progressDeadline: 1h
  waves:
    - name: canary
      selector: {matchLabels: {canary: "true"}}
"""


def _fleet(tmp_path: Path, *, rollout: bool) -> FleetRepo:
    repo = FleetRepo(tmp_path / "fleet")
    standard_fleet(repo)
    files: dict[str, str | None] = {"fleet.yaml": FLEET_YAML + (ROLLOUT if rollout else "")}
    for name in CLUSTERS:
        canary = '\n  canary: "true"' if name == "c1" else ""
        files[f"clusters/{name}/cluster.yaml"] = f"labels:\n  env: prod{canary}\n"
    repo.commit(files, message="seven clusters")
    return repo


def _render(repo: FleetRepo, sha: str, mirror: Path) -> dict[str, str]:
    """The digests a hub that is never killed renders at ``sha`` (the same pipeline, in this process)."""
    source = gitsource.GitSource(url=str(repo.path), mirror_dir=mirror)
    source.fetch()
    fs = source.fs_at(sha)
    declared = fleet_clusters.declared_clusters(fs)
    infos = [fleet_clusters.cluster_info(name, decl=declared[name]) for name in sorted(declared)]
    renders = pipeline.Renderer().render_fleet(fs, infos).clusters
    return {name: render.digest or "" for name, render in renders.items()}


def _history(db: store_db.Database) -> str:
    with db.session(write=False) as s:
        return "\n".join(f"{e.kind} {e.cluster} {e.message}" for e in store.events(s, limit=200))


def _deployed(db: store_db.Database) -> str | None:
    with db.session(write=False) as s:
        return store.get_state(s, store.StateKey.LAST_DEPLOYED_COMMIT)


def _deployed_or_none(db: store_db.Database) -> str | None:
    try:
        return _deployed(db)
    except Exception:  # the hub has not created its schema yet
        return None


def _desired(db: store_db.Database) -> dict[str, str]:
    with db.session(write=False) as s:
        return {name: row.digest for name, row in store.desired_all(s).items()}


def _events(db: store_db.Database, kind: models.EventKind, commit: str) -> list[models.Event]:
    with db.session(write=False) as s:
        return [e for e in store.events(s, kinds=[kind], limit=10_000) if e.commit == commit]


class FreezingRelay:
    """A TCP relay between the spoke and the hub that can freeze: bytes stop, and no FIN or RST is sent.

    ``freeze()`` stops every connection open now, as a partition that drops packets does; connections
    opened later pass (the path healed, or a new route was found). ``partition()`` freezes those too,
    until ``thaw()``: a connection opened meanwhile stays frozen for good (its packets were lost), later
    ones pass.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._frozen: list[threading.Event] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._partitioned = False
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def freeze(self) -> None:
        with self._lock:
            for frozen in self._frozen:
                frozen.set()

    def partition(self) -> None:
        with self._lock:
            self._partitioned = True
        self.freeze()

    def thaw(self) -> None:
        with self._lock:
            self._partitioned = False

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                down, _ = self._listener.accept()
            except OSError:
                return
            up = socket.create_connection(self._upstream)
            frozen = threading.Event()
            with self._lock:
                if self._partitioned:
                    frozen.set()
                self._frozen.append(frozen)
                self._sockets += [down, up]
                self.connections += 1
            for src, dst in ((down, up), (up, down)):
                threading.Thread(target=self._pump, args=(src, dst, frozen), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, frozen: threading.Event) -> None:
        while not frozen.is_set():
            try:
                ready, _, _ = select.select([src], [], [], 0.05)
                if not ready:
                    continue
                data = src.recv(65536)
                if not data or frozen.is_set():
                    break
                dst.sendall(data)
            except OSError:
                break
        # Frozen: hold both sockets open and silent until the test ends (no FIN, no RST).


class HubProcess:
    """``convoy hub serve`` as a child process over TLS on free ports, logging to a file."""

    LISTENING = re.compile(r"gRPC listening on (\S+) \(TLS\)")

    def __init__(self, repo: FleetRepo, data_dir: Path, *, heartbeat: int = 1) -> None:
        self.repo = repo
        self.data_dir = data_dir
        self.heartbeat = heartbeat
        self.log = data_dir.parent / f"{data_dir.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.address = ""

    def start(self, *, timeout: float = 60.0) -> HubProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("a") as sink:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hub", "hub", "serve", "--repo", str(self.repo.path), "--data-dir",
                 str(self.data_dir), "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
                 "--heartbeat-seconds", str(self.heartbeat), "--poll-interval", "3600"],
                stdout=sink, stderr=subprocess.STDOUT)

        def listening() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-3000:]
            match = self.LISTENING.search(self.log.read_text())
            if match:
                self.address = match.group(1)
            return bool(match)

        wait_for(listening, timeout=timeout, what="the hub listening")
        return self

    @property
    def ca_file(self) -> Path:
        return self.data_dir / "tls" / "ca.crt"

    @property
    def admin_credential(self) -> Path:
        return self.data_dir / "admin.credential"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
