"""``convoy credential create|list|revoke``: named admin credentials.

The hub's first-start credential is named ``admin``; these make more, one per person or system, so
the hub knows who approved a rollout wave. A created credential is printed (or written) once; the
hub keeps only its hash. Exit codes as for the other hub commands (:mod:`hub.commands.fleet`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from hub.commands import formatting
from hub.commands.fleet import _client, _console, _emit, hub_command, output_option
from hub.security import files

__all__ = ["credential"]


@click.group()
def credential() -> None:
    """Named admin credentials: who calls the admin API (and approves rollout waves)."""


@credential.command("create")
@click.argument("name")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the credential to this file (owner-only) instead of printing it.")
@hub_command
def credential_create(hub_name: str | None, name: str, out: Path | None) -> None:
    """Create the admin credential NAME; it is shown once (the hub stores only its hash).

    Use it with CONVOY_CREDENTIAL_FILE=FILE, or `credential: FILE` in the CLI config.

    \b
    Examples:
      convoy credential create alice --out alice.credential
      CONVOY_CREDENTIAL_FILE=alice.credential convoy rollout approve
    """
    with _client(hub_name) as client:
        response = client.create_admin_credential(name)
    if out is not None:
        files.write_private(out, (response.credential + "\n").encode("ascii"))
        click.echo(f"admin credential {response.name} written to {out} (shown nowhere else; the hub keeps "
                   "only its hash)")
        return
    click.echo(f"admin credential {response.name}: {response.credential}")
    click.echo("shown once: the hub keeps only its hash")


@credential.command("list")
@output_option
@hub_command
def credential_list(hub_name: str | None, output: str) -> None:
    """Admin credentials by name, who created them and whether they are revoked (never their secrets).

    \b
    Examples:
      convoy credential list
      convoy credential list -o json
    """
    with _client(hub_name) as client:
        response = client.list_admin_credentials()
    rows: list[dict[str, Any]] = []
    for info in response.credentials:
        created = formatting._when(info.created_at)
        revoked = formatting._when(info.revoked_at)
        rows.append({"name": info.name, "bootstrap": info.bootstrap, "createdBy": info.created_by or None,
                     "createdAt": created.isoformat() if created else None, "revoked": info.revoked,
                     "revokedAt": revoked.isoformat() if revoked else None})
    if output != "table":
        _emit(rows, output)
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("NAME", "CREATED", "BY", "STATE"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        state = "revoked" if row["revoked"] else ("hub's first-start credential" if row["bootstrap"] else "valid")
        table.add_row(row["name"], row["createdAt"] or "-", row["createdBy"] or "-", state)
    _console().print(table)


@credential.command("revoke")
@click.argument("name")
@hub_command
def credential_revoke(hub_name: str | None, name: str) -> None:
    """Revoke the admin credential NAME: refused at once by every hub replica. Its name is not reused.

    \b
    Examples:
      convoy credential revoke alice
    """
    with _client(hub_name) as client:
        response = client.revoke_admin_credential(name)
    click.echo(f"admin credential {name} revoked" if response.revoked
               else f"admin credential {name} was already revoked")
