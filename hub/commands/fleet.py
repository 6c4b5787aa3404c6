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
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import click
import yaml
from click.shell_completion import CompletionItem
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from hub import adminclient, cliconfig
from hub.commands import formatting
from protos import jointoken, selectors
from protos import version as version_mod
from protos.convoy.v1 import convoy_pb2 as pb

__all__ = ["cluster", "complete_clusters", "config", "describe", "diff", "history", "pause", "resume", "status", "sync",
           "token", "version"]

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

    # No envvar here: cliconfig reads CONVOY_HUB itself, so it can tell a hub named with --hub (which uses
    # its own CA and credential) from one named in the environment.
    @click.option("--hub", "hub_name", default=None,
                  help="Hub name from the CLI config (with its own CA and credential), or HOST:PORT "
                       "(default: $CONVOY_HUB, else the current hub).")
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


#: How long ``convoy sync`` waits for the hub's answer.
SYNC_TIMEOUT_SECONDS = 120.0


def _client(hub_name: str | None) -> adminclient.AdminClient:
    return adminclient.AdminClient(cliconfig.resolve(hub_name))


def complete_clusters(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Shell completion of cluster names, from the hub when it answers quickly; nothing otherwise."""
    try:
        with adminclient.AdminClient(cliconfig.resolve(ctx.params.get("hub_name")), timeout=2.0) as client:
            names = [c.name for c in client.list_clusters().clusters]
    except (cliconfig.CliConfigError, adminclient.AdminError):
        return []  # a completion must never print an error into the user's command line
    return [CompletionItem(name) for name in names if name.startswith(incomplete)]


def _dump(document: Any, output: str) -> str:
    if output == "json":
        return json.dumps(document, indent=2, sort_keys=False)
    return yaml.safe_dump(document, sort_keys=False).rstrip()


def _emit(document: Any, output: str) -> None:
    click.echo(_dump(document, output))


output_option = click.option("-o", "--output", type=click.Choice(["table", "json", "yaml"]), default="table",
                             show_default=True)


# -- status ---------------------------------------------------------------------------------------


#: Row fields that change on every refresh; ``--watch`` prints a new table only when something else does.
_VOLATILE = frozenset({"lastSeen", "lastReport", "clockSkewSeconds"})


def _table_width() -> int | None:
    """The terminal's width, or ``$COLUMNS`` when output is piped; None (no limit) without either."""
    if sys.stdout.isatty():
        return Console().width
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else None


def _status_view(response: pb.ListClustersResponse, output: str) -> tuple[str, Any]:
    """What ``status`` shows for ``response``, and a key that changes only when something worth a reprint does."""
    now = dt.datetime.now(dt.UTC)
    rows = [formatting.cluster_row(c, now=now) for c in response.clusters]
    replicas = formatting.replica_documents(response)
    key = json.dumps([response.fleet_commit, formatting.refused_document(response), response.fetch_error,
                      [{k: v for k, v in row.items() if k not in _VOLATILE} for row in rows],
                      [{k: v for k, v in r.items() if k != "lastHeartbeat"} for r in replicas]], sort_keys=True)
    if output == "name":
        return key, "\n".join(f"cluster/{row['name']}" for row in rows)
    if output in ("json", "yaml"):
        return key, _dump({"fleetCommit": response.fleet_commit, "refusedCommit": formatting.refused_document(response),
                           "fetchError": response.fetch_error or None, "clusters": rows,
                           "summary": formatting.fleet_counts(rows), "replicas": replicas}, output)
    first, *notes = formatting.fleet_header(response, now=now)
    header = [Text(first, style="bold"), *(Text(line, style="bold red") for line in notes),
              *(Text(line) for line in formatting.replica_lines(response, now=now))]
    table = formatting.status_table(rows, now=now, width=_table_width(), wide=output == "wide")
    hints = [Text(line) for line in formatting.adopt_hints(rows)]
    return key, Group(*header, table, Text(formatting.fleet_summary(rows)), *hints)


def _console() -> Console:
    """A console for tables: the terminal's width, or unlimited when piped (a pipe gets whole lines)."""
    return Console(width=_table_width() or 1000, highlight=False)


class _Stopped(Exception):
    """SIGTERM during ``--watch``: end like Ctrl-C, cleanly."""


def _raise_stopped(signum: int, frame: object) -> None:
    raise _Stopped


def _watch(client: adminclient.AdminClient, selector: str, interval: float, output: str,
           first: tuple[str, Any]) -> None:
    """Reprint on change until SIGINT or SIGTERM: in place on a terminal, one view after another when piped."""
    previous = signal.signal(signal.SIGTERM, _raise_stopped)
    try:
        key, view = first
        if sys.stdout.isatty() and output in ("table", "wide"):
            with Live(view, console=Console(), refresh_per_second=4) as live:
                while True:
                    time.sleep(interval)
                    key, view = _status_view(client.list_clusters(selector), output)
                    live.update(view)
        console = Console(width=(_table_width() if output == "table" else None) or 1000)
        console.print(view, soft_wrap=output not in ("table", "wide"))
        while True:
            sys.stdout.flush()
            time.sleep(interval)
            new_key, view = _status_view(client.list_clusters(selector), output)
            if new_key != key:
                key = new_key
                console.print()
                console.print(view, soft_wrap=output not in ("table", "wide"))
    except (KeyboardInterrupt, _Stopped):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


@click.command()
@click.option("-l", "--selector", default="", help="Label selector, e.g. 'env=prod,region in (eu,us)'.")
@click.option("-w", "--watch", is_flag=True,
              help="Keep watching: update the table in place on a terminal; when piped, print a new table (or "
                   "document) each time something changes. Ends cleanly on Ctrl-C or SIGTERM.")
@click.option("--interval", default=2.0, show_default=True, help="Refresh interval for --watch, seconds.")
@click.option("--exit-code", is_flag=True,
              help="Exit 1 while any selected cluster is not Ready (a render error counts) or a newer commit "
                   "is refused or cannot be rendered.")
@click.option("-o", "--output", type=click.Choice(["table", "wide", "name", "json", "yaml"]), default="table",
              show_default=True,
              help="wide: also every label and the first error; name: cluster/NAME per line.")
@hub_command
def status(hub_name: str | None, selector: str, watch: bool, interval: float, exit_code: bool,
           output: str) -> None:
    """One row per cluster: what is desired, what is applied, and whether it is healthy.

    PHASE is Offline while the hub has no Watch stream from the cluster's spoke (it closed its streams,
    stopped answering the hub's pings, or was not seen for two heartbeats and the ping timeout).
    In a narrow terminal the table leaves out its last columns (REGION, ENV, LAST SEEN, ...) rather
    than cut a cell; `-o wide` shows them all.

    \b
    Examples:
      convoy status
      convoy status -l env=prod -o wide
      convoy status -o json | jq '.summary.phases'
      convoy status --watch
      convoy status --exit-code -l 'region in (eu)'
    """
    with _client(hub_name) as client:
        response = client.list_clusters(selector)
        view = _status_view(response, output)
        if watch:
            _watch(client, selector, interval, output, view)
        elif output in ("table", "wide"):
            # -o wide keeps every column, as kubectl does: long lines run on rather than get cut.
            Console(width=(_table_width() if output == "table" else None) or 1000).print(view[1])
        else:
            click.echo(view[1])
    if exit_code and not formatting.fleet_ok([formatting.cluster_row(c, now=dt.datetime.now(dt.UTC))
                                              for c in response.clusters], response):
        sys.exit(1)


# -- describe / history / diff ------------------------------------------------------------------


@click.command()
@click.argument("cluster", shell_complete=complete_clusters)
@output_option
@hub_command
def describe(hub_name: str | None, cluster: str, output: str) -> None:
    """Everything about one cluster: labels, desired vs applied, objects, drift, events.

    \b
    Examples:
      convoy describe prod-eu-1
      convoy describe prod-eu-1 -o yaml
    """
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
    last_seen = dt.datetime.fromisoformat(document["lastSeen"]) if document["lastSeen"] else None
    console.print(f"Objects  {document['objectsReady']}/{document['objectsTotal']} ready; "
                  f"last seen {formatting.ago(last_seen, now)}")
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
        console.print(formatting.adopt_hint(cluster), markup=False, highlight=False)
    if document["recentEvents"]:
        console.print("\n[bold]Recent events[/bold]")
        for event in document["recentEvents"]:
            console.print(f"  {event['at']}  {event['kind']:<20} {event['message']}", markup=False,
                          highlight=False)


@click.command()
@click.argument("cluster", required=False, shell_complete=complete_clusters)
@click.option("--all", "all_clusters", is_flag=True, help="The whole fleet's timeline.")
@click.option("--since", default=None, help="Only events after this (1h, 30m, or an RFC 3339 / ISO timestamp).")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(min=1, max=10_000),
              help="At most this many events (the newest).")
@click.option("--type", "kinds", multiple=True,
              help="Only events of this type (repeatable), e.g. --type drift --type applied.")
@output_option
@hub_command
def history(hub_name: str | None, cluster: str | None, all_clusters: bool, since: str | None, limit: int,
            kinds: tuple[str, ...], output: str) -> None:
    """The timeline of commits seen, desired changes, applies, drift and errors.

    Drift events (drift, drift_corrected, drift_cleared) name the object, the fields, the field
    manager that made the change and what the spoke did. Times are UTC, RFC 3339, to the second.

    \b
    Examples:
      convoy history prod-eu-1
      convoy history --all --since 1h --type drift --type drift_corrected
      convoy history prod-eu-1 --limit 20 -o json
    """
    if bool(cluster) == all_clusters:
        raise click.UsageError("give a CLUSTER or --all")
    request = pb.HistoryRequest(cluster=cluster or "", all=all_clusters, limit=limit, kinds=list(kinds))
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
        return
    _console().print(formatting.history_table(rows))


@click.command()
@click.argument("cluster", shell_complete=complete_clusters)
@click.option("--exit-code", is_flag=True,
              help="Exit 1 when the cluster has drift, 0 when it has none (as `git diff --exit-code`).")
@hub_command
def diff(hub_name: str | None, cluster: str, exit_code: bool) -> None:
    """What differs now between the desired bundle and the live cluster (the spoke's current drift:
    left in place by policy `report`, while paused, or after a failed correction). Drift that was
    corrected, reverted or overwritten is in `convoy history CLUSTER`, not here.

    \b
    Examples:
      convoy diff prod-eu-1
      convoy diff prod-eu-1 --exit-code || echo "prod-eu-1 has drift"
    """
    with _client(hub_name) as client:
        detail = client.get_cluster(cluster)
    if not detail.drift:
        click.echo(f"{cluster}: no drift reported; the live cluster matches its applied bundle")
        return
    for line in formatting.drift_lines(detail.drift):
        click.echo(line)
    if exit_code:
        sys.exit(1)


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
@click.argument("clusters", nargs=-1, shell_complete=complete_clusters)
@click.option("-l", "--selector", default="")
@hub_command
def pause(hub_name: str | None, clusters: tuple[str, ...], selector: str) -> None:
    """Stop applying new bundles (and correcting drift) on clusters; they keep reporting.

    \b
    Examples:
      convoy pause prod-eu-1
      convoy pause -l env=prod
    """
    _set_paused(hub_name, clusters, selector, True)


@click.command()
@click.argument("clusters", nargs=-1, shell_complete=complete_clusters)
@click.option("-l", "--selector", default="")
@hub_command
def resume(hub_name: str | None, clusters: tuple[str, ...], selector: str) -> None:
    """Resume paused clusters: they move to their current desired bundle.

    \b
    Examples:
      convoy resume prod-eu-1
      convoy resume -l 'region in (eu,us)'
    """
    _set_paused(hub_name, clusters, selector, False)


@click.command()
@hub_command
def sync(hub_name: str | None) -> None:
    """Fetch the fleet repository now and say where the head commit leaves the clusters.

    Exits 1 when the fetch fails, the head is refused, the fleet cannot be rendered, or some cluster
    cannot be rendered at the head (it keeps its last good bundle).

    \b
    Examples:
      convoy sync
      convoy sync && convoy status --exit-code
    """
    # A sync fetches Git and renders the fleet, and a follower replica waits for the leader's: longer than
    # the usual call timeout.
    with adminclient.AdminClient(cliconfig.resolve(hub_name), timeout=SYNC_TIMEOUT_SECONDS) as client:
        response = client.sync_now()
    click.echo(response.message or f"commit {response.commit[:12] or '-'}")
    if response.failed or response.render_error_clusters:
        sys.exit(1)


# -- tokens ---------------------------------------------------------------------------------------


@click.group()
def token() -> None:
    """Bootstrap tokens that let a new spoke register."""


def _positive_duration(ctx: click.Context, param: click.Parameter, value: str) -> dt.timedelta:
    duration = parse_duration(value)
    if duration <= dt.timedelta(0):
        raise click.BadParameter(f"{value!r}: a token must be valid for some time (30m, 24h, 7d)")
    return duration


@token.command("create")
@click.option("--ttl", default="24h", show_default=True, callback=_positive_duration,
              help="How long the token is valid (30m, 24h, 7d); more than 0.")
@click.option("--uses", default=1, show_default=True, type=click.IntRange(min=1),
              help="How many clusters may register with it (at least 1).")
@click.option("--labels", default="", help="Labels stamped on clusters that register with it (k=v,...).")
@click.option("--description", default="")
@click.option("--cluster", "cluster_name", default="", help="Bind the token: only this cluster name may register.")
@click.option("--name-prefix", default="", help="Bind the token: only names starting with this may register.")
@click.option("--any-name", is_flag=True,
              help="Let the token register any name, also names declared in the fleet repository "
                   "(clusters/NAME/cluster.yaml); an unbound token may not take those.")
@output_option
@hub_command
def token_create(hub_name: str | None, ttl: dt.timedelta, uses: int, labels: str, description: str, cluster_name: str,
                 name_prefix: str, any_name: bool, output: str) -> None:
    """Create a token; prints it once with the hub CA fingerprint for pinning.

    Without --cluster, --name-prefix or --any-name the token may register any name that the fleet
    repository does not declare.

    \b
    Examples:
      convoy token create --cluster prod-eu-1
      convoy token create --uses 5 --ttl 2h --name-prefix edge- --labels tier=edge
      convoy token create -o json | jq -r .joinToken > join.token
    """
    if sum(map(bool, (cluster_name, name_prefix, any_name))) > 1:
        raise click.UsageError("give at most one of --cluster, --name-prefix and --any-name")
    try:
        token_labels = selectors.parse_labels(labels, where="--labels")
    except selectors.SelectorError as exc:
        raise click.BadParameter(str(exc)) from None
    request = pb.CreateTokenRequest(ttl_seconds=int(ttl.total_seconds()), uses=uses,
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
    click.echo(f"expires:         {document['expiresAt']}  uses: {formatting.plural(response.info.uses_left, 'use')}")
    click.echo(f"may register:    {document['binding']}")
    try:  # the join token names the address spokes dial (the hub's --advertise-address or its listener)
        carried = jointoken.parse_join_token(response.join_token).hub_address
    except jointoken.JoinTokenError:
        carried = None
    click.echo("\nInstall a spoke with:\n  convoy spoke install --cluster NAME "
               f"--hub {carried or 'HUB_ADDRESS'} --token {response.join_token} --apply")


@token.command("list")
@output_option
@hub_command
def token_list(hub_name: str | None, output: str) -> None:
    """Tokens with their expiry and remaining uses (never their secrets).

    \b
    Examples:
      convoy token list
      convoy token list -o json
    """
    with _client(hub_name) as client:
        response = client.list_tokens()
    rows: list[dict[str, Any]] = []
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
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("ID", "EXPIRES", "USES", "MAY REGISTER", "DESCRIPTION"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        until = formatting.rfc3339(dt.datetime.fromisoformat(row["expiresAt"])) if row["expiresAt"] else None
        uses = "revoked" if row["revoked"] else f"{formatting.plural(row['usesLeft'], 'use')} left"
        table.add_row(row["id"], until or "-", uses, row["binding"], Text(row["description"] or "-"))
    _console().print(table)


@token.command("revoke")
@click.argument("token_id")
@hub_command
def token_revoke(hub_name: str | None, token_id: str) -> None:
    """Revoke a token so no further cluster can register with it.

    \b
    Examples:
      convoy token revoke 3f2a9c1e0b7d
    """
    with _client(hub_name) as client:
        response = client.revoke_token(token_id)
    # The hub answers NotFound (exit 1) for an unknown id; revoked=False means it was revoked before.
    click.echo(f"token {token_id} revoked" if response.revoked else f"token {token_id} was already revoked")


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
    """Registered clusters: remove a registration, rotate a cluster's credential, print the desired bundle."""


@cluster.command("remove")
@click.argument("name", shell_complete=complete_clusters)
@hub_command
def cluster_remove(hub_name: str | None, name: str) -> None:
    """Delete NAME's registration: its credential stops working and its open streams end at once.

    Desired-state history and events stay. The name can register again with a new bootstrap token.

    \b
    Examples:
      convoy cluster remove old-edge-7
    """
    with _client(hub_name) as client:
        response = client.remove_cluster(name)
    click.echo(f"cluster {name} removed; {formatting.plural(response.streams_ended, 'open stream')} ended")


@cluster.command("rotate-credential")
@click.argument("name", shell_complete=complete_clusters)
@hub_command
def cluster_rotate_credential(hub_name: str | None, name: str) -> None:
    """Give NAME a new credential over its Watch stream (now if connected, else when it next connects).

    The old credential stops working once the spoke connects with the new one, or
    credential_rotation_grace (hub setting, 1h) after it was handed over, whichever comes first.

    \b
    Examples:
      convoy cluster rotate-credential prod-eu-1
    """
    with _client(hub_name) as client:
        response = client.rotate_credential(name)
    when = "now (it is connected)" if response.online else "when it next connects"
    click.echo(f"cluster {name}: credential rotation requested; the spoke gets its new credential {when}")


@cluster.command("bundle")
@click.argument("name", shell_complete=complete_clusters)
@hub_command
def cluster_bundle(hub_name: str | None, name: str) -> None:
    """Print NAME's current desired bundle as the hub serves it (JSON; Secret values redacted).

    What `convoy spoke install --rbac derived --bundle FILE` derives the spoke's RBAC from.

    \b
    Examples:
      convoy cluster bundle prod-eu-1 > prod-eu-1.json
      convoy cluster bundle edge-1 | convoy spoke install --cluster edge-1 --token-file t --rbac derived --bundle -
    """
    with _client(hub_name) as client:
        digest = client.get_cluster(name).summary.desired_digest
        if not digest:
            raise click.ClickException(f"cluster {name}: the hub holds no desired bundle for it yet")
        response = client.get_bundle_objects(digest)
    click.echo(response.bundle_json.decode())


# -- version --------------------------------------------------------------------------------------


@click.command("version")
@click.option("--client", "client_only", is_flag=True, help="Only the CLI's version; do not ask the hub.")
@click.option("-o", "--output", type=click.Choice(["text", "json", "yaml"]), default="text", show_default=True)
@hub_command
def version(hub_name: str | None, client_only: bool, output: str) -> None:
    """The CLI's version and the hub's (as `kubectl version`).

    The client version is printed even when the hub cannot be asked; the error follows, with its exit code.

    \b
    Examples:
      convoy version
      convoy version --client
      convoy version -o json
    """
    document: dict[str, Any] = {"clientVersion": version_mod.installed()}
    failure: adminclient.AdminError | cliconfig.CliConfigError | None = None
    if not client_only:
        try:
            with _client(hub_name) as client:
                document["hubVersion"] = client.get_version().version
                document["hub"] = client.conn.address
        except (adminclient.AdminError, cliconfig.CliConfigError) as exc:
            failure = exc
    if output != "text":
        _emit(document, output)
    else:
        click.echo(f"Client Version: {document['clientVersion']}")
        if "hubVersion" in document:
            click.echo(f"Hub Version:    {document['hubVersion']} ({document['hub']})")
    if failure is not None:
        raise failure


# -- config ---------------------------------------------------------------------------------------


@click.group()
def config() -> None:
    """Named hubs the CLI can talk to (like kubeconfig contexts)."""


@config.command("view")
def config_view() -> None:
    """Show the CLI configuration (paths only; never credentials).

    \b
    Examples:
      convoy config view
    """
    try:
        loaded = cliconfig.load_config()
    except cliconfig.CliConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"# {loaded.path}")
    click.echo(yaml.safe_dump({"current": loaded.current, "hubs": loaded.hubs}, sort_keys=True).rstrip())


def _load_config() -> cliconfig.CliConfig:
    try:
        return cliconfig.load_config()
    except cliconfig.CliConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def _known_hub(loaded: cliconfig.CliConfig, name: str) -> None:
    if name not in loaded.hubs:
        click.echo(f"error: no hub named {name!r} in {loaded.path} (known: {', '.join(sorted(loaded.hubs)) or 'none'})",
                   err=True)
        sys.exit(1)


@config.command("get-hubs")
@click.option("-o", "--output", type=click.Choice(["table", "name"]), default="table", show_default=True)
def config_get_hubs(output: str) -> None:
    """List the configured hubs; * marks the current one.

    \b
    Examples:
      convoy config get-hubs
      convoy config get-hubs -o name
    """
    loaded = _load_config()
    if output == "name":
        for name in sorted(loaded.hubs):
            click.echo(name)
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("CURRENT", "NAME", "ADDRESS", "CA", "CREDENTIAL", "INSECURE"):
        table.add_column(column, no_wrap=True)
    for name, entry in sorted(loaded.hubs.items()):
        table.add_row("*" if name == loaded.current else "", name, str(entry["address"]), str(entry.get("ca") or "-"),
                      str(entry.get("credential") or "-"), "yes" if entry.get("insecure") else "no")
    _console().print(table)


@config.command("current-hub")
def config_current_hub() -> None:
    """Print the current hub's name (exit 1 when there is none).

    \b
    Examples:
      convoy config current-hub
    """
    loaded = _load_config()
    if not loaded.current:
        click.echo(f"error: no current hub in {loaded.path}; `convoy config use-hub NAME` picks one", err=True)
        sys.exit(1)
    click.echo(loaded.current)


@config.command("use-hub")
@click.argument("name")
def config_use_hub(name: str) -> None:
    """Make NAME the current hub.

    \b
    Examples:
      convoy config use-hub prod
    """
    loaded = _load_config()
    _known_hub(loaded, name)
    loaded.current = name
    loaded.save()
    click.echo(f"switched to hub {name}")


# `use` is the earlier name of `use-hub`; kept so scripts keep working.
config.add_command(click.Command("use", callback=config_use_hub.callback, params=config_use_hub.params,
                                 help="Make NAME the current hub (same as use-hub).", hidden=True))


@config.command("delete-hub")
@click.argument("name")
def config_delete_hub(name: str) -> None:
    """Remove NAME from the CLI config (its CA and credential files stay where they are).

    \b
    Examples:
      convoy config delete-hub staging
    """
    loaded = _load_config()
    _known_hub(loaded, name)
    del loaded.hubs[name]
    note = ""
    if loaded.current == name:
        loaded.current = None
        note = "; there is no current hub now (`convoy config use-hub NAME` picks one)"
    loaded.save()
    click.echo(f"deleted hub {name} from {loaded.path}{note}")


@config.command("set-hub")
@click.argument("name")
@click.option("--address", required=True, help="HOST:PORT of the hub's gRPC listener.")
@click.option("--ca", type=click.Path(dir_okay=False), default=None, help="The hub CA certificate (PEM).")
@click.option("--credential", type=click.Path(dir_okay=False), default=None, help="Admin credential file.")
@click.option("--insecure", is_flag=True, help="Plaintext gRPC (local sandboxes only).")
@click.option("--use/--no-use", default=True, show_default=True, help="Also make it the current hub.")
def config_set_hub(name: str, address: str, ca: str | None, credential: str | None, insecure: bool,
                   use: bool) -> None:
    """Add or change a named hub; says so when it becomes the current hub.

    \b
    Examples:
      convoy config set-hub prod --address hub.example.com:7443 --ca ca.crt --credential admin.credential
      convoy config set-hub staging --address 10.0.0.5:7443 --ca staging-ca.crt --credential s.cred --no-use
    """
    loaded = _load_config()
    loaded.hubs[name] = {"address": address, "ca": ca, "credential": credential, "insecure": insecure}
    previous = loaded.current
    if use or loaded.current is None:
        loaded.current = name
    loaded.save()
    switched = ""
    if loaded.current != previous:
        switched = f"; current hub is now {name}" + (f" (was {previous})" if previous else "")
    click.echo(f"hub {name} saved to {loaded.path}{switched}")
