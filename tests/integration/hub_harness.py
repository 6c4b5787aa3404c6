"""What the hub's integration tests share: a real fleet Git repository, a real hub on port 0 with TLS,
SQLite or PostgreSQL, and a small spoke-side client made of the plain generated stubs.

The fixtures built on these (``fleet_repo``, ``database_url``) are in ``conftest.py``; the harness's
own promises (health and reflection over TLS) are checked in ``test_hub_tls.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
import shutil
import socket
import subprocess
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import git
import grpc
import psycopg
from click.testing import CliRunner, Result
from grpc import aio

from hub import settings as settings_mod
from hub.cli import cli
from hub.commands import hubserve
from protos import bundle as bundles
from protos.codec import pb
from protos.convoy.v1 import convoy_pb2_grpc as pb_grpc
from tests.polling import wait_for

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Fleet Dev", "GIT_AUTHOR_EMAIL": "dev@example.test",
    "GIT_COMMITTER_NAME": "Fleet Dev", "GIT_COMMITTER_EMAIL": "dev@example.test",
    "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
}

FLEET_YAML = """\
apiVersion: convoy.dev/v1alpha1
kind: Fleet
apps:
  - name: web
    path: apps/web
    namespace: shop
    clusterLayer: clusters/{cluster}/{app}
"""

KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [configmap.yaml]
"""


def configmap(version: str) -> str:
    return f"""\
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  cluster: ${{cluster_name}}
  env: ${{label_env:=none}}
  version: "{version}"
"""


BROKEN_LAYER = """\
apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
resources: [does-not-exist.yaml]
"""


# -- the fleet repository ------------------------------------------------------------------------

class FleetRepo:
    """A real Git repository on disk, committed to by the test."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.path, env={**os.environ, **GIT_ENV}, check=True,
                              capture_output=True, text=True).stdout.strip()

    def write(self, files: dict[str, str | None]) -> None:
        for name, content in files.items():
            target = self.path / name
            if content is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)

    def commit(self, files: dict[str, str | None], message: str = "change") -> str:
        self.write(files)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")


def standard_fleet(repo: FleetRepo, version: str = "1") -> str:
    return repo.commit({"fleet.yaml": FLEET_YAML, "apps/web/kustomization.yaml": KUSTOMIZATION,
                        "apps/web/configmap.yaml": configmap(version)}, message=f"web v{version}")


SAMPLE = Path(__file__).resolve().parents[2] / "fleet-config"


def commit_files(repo_dir: Path, files: Mapping[str, str | None], message: str = "change") -> str:
    """Write (or delete, for None) files in a Git work tree and commit them; returns the sha."""
    repo = git.Repo.init(repo_dir) if not (repo_dir / ".git").exists() else git.Repo(repo_dir)
    for name, text in files.items():
        path = repo_dir / name
        if text is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    repo.git.add("-A")
    repo.git.commit("-q", "--no-gpg-sign", "-m", message, env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x",
                                                              "GIT_COMMITTER_NAME": "t",
                                                              "GIT_COMMITTER_EMAIL": "t@x"})
    return str(repo.head.commit.hexsha)


def sample_repo(tmp_path: Path) -> tuple[git.Repo, str]:
    """A Git repository holding the sample fleet-config, one commit."""
    work = tmp_path / "fleet"
    shutil.copytree(SAMPLE, work)
    sha = commit_files(work, {}, "sample fleet")
    return git.Repo(work), sha



def exponential_kustomization(levels: int) -> dict[str, str]:
    """apps/bomb/lN: each level includes the previous one twice (under two name prefixes): 2^N objects
    from 3N+2 small files."""
    files = {"apps/bomb/kustomization.yaml": f"resources: [l{levels}]\n",
             "apps/bomb/l0/kustomization.yaml": "resources: [cm.yaml]\n",
             "apps/bomb/l0/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"}
    for level in range(1, levels + 1):
        files[f"apps/bomb/l{level}/kustomization.yaml"] = "resources: [a, b]\n"
        for half in "ab":
            files[f"apps/bomb/l{level}/{half}/kustomization.yaml"] = (
                f"namePrefix: {half}-\nresources: [../../l{level - 1}]\n")
    return files


# -- databases ------------------------------------------------------------------------------------

@contextlib.contextmanager
def fresh_postgres(url: str) -> Iterator[str]:
    """A database of its own on the shared server, dropped afterwards."""
    name = f"convoy_e3_{uuid.uuid4().hex[:12]}"
    admin = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- the hub --------------------------------------------------------------------------------------

def hub_settings(data_dir: Path, repo: FleetRepo | Path, *, database_url: str | None = None,
                 **overrides: Any) -> settings_mod.HubSettings:
    values: dict[str, Any] = {
        "repo": str(repo.path if isinstance(repo, FleetRepo) else repo), "branch": "main", "data_dir": data_dir,
        "database_url": database_url or "",
        "grpc_listen": "127.0.0.1:0", "http_listen": "127.0.0.1:0", "registry_listen": "127.0.0.1:0",
        "poll_interval": 3600.0,
        "heartbeat_seconds": 1.0, "webhook_secret": "webhook-secret",
    }
    values.update(overrides)
    return settings_mod.HubSettings(**values)


@contextlib.asynccontextmanager
async def running_hub(settings: settings_mod.HubSettings) -> AsyncIterator[hubserve.RunningHub]:
    hub = await hubserve.start_hub(settings)
    try:
        yield hub
    finally:
        await hub.stop(grace=2.0)


# -- clients --------------------------------------------------------------------------------------

def channel(hub: hubserve.RunningHub) -> aio.Channel:
    options = [("grpc.max_receive_message_length", 8 * 1024 * 1024)]
    if not hub.ca_pem:
        return aio.insecure_channel(hub.grpc_address, options=options)
    credentials = grpc.ssl_channel_credentials(root_certificates=hub.ca_pem)
    return aio.secure_channel(hub.grpc_address, credentials, options=options)


@dataclasses.dataclass
class Spoke:
    """A stand-in spoke: the generated stubs and one credential, nothing of the spoke package."""

    channel: aio.Channel
    name: str = ""
    credential: str = ""
    signing_key: bytes = b""

    @property
    def stub(self) -> Any:
        return pb_grpc.SpokeServiceStub(self.channel)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.credential}"),)

    async def register(self, token: str, name: str, labels: dict[str, str] | None = None) -> pb.RegisterResponse:
        response = await self.stub.Register(pb.RegisterRequest(bootstrap_token=token, cluster_name=name,
                                                               labels=labels or {}, spoke_version="test"))
        self.name, self.credential = response.cluster_name, response.credential
        self.signing_key = response.bundle_signing_key
        return response  # type: ignore[no-any-return]

    def watch(self, applied: str = "") -> Any:
        return self.stub.Watch(pb.WatchRequest(applied_digest=applied), metadata=self.metadata)

    async def bundle(self, digest: str) -> tuple[dict[str, Any], list[pb.BundleChunk]]:
        """Fetch, reassemble, check digest and signature, decode."""
        chunks = [chunk async for chunk in self.stub.GetBundle(pb.GetBundleRequest(digest=digest),
                                                               metadata=self.metadata)]
        first = chunks[0]
        assert first.digest == digest and first.compression == "zlib"
        data = b"".join(chunk.data for chunk in chunks)
        assert len(data) == first.compressed_size
        assert [c.offset for c in chunks] == [sum(len(c.data) for c in chunks[:i]) for i in range(len(chunks))]
        bundles.verify_signature(self.signing_key, digest, first.signature)
        raw = bundles.decompress(data, max_size=first.size)
        return bundles.decode(raw, expected_digest=digest), chunks

    async def report(self, **fields: Any) -> pb.ReportStatusResponse:
        return await self.stub.ReportStatus(pb.StatusReport(**fields), metadata=self.metadata)  # type: ignore[no-any-return]


@dataclasses.dataclass
class Admin:
    channel: aio.Channel
    credential: str

    @property
    def stub(self) -> Any:
        return pb_grpc.AdminServiceStub(self.channel)

    async def call(self, method: str, request: Any) -> Any:
        return await getattr(self.stub, method)(request, metadata=(("authorization", f"Bearer {self.credential}"),))

    async def token(self, *, uses: int = 1, ttl: int = 600, labels: dict[str, str] | None = None) -> str:
        response = await self.call("CreateToken", pb.CreateTokenRequest(ttl_seconds=ttl, uses=uses,
                                                                        labels=labels or {}))
        return str(response.token)


def admin_of(hub: hubserve.RunningHub, ch: aio.Channel) -> Admin:
    return Admin(ch, hub.admin_credential_path.read_text().strip())


async def next_desired(stream: Any, *, timeout: float = 10.0) -> pb.DesiredState:
    """The next DesiredState on a Watch stream, skipping heartbeats."""
    async def read() -> pb.DesiredState:
        while True:
            event = await stream.read()
            if event is aio.EOF:
                raise AssertionError("watch stream ended")
            if event.WhichOneof("event") == "desired":
                return event.desired
    return await asyncio.wait_for(read(), timeout)


async def registered_spoke(hub: hubserve.RunningHub, ch: aio.Channel, name: str,
                           labels: dict[str, str] | None = None) -> Spoke:
    admin = admin_of(hub, ch)
    spoke = Spoke(ch)
    await spoke.register(await admin.token(), name, labels)
    return spoke


def random_secret() -> str:
    return secrets.token_urlsafe(16)


# -- the real CLI against a hub ----------------------------------------------------------------------

async def convoy(hub: hubserve.RunningHub, tmp_path: Path, *args: str) -> Result:
    """Run the real CLI against the hub, as a user would type it."""
    ca = tmp_path / "hub-ca.pem"
    ca.write_bytes(hub.ca_pem)
    env = {"CONVOY_CONFIG": str(tmp_path / "cli-config.yaml"), "CONVOY_HUB": hub.grpc_address,
           "CONVOY_HUB_CA": str(ca), "CONVOY_CREDENTIAL_FILE": str(hub.admin_credential_path)}
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env, catch_exceptions=False)


def row(document: dict[str, object], name: str) -> dict[str, object]:
    clusters = document["clusters"]
    assert isinstance(clusters, list)
    return next(c for c in clusters if c["name"] == name)


@contextlib.contextmanager
def docker_registry(tmp_path: Path) -> Iterator[str]:
    """A real ``docker-registry`` on 127.0.0.1 with its storage in ``tmp_path``; yields host:port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "registry.yml"
    config.write_text("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                      f"    rootdirectory: {tmp_path}/data\n"
                      "  delete:\n    enabled: true\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    log = (tmp_path / "registry.log").open("w")
    process = subprocess.Popen([shutil.which("docker-registry") or "docker-registry", "serve", str(config)],
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        def up() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1) as response:
                    return bool(response.status == 200)
            except OSError:
                assert process.poll() is None, (tmp_path / "registry.log").read_text()
                return False
        wait_for(up, timeout=20, what="docker-registry answering /v2/")
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)
        log.close()
