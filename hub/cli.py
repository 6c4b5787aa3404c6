"""The root ``convoy`` command.

Every command group — the hub's and the spoke's alike — is registered in the ``convoy.commands``
entry-point group (``pyproject.toml``) and imported only when it is run or listed, so the root
command knows no side, ``convoy --help`` stays fast, and the hub never imports the spoke.

An entry point names the extra its command needs (``build = "…:build [hub]"``). When that
command's import stops at a third-party module that is not installed, the command is still listed
and, when run, says which extra to install (exit 2). Any other import error — a broken import inside
the project — is raised, not turned into "No such command".
"""

from __future__ import annotations

import functools
import os
from importlib import metadata

import click

__all__ = ["DISTRIBUTION", "ENTRY_POINT_GROUP", "cli", "main"]

ENTRY_POINT_GROUP = "convoy.commands"
#: The distribution to install (pyproject's project name): `convoy` on the public index is another project.
DISTRIBUTION = "convoy-fleet"
#: The project's own top-level packages: a missing module among these is a bug, not a missing extra.
_PROJECT_PACKAGES = frozenset({"hub", "spoke", "protos", "kubesim"})


@functools.cache
def _registered() -> dict[str, metadata.EntryPoint]:
    return {entry.name: entry for entry in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _is_missing_extra(exc: ModuleNotFoundError) -> bool:
    """A third-party module that is not installed; a missing module of the project itself is a bug."""
    return bool(exc.name) and str(exc.name).split(".")[0] not in _PROJECT_PACKAGES


def _extra_of(entry: metadata.EntryPoint) -> str:
    return ",".join(entry.extras) or "all"


def _explain_missing_extra(name: str, entry: metadata.EntryPoint, missing: str) -> None:
    extra = _extra_of(entry)
    click.echo(f"Error: `convoy {name}` needs {DISTRIBUTION}[{extra}] ({missing} is not installed): "
               f"pip install '{DISTRIBUTION}[{extra}]'", err=True)
    raise SystemExit(2)


def _needs_extra(name: str, entry: metadata.EntryPoint, missing: str) -> click.Command:
    """A stand-in for a command whose extra is not installed: listed, and explains itself when run."""
    extra = _extra_of(entry)
    hint = f"pip install '{DISTRIBUTION}[{extra}]'"

    def explain() -> None:
        _explain_missing_extra(name, entry, missing)

    # No --help of its own and any arguments accepted: `convoy hub serve --help` gets the same answer.
    return click.Command(name, callback=explain, help=f"(needs {DISTRIBUTION}[{extra}]: {hint})",
                         short_help=f"(needs {DISTRIBUTION}[{extra}])", add_help_option=False,
                         context_settings={"ignore_unknown_options": True, "allow_extra_args": True})


class LazyGroup(click.Group):
    """A group whose commands come from the ``convoy.commands`` entry points, imported on use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_registered()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        entry = _registered().get(cmd_name)
        if entry is None:
            return None
        try:
            loaded = entry.load()
        except ModuleNotFoundError as exc:
            if not _is_missing_extra(exc):
                raise
            return _needs_extra(cmd_name, entry, str(exc.name))
        if not isinstance(loaded, click.Command):
            raise TypeError(f"entry point {entry.name} = {entry.value} is not a click command")
        return loaded

    def invoke(self, ctx: click.Context) -> object:
        # A group may import lazily when run (`convoy spoke run` needs `kubernetes` only then).
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as exc:
            entry = _registered().get(ctx.invoked_subcommand or "")
            if entry is None or not _is_missing_extra(exc):
                raise
            _explain_missing_extra(entry.name, entry, str(exc.name))
            raise  # not reached: the explanation exits


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name=DISTRIBUTION)
def cli() -> None:
    """Convoy: GitOps for a fleet of Kubernetes clusters."""


def main() -> None:
    # gRPC's C core logs a failed TLS handshake (and other connection noise) to stderr at INFO; the CLI
    # says what went wrong in one line of its own. Read once, before grpc is first imported (the
    # commands import it lazily); GRPC_VERBOSITY=INFO in the environment brings the log back.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    # A fixed name and completion variable, also under `python -m hub` (see `convoy completion`).
    cli(prog_name="convoy", complete_var="_CONVOY_COMPLETE")
