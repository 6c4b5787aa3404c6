"""``convoy spoke ...``: run and install the agent.

``run`` turns flags and ``CONVOY_SPOKE_*`` variables into ``SpokeSettings`` (``settings``) and runs
the ``Agent``; it imports the agent (``kubernetes``, ``grpc``) only when run, so listing
``convoy --help`` stays cheap on every install.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from protos.status import DriftPolicy
from spoke.install import install
from spoke.settings import SettingsError, SpokeSettings, load_settings

__all__ = ["run", "spoke"]


@click.group()
def spoke() -> None:
    """Run or install the spoke agent."""


def _default(name: str) -> str:
    """A SpokeSettings default as help shows it: help texts cannot drift from the dataclass."""
    value = next(field.default for field in dataclasses.fields(SpokeSettings) if field.name == name)
    return f"{value:g}" if isinstance(value, float) else str(value)


@click.command("run")
@click.option("--hub", help="Hub gRPC address host:port, or several comma-separated "
                            "(hub replicas: the spoke moves to the next when one is away) [CONVOY_SPOKE_HUB].")
@click.option("--cluster", help="This cluster's name [CONVOY_SPOKE_CLUSTER].")
@click.option("--labels", help="Cluster labels k=v,... sent at registration [CONVOY_SPOKE_LABELS].")
@click.option("--token", help="Bootstrap or join token, first start only [CONVOY_SPOKE_TOKEN]; the environment "
                              "or --token-file keep it out of `ps`.")
@click.option("--token-file", type=click.Path(dir_okay=False),
              help="Read the token from this file [CONVOY_SPOKE_TOKEN_FILE].")
@click.option("--namespace", help=f"Namespace for the spoke's state (default {_default('namespace')}) "
                                  "[CONVOY_SPOKE_NAMESPACE].")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="Kubeconfig (default: in-cluster config).")
@click.option("--context", help="Kubeconfig context.")
@click.option("--hub-ca", "hub_ca", type=click.Path(exists=True, dir_okay=False),
              help="PEM file of the hub CA (instead of a join token's pinned fingerprint).")
@click.option("--insecure", is_flag=True, default=None, help="Plaintext gRPC: local sandboxes only.")
@click.option("--drift-policy", type=click.Choice([p.value for p in DriftPolicy]),
              help=f"Fix drift or only report it (default {_default('drift_policy')}) [CONVOY_SPOKE_DRIFT_POLICY].")
@click.option("--health-timeout", type=float,
              help=f"Seconds before not-Current objects are Degraded (default {_default('health_timeout')}).")
@click.option("--heartbeat", type=float,
              help=f"Seconds between status heartbeats (default {_default('heartbeat')}).")
@click.option("--previous-age-key-grace", "previous_age_key_grace", type=float,
              help="Seconds the age key replaced by `convoy keys rotate` still opens sealed secrets, then it is "
                   f"dropped (default {_default('previous_age_key_grace')}: 7 days) "
                   "[CONVOY_SPOKE_PREVIOUS_AGE_KEY_GRACE].")
@click.option("--health-port", type=int, help=f"Port of /healthz (default {_default('health_port')}) "
                                              "[CONVOY_SPOKE_HEALTH_PORT].")
@click.option("--health-host", help=f"Address /healthz listens on (default {_default('health_host')}: probes use "
                                    "the pod IP) "
                                    "[CONVOY_SPOKE_HEALTH_HOST].")
@click.option("--bundle-source", "bundle_source",
              help="oci://REGISTRY/REPOSITORY: fetch bundle bytes from this registry (or a mirror); the hub still "
                   "says which digest, its signature is checked as always, and GetBundle is the fallback. "
                   "Unset: the registry the hub pushed to when Watch names one (--oci-push). none: never a "
                   "registry, only the hub [CONVOY_SPOKE_BUNDLE_SOURCE].")
@click.option("--bundle-source-insecure", "bundle_source_insecure", is_flag=True, default=None,
              help="Plain HTTP to the bundle source: a local registry only [CONVOY_SPOKE_BUNDLE_SOURCE_INSECURE].")
@click.option("--registry-config", "registry_config", type=click.Path(exists=True, dir_okay=False),
              help="Docker-style config.json with the bundle registry's credentials: auths, credHelpers or "
                   "credsStore (the docker-credential-NAME helpers it names are run, when the registry asks) "
                   "[CONVOY_SPOKE_REGISTRY_CONFIG].")
def run(**flags: Any) -> None:
    """Run the spoke agent until SIGTERM.

    \b
    Examples:
      convoy spoke run --cluster edge-1 --token-file join.token --kubeconfig ~/.kube/config
      CONVOY_SPOKE_TOKEN=$(cat join.token) convoy spoke run --cluster edge-1
    """
    import logging
    import os
    import signal

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(cli=flags, env=os.environ)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from exc
    from spoke.agent import Agent
    from spoke.cluster import ClusterClient, errors

    if settings.insecure:
        logging.getLogger("spoke").warning("INSECURE: talking to the hub without TLS; for local sandboxes only")
    try:
        client = ClusterClient.connect(kubeconfig=settings.kubeconfig, context=settings.context)
    except errors.ClusterError as exc:
        raise click.ClickException(str(exc)) from exc
    agent = Agent(settings, cluster=client)
    signal.signal(signal.SIGTERM, lambda *_: agent.stop(timeout=0))
    signal.signal(signal.SIGINT, lambda *_: agent.stop(timeout=0))
    try:
        agent.run()
    finally:
        client.close()


spoke.add_command(run)
spoke.add_command(install)
