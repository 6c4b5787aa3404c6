"""Fleet fan-out benchmark (issue 7): N simulated spokes against one real hub process.

    python bench/bench_fleet.py --scale small|full [--database sqlite|postgres]
    python -m bench --scale full --only fleet

The hub runs as its own process (``convoy hub serve``: TLS on, SQLite in its data
directory, or a fresh ``convoy_bench_<random>`` PostgreSQL database that is dropped
afterwards). The spokes are ``bench/loaddriver.py`` processes (several, so the driver
is not the bottleneck) speaking the real gRPC protocol; each writes JSON lines that
this orchestrator reads (same machine, same clock). Steps, each printed with its
target:

1. register N spokes at once: total time and p99 per registration;
2. every spoke holds a Watch and has fetched and reported its first bundle;
3. idle window (60 s full, 10 s small): hub CPU (``/proc/<pid>/stat``) and RSS;
4. a commit changing every cluster's bundle, webhook POST at t0: commit -> fetched
   per cluster, desired stored -> fetched (pure fan-out), commit -> status visible in
   ``convoy status`` (polling ListClusters), hub CPU during the rollout;
5. a commit changing one region (~1/5 of the clusters): the same figures;
6. a commit that changes no bundle: bytes each spoke receives (only heartbeats expected);
7. status flood (signals to the drivers): reports/s the hub stores and acknowledges over
   StreamStatus (what spokes use), then as one ReportStatus call each (older spokes), and
   the gRPC Health/Check ceiling of the same hub; on the scenario's database and then, with
   a fresh hub, on the other one.

Rate limits: every simulated spoke dials from 127.0.0.1, so the hub's per-peer
Register and ReportStatus buckets (meant for one peer per cluster) are raised through
``CONVOY_HUB_*`` variables for the hub process; nothing else is tuned.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import fleetgen  # noqa: E402
from hub import adminclient, cliconfig  # noqa: E402
from hub.localfleet import free_port  # noqa: E402
from hub.source.webhooks import sign_hmac  # noqa: E402
from protos.convoy.v1 import convoy_pb2 as pb  # noqa: E402

T = TypeVar("T")
POSTGRES_SERVER = os.environ.get("CONVOY_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
WEBHOOK_SECRET = b"bench-webhook-secret"
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass(frozen=True)
class ScaleSpec:
    clusters: int
    drivers: int                 #: loaddriver processes (clusters split evenly)
    idle_seconds: float
    flood_seconds: float
    timeout: float               #: bound on each waiting step
    apps: int = 5
    heartbeat_seconds: float = 30.0   #: the hub's default


SCALES = {
    "small": ScaleSpec(clusters=100, drivers=2, idle_seconds=10, flood_seconds=5, timeout=180),
    "full": ScaleSpec(clusters=1000, drivers=4, idle_seconds=60, flood_seconds=10, timeout=900),
}

#: Issue 7's targets (for 1,000 clusters); printed beside every figure.
TARGETS: dict[str, tuple[str, float]] = {
    "all.fanout_p99_s": ("<", 1.0),
    "region.fanout_p99_s": ("<", 1.0),
    "all.fetched_p99_s": ("<", 3.0),
    "region.fetched_p99_s": ("<", 1.0),
    "idle.cpu_percent": ("<", 1.0),
    "idle.rss_mib": ("<", 500.0),
    "flood.sqlite.reports_per_s": (">=", 2000.0),
}


class BenchError(Exception):
    """A step of the scenario did not complete; the message names the step and the hub's log."""


def wait_for(check: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """Nearest-rank p50/p90/p99/max (the figures the issue asks for), in seconds."""
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]
    return {"n": len(ordered), "p50": rank(50), "p90": rank(90), "p99": rank(99), "max": ordered[-1]}


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# -- the hub process ---------------------------------------------------------------------------------

class HubProcess:
    """``convoy hub serve`` as its own process, with its admin client and /proc figures."""

    def __init__(self, *, workdir: Path, repo: Path, database_url: str | None, heartbeat: float) -> None:
        self.data_dir = workdir / "hub"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        secret_file = workdir / "webhook-secret"
        secret_file.write_bytes(WEBHOOK_SECRET)
        self.grpc_port, self.http_port = free_port(), free_port()
        self.log_path = workdir / "hub.log"
        argv = [sys.executable, "-m", "hub", "hub", "serve", "--repo", str(repo), "--data-dir", str(self.data_dir),
                "--grpc-listen", f"127.0.0.1:{self.grpc_port}", "--http-listen", f"127.0.0.1:{self.http_port}",
                "--registry-listen", "127.0.0.1:0",
                "--poll-interval", "3600", "--heartbeat-seconds", str(heartbeat),
                "--webhook-secret-file", str(secret_file)]
        if database_url:
            argv += ["--database-url", database_url]
        # One peer address for every simulated spoke: lift the per-peer buckets (see module docstring).
        env = {**os.environ, "CONVOY_HUB_REGISTER_RATE": "100000", "CONVOY_HUB_REGISTER_BURST": "100000",
               "CONVOY_HUB_REPORT_RATE": "100000", "CONVOY_HUB_REPORT_BURST": "100000"}
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.popen = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                      start_new_session=True)
        self._admin: adminclient.AdminClient | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def http(self, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None) -> bytes:
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=body,
                                         headers=headers or {}, method="POST" if body is not None else "GET")
        with urllib.request.urlopen(request, timeout=10) as response:
            return bytes(response.read())

    def wait_ready(self, timeout: float) -> float:
        started = time.monotonic()

        def ready() -> bool:
            if self.popen.poll() is not None:
                raise BenchError(f"the hub exited with {self.popen.returncode}; see {self.log_path}")
            try:
                self.http("/readyz")
            except OSError:
                return False
            # /readyz can answer a moment before the hub writes its CLI config (admin() reads it).
            return (self.data_dir / "cli-config.yaml").exists()
        wait_for(ready, timeout=timeout, what=f"the hub to be ready (log {self.log_path})", interval=0.1)
        return time.monotonic() - started

    @property
    def ca_path(self) -> Path:
        connection = self.connection()
        if connection.ca is None:
            raise BenchError(f"the hub's CLI config names no CA (log {self.log_path})")
        return connection.ca

    def connection(self) -> cliconfig.HubConnection:
        config = cliconfig.load_config(self.data_dir / "cli-config.yaml", env={})
        return cliconfig.resolve(config=config, env={})

    def admin(self) -> adminclient.AdminClient:
        if self._admin is None:
            self._admin = adminclient.AdminClient(self.connection(), timeout=120)
        return self._admin

    def cpu_seconds(self) -> float:
        """utime + stime of the hub process (all its threads), from /proc/<pid>/stat."""
        return process_cpu_seconds(self.pid)

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise BenchError(f"no VmRSS for hub pid {self.pid}")

    def metric(self, name: str) -> float:
        total = 0.0
        found = False
        for line in self.http("/metrics").decode().splitlines():
            if line.startswith(name) and not line.startswith("#"):
                key = line.split()[0]
                if key == name or key.startswith(name + "{"):
                    total += float(line.split()[-1])
                    found = True
        if not found:
            raise BenchError(f"hub metric {name} not exposed")
        return total

    def webhook(self, sha: str) -> None:
        body = json.dumps({"ref": "refs/heads/main", "after": sha}).encode()
        self.http("/webhook", body=body, headers={"Content-Type": "application/json",
                                                  "X-Convoy-Signature": "sha256=" + sign_hmac(body, WEBHOOK_SECRET)})

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self._log.close()


# -- the drivers and their events ------------------------------------------------------------------

class Drivers:
    """loaddriver processes and the JSON lines they write, read incrementally."""

    def __init__(self, *, workdir: Path, hub: HubProcess, token: str, names: Sequence[str],
                 labels: dict[str, dict[str, str]], processes: int, flood_seconds: float) -> None:
        self.paths: list[Path] = []
        self.popens: list[subprocess.Popen[bytes]] = []
        self._offsets: dict[Path, int] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        groups = [list(names[i::processes]) for i in range(processes)]
        ca = str(hub.ca_path)
        for index, group in enumerate(groups):
            out = workdir / f"driver-{index}.jsonl"
            log = open(workdir / f"driver-{index}.log", "ab")  # noqa: SIM115 - closed with the process
            # Names and labels in a file: thousands of them overflow the argument list.
            spokes = workdir / f"driver-{index}-spokes.json"
            spokes.write_text(json.dumps({n: labels[n] for n in group}))
            argv = [sys.executable, str(HERE / "loaddriver.py"), "--hub", hub.address, "--ca", ca,
                    "--token", token, "--spokes-file", str(spokes), "--out", str(out),
                    "--flood-seconds", str(flood_seconds)]
            self.popens.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                                start_new_session=True))
            log.close()
            self.paths.append(out)
            self._offsets[out] = 0

    def read(self) -> None:
        for path in self.paths:
            if not path.exists():
                continue
            with open(path, "rb") as handle:
                handle.seek(self._offsets[path])
                data = handle.read()
            end = data.rfind(b"\n") + 1  # only whole lines; the rest is still being written
            self._offsets[path] += end
            for line in data[:end].splitlines():
                record = json.loads(line)
                self.events.setdefault(record["event"], []).append(record)
        crashed = self.events.get("spoke-crashed")
        if crashed:
            raise BenchError(f"a simulated spoke crashed: {crashed[0]['error']}")
        for popen in self.popens:
            if popen.poll() is not None:
                raise BenchError(f"a load driver exited with {popen.returncode} (see driver-*.log)")

    def of(self, kind: str, since: float = 0.0) -> list[dict[str, Any]]:
        return [e for e in self.events.get(kind, []) if e["t"] >= since]

    def cpu_seconds(self) -> float:
        """CPU time of every driver process: on a small machine they compete with the hub for cores."""
        return sum(process_cpu_seconds(p.pid) for p in self.popens if p.poll() is None)

    def flood(self, timeout: float, *, kind: str = "status") -> list[dict[str, Any]]:
        """Every driver floods the hub once (``kind``: see ``loaddriver.flood``)."""
        before = len(self.events.get("flood", []))
        signals = {"status": signal.SIGUSR1, "health": signal.SIGUSR2, "status-unary": signal.SIGHUP}
        for popen in self.popens:
            popen.send_signal(signals[kind])

        def done() -> list[dict[str, Any]] | None:
            self.read()
            floods = self.events.get("flood", [])[before:]
            return floods if len(floods) == len(self.popens) else None
        return wait_for(done, timeout=timeout, what="every driver to finish its status flood")

    def stop(self) -> None:
        for popen in self.popens:
            if popen.poll() is None:
                popen.send_signal(signal.SIGTERM)
        for popen in self.popens:
            try:
                popen.wait(30)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(10)


class StatusPoller:
    """Polls ListClusters (what ``convoy status`` shows) and records when each cluster shows a commit."""

    def __init__(self, hub: HubProcess, commit: str, expected: set[str]) -> None:
        self.commit = commit
        self.expected = expected
        self.seen: dict[str, float] = {}
        self.polls = 0
        self.interval = 1.0
        self._client = adminclient.AdminClient(hub.connection(), timeout=60)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and len(self.seen) < len(self.expected):
            listing = self._client.list_clusters()
            now = time.time()
            self.polls += 1
            for summary in listing.clusters:
                if summary.applied_commit == self.commit and summary.name not in self.seen:
                    self.seen[summary.name] = now
            # ListClusters of 1,000 clusters is not free; polling it back to back would slow the very
            # rollout it measures. The stored time (History) gives the exact figure beside it.
            self._stop.wait(self.interval)

    def done(self) -> bool:
        return self.expected <= set(self.seen)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(60)
        self._client.close()


# -- the scenario ------------------------------------------------------------------------------------

@contextlib.contextmanager
def database(kind: str) -> Iterator[str | None]:
    """None for the hub's SQLite, or the URL of a fresh PostgreSQL database dropped afterwards."""
    if kind == "sqlite":
        yield None
        return
    import psycopg

    name = f"convoy_bench_{uuid.uuid4().hex[:12]}"
    server = POSTGRES_SERVER.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_SERVER.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _history_since(hub: HubProcess, since: float, kind: str, commit: str) -> dict[str, float]:
    stamp = dt.datetime.fromtimestamp(since - 1, dt.UTC)
    request = pb.HistoryRequest(all=True, limit=10_000)
    request.since.FromDatetime(stamp)
    events = hub.admin().history(request).events
    return {e.cluster: e.at.ToDatetime(tzinfo=dt.UTC).timestamp() for e in events
            if e.kind == kind and e.commit == commit}


def _sync_done_time(hub: HubProcess, commit: str) -> float | None:
    """When the hub logged the sync of ``commit`` (desired stored, watchers notified): ms resolution."""
    short = commit[:12]
    for line in hub.log_path.read_text(errors="replace").splitlines():
        # "N clusters changed", or "N clusters desire it now" when the sync started a rollout.
        if "sync (" in line and f"commit {short}:" in line and ("changed" in line or "desire it now" in line):
            stamp = dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            return stamp.timestamp()  # the hub logs local time, like datetime.timestamp() assumes
    return None


def measure_rollout(hub: HubProcess, drivers: Drivers, commit: str, expected: set[str],
                    timeout: float) -> dict[str, Any]:
    """Webhook at t0 for ``commit``; wait until every expected cluster fetched and shows the commit."""
    cpu0, drivers_cpu0 = hub.cpu_seconds(), drivers.cpu_seconds()
    t0 = time.time()
    hub.webhook(commit)
    poller = StatusPoller(hub, commit, expected)
    try:
        def fetched() -> dict[str, float] | None:
            drivers.read()
            times = {e["cluster"]: e["t"] for e in drivers.of("fetched", t0) if e["commit"] == commit}
            return times if expected <= set(times) else None
        fetch_times = wait_for(fetched, timeout=timeout, what=f"every spoke to fetch commit {commit[:12]}")
        wait_for(poller.done, timeout=timeout, what=f"ListClusters to show commit {commit[:12]} applied")
    finally:
        poller.close()
    t_end = time.time()
    cpu1, drivers_cpu1 = hub.cpu_seconds(), drivers.cpu_seconds()
    stored = _history_since(hub, t0, "desired_changed", commit)
    applied = _history_since(hub, t0, "applied", commit)
    sync_done = _sync_done_time(hub, commit)
    extra = set(fetch_times) - expected
    return {
        "clusters": len(expected),
        "desired_changed": len(stored),
        "unexpected_fetches": len(extra),
        "commit_to_fetched_s": percentiles([fetch_times[c] - t0 for c in expected]),
        # Pure fan-out, from the hub's log line written right after storing and notifying.
        "fanout_s": percentiles([fetch_times[c] - sync_done for c in expected]) if sync_done else {"n": 0},
        # The desired_changed event is stamped as the sync starts storing (after rendering), before the
        # write commits and watchers are woken: fan-out plus the store step.
        "desired_event_to_fetched_s": percentiles([fetch_times[c] - stored[c] for c in expected if c in stored]),
        "commit_to_sync_done_s": (sync_done - t0) if sync_done else None,
        "commit_to_status_visible_s": percentiles([poller.seen[c] - t0 for c in expected]),
        # When the hub stored each report (its "applied" event): visible to the next ListClusters.
        "commit_to_status_stored_s": percentiles([applied[c] - t0 for c in expected if c in applied]),
        "list_clusters_polls": poller.polls,
        "hub_cpu_percent": 100 * (cpu1 - cpu0) / (t_end - t0),
        "drivers_cpu_percent": 100 * (drivers_cpu1 - drivers_cpu0) / (t_end - t0),
        "seconds": t_end - t0,
    }


def _register_all(hub: HubProcess, workdir: Path, fleet: fleetgen.GeneratedFleet, spec: ScaleSpec
                  ) -> tuple[Drivers, dict[str, Any]]:
    # The generated clusters are declared in Git (clusters/NAME/cluster.yaml): only an any-name token takes them.
    created = hub.admin().create_token(pb.CreateTokenRequest(ttl_seconds=7200, uses=len(fleet.clusters),
                                                                     description="bench_fleet", any_name=True))
    labels = {name: fleetgen.cluster_labels(fleet.spec, i) for i, name in enumerate(fleet.clusters)}
    t0 = time.time()
    drivers = Drivers(workdir=workdir, hub=hub, token=created.token, names=fleet.clusters, labels=labels,
                      processes=spec.drivers, flood_seconds=spec.flood_seconds)
    n = len(fleet.clusters)

    def registered() -> bool:
        drivers.read()
        refused = drivers.of("register-error")
        if refused:
            raise BenchError(f"registration refused: {refused[0]}")
        return len(drivers.of("registered")) >= n
    wait_for(registered, timeout=spec.timeout, what=f"{n} registrations")
    events = drivers.of("registered")
    figures = {"total_s": max(e["t"] for e in events) - t0,
               "per_registration_s": percentiles([e["seconds"] for e in events])}

    def converged() -> bool:
        drivers.read()
        return len({e["cluster"] for e in drivers.of("reported")}) >= n
    wait_for(converged, timeout=spec.timeout, what="every spoke to fetch and report its first bundle")
    figures["first_bundle_everywhere_s"] = time.time() - t0
    figures["registered_rows"] = len(hub.admin().list_clusters().clusters)
    return drivers, figures


def run_scenario(spec: ScaleSpec, workdir: Path, database_kind: str, *, flood_only: bool = False
                 ) -> dict[str, Any]:
    fleet = fleetgen.generate(workdir / "fleet", fleetgen.FleetSpec(
        clusters=spec.clusters, apps=spec.apps, cluster_layers=max(1, spec.clusters // 10)))
    results: dict[str, Any] = {"database": database_kind}
    with database(database_kind) as url:
        hub = HubProcess(workdir=workdir, repo=fleet.root, database_url=url, heartbeat=spec.heartbeat_seconds)
        drivers: Drivers | None = None
        try:
            results["hub_ready_s"] = hub.wait_ready(spec.timeout)
            drivers, results["registration"] = _register_all(hub, workdir, fleet, spec)
            results["connected_spokes"] = hub.metric("convoy_hub_connected_spokes")
            if not flood_only:
                results.update(_steady_state_figures(hub, drivers, fleet, spec))
            results["flood"] = _flood(hub, drivers, spec, kind="status")
            # The peer figure: unary calls/s this hub process serves when the call does no Convoy work.
            results["flood"]["unary_reports_per_s"] = _flood(hub, drivers, spec, kind="status-unary")["reports_per_s"]
            results["flood"]["health_calls_per_s"] = _flood(hub, drivers, spec, kind="health")["reports_per_s"]
            results["hub_rss_mib_end"] = hub.rss_mib()
        except BaseException:
            print(f"hub log tail ({hub.log_path}):\n" + "\n".join(
                hub.log_path.read_text(errors="replace").splitlines()[-20:]), file=sys.stderr)
            raise
        finally:
            if drivers is not None:
                drivers.stop()
            hub.stop()
    return results


def _flood(hub: HubProcess, drivers: Drivers, spec: ScaleSpec, *, kind: str) -> dict[str, Any]:
    cpu0, t0 = hub.cpu_seconds(), time.time()
    floods = drivers.flood(spec.flood_seconds * 3 + 60, kind=kind)
    cpu1, t1 = hub.cpu_seconds(), time.time()
    reports = sum(f["reports"] for f in floods)
    elapsed = max(f["elapsed"] for f in floods)
    errors: dict[str, int] = {}
    for flood in floods:
        for code, count in flood.get("errors", {}).items():
            errors[code] = errors.get(code, 0) + count
    return {"reports": reports, "seconds": elapsed, "reports_per_s": reports / elapsed, "errors": errors,
            "hub_cpu_percent": 100 * (cpu1 - cpu0) / (t1 - t0)}


def _steady_state_figures(hub: HubProcess, drivers: Drivers, fleet: fleetgen.GeneratedFleet,
                          spec: ScaleSpec) -> dict[str, Any]:
    results: dict[str, Any] = {}
    # Idle means steady state: registrations and first reports leave follow-up work (last-seen
    # touches, rollout ticks, batched writes) for a few seconds. Wait until the hub has been quiet
    # for a 2 s window (at most 60 s, and the settle time is reported), then measure.
    settle_start = time.monotonic()
    while time.monotonic() - settle_start < 60:
        before = hub.cpu_seconds()
        time.sleep(2)
        if (hub.cpu_seconds() - before) / 2 < 0.02:
            break
    settled_after = time.monotonic() - settle_start
    # Idle: a measurement window, not a wait for a condition.
    errors_before = len(drivers.of("watch-error"))
    cpu0, t0 = hub.cpu_seconds(), time.monotonic()
    time.sleep(spec.idle_seconds)
    cpu1, t1 = hub.cpu_seconds(), time.monotonic()
    drivers.read()
    results["idle"] = {"seconds": t1 - t0, "cpu_percent": 100 * (cpu1 - cpu0) / (t1 - t0),
                       "settled_after_s": settled_after,
                       "rss_mib": hub.rss_mib(), "watch_errors": len(drivers.of("watch-error")) - errors_before,
                       "connected_spokes": hub.metric("convoy_hub_connected_spokes")}

    everyone = set(fleet.clusters)
    sha = fleetgen.commit_all_clusters_change(fleet.root)
    results["all"] = measure_rollout(hub, drivers, sha, everyone, spec.timeout)

    region = fleet.spec.regions[0]
    in_region = {n for i, n in enumerate(fleet.clusters) if fleetgen.cluster_labels(fleet.spec, i)["region"] == region}
    sha = fleetgen.commit_region_change(fleet.root, region)
    results["region"] = measure_rollout(hub, drivers, sha, in_region, spec.timeout)
    results["region"]["region"] = region

    results["unchanged"] = _unchanged_commit(hub, drivers, fleet, spec)
    return results


def _unchanged_commit(hub: HubProcess, drivers: Drivers, fleet: fleetgen.GeneratedFleet,
                      spec: ScaleSpec) -> dict[str, Any]:
    """A commit that renders to the same bundles: what each spoke receives because of it."""
    (fleet.root / "README.md").write_text(f"touched at {time.time()}\n")
    sha = fleetgen._commit(fleet.root, "docs: touch the README")
    syncs = hub.metric("convoy_hub_syncs_total")
    t0 = time.time()
    hub.webhook(sha)
    wait_for(lambda: hub.metric("convoy_hub_syncs_total") > syncs, timeout=spec.timeout,
             what=f"the hub to sync commit {sha[:12]}", interval=0.1)
    t_sync = time.time()
    # Anything the sync caused reaches the spokes within a heartbeat; watch one whole interval.
    window_end = t_sync + spec.heartbeat_seconds
    time.sleep(max(0.0, window_end - time.time()))
    drivers.read()
    notices = [e for e in drivers.of("notice", t0) if e["t"] <= window_end]
    fetches = [e for e in drivers.of("fetched", t0) if e["t"] <= window_end]
    heartbeats = [e for e in drivers.of("heartbeat", t0) if e["t"] <= window_end]
    n = len(fleet.clusters)
    return {"commit": sha, "notices": len(notices), "notice_bytes_per_spoke": sum(e["size"] for e in notices) / n,
            "bundle_bytes_per_spoke": sum(e["bytes"] for e in fetches) / n,
            "heartbeat_bytes_per_spoke": sum(e["size"] for e in heartbeats) / n,
            "window_s": window_end - t0}


# -- printing ----------------------------------------------------------------------------------------

def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out[prefix] = value


def _check(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    flat: dict[str, Any] = {}
    _flatten("", results, flat)
    figures = {
        "all.fanout_p99_s": flat.get("all.fanout_s.p99"),
        "region.fanout_p99_s": flat.get("region.fanout_s.p99"),
        "all.fetched_p99_s": flat.get("all.commit_to_fetched_s.p99"),
        "region.fetched_p99_s": flat.get("region.commit_to_fetched_s.p99"),
        "idle.cpu_percent": flat.get("idle.cpu_percent"),
        "idle.rss_mib": flat.get("idle.rss_mib"),
        "flood.sqlite.reports_per_s": flat.get("flood.sqlite.reports_per_s"),
    }
    verdicts: dict[str, dict[str, Any]] = {}
    for name, (op, target) in TARGETS.items():
        value = figures.get(name)
        met = None if value is None else (value < target if op == "<" else value >= target)
        verdicts[name] = {"value": value, "target": f"{op} {target:g}", "met": met}
    return verdicts


def _fmt(stats: dict[str, Any]) -> str:
    if not stats or stats.get("n", 0) == 0:
        return "n/a"
    return (f"p50 {stats['p50'] * 1000:7.0f} ms  p90 {stats['p90'] * 1000:7.0f} ms  "
            f"p99 {stats['p99'] * 1000:7.0f} ms  max {stats['max'] * 1000:7.0f} ms  (n={stats['n']})")


def report(results: dict[str, Any], spec: ScaleSpec) -> None:
    reg = results["registration"]
    print(f"fleet: {spec.clusters} clusters x {spec.apps} apps, {spec.drivers} driver processes, "
          f"database {results['database']}, hub ready after {results['hub_ready_s']:.1f} s")
    print(f"register {spec.clusters}: total {reg['total_s']:.2f} s; per registration "
          f"{_fmt(reg['per_registration_s'])}; first bundle everywhere after {reg['first_bundle_everywhere_s']:.1f} s;"
          f" rows {reg['registered_rows']}")
    idle = results["idle"]
    print(f"idle {idle['seconds']:.0f} s (after {idle['settled_after_s']:.0f} s to settle), "
          f"{idle['connected_spokes']:.0f} streams: hub CPU {idle['cpu_percent']:.2f}% "
          f"of a core (target < 1%), RSS {idle['rss_mib']:.0f} MiB (target < 500), watch errors {idle['watch_errors']}")
    for key, title, fetched_target in (("all", "all-clusters commit", 3.0), ("region", "one-region commit", 1.0)):
        r = results[key]
        print(f"{title} ({r['clusters']} clusters, {r['desired_changed']} desired changes, "
              f"{r['unexpected_fetches']} unexpected fetches):")
        print(f"  commit -> fetched         {_fmt(r['commit_to_fetched_s'])}  target p99 < {fetched_target:g} s")
        print(f"  stored+notified -> fetched {_fmt(r['fanout_s'])}  target p99 < 1 s (pure fan-out)")
        print(f"  desired event -> fetched  {_fmt(r['desired_event_to_fetched_s'])}  (event stamped as storing starts)")
        sync = r["commit_to_sync_done_s"]
        print(f"  commit -> sync done       {sync * 1000 if sync is not None else float('nan'):7.0f} ms")
        print(f"  commit -> status stored   {_fmt(r['commit_to_status_stored_s'])}  (hub's applied events)")
        print(f"  commit -> status visible  {_fmt(r['commit_to_status_visible_s'])}  "
              f"(ListClusters polled every 1 s: {r['list_clusters_polls']} polls)")
        print(f"  hub CPU during rollout    {r['hub_cpu_percent']:.0f}% of a core over {r['seconds']:.1f} s "
              f"(load drivers together: {r['drivers_cpu_percent']:.0f}%, machine: {os.cpu_count()} cores)")
    u = results["unchanged"]
    print(f"unchanged-bundle commit: {u['notices']} notices, {u['notice_bytes_per_spoke']:.1f} notice bytes and "
          f"{u['bundle_bytes_per_spoke']:.1f} bundle bytes per spoke (heartbeats alone: "
          f"{u['heartbeat_bytes_per_spoke']:.1f} B/spoke over {u['window_s']:.1f} s)")
    for kind, flood in results["flood"].items():
        print(f"status flood on {kind} (StreamStatus): {flood['reports_per_s']:.0f} reports/s stored "
              f"({flood['reports']} in {flood['seconds']:.1f} s, refused {flood['errors'] or 'none'}), "
              f"hub CPU {flood['hub_cpu_percent']:.0f}%" + ("  target >= 2000/s" if kind == "sqlite" else ""))
        print(f"  one ReportStatus call per report (older spokes): {flood['unary_reports_per_s']:.0f} reports/s; "
              f"peer: gRPC Health/Check on the same hub {flood['health_calls_per_s']:.0f} calls/s")
    print("targets:")
    for name, verdict in results["targets"].items():
        value = verdict["value"]
        shown = "n/a" if value is None else f"{value:.3f}"
        state = {True: "met", False: "MISSED", None: "not measured"}[verdict["met"]]
        print(f"  {name:28s} {shown:>10s}  {verdict['target']:>8s}  {state}")


def main(scale: str, database_kind: str = "sqlite") -> dict[str, Any]:
    spec = SCALES[scale]
    other = "postgres" if database_kind == "sqlite" else "sqlite"
    workdir = Path(tempfile.mkdtemp(prefix="convoy-bench-fleet-"))
    try:
        results = run_scenario(spec, workdir / database_kind, database_kind)
        results["flood"] = {database_kind: results["flood"]}
        try:
            flood_run = run_scenario(spec, workdir / other, other, flood_only=True)
            results["flood"][other] = flood_run["flood"]
        except Exception as exc:  # e.g. no PostgreSQL server: say so, keep the main figures
            print(f"status flood on {other} not measured: {exc}", file=sys.stderr)
        results["targets"] = _check(results)
        results["scale"] = scale
        report(results, spec)
        return results
    finally:
        if os.environ.get("CONVOY_BENCH_KEEP"):
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    results = main(args.scale, args.database)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":
    _cli()
