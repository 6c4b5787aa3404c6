"""A whole fleet on one machine: kubesim clusters, a hub and one spoke per cluster.

``convoy sandbox up`` and the end-to-end tests drive this. Every part runs as
its own process, started exactly as an operator would start it (``kubesim
serve``, ``convoy hub serve``, ``convoy spoke install`` + ``convoy spoke run``
with a bootstrap token), so what the sandbox shows is what a real install does.
Only loopback addresses are used, the health ports included.

Each part runs in its own process group, so stopping it stops what it started (git, kustomize) too.
``processes.json`` in the work directory names every running part, so ``convoy sandbox down`` can
stop them from another shell, even after the process that started them was killed.

The product never imports the emulator: kubesim is started as a command.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import git
import yaml

from hub import adminclient, cliconfig
from protos.convoy.v1 import convoy_pb2 as pb

__all__ = ["PROCESSES_FILE", "LocalFleet", "Owner", "SandboxCluster", "SandboxError", "free_port", "sample_fleet_path",
           "stop_recorded", "wait_until"]

T = TypeVar("T")
#: In the work directory: who started the fleet and every part still running (see ``stop_recorded``).
PROCESSES_FILE = "processes.json"
#: The spoke ServiceAccount token a sandbox spoke runs on: a year (kubesim honours expirationSeconds).
_SPOKE_TOKEN_SECONDS = 365 * 24 * 3600
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "Convoy Sandbox", "GIT_AUTHOR_EMAIL": "sandbox@convoy.invalid",
                "GIT_COMMITTER_NAME": "Convoy Sandbox", "GIT_COMMITTER_EMAIL": "sandbox@convoy.invalid"}


class SandboxError(Exception):
    """Something in the local fleet did not come up; the message names the part and its log."""


@dataclasses.dataclass(frozen=True)
class SandboxCluster:
    name: str
    labels: Mapping[str, str]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll ``check`` until it returns something truthy; raise SandboxError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # the thing polled may not be up yet
            last_error = exc
        time.sleep(interval)
    detail = f" (last error: {last_error})" if last_error else ""
    raise SandboxError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")


def sample_fleet_path() -> Path:
    """The sample fleet shipped with Convoy (the source tree's fleet-config/, or the installed copy)."""
    source_tree = Path(__file__).resolve().parents[1] / "fleet-config"
    if (source_tree / "fleet.yaml").exists():
        return source_tree
    installed = Path(str(resources.files("hub") / "sample_fleet"))
    if (installed / "fleet.yaml").exists():
        return installed
    raise SandboxError("the sample fleet is missing from this installation (hub/sample_fleet)")


def declared_sample_clusters(fleet_dir: Path) -> list[SandboxCluster]:
    clusters = []
    for cluster_file in sorted((fleet_dir / "clusters").glob("*/cluster.yaml")):
        document = yaml.safe_load(cluster_file.read_text()) or {}
        clusters.append(SandboxCluster(name=cluster_file.parent.name,
                                       labels={str(k): str(v) for k, v in (document.get("labels") or {}).items()}))
    return clusters


def sandbox_clusters(fleet_dir: Path, count: int) -> list[SandboxCluster]:
    """The sample's declared clusters, then extra ones labelled like them (``dev-eu-6``, ...)."""
    declared = declared_sample_clusters(fleet_dir)
    clusters = declared[:count]
    index = len(clusters)
    while len(clusters) < count:
        template = declared[index % len(declared)]
        env, region = template.labels.get("env", "dev"), template.labels.get("region", "eu")
        clusters.append(SandboxCluster(name=f"{env}-{region}-{index + 1}", labels={"env": env, "region": region}))
        index += 1
    return clusters


def sandbox_members(fleet_dir: Path, count: int) -> list[SandboxCluster]:
    """The clusters ``convoy sandbox up --clusters COUNT`` runs: fewer than the sample declares puts the
    rollout's canary (label ``canary: "true"``) first, so the prod rollout it shows runs its canary wave."""
    declared = declared_sample_clusters(fleet_dir)
    if count >= len(declared):
        return sandbox_clusters(fleet_dir, count)
    return sorted(declared, key=lambda c: (c.labels.get("canary") != "true", c.name))[:count]


def _proc_stat(pid: int) -> list[str] | None:
    """/proc/PID/stat from field 3 (state) on; None where /proc does not say (not Linux, or gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    return stat.rsplit(")", 1)[1].split()


def process_start_time(pid: int) -> str | None:
    """When ``pid`` started (Linux: clock ticks since boot), so a recorded pid that was reused by an
    unrelated process is not signalled; None where /proc does not say."""
    fields = _proc_stat(pid)
    return fields[19] if fields else None


def _same_process(pid: int, start: str | None) -> bool:
    """``pid`` still runs and is the process recorded as starting at ``start`` (an exited one not yet
    reaped by its parent, a zombie, counts as stopped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but not ours: never ours to stop
        return False
    fields = _proc_stat(pid)
    if fields is None:
        return True
    return fields[0] != "Z" and (start is None or fields[19] == start)


@dataclasses.dataclass(frozen=True)
class Owner:
    """The process that started a local fleet (``convoy sandbox up``)."""

    pid: int
    start: str | None  #: see ``process_start_time``

    @classmethod
    def this_process(cls) -> Owner:
        return cls(pid=os.getpid(), start=process_start_time(os.getpid()))


def _gone(process: Owner) -> bool:
    return not _same_process(process.pid, process.start)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class _Process:
    def __init__(self, name: str, argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(log, "ab")  # noqa: SIM115 - lives as long as the process
        # A session (and so a process group) of its own: a signal to the group reaches whatever the part
        # started, and a Ctrl-C in the sandbox's terminal reaches only the sandbox, which stops the parts.
        self.popen = subprocess.Popen(list(argv), stdout=self._log_file, stderr=subprocess.STDOUT,
                                      env={**os.environ, **(env or {})}, start_new_session=True)
        self.started = process_start_time(self.popen.pid)

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "pid": self.popen.pid, "start": self.started}

    def alive(self) -> bool:
        return self.popen.poll() is None

    def terminate(self) -> None:
        """SIGTERM to the part's process group; ``stop`` waits for it."""
        if self.alive():
            _signal_group(self.popen.pid, signal.SIGTERM)

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            _signal_group(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.popen.pid, signal.SIGKILL)
                # SIGKILL cannot be refused, but a process stuck in the kernel (a loaded disk) dies late:
                # go on stopping the other parts rather than end the cleanup with a traceback.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(30)
        # Whatever the part started and left behind (a git fetch, a kustomize build) goes with it.
        _signal_group(self.popen.pid, signal.SIGKILL)
        self._log_file.close()

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class LocalFleet:
    """kubesim + hub + spokes on loopback, each a separate process, all under ``workdir``."""

    def __init__(self, *, workdir: Path, clusters: Sequence[SandboxCluster], fleet_source: Path | None = None,
                 tls: bool = True, poll_interval: float = 2.0, heartbeat_seconds: float = 2.0,
                 spoke_heartbeat: float = 5.0, health_timeout: float = 60.0, workload_delay: float = 0.5,
                 hub_args: Sequence[str] = (), database_url: str | None = None) -> None:
        self.workdir = Path(workdir)
        self.clusters = list(clusters)
        self.fleet_source = fleet_source or sample_fleet_path()
        self.tls = tls
        self.poll_interval = poll_interval
        self.heartbeat_seconds = heartbeat_seconds
        self.spoke_heartbeat = spoke_heartbeat
        self.health_timeout = health_timeout
        self.workload_delay = workload_delay
        self.hub_args = list(hub_args)
        self.database_url = database_url
        self.repo_dir = self.workdir / "fleet"
        self.hub_dir = self.workdir / "hub"
        self.logs = self.workdir / "logs"
        self.kubeconfig = self.workdir / "kubeconfig.yaml"
        self.kubesim: _Process | None = None
        self.hub: _Process | None = None
        self.spokes: dict[str, _Process] = {}
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.registry_port = free_port()
        self.kubesim_port = free_port()
        self.join_token = ""
        self.bootstrap_token = ""
        self._health_ports: dict[str, int] = {}
        self.processes_file = self.workdir / PROCESSES_FILE

    # -- addresses ------------------------------------------------------------------------------
    @property
    def hub_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def cli_config(self) -> Path:
        return self.hub_dir / "cli-config.yaml"

    @property
    def kubesim_url(self) -> str:
        return f"http://127.0.0.1:{self.kubesim_port}"

    def _python(self, *args: str) -> list[str]:
        return [sys.executable, *args]

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, *, spokes: bool = True) -> None:
        self.init_repo()
        self.start_kubesim()
        self.start_hub()
        self.create_token()
        if spokes:
            for cluster in self.clusters:
                self.install_spoke(cluster.name)
                self.start_spoke(cluster.name)

    def stop(self) -> None:
        # Spokes first (they close their streams to the hub), all told at once so a large sandbox
        # stops in one grace period rather than one per spoke; then the hub, then the clusters.
        for spoke in self.spokes.values():
            spoke.terminate()
        for spoke in self.spokes.values():
            spoke.stop()
        self.spokes.clear()
        if self.hub is not None:
            self.hub.stop()
            self.hub = None
        if self.kubesim is not None:
            self.kubesim.stop()
            self.kubesim = None
        self._record()

    def _running(self) -> list[_Process]:
        return [p for p in (self.kubesim, self.hub, *self.spokes.values()) if p is not None]

    def _record(self) -> None:
        """Keep ``processes.json`` naming the parts that run now (removed once none does)."""
        running = [p.record() for p in self._running()]
        if not running:
            self.processes_file.unlink(missing_ok=True)
            return
        owner = dataclasses.asdict(Owner.this_process())
        self.workdir.mkdir(parents=True, exist_ok=True)
        temporary = self.processes_file.with_suffix(".tmp")
        temporary.write_text(json.dumps({"owner": owner, "processes": running}, indent=2))
        temporary.replace(self.processes_file)

    def __enter__(self) -> LocalFleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the fleet repository -----------------------------------------------------------------
    def init_repo(self, *, declare_only_members: bool = False) -> str:
        """Copy the sample into a new Git repository; returns the commit.

        ``declare_only_members``: drop the declarations (``clusters/NAME/``) of the sample's clusters that
        are not run here: a declared cluster that never registers is absent from its rollout wave, and a
        wave with no present cluster stops the rollout.
        """
        if self.repo_dir.exists():
            shutil.rmtree(self.repo_dir)
        shutil.copytree(self.fleet_source, self.repo_dir, symlinks=False)
        if declare_only_members:
            running = {c.name for c in self.clusters}
            for declared in sorted((self.repo_dir / "clusters").glob("*/cluster.yaml")):
                if declared.parent.name not in running:
                    shutil.rmtree(declared.parent)
        repo = git.Repo.init(self.repo_dir, initial_branch="main")
        repo.git.add(A=True)
        with repo.git.custom_environment(**GIT_IDENTITY):
            repo.git.commit("-q", "-m", "Sample fleet")
        return str(repo.head.commit.hexsha)

    def commit(self, message: str, changes: Mapping[str, str | None]) -> str:
        """Write (or delete, for None) files in the fleet repo and commit them; returns the sha."""
        repo = git.Repo(self.repo_dir)
        for rel, content in changes.items():
            path = self.repo_dir / rel
            if content is None:
                repo.git.rm("-q", "-r", rel)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            repo.git.add(rel)
        with repo.git.custom_environment(**GIT_IDENTITY):
            repo.git.commit("-q", "-m", message)
        return str(repo.head.commit.hexsha)

    def read(self, rel: str) -> str:
        return (self.repo_dir / rel).read_text()

    # -- kubesim --------------------------------------------------------------------------------
    def start_kubesim(self) -> None:
        names = ",".join(c.name for c in self.clusters)
        self.kubesim = _Process("kubesim", self._python(
            "-m", "kubesim", "serve", "--names", names, "--port", str(self.kubesim_port),
            "--kubeconfig", str(self.kubeconfig), "--workload-delay", str(self.workload_delay)),
            self.logs / "kubesim.log")
        self._record()
        first = self.clusters[0].name if self.clusters else ""
        self._wait_http(f"{self.kubesim_url}/clusters/{first}/version", self.kubesim, "kubesim")
        wait_until(lambda: self.kubeconfig.exists(), timeout=30, what="kubesim's kubeconfig")

    def api_client(self, cluster: str) -> Any:
        """An official-client ApiClient for one cluster (needs the spoke extra: kubernetes)."""
        from kubernetes import config as kube_config

        return kube_config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig), context=cluster)

    # -- the hub --------------------------------------------------------------------------------
    def start_hub(self, *, extra: Sequence[str] = ()) -> None:
        argv = self._python(
            "-m", "hub", "hub", "serve", "--repo", str(self.repo_dir), "--data-dir", str(self.hub_dir),
            "--grpc-listen", self.hub_address, "--http-listen", f"127.0.0.1:{self.http_port}",
            "--poll-interval", str(self.poll_interval), "--heartbeat-seconds", str(self.heartbeat_seconds),
            *self.hub_args, *extra)
        if not self.tls:
            argv.append("--insecure")
        else:
            # A sandbox: /v2/ also on the plain HTTP port, so its printed commands need no CA.
            argv += ["--registry-listen", f"127.0.0.1:{self.registry_port}", "--oci-plain-http"]
        if self.database_url:
            argv += ["--database-url", self.database_url]
        self.hub = _Process("hub", argv, self.logs / "hub.log")
        self._record()
        self._wait_http(f"{self.http_url}/readyz", self.hub, "the hub")

    def stop_hub(self) -> None:
        if self.hub is not None:
            self.hub.stop()
            self.hub = None
            self._record()

    def restart_hub(self) -> None:
        self.stop_hub()
        self.start_hub()

    def admin(self) -> adminclient.AdminClient:
        config = cliconfig.load_config(self.cli_config)
        return adminclient.AdminClient(cliconfig.resolve(config=config, env={}))

    def create_token(self, uses: int | None = None) -> str:
        with self.admin() as client:
            response = client.create_token(pb.CreateTokenRequest(
                ttl_seconds=3600, uses=uses or max(1, len(self.clusters)) + 10, description="sandbox",
                # The sandbox's clusters are declared in its fleet repository: an unbound token may not take them.
                any_name=True))
        self.join_token = response.join_token or response.token
        self.bootstrap_token = response.token
        return str(self.join_token)

    # -- spokes ---------------------------------------------------------------------------------
    def _labels(self, cluster: str) -> str:
        labels = next(c.labels for c in self.clusters if c.name == cluster)
        return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))

    def install_spoke(self, cluster: str) -> None:
        """``convoy spoke install --apply``: the Namespace, RBAC and bootstrap Secret a real install makes."""
        argv = self._python("-m", "hub", "spoke", "install", "--cluster", cluster, "--hub", self.hub_address,
                            "--labels", self._labels(cluster), "--apply",
                            "--kubeconfig", str(self.kubeconfig), "--context", cluster)
        if not self.tls:
            argv.append("--insecure")
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False,
                                env={**os.environ, **self._token_env()})
        if result.returncode != 0:
            raise SandboxError(f"`convoy spoke install` for {cluster} failed: "
                               f"{(result.stderr or result.stdout).strip()[-500:]}")

    def spoke_kubeconfig(self, cluster: str) -> Path:
        """A kubeconfig for ``cluster`` holding the token of the ServiceAccount the install made.

        The spoke runs as that account, not as the admin: kubesim enforces RBAC, so the
        install's rules are proven sufficient, as on a real cluster where the spoke runs in a pod.
        """
        from kubernetes import client as kube_client

        api = self.api_client(cluster)
        try:
            # A pod's kubelet renews its projected token before it expires; nothing renews this one,
            # and kubesim expires TokenRequest tokens: ask for one that outlives any sandbox.
            request = kube_client.AuthenticationV1TokenRequest(
                spec=kube_client.V1TokenRequestSpec(audiences=["https://kubernetes.default.svc"],
                                                    expiration_seconds=_SPOKE_TOKEN_SECONDS))
            # The account `convoy spoke install` creates (spoke.install.NAME in settings.DEFAULT_NAMESPACE).
            answer = kube_client.CoreV1Api(api).create_namespaced_service_account_token(
                "convoy-spoke", "convoy-system", request)
        finally:
            api.close()
        if answer.status is None:
            raise SandboxError(f"{cluster}: the TokenRequest for the spoke's ServiceAccount returned no token")
        doc = yaml.safe_load(self.kubeconfig.read_text())
        context = next(c for c in doc["contexts"] if c["name"] == cluster)
        doc["contexts"] = [context]
        doc["current-context"] = cluster
        doc["users"] = [{"name": context["context"]["user"], "user": {"token": answer.status.token}}]
        path = self.workdir / f"spoke-{cluster}.kubeconfig.yaml"
        path.touch(mode=0o600)
        path.write_text(yaml.safe_dump(doc))
        return path

    def start_spoke(self, cluster: str, *, extra: Sequence[str] = ()) -> None:
        port = self._health_ports.setdefault(cluster, free_port())
        kubeconfig = self.spoke_kubeconfig(cluster)
        argv = self._python(
            "-m", "hub", "spoke", "run", "--hub", self.hub_address, "--cluster", cluster,
            "--labels", self._labels(cluster), "--kubeconfig", str(kubeconfig),
            "--context", cluster, "--health-host", "127.0.0.1", "--health-port", str(port),
            "--heartbeat", str(self.spoke_heartbeat),
            "--health-timeout", str(self.health_timeout), *extra)
        if not self.tls:
            argv.append("--insecure")
        self.spokes[cluster] = _Process(f"spoke {cluster}", argv, self.logs / f"spoke-{cluster}.log",
                                        env=self._token_env())
        self._record()

    def _token_env(self) -> dict[str, str]:
        """The join token for a spoke command, in its environment: an argument would show in `ps`."""
        return {"CONVOY_SPOKE_TOKEN": self.join_token}

    def stop_spoke(self, cluster: str) -> None:
        spoke = self.spokes.pop(cluster, None)
        if spoke is not None:
            spoke.stop()
            self._record()

    # -- observing ------------------------------------------------------------------------------
    def statuses(self) -> dict[str, pb.ClusterSummary]:
        with self.admin() as client:
            return {c.name: c for c in client.list_clusters().clusters}

    def wait_all_ready(self, *, timeout: float = 120.0, clusters: Sequence[str] | None = None,
                       on_poll: Callable[[dict[str, pb.ClusterSummary]], None] | None = None
                       ) -> dict[str, pb.ClusterSummary]:
        names = set(clusters or [c.name for c in self.clusters])

        def ready() -> dict[str, pb.ClusterSummary] | None:
            self.check_alive()
            current = self.statuses()
            if on_poll:
                on_poll(current)
            done = all(n in current and current[n].phase == pb.PHASE_READY and current[n].desired_digest
                       and current[n].applied_digest == current[n].desired_digest for n in names)
            return current if done else None

        return wait_until(ready, timeout=timeout, what=f"clusters {', '.join(sorted(names))} to be Ready",
                          interval=0.5)

    def check_alive(self) -> None:
        for process in [p for p in (self.kubesim, self.hub) if p is not None] + list(self.spokes.values()):
            if not process.alive():
                raise SandboxError(f"{process.name} exited (code {process.popen.returncode}); log "
                                   f"{process.log}:\n{process.tail()}")

    def _wait_http(self, url: str, process: _Process, what: str, timeout: float = 60.0) -> None:
        def up() -> bool:
            if not process.alive():
                raise SandboxError(f"{what} exited (code {process.popen.returncode}); log {process.log}:\n"
                                   f"{process.tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    return bool(response.status == 200)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                return False

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if up():
                return
            time.sleep(0.1)
        raise SandboxError(f"{what} did not answer {url} within {timeout:.0f}s; log {process.log}:\n"
                           f"{process.tail()}")


def stop_recorded(workdir: Path, *, owner: Owner | None = None, timeout: float = 30.0) -> list[str]:
    """Stop the local fleet recorded in ``workdir/processes.json``, from any process; returns what it
    found running ([] when nothing was): the starter (as ``convoy sandbox up (pid N)``), then the parts.

    The process that started the fleet (recorded there, or ``owner``) is asked first (SIGTERM): it
    stops its parts and cleans up as on Ctrl-C. Parts still running after that -- their starter was
    killed, or did not answer in ``timeout`` seconds -- get SIGTERM and then SIGKILL to their process
    groups here.
    """
    path = Path(workdir) / PROCESSES_FILE
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        state = {}
    except (OSError, ValueError) as exc:
        raise SandboxError(f"{path}: not a sandbox state file ({exc})") from exc
    processes = [(str(p["name"]), int(p["pid"]), p.get("start")) for p in state.get("processes", [])]
    found = [name for name, pid, start in processes if _same_process(pid, start)]
    recorded = state.get("owner") or {}
    starters = {o for o in (owner, Owner(pid=int(recorded.get("pid", 0)), start=recorded.get("start")))
                if o is not None and o.pid and o.pid != os.getpid() and _same_process(o.pid, o.start)}
    for starter in starters:
        os.kill(starter.pid, signal.SIGTERM)
    for starter in starters:
        with contextlib.suppress(SandboxError):
            wait_until(functools.partial(_gone, starter), timeout=timeout,
                       what=f"the sandbox (pid {starter.pid}) to stop", interval=0.2)
    found = [f"convoy sandbox up (pid {s.pid})" for s in sorted(starters, key=lambda s: s.pid)] + found
    left = [(pid, start) for _, pid, start in processes if _same_process(pid, start)]
    for pid, _ in left:
        _signal_group(pid, signal.SIGTERM)
    with contextlib.suppress(SandboxError):
        wait_until(lambda: not any(_same_process(pid, start) for pid, start in left), timeout=10,
                   what="the sandbox's parts to stop", interval=0.2)
    for pid, _ in left:
        _signal_group(pid, signal.SIGKILL)
    path.unlink(missing_ok=True)
    return found


@contextlib.contextmanager
def running(fleet: LocalFleet) -> Iterator[LocalFleet]:
    try:
        fleet.start()
        yield fleet
    finally:
        fleet.stop()
