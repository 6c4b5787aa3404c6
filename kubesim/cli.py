"""``kubesim serve``: run the emulator until SIGTERM/SIGINT (also ``python -m kubesim``)."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import signal

import click
import yaml

from kubesim import server as server_mod
from kubesim.clusters import ClusterOptions
from kubesim.testing import kubeconfig_for, write_private

__all__ = ["main"]


@click.group()
def main() -> None:
    """The Kubernetes API emulator."""


@main.command()
@click.option("--clusters", "count", type=int, default=1, show_default=True, help="Number of clusters.")
@click.option("--names", default="", help="Comma-separated cluster names (default cluster-0..N-1).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=0, show_default=True, help="0 picks a free port.")
@click.option("--kubeconfig", "kubeconfig_path", type=click.Path(dir_okay=False, path_type=pathlib.Path),
              default=None, help="Write a kubeconfig with one context per cluster here.")
@click.option("--tls", is_flag=True, help="Serve HTTPS with a fresh CA (put into the kubeconfig).")
@click.option("--token", default=None, help="Require this bearer token.")
@click.option("--workload-delay", type=float, default=0.2, show_default=True)
@click.option("--kube-version", default=None,
              help="The Kubernetes version /version reports, e.g. 1.32 (default: that of the kubectl on PATH, "
                   "so kubectl sees no version skew; else 1.36).")
def serve(count: int, names: str, host: str, port: int, kubeconfig_path: pathlib.Path | None, tls: bool,
          token: str | None, workload_delay: float, kube_version: str | None) -> None:
    """Serve N clusters at http(s)://HOST:PORT/clusters/<name>."""
    if kube_version is not None:
        try:
            kube_version = server_mod.parse_kube_version(kube_version)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--kube-version") from None
    cluster_names = [n.strip() for n in names.split(",") if n.strip()] or [f"cluster-{i}" for i in range(count)]
    options = server_mod.ServerOptions(host=host, port=port, clusters=tuple(cluster_names), tls=tls, token=token,
                                       cluster=ClusterOptions(workload_delay=workload_delay),
                                       kube_version=kube_version)

    def ready(running: server_mod.RunningServer) -> None:
        if kubeconfig_path is not None:
            doc = kubeconfig_for(running.url, cluster_names, ca_pem=running.ca_pem, token=token)
            write_private(kubeconfig_path, yaml.safe_dump(doc))
            click.echo(f"kubeconfig: {kubeconfig_path}")
        for name in cluster_names:
            click.echo(f"{name}: {running.url(name)}")
        click.echo("serving; stop with Ctrl-C or SIGTERM", err=True)

    async def run() -> None:
        task = asyncio.create_task(server_mod.serve_forever(options, ready))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(run())
