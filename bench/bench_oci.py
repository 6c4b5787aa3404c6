"""Bundles from a registry vs from the hub (issue 19), in one run against the same hub.

A real ``convoy hub serve`` process pushes to a real ``docker-registry`` (``--oci-push``, inline
bundles off) and N simulated spokes (N = 50 small, 1,000 full) are registered, each with its own
bundle. Then:

1. **push lag**: a commit that changes all N bundles; from ``SyncNow`` returning until the hub's
   ``convoy_hub_oci_pushes_total{outcome="pushed"}`` has counted N more;
2. **fan-out**: every spoke fetches its new bundle at once, first by GetBundle from the hub, then
   from the registry (manifest ``<cluster>-<short commit>``, layer by digest); each fetch verifies the
   digest and the hub's signature. Per fetch latency p50/p99 (from the start of the fan-out) and the
   hub process's CPU seconds during each fan-out, side by side.

``main(scale) -> dict``; ``python -m bench --only oci``, or ``python -m bench.bench_oci N`` for N clusters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_fleet import BenchError, HubProcess, percentiles, wait_for  # noqa: E402
from hub.localfleet import free_port  # noqa: E402
from protos import bundle as bundles  # noqa: E402
from protos import oci  # noqa: E402
from protos.convoy.v1 import convoy_pb2 as pb  # noqa: E402
from protos.convoy.v1 import convoy_pb2_grpc as pb_grpc  # noqa: E402

FLEET_YAML = """\
apiVersion: convoy.dev/v1alpha1
kind: Fleet
apps:
  - name: web
    path: apps/web
    namespace: shop
"""
KUSTOMIZATION = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [configmap.yaml]\n"


def _configmap(version: str) -> str:
    # ~8 KiB of data per bundle so the bytes, not the round trips alone, are measured.
    payload = "\n".join(f"  k{i}: \"${{cluster_name}}-{version}-{i:04d}-{'x' * 48}\"" for i in range(120))
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n{payload}\n"


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@x"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def _commit(repo: Path, version: str) -> str:
    (repo / "apps" / "web").mkdir(parents=True, exist_ok=True)
    (repo / "fleet.yaml").write_text(FLEET_YAML)
    (repo / "apps" / "web" / "kustomization.yaml").write_text(KUSTOMIZATION)
    (repo / "apps" / "web" / "configmap.yaml").write_text(_configmap(version))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", f"v{version}")
    return _git(repo, "rev-parse", "HEAD")


@contextlib.contextmanager
def _registry(workdir: Path) -> Iterator[str]:
    port = free_port()
    config = workdir / "registry.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: "
                      f"{workdir}/registry\nhttp:\n  addr: 127.0.0.1:{port}\n")
    binary = shutil.which("docker-registry")
    if binary is None:
        raise BenchError("docker-registry is not installed (apt-get install docker-registry)")
    with open(workdir / "registry.log", "wb") as log:
        process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
        try:
            import urllib.request

            def up() -> bool:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1):
                        return True
                except OSError:
                    return False
            wait_for(up, timeout=30, what="docker-registry")
            yield f"127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(10)


async def _register(hub: HubProcess, token: str, names: list[str]) -> dict[str, tuple[str, bytes]]:
    creds = grpc.ssl_channel_credentials(root_certificates=hub.ca_path.read_bytes())
    async with grpc.aio.secure_channel(hub.address, creds) as channel:
        stub = pb_grpc.SpokeServiceStub(channel)  # type: ignore[no-untyped-call]

        async def one(name: str) -> tuple[str, tuple[str, bytes]]:
            response = await stub.Register(pb.RegisterRequest(bootstrap_token=token, cluster_name=name,
                                                              spoke_version="bench"), timeout=120)
            return name, (response.credential, response.bundle_signing_key)
        return dict(await asyncio.gather(*(one(n) for n in names)))


async def _desired(hub: HubProcess, spokes: dict[str, tuple[str, bytes]], commit: str) -> dict[str, pb.DesiredState]:
    """Each spoke's desired state at ``commit``, read from its Watch stream."""
    creds = grpc.ssl_channel_credentials(root_certificates=hub.ca_path.read_bytes())
    async with grpc.aio.secure_channel(hub.address, creds) as channel:
        stub = pb_grpc.SpokeServiceStub(channel)  # type: ignore[no-untyped-call]

        async def one(name: str) -> tuple[str, pb.DesiredState]:
            stream = stub.Watch(pb.WatchRequest(), metadata=(("authorization", f"Bearer {spokes[name][0]}"),))
            async for event in stream:
                if event.WhichOneof("event") == "desired" and event.desired.commit == commit:
                    stream.cancel()
                    return name, event.desired
            raise BenchError(f"{name}: Watch ended before commit {commit[:8]}")
        return dict(await asyncio.gather(*(one(n) for n in spokes)))


async def _fan_out_hub(hub: HubProcess, spokes: dict[str, tuple[str, bytes]],
                       desired: dict[str, pb.DesiredState]) -> list[float]:
    creds = grpc.ssl_channel_credentials(root_certificates=hub.ca_path.read_bytes())
    async with grpc.aio.secure_channel(hub.address, creds) as channel:
        stub = pb_grpc.SpokeServiceStub(channel)  # type: ignore[no-untyped-call]
        started = time.perf_counter()

        async def one(name: str) -> float:
            want = desired[name]
            data = bytearray()
            signature = b""
            async for chunk in stub.GetBundle(pb.GetBundleRequest(digest=want.digest),
                                              metadata=(("authorization", f"Bearer {spokes[name][0]}"),)):
                signature = signature or chunk.signature
                data.extend(chunk.data)
            raw = bundles.decompress(bytes(data), max_size=oci.MAX_BUNDLE_BYTES)
            bundles.decode(raw, expected_digest=want.digest)
            bundles.verify_signature(spokes[name][1], want.digest, signature or want.signature)
            return time.perf_counter() - started
        return list(await asyncio.gather(*(one(n) for n in spokes)))


async def _fan_out_registry(registry: str, repository: str, spokes: dict[str, tuple[str, bytes]],
                            desired: dict[str, pb.DesiredState]) -> list[float]:
    base = f"http://{registry}/v2/{repository}"
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as http:
        started = time.perf_counter()

        async def one(name: str) -> float:
            want = desired[name]
            async with http.get(f"{base}/manifests/{oci.sha_tag(name, want.commit)}",
                                headers={"Accept": oci.MANIFEST_MEDIA_TYPE}) as response:
                manifest = json.loads(await response.read())
            if manifest["annotations"][oci.ANNOTATION_BUNDLE_DIGEST] != want.digest:
                raise BenchError(f"{name}: the registry holds another bundle")
            async with http.get(f"{base}/blobs/{manifest['layers'][0]['digest']}") as response:
                compressed = await response.read()
            raw = bundles.decompress(compressed, max_size=oci.MAX_BUNDLE_BYTES)
            bundles.decode(raw, expected_digest=want.digest)
            bundles.verify_signature(spokes[name][1], want.digest, want.signature)
            return time.perf_counter() - started
        return list(await asyncio.gather(*(one(n) for n in spokes)))


def main(scale: str) -> dict[str, Any]:
    """``scale``: small (50 clusters), full (1,000) or a cluster count (``python -m bench.bench_oci 200``)."""
    count = 1000 if scale == "full" else int(scale) if scale.isdigit() else 50
    workdir = Path(tempfile.mkdtemp(prefix="convoy-bench-oci-"))
    repo = workdir / "fleet"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _commit(repo, "1")
    repository = "bench/bundles"
    with _registry(workdir) as registry:
        saved = dict(os.environ)
        os.environ.update({"CONVOY_HUB_OCI_PUSH": f"{registry}/{repository}", "CONVOY_HUB_OCI_PUSH_INSECURE": "true",
                           "CONVOY_HUB_OCI_PUSH_INTERVAL": "0.2", "CONVOY_HUB_INLINE_BUNDLE_BYTES": "0"})
        try:
            hub = HubProcess(workdir=workdir, repo=repo, database_url=None, heartbeat=30.0)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        try:
            hub.wait_ready(120)
            token = hub.admin().create_token(pb.CreateTokenRequest(ttl_seconds=3600, uses=count)).token
            names = [f"c{i:04d}" for i in range(count)]
            spokes = asyncio.run(_register(hub, token, names))
            metric = 'convoy_hub_oci_pushes_total{outcome="pushed"}'
            wait_for(lambda: hub.metric(metric) >= count, timeout=600, what="the first push of every bundle")
            before = hub.metric(metric)
            commit = _commit(repo, "2")
            hub.admin().sync_now()
            synced = time.perf_counter()
            wait_for(lambda: hub.metric(metric) >= before + count, timeout=600, what="the commit's bundles pushed")
            push_lag = time.perf_counter() - synced
            desired = asyncio.run(_desired(hub, spokes, commit))
            cpu = hub.cpu_seconds()
            from_hub = asyncio.run(_fan_out_hub(hub, spokes, desired))
            hub_cpu_getbundle = hub.cpu_seconds() - cpu
            cpu = hub.cpu_seconds()
            from_registry = asyncio.run(_fan_out_registry(registry, repository, spokes, desired))
            hub_cpu_registry = hub.cpu_seconds() - cpu
        finally:
            hub.stop()
    results = {"clusters": count, "push_lag_seconds": round(push_lag, 3),
               "getbundle": {**percentiles(from_hub), "hub_cpu_seconds": round(hub_cpu_getbundle, 3)},
               "registry": {**percentiles(from_registry), "hub_cpu_seconds": round(hub_cpu_registry, 3)}}
    print(f"{count} clusters; push lag of a {count}-cluster commit: {push_lag:.2f} s")
    for label in ("getbundle", "registry"):
        figures = results[label]
        print(f"  fan-out via {label:<9}: p50 {figures['p50'] * 1000:7.1f} ms  p99 {figures['p99'] * 1000:7.1f} ms  "
              f"hub CPU {figures['hub_cpu_seconds']:.2f} s")
    shutil.rmtree(workdir, ignore_errors=True)
    return results


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1] if len(sys.argv) > 1 else "small"), indent=2))
