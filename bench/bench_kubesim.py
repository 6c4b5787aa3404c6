"""kubesim throughput and the memory of idle clusters.

Prints (and returns) requests per second over HTTP for create, get and server-side apply, the rate
at which watch events reach several watchers, and the resident memory of one kubesim process
hosting 1,000 clusters -- registered only, and after each was used once (store and namespaces
built). The server runs in its own process (``python -m kubesim serve``), driven by concurrent
aiohttp clients. The peer, measured in the same run with the same clients, is a bare aiohttp server
answering every GET with a fixed ConfigMap: the HTTP floor, so ``get_vs_floor`` says what share of
that the emulator keeps (a ratio near 1 means the single client process, not kubesim, is the limit).

    python bench/bench_kubesim.py [--scale small|full]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCALES = {"small": {"objects": 400, "watchers": 5, "concurrency": 16},
          "full": {"objects": 4000, "watchers": 20, "concurrency": 32}}
IDLE_CLUSTERS = 1000

_FLOOR_SERVER = """
import json, sys
from aiohttp import web
body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "default",
                   "resourceVersion": "1", "uid": "0"}, "data": {"k": "v"}}).encode()
async def handler(request):
    return web.Response(body=body, headers={"Content-Type": "application/json"})
app = web.Application()
app.router.add_route("*", "/{tail:.*}", handler)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=lambda *_: print("ready", flush=True),
            access_log=None)
"""


def _rss_kib(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_kubesim(tmp: pathlib.Path) -> tuple[subprocess.Popen[bytes], str]:
    kubeconfig = tmp / "kubeconfig"
    proc = subprocess.Popen([sys.executable, "-m", "kubesim", "serve", "--names", "bench", "--kubeconfig",
                             str(kubeconfig), "--workload-delay", "3600"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not kubeconfig.exists() or not kubeconfig.read_text():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("kubesim did not start")
        time.sleep(0.05)
    server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    base = str(server).rsplit("/clusters/", 1)[0]
    return proc, base


def _start_floor() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", _FLOOR_SERVER, str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    proc.stdout.readline()
    return proc, f"http://127.0.0.1:{port}"


async def _rate(count: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> float:
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            await one(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


def _configmap(i: int, value: str = "v") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i}", "namespace": "default",
                                                                  "labels": {"bench": "yes"}},
            "data": {"key": value, "other": str(i)}}


async def _measure(base: str, floor: str, objects: int, watchers: int, concurrency: int) -> dict[str, float]:
    cluster = f"{base}/clusters/bench"
    collection = f"{cluster}/api/v1/namespaces/default/configmaps"
    json_headers = {"Content-Type": "application/json"}
    results: dict[str, float] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency * 2 + watchers)) as http:

        async def create(i: int) -> None:
            async with http.post(collection, data=json.dumps(_configmap(i)), headers=json_headers) as resp:
                assert resp.status == 201, await resp.text()
                await resp.read()

        async def get(i: int) -> None:
            async with http.get(f"{collection}/cm-{i % objects}") as resp:
                assert resp.status == 200
                await resp.read()

        async def get_floor(i: int) -> None:
            async with http.get(f"{floor}/api/v1/namespaces/default/configmaps/cm-{i}") as resp:
                await resp.read()

        async def apply(i: int) -> None:
            url = f"{collection}/cm-{i % objects}?fieldManager=bench&force=true"
            body = json.dumps(_configmap(i % objects, value=f"applied-{i}"))
            async with http.patch(url, data=body, headers={"Content-Type": "application/apply-patch+yaml"}) as resp:
                assert resp.status == 200, await resp.text()
                await resp.read()

        results["create_per_s"] = await _rate(objects, concurrency, create)
        results["get_floor_per_s"] = await _rate(objects * 2, concurrency, get_floor)
        results["get_per_s"] = await _rate(objects * 2, concurrency, get)
        results["get_vs_floor"] = results["get_per_s"] / results["get_floor_per_s"]
        results["ssa_per_s"] = await _rate(objects, concurrency, apply)

        # Watch events: every watcher must receive every MODIFIED event of the writes below.
        async with http.get(collection) as resp:
            rv = (await resp.json())["metadata"]["resourceVersion"]
        expected = objects
        done = asyncio.Event()
        received = [0] * watchers

        async def watch(w: int) -> None:
            url = f"{collection}?watch=true&resourceVersion={rv}&timeoutSeconds=600"
            async with http.get(url) as resp:
                async for _line in resp.content:
                    received[w] += 1
                    if received[w] >= expected:
                        break
            if all(n >= expected for n in received):
                done.set()

        tasks = [asyncio.create_task(watch(w)) for w in range(watchers)]
        await asyncio.sleep(0.2)  # let the watches connect before the writes start
        started = time.perf_counter()

        async def touch(i: int) -> None:
            url = f"{collection}/cm-{i}"
            body = json.dumps({"data": {"key": f"w-{i}"}})
            async with http.patch(url, data=body, headers={"Content-Type": "application/merge-patch+json"}) as resp:
                assert resp.status == 200
                await resp.read()

        await _rate(objects, concurrency, touch)
        await asyncio.wait_for(done.wait(), timeout=300)
        elapsed = time.perf_counter() - started
        await asyncio.gather(*tasks)
        results["watch_events_per_s"] = objects * watchers / elapsed
        results["watchers"] = watchers
    return results


async def _idle_clusters(base: str, pid: int) -> dict[str, float]:
    before = _rss_kib(pid)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as http:

        async def add(i: int) -> None:
            async with http.put(f"{base}/kubesim/v1/clusters/idle-{i}") as resp:
                assert resp.status == 200

        async def touch(i: int) -> None:
            async with http.get(f"{base}/clusters/idle-{i}/api/v1/namespaces") as resp:
                assert resp.status == 200
                await resp.read()

        await _rate(IDLE_CLUSTERS, 16, add)
        registered = _rss_kib(pid)
        await _rate(IDLE_CLUSTERS, 16, touch)
        used = _rss_kib(pid)
    return {
        "rss_before_mib": before / 1024,
        "rss_1000_registered_mib": registered / 1024,
        "rss_1000_used_mib": used / 1024,
        "kib_per_idle_cluster": (used - before) / IDLE_CLUSTERS,
    }


def main(scale: str = "small") -> dict[str, Any]:
    knobs = SCALES[scale]
    with tempfile.TemporaryDirectory(prefix="bench-kubesim-") as tmp:
        kubesim, base = _start_kubesim(pathlib.Path(tmp))
        floor, floor_url = _start_floor()
        try:
            figures: dict[str, Any] = asyncio.run(
                _measure(base, floor_url, knobs["objects"], knobs["watchers"], knobs["concurrency"]))
            figures.update(asyncio.run(_idle_clusters(base, kubesim.pid)))
        finally:
            for proc in (kubesim, floor):
                proc.terminate()
                proc.wait(timeout=10)
    figures["scale"] = scale
    print(f"kubesim ({scale}: {knobs['objects']} objects, concurrency {knobs['concurrency']})")
    print(f"  create                 {figures['create_per_s']:9.0f} req/s")
    print(f"  get                    {figures['get_per_s']:9.0f} req/s "
          f"(bare aiohttp floor {figures['get_floor_per_s']:.0f} req/s, ratio {figures['get_vs_floor']:.2f})")
    print(f"  server-side apply      {figures['ssa_per_s']:9.0f} req/s")
    print(f"  watch events delivered {figures['watch_events_per_s']:9.0f} events/s to {figures['watchers']} watchers")
    print(f"  RSS: {figures['rss_before_mib']:.1f} MiB with 1 cluster; {IDLE_CLUSTERS} idle clusters registered "
          f"{figures['rss_1000_registered_mib']:.1f} MiB, each used once {figures['rss_1000_used_mib']:.1f} MiB "
          f"({figures['kib_per_idle_cluster']:.1f} KiB per cluster)")
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main(parser.parse_args().scale)
