"""Hub replicas side by side (issue 20): one replica on SQLite, one on PostgreSQL, three on PostgreSQL.

Real `convoy hub serve` processes (``bench_fleet.HubProcess``) and simulated spokes
(``loaddriver.py``, real gRPC, one driver process per replica they are spread over). For each
setup it prints: registration of every cluster, idle CPU and RSS per replica, commit → fetched p99
for an all-clusters commit and a one-region commit (the webhook sent to a replica that does not
lead, when there is one), and with three replicas the leader failover time: the leader SIGKILLed,
a commit made at once → every spoke fetched it.

With three replicas the simulated spokes are spread over the two followers only: ``loaddriver``
dials one address and does not fail over (the real spoke does: ``--hub a,b,c``), and a spoke whose
replica died would never fetch the next commit.

    python -m bench.bench_replicas --clusters 200          # a quick look
    ulimit -n 20000; python -m bench.bench_replicas --clusters 5000 --setups postgres-1,postgres-3
    python -m bench.bench_replicas --clusters 10000 --timeout 1800   # the issue's size (ulimit -n > 20,000)
    python -m bench.bench_replicas --clusters 10000 --setups sqlite-1,postgres-1 --pin   # hub alone on CPU 0

Load drivers default to one process per core in all (each one asyncio loop holding thousands of
spokes, registering at most 200 at a time, see ``loaddriver.py``). Besides the figures above it
prints pure fan-out (desired stored and notified → fetched, from the leader's log) and status
reports/s (a 15 s StreamStatus flood from every spoke at once).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import fleetgen  # noqa: E402
from bench.bench_fleet import (  # noqa: E402
    BenchError,
    Drivers,
    HubProcess,
    StatusPoller,
    _sync_done_time,
    database,
    percentiles,
    wait_for,
)
from protos.convoy.v1 import convoy_pb2 as pb  # noqa: E402

SETUPS = {"sqlite-1": ("sqlite", 1), "postgres-1": ("postgres", 1), "postgres-3": ("postgres", 3)}


class AllDrivers:
    """Several ``Drivers`` (one per replica the spokes are on) read as one."""

    def __init__(self, groups: Sequence[Drivers]) -> None:
        self.groups = list(groups)

    def read(self) -> None:
        for group in self.groups:
            group.read()

    def of(self, kind: str, since: float = 0.0) -> list[dict[str, Any]]:
        return [e for group in self.groups for e in group.of(kind, since)]

    def stop(self) -> None:
        for group in self.groups:
            group.stop()


@contextlib.contextmanager
def _identity(path: Path) -> Iterator[None]:
    """Every replica started in this block shares one identity directory (signing key, CA, admin)."""
    before = os.environ.get("CONVOY_HUB_IDENTITY_DIR")
    os.environ["CONVOY_HUB_IDENTITY_DIR"] = str(path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CONVOY_HUB_IDENTITY_DIR", None)
        else:
            os.environ["CONVOY_HUB_IDENTITY_DIR"] = before


def _fetched_after(drivers: AllDrivers, commit: str, expected: set[str], since: float,
                   timeout: float) -> dict[str, float]:
    def fetched() -> dict[str, float] | None:
        drivers.read()
        times = {e["cluster"]: e["t"] for e in drivers.of("fetched", since) if e["commit"] == commit}
        return times if expected <= set(times) else None
    return wait_for(fetched, timeout=timeout, what=f"every spoke to fetch commit {commit[:12]}")


def _commit_to_fetched(entry: HubProcess, hubs: Sequence[HubProcess], drivers: AllDrivers, commit: str,
                       expected: set[str], timeout: float) -> dict[str, Any]:
    t0 = time.time()
    entry.webhook(commit)
    times = _fetched_after(drivers, commit, expected, t0, timeout)
    # Then until the hub shows every spoke's report of it (what `convoy status` reads): the next step
    # starts from a settled fleet, not while the hub still stores this commit's 10,000 reports.
    poller = StatusPoller(entry, commit, expected)
    try:
        wait_for(poller.done, timeout=timeout, what=f"every cluster's status to show commit {commit[:12]}")
    finally:
        poller.close()
    converged = max(poller.seen.values()) - t0
    # The leader logs the sync once every batch is stored. Each batch's watchers are woken as soon as it is
    # stored, so the first spokes fetch while later batches are written: "fanout_s" (log line -> fetched)
    # counts those as 0; "sync_s" is webhook -> every desired state stored.
    synced = [t for t in (_sync_done_time(hub, commit) for hub in hubs) if t is not None]
    return {"clusters": len(expected), "commit_to_fetched_s": percentiles([times[c] - t0 for c in expected]),
            "sync_s": min(synced) - t0 if synced else None,
            "fanout_s": percentiles([max(0.0, times[c] - min(synced)) for c in expected]) if synced else {"n": 0},
            "status_shows_all_s": converged}


def _status_flood(drivers: AllDrivers, timeout: float) -> dict[str, Any]:
    """Every driver reports as fast as the hubs acknowledge (StreamStatus, each report awaited), at once."""
    for group in drivers.groups:
        for popen in group.popens:
            popen.send_signal(signal.SIGUSR1)
    before = [len(group.events.get("flood", [])) for group in drivers.groups]

    def done() -> list[dict[str, Any]] | None:
        drivers.read()
        floods = [e for group, n in zip(drivers.groups, before, strict=True) for e in group.events["flood"][n:]
                  ] if all("flood" in g.events for g in drivers.groups) else []
        return floods if len(floods) == sum(len(g.popens) for g in drivers.groups) else None
    floods = wait_for(done, timeout=timeout, what="every driver to finish its status flood")
    reports = sum(f["reports"] for f in floods)
    errors: dict[str, int] = {}
    for flood in floods:
        for code, count in flood["errors"].items():
            errors[code] = errors.get(code, 0) + count
    return {"reports": reports, "reports_per_s": reports / max(f["elapsed"] for f in floods), "errors": errors}


@contextlib.contextmanager
def _cpus(cpus: set[int] | None) -> Iterator[None]:
    """Processes started inside run on ``cpus`` (they inherit this process's affinity); None: anywhere."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def run_setup(name: str, *, clusters: int, drivers_per_replica: int, idle_seconds: float, timeout: float,
              workdir: Path, pin: bool = False) -> dict[str, Any]:
    kind, replicas = SETUPS[name]
    # --pin: hubs on CPU 0, the simulated spokes on the others, as in a deployment where the spokes run in
    # their own clusters; without it every process shares every core and the hub's figures include the
    # load driver's appetite (10,000 TLS spokes need about a core of their own).
    cores = sorted(os.sched_getaffinity(0))
    hub_cpus, driver_cpus = ({cores[0]}, set(cores[1:])) if pin and len(cores) > 1 else (None, None)
    fleet = fleetgen.generate(workdir / "fleet", fleetgen.FleetSpec(
        clusters=clusters, apps=5, cluster_layers=max(1, clusters // 10)))
    results: dict[str, Any] = {"setup": name, "clusters": clusters, "pinned": hub_cpus is not None}
    hubs: list[HubProcess] = []
    drivers: AllDrivers | None = None
    with database(kind) as url, _identity(workdir / "identity"):
        try:
            with _cpus(hub_cpus):
                hubs.append(HubProcess(workdir=workdir / "r0", repo=fleet.root, database_url=url, heartbeat=30.0))
            hubs[0].wait_ready(timeout)  # the first leads: its first sync is done when it is ready
            for index in range(1, replicas):
                with _cpus(hub_cpus):
                    hubs.append(HubProcess(workdir=workdir / f"r{index}", repo=fleet.root, database_url=url,
                                           heartbeat=30.0))
            for hub in hubs[1:]:
                hub.wait_ready(timeout)
            serving = hubs[1:] if replicas > 1 else hubs
            created = hubs[0].admin().create_token(pb.CreateTokenRequest(
                ttl_seconds=7200, uses=clusters, description="bench_replicas", any_name=True))
            labels = {n: fleetgen.cluster_labels(fleet.spec, i) for i, n in enumerate(fleet.clusters)}
            t0 = time.time()
            groups = []
            # Default: one driver process per core in all (each one asyncio loop with many spokes).
            per_replica = drivers_per_replica or max(1, (os.cpu_count() or 1) // len(serving))
            for index, hub in enumerate(serving):
                names = list(fleet.clusters[index::len(serving)])
                with _cpus(driver_cpus):
                    groups.append(Drivers(workdir=workdir / f"r{hubs.index(hub)}", hub=hub, token=created.token,
                                          names=names, labels=labels, processes=per_replica,
                                          flood_seconds=15))
            drivers = AllDrivers(groups)
            everyone = set(fleet.clusters)

            def registered() -> bool:
                drivers.read()
                if drivers.of("register-error"):
                    raise BenchError(f"registration refused: {drivers.of('register-error')[0]}")
                return len({e["cluster"] for e in drivers.of("reported")}) >= clusters
            wait_for(registered, timeout=timeout, what=f"{clusters} spokes registered with their first bundle")
            results["registration_and_first_bundle_s"] = time.time() - t0
            results["register_retries"] = len(drivers.of("register-retry"))  # hub not reachable in time

            time.sleep(5)  # let the follow-up work of registration settle before the idle window
            cpu0 = [h.cpu_seconds() for h in hubs]
            i0 = time.monotonic()
            time.sleep(idle_seconds)  # a measurement window, not a wait for a condition
            elapsed = time.monotonic() - i0
            results["idle"] = [{
                "replica": i, "leader": h.metric("convoy_hub_leader"),
                "streams": h.metric("convoy_hub_connected_spokes"),
                "cpu_percent": 100 * (h.cpu_seconds() - cpu0[i]) / elapsed, "rss_mib": h.rss_mib()}
                for i, h in enumerate(hubs)]

            entry = serving[0]  # a follower when there is one: its webhook wakes the leader
            results["all"] = _commit_to_fetched(entry, hubs, drivers,
                                                fleetgen.commit_all_clusters_change(fleet.root), everyone, timeout)
            region = fleet.spec.regions[0]
            in_region = {n for i, n in enumerate(fleet.clusters)
                         if fleetgen.cluster_labels(fleet.spec, i)["region"] == region}
            results["region"] = _commit_to_fetched(entry, hubs, drivers,
                                                   fleetgen.commit_region_change(fleet.root, region), in_region,
                                                   timeout)
            results["status_flood"] = _status_flood(drivers, timeout)
            if replicas > 1:
                hubs[0].popen.send_signal(signal.SIGKILL)
                killed = time.time()
                sha = fleetgen.commit_all_clusters_change(fleet.root)
                times = _fetched_after(drivers, sha, everyone, killed, timeout)
                results["failover"] = {"leader_killed_to_fetched_everywhere_s": max(times.values()) - killed,
                                       "p99_s": percentiles([t - killed for t in times.values()])}
        except BenchError as exc:
            # What was measured before the failing step is still worth printing.
            results["error"] = str(exc)
        finally:
            if drivers is not None:
                drivers.stop()
            for hub in hubs:
                hub.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, default=200)
    parser.add_argument("--drivers-per-replica", type=int, default=0,
                        help="load driver processes per replica the spokes dial (default: one per core in all)")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--setups", default=",".join(SETUPS), help=f"comma-separated, of {', '.join(SETUPS)}")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--pin", action="store_true",
                        help="hubs on CPU 0, load drivers on the other cores (the spokes' cost kept off the hub's)")
    args = parser.parse_args()
    out: list[dict[str, Any]] = []
    for name in args.setups.split(","):
        with tempfile.TemporaryDirectory(prefix=f"convoy-bench-{name}-") as tmp:
            result = run_setup(name, clusters=args.clusters, drivers_per_replica=args.drivers_per_replica,
                               idle_seconds=args.idle_seconds, timeout=args.timeout, workdir=Path(tmp),
                               pin=args.pin)
        print(json.dumps(result, indent=1, default=str), flush=True)
        out.append(result)
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
