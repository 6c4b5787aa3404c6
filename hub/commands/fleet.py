"""Fleet-wide CLI commands that talk to a running hub's AdminService.

Exit codes (also in the README): 0 success; 1 the hub refused the request
(unknown cluster, bad argument), ``sync`` could not deploy the head to every
cluster (fetch failed, refused, render errors) or, with ``--exit-code``, a
selected cluster is not Ready or a newer commit is held off the fleet; 2 usage
error; 3 hub unreachable; 4 credential refused.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import sys
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import click
import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from hub import adminclient, cliconfig
from hub.commands import formatting
from protos import selectors
from protos.convoy.v1 import convoy_pb2 as pb

__all__ = ["cluster", "config", "describe", "diff", "history", "pause", "resume", "status", "sync", "token"]

P = ParamSpec("P")
R = TypeVar("R")

_DURATION_RE = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> dt.timedelta:
    match = _DURATION_RE.fullmatch(text.strip())
    if not match:
        raise click.BadParameter(f"{text!r} is not a duration like 30s, 15m, 24h or 7d")
    return dt.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def parse_since(text: str) -> dt.datetime:
    """``1h`` (that long ago) or an ISO 8601 timestamp."""
    if _DURATION_RE.fullmatch(text.strip()):
        return dt.datetime.now(dt.UTC) - parse_duration(text)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither a duration (1h) nor an ISO timestamp") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def hub_command(func: Callable[P, R]) -> Callable[P, R]:
    """Add ``--hub`` and turn config/admin errors into one clear line and an exit code."""

    @click.option("--hub", "hub_name", envvar="CONVOY_HUB", default=None,
                  help="Hub name from the CLI config, or HOST:PORT (default: the current hub).")
    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except cliconfig.CliConfigError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except adminclient.AdminError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)

    return wrapper


def _client(hub_name: str | None) -> adminclient.AdminClient:
    return adminclient.AdminClient(cliconfig.resolve(hub_name))


def _emit(document: Any, output: str) -> None:
    if output == "json":
        click.echo(json.dumps(document, indent=2, sort_keys=False))
    else:
        click.echo(yaml.safe_dump(document, sort_keys=False).rstrip())


output_option = click.option("-o", "--output", type=click.Choice(["table", "json", "yaml"]), default="table",
                             show_default=True)


# -- status ---------------------------------------------------------------------------------------


def _status_view(response: pb.ListClustersResponse) -> tuple[list[dict[str, Any]], Group]:
    now = dt.datetime.now(dt.UTC)
    rows = [formatting.cluster_row(c, now=now) for c in response.clusters]
    first, *notes = formatting.fleet_header(response, now=now)
    header = [Text(first, style="bold"), *(Text(line, style="bold red") for line in notes)]
    return rows, Group(*header, formatting.status_table(rows, now=now), Text(formatting.fleet_summary(rows)))


@click.command()
@click.option("-l", "--selector", default="", help="Label selector, e.g. 'env=prod,region in (eu,us)'.")
@click.option("-w", "--watch", is_flag=True, help="Keep updating the table in place.")
@click.option("--interval", default=2.0, show_default=True, help="Refresh interval for --watch, seconds.")
@click.option("--exit-code", is_flag=True,
              help="Exit 1 while any selected cluster is not Ready (a render error counts) or a newer commit "
                   "is refused or cannot be rendered.")
@output_option
@hub_command
def status(hub_name: str | None, selector: str, watch: bool, interval: float, exit_code: bool,
           output: str) -> None:
    """One row per cluster: what is desired, what is applied, and whether it is healthy.

    PHASE is Offline while the hub has no Watch stream from the cluster's spoke (it closed its streams,
    stopped answering the hub's pings, or was not seen for two heartbeats and the ping timeout).
    """
    with _client(hub_name) as client:
        response = client.list_clusters(selector)
        rows, view = _status_view(response)
        if output != "table":
            _emit({"fleetCommit": response.fleet_commit, "refusedCommit": formatting.refused_document(response),
                   "fetchError": response.fetch_error or None, "clusters": rows,
                   "summary": formatting.fleet_summary(rows)}, output)
        elif watch:
            console = Console()
            with Live(view, console=console, refresh_per_second=4) as live:
                try:
                    while True:
                        time.sleep(interval)
                        rows, view = _status_view(client.list_clusters(selector))
                        live.update(view)
                except KeyboardInterrupt:
                    pass
        else:
            Console(width=200 if not sys.stdout.isatty() else None).print(view)
    if exit_code and not formatting.fleet_ok(rows, response):
        sys.exit(1)


# -- describe / history / diff ------------------------------------------------------------------


@click.command()
@click.argument("cluster")
@output_option
@hub_command
def describe(hub_name: str | None, cluster: str, output: str) -> None:
    """Everything about one cluster: labels, desired vs applied, objects, drift, events."""
    with _client(hub_name) as client:
        detail = client.get_cluster(cluster)
    now = dt.datetime.now(dt.UTC)
    document = formatting.describe_document(detail, now=now)
    if output != "table":
        _emit(document, output)
        return
    console = Console(width=200 if not sys.stdout.isatty() else None)
    console.print(f"[bold]Cluster[/bold]  {document['name']}")
    console.print(f"Labels   {', '.join(f'{k}={v}' for k, v in document['labels'].items()) or '-'}")
    console.print(f"Phase    {document['phase']}" + ("  (paused)" if document["paused"] else ""))
    console.print(f"Desired  {document['desiredCommit'][:12] or '-'}  {document['desiredDigest'] or '-'}")
    console.print(f"Applied  {document['appliedCommit'][:12] or '-'}  {document['appliedDigest'] or '-'}")
    console.print(f"Objects  {document['objectsReady']}/{document['objectsTotal']} ready; "
                  f"last seen {formatting.ago(dt.datetime.fromisoformat(document['lastSeen']) if document['lastSeen'] else None, now)}")
    skew = formatting.skew_note(formatting.clock_skew(detail.summary))
    if skew:
        console.print(f"[yellow]Clock[/yellow]    {skew} (freshness is judged by the hub's clock)")
    if document["ageKey"]["recipient"]:
        console.print(f"Age key  {document['ageKey']['recipient']}  (since {document['ageKey']['changed']})",
                      markup=False, highlight=False)
    if document["message"]:
        console.print(f"Message  {document['message']}")
    for error in [*document["errors"], *document["renderErrors"]]:
        console.print(f"[red]Error[/red]    {error}")
    if document["objects"]:
        console.print("\n[bold]Objects[/bold]")
        for obj in document["objects"]:
            reason = f"  {obj['reason']}" if obj["reason"] else ""
            error = f"  [red]{obj['error']}[/red]" if obj["error"] else ""
            console.print(f"  {obj['object']:<60} {obj['action']:<11} {obj['health']:<11}{reason}{error}",
                          markup=True, highlight=False)
    if detail.drift:
        console.print("\n[bold]Drift[/bold]")
        for line in formatting.drift_lines(detail.drift):
            console.print("  " + line, markup=False, highlight=False)
    if document["recentEvents"]:
        console.print("\n[bold]Recent events[/bold]")
        for event in document["recentEvents"]:
            console.print(f"  {event['at']}  {event['kind']:<20} {event['message']}", markup=False,
                          highlight=False)


@click.command()
@click.argument("cluster", required=False)
@click.option("--all", "all_clusters", is_flag=True, help="The whole fleet's timeline.")
@click.option("--since", default=None, help="Only events after this (1h, 30m, or an ISO timestamp).")
@click.option("--limit", default=200, show_default=True)
@output_option
@hub_command
def history(hub_name: str | None, cluster: str | None, all_clusters: bool, since: str | None, limit: int,
            output: str) -> None:
    """The timeline of commits seen, desired changes, applies, drift and errors.

    Drift events (drift, drift_corrected, drift_cleared) name the object, the fields, the field
    manager that made the change and what the spoke did."""
    if bool(cluster) == all_clusters:
        raise click.UsageError("give a CLUSTER or --all")
    request = pb.HistoryRequest(cluster=cluster or "", all=all_clusters, limit=limit)
    if since:
        request.since.FromDatetime(parse_since(since).astimezone(dt.UTC).replace(tzinfo=None))
    with _client(hub_name) as client:
        response = client.history(request)
    rows = [formatting.event_row(e) for e in response.events]
    if output != "table":
        _emit(rows, output)
        return
    if not rows:
        click.echo("no events")
    for row in rows:
        where = row["cluster"] or "fleet"
        commit = f" {row['commit'][:8]}" if row["commit"] else ""
        click.echo(f"{row['at']}  {where:<16} {row['kind']:<22}{commit}  {row['message']}")


@click.command()
@click.argument("cluster")
@hub_command
def diff(hub_name: str | None, cluster: str) -> None:
    """What differs now between the desired bundle and the live cluster (the spoke's current drift:
    left in place by policy `report`, while paused, or after a failed correction). Drift that was
    corrected, reverted or overwritten is in `convoy history CLUSTER`, not here."""
    with _client(hub_name) as client:
        detail = client.get_cluster(cluster)
    if not detail.drift:
        click.echo(f"{cluster}: no drift reported; the live cluster matches its applied bundle")
        return
    for line in formatting.drift_lines(detail.drift):
        click.echo(line)


# -- pause / resume / sync -------------------------------------------------------------------------


def _set_paused(hub_name: str | None, clusters: tuple[str, ...], selector: str, paused: bool) -> None:
    if not clusters and not selector:
        raise click.UsageError("give CLUSTER names or --selector")
    with _client(hub_name) as client:
        response = client.set_paused(pb.SetPausedRequest(clusters=list(clusters), selector=selector,
                                                         paused=paused))
    verb = "paused" if paused else "resumed"
    if not response.clusters:
        click.echo(f"no cluster matched; nothing {verb}")
        sys.exit(1)
    for name in response.clusters:
        click.echo(f"{name} {verb}")


@click.command()
@click.argument("clusters", nargs=-1)
@click.option("-l", "--selector", default="")
@hub_command
def pause(hub_name: str | None, clusters: tuple[str, ...], selector: str) -> None:
    """Stop applying new bundles (and correcting drift) on clusters; they keep reporting."""
    _set_paused(hub_name, clusters, selector, True)


@click.command()
@click.argument("clusters", nargs=-1)
@click.option("-l", "--selector", default="")
@hub_command
def resume(hub_name: str | None, clusters: tuple[str, ...], selector: str) -> None:
    """Resume paused clusters: they move to their current desired bundle."""
    _set_paused(hub_name, clusters, selector, False)


@click.command()
@hub_command
def sync(hub_name: str | None) -> None:
    """Fetch the fleet repository now and say where the head commit leaves the clusters.

    Exits 1 when the fetch fails, the head is refused, the fleet cannot be rendered, or some cluster
    cannot be rendered at the head (it keeps its last good bundle).
    """
    with _client(hub_name) as client:
        response = client.sync_now()
    click.echo(response.message or f"commit {response.commit[:12] or '-'}")
    if response.failed or response.render_error_clusters:
        sys.exit(1)


# -- tokens ---------------------------------------------------------------------------------------


@click.group()
def token() -> None:
    """Bootstrap tokens that let a new spoke register."""


@token.command("create")
@click.option("--ttl", default="24h", show_default=True, help="How long the token is valid (30m, 24h, 7d).")
@click.option("--uses", default=1, show_default=True, help="How many clusters may register with it.")
@click.option("--labels", default="", help="Labels stamped on clusters that register with it (k=v,...).")
@click.option("--description", default="")
@click.option("--cluster", "cluster_name", default="", help="Bind the token: only this cluster name may register.")
@click.option("--name-prefix", default="", help="Bind the token: only names starting with this may register.")
@click.option("--any-name", is_flag=True,
              help="Let the token register any name, also names declared in the fleet repository "
                   "(clusters/NAME/cluster.yaml); an unbound token may not take those.")
@output_option
@hub_command
def token_create(hub_name: str | None, ttl: str, uses: int, labels: str, description: str, cluster_name: str,
                 name_prefix: str, any_name: bool, output: str) -> None:
    """Create a token; prints it once with the hub CA fingerprint for pinning.

    Without --cluster, --name-prefix or --any-name the token may register any name that the fleet
    repository does not declare.
    """
    if sum(map(bool, (cluster_name, name_prefix, any_name))) > 1:
        raise click.UsageError("give at most one of --cluster, --name-prefix and --any-name")
    try:
        token_labels = selectors.parse_labels(labels, where="--labels")
    except selectors.SelectorError as exc:
        raise click.BadParameter(str(exc)) from None
    request = pb.CreateTokenRequest(ttl_seconds=int(parse_duration(ttl).total_seconds()), uses=uses,
                                    labels=token_labels, description=description, cluster=cluster_name,
                                    name_prefix=name_prefix, any_name=any_name)
    with _client(hub_name) as client:
        response = client.create_token(request)
    expires = formatting._when(response.info.expires_at)
    document = {"id": response.info.id, "token": response.token, "caFingerprint": response.ca_fingerprint,
                "joinToken": response.join_token, "expiresAt": expires.isoformat() if expires else None,
                "uses": response.info.uses_left, "binding": _binding(response.info)}
    if output != "table":
        _emit(document, output)
        return
    click.echo(f"token:           {response.token}")
    click.echo(f"ca fingerprint:  {response.ca_fingerprint or '(hub runs without TLS)'}")
    click.echo(f"join token:      {response.join_token}")
    click.echo(f"expires:         {document['expiresAt']}  uses: {response.info.uses_left}")
    click.echo(f"may register:    {document['binding']}")
    click.echo("\nInstall a spoke with:\n  convoy spoke install --cluster NAME --hub HUB_ADDRESS "
               f"--token {response.join_token} --apply")


@token.command("list")
@output_option
@hub_command
def token_list(hub_name: str | None, output: str) -> None:
    """Tokens with their expiry and remaining uses (never their secrets)."""
    with _client(hub_name) as client:
        response = client.list_tokens()
    rows = []
    for info in response.tokens:
        expires = formatting._when(info.expires_at)
        rows.append({"id": info.id, "expiresAt": expires.isoformat() if expires else None, "usesLeft": info.uses_left,
                     "labels": dict(info.labels), "description": info.description, "revoked": info.revoked,
                     "binding": _binding(info)})
    if output != "table":
        _emit(rows, output)
        return
    if not rows:
        click.echo("no tokens")
    for row in rows:
        state = "revoked" if row["revoked"] else f"{row['usesLeft']} uses left"
        click.echo(f"{row['id']:<14} expires {row['expiresAt']}  {state}  {row['binding']}  {row['description']}")


@token.command("revoke")
@click.argument("token_id")
@hub_command
def token_revoke(hub_name: str | None, token_id: str) -> None:
    """Revoke a token so no further cluster can register with it."""
    with _client(hub_name) as client:
        response = client.revoke_token(token_id)
    if not response.revoked:
        click.echo(f"error: no token {token_id}", err=True)
        sys.exit(1)
    click.echo(f"token {token_id} revoked")


def _binding(info: pb.TokenInfo) -> str:
    """Which cluster names a token may register, in words."""
    if info.cluster:
        return f"cluster {info.cluster}"
    if info.any_name:
        return "any name"
    if info.name_prefix:
        return f"names starting with {info.name_prefix}"
    return "names not declared in Git"


# -- clusters -------------------------------------------------------------------------------------


@click.group()
def cluster() -> None:
    """Registered clusters: remove a registration, rotate a cluster's credential."""


@cluster.command("remove")
@click.argument("name")
@hub_command
def cluster_remove(hub_name: str | None, name: str) -> None:
    """Delete NAME's registration: its credential stops working and its open streams end at once.

    Desired-state history and events stay. The name can register again with a new bootstrap token.
    """
    with _client(hub_name) as client:
        response = client.remove_cluster(name)
    click.echo(f"cluster {name} removed; {response.streams_ended} open stream(s) ended")


@cluster.command("rotate-credential")
@click.argument("name")
@hub_command
def cluster_rotate_credential(hub_name: str | None, name: str) -> None:
    """Give NAME a new credential over its Watch stream (now if connected, else when it next connects).

    The old credential stops working once the spoke connects with the new one, or
    credential_rotation_grace (hub setting, 1h) after it was handed over, whichever comes first.
    """
    with _client(hub_name) as client:
        response = client.rotate_credential(name)
    when = "now (it is connected)" if response.online else "when it next connects"
    click.echo(f"cluster {name}: credential rotation requested; the spoke gets its new credential {when}")


# -- config ---------------------------------------------------------------------------------------


@click.group()
def config() -> None:
    """Named hubs the CLI can talk to (like kubeconfig contexts)."""


@config.command("view")
def config_view() -> None:
    """Show the CLI configuration (paths only; never credentials)."""
    try:
        loaded = cliconfig.load_config()
    except cliconfig.CliConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"# {loaded.path}")
    click.echo(yaml.safe_dump({"current": loaded.current, "hubs": loaded.hubs}, sort_keys=True).rstrip())


@config.command("use")
@click.argument("name")
def config_use(name: str) -> None:
    """Make NAME the current hub."""
    loaded = cliconfig.load_config()
    if name not in loaded.hubs:
        click.echo(f"error: no hub named {name!r} in {loaded.path} (known: {', '.join(sorted(loaded.hubs)) or 'none'})",
                   err=True)
        sys.exit(1)
    loaded.current = name
    loaded.save()
    click.echo(f"current hub: {name}")


@config.command("set-hub")
@click.argument("name")
@click.option("--address", required=True, help="HOST:PORT of the hub's gRPC listener.")
@click.option("--ca", type=click.Path(dir_okay=False), default=None, help="The hub CA certificate (PEM).")
@click.option("--credential", type=click.Path(dir_okay=False), default=None, help="Admin credential file.")
@click.option("--insecure", is_flag=True, help="Plaintext gRPC (local sandboxes only).")
@click.option("--use/--no-use", default=True, show_default=True, help="Also make it the current hub.")
def config_set_hub(name: str, address: str, ca: str | None, credential: str | None, insecure: bool,
                   use: bool) -> None:
    """Add or change a named hub."""
    loaded = cliconfig.load_config()
    loaded.hubs[name] = {"address": address, "ca": ca, "credential": credential, "insecure": insecure}
    if use or loaded.current is None:
        loaded.current = name
    loaded.save()
    click.echo(f"hub {name} saved to {loaded.path}")
