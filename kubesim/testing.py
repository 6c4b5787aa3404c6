"""``KubeSim``: a kubesim server in a background thread, for tests, benchmarks and the sandbox.

    with KubeSim(clusters=["east", "west"]) as sim:
        api = kubernetes.client.CoreV1Api(sim.api_client("east"))
        sim.write_kubeconfig(tmp_path / "kubeconfig")   # one context per cluster, named after it

The server runs its own asyncio loop in a daemon thread; every method here is safe to call from
the test's thread (they hop onto the loop). Async users can also ``await kubesim.server.start()``.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import os
import pathlib
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import yaml

from kubesim import faults as faults_mod
from kubesim import server as server_mod
from kubesim.clusters import ClusterOptions

__all__ = ["KubeSim", "kubeconfig_for", "write_private"]

T = TypeVar("T")


def kubeconfig_for(url_of: Callable[[str], str], clusters: Sequence[str], *, ca_pem: bytes | None,
                   token: str | None, current: str | None = None) -> dict[str, Any]:
    """A kubeconfig with one cluster, user and context per cluster name (context = cluster name)."""
    kc_clusters, users, contexts = [], [], []
    for name in clusters:
        entry: dict[str, Any] = {"server": url_of(name)}
        if ca_pem is not None:
            entry["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
        kc_clusters.append({"name": name, "cluster": entry})
        users.append({"name": name, "user": {"token": token} if token else {}})
        contexts.append({"name": name, "context": {"cluster": name, "user": name, "namespace": "default"}})
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": kc_clusters, "users": users, "contexts": contexts,
        "current-context": current or (clusters[0] if clusters else ""),
    }


def write_private(path: pathlib.Path, text: str) -> None:
    """Write a 0600 file atomically (readers polling for it never see it half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(partial, path)


class KubeSim:
    """A started kubesim (context manager); see the module docstring."""

    def __init__(
        self,
        clusters: int | Sequence[str] = 1,
        *,
        tls: bool = False,
        token: str | None = None,
        workload_delay: float = 0.2,
        crd_establish_delay: float = 0.05,
        watch_history: int = 10000,
        bookmark_interval: float = 60.0,
    ) -> None:
        names = [f"cluster-{i}" for i in range(clusters)] if isinstance(clusters, int) else list(clusters)
        self.clusters: list[str] = names
        self._options = server_mod.ServerOptions(
            clusters=tuple(names), tls=tls, token=token,
            cluster=ClusterOptions(workload_delay=workload_delay, crd_establish_delay=crd_establish_delay,
                                   watch_history=watch_history, bookmark_interval=bookmark_interval),
        )
        self._token = token
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: server_mod.RunningServer | None = None

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> KubeSim:
        if self._server is not None:
            return self
        loop = asyncio.new_event_loop()
        started: concurrent.futures.Future[server_mod.RunningServer] = concurrent.futures.Future()

        def run() -> None:
            asyncio.set_event_loop(loop)

            async def boot() -> None:
                try:
                    started.set_result(await server_mod.start(self._options))
                except BaseException as exc:  # reported to the starting thread
                    started.set_exception(exc)

            boot_task = loop.create_task(boot())
            loop.run_forever()
            loop.close()
            del boot_task

        self._loop = loop
        self._thread = threading.Thread(target=run, name="kubesim", daemon=True)
        self._thread.start()
        self._server = started.result(timeout=30)
        return self

    def stop(self) -> None:
        if self._server is None or self._loop is None:
            return
        server, loop = self._server, self._loop
        self._server = None
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=30)

    def __enter__(self) -> KubeSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _running(self) -> server_mod.RunningServer:
        if self._server is None:
            raise RuntimeError("KubeSim is not started; call start() or use it as a context manager")
        return self._server

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop and return its result (for in-process inspection)."""
        assert self._loop is not None

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    # -- addresses ----------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self._running().base_url

    @property
    def port(self) -> int:
        return self._running().port

    def url(self, cluster: str) -> str:
        return self._running().url(cluster)

    @property
    def ca_pem(self) -> bytes | None:
        return self._running().ca_pem

    def add_cluster(self, name: str) -> None:
        server = self._running()
        self.call(lambda: server.clusters.add(name))
        if name not in self.clusters:
            self.clusters.append(name)

    def remove_cluster(self, name: str) -> None:
        server = self._running()
        self.call(lambda: server.clusters.remove(name))
        if name in self.clusters:
            self.clusters.remove(name)

    # -- clients ------------------------------------------------------------------------------------

    def kubeconfig(self, cluster: str) -> dict[str, Any]:
        """A kubeconfig dict for ``kubernetes.config.new_client_from_config_dict``."""
        return kubeconfig_for(self.url, [cluster], ca_pem=self.ca_pem, token=self._token)

    def write_kubeconfig(self, path: str | pathlib.Path, clusters: Sequence[str] | None = None) -> pathlib.Path:
        target = pathlib.Path(path)
        names = list(clusters) if clusters is not None else list(self.clusters)
        write_private(target, yaml.safe_dump(kubeconfig_for(self.url, names, ca_pem=self.ca_pem, token=self._token)))
        return target

    def api_client(self, cluster: str) -> Any:
        """A ``kubernetes.client.ApiClient`` for the cluster (the caller closes it)."""
        from kubernetes import config

        return config.new_client_from_config_dict(self.kubeconfig(cluster))  # type: ignore[no-untyped-call]

    # -- faults -------------------------------------------------------------------------------------

    def set_faults(self, cluster: str, faults: faults_mod.Faults) -> None:
        server = self._running()

        def apply() -> None:
            target = server.clusters.get(cluster)
            if target is None:
                raise KeyError(f"cluster {cluster}: not served by this kubesim")
            target.faults = faults

        self.call(apply)

    def clear_faults(self, cluster: str) -> None:
        self.set_faults(cluster, faults_mod.Faults())
