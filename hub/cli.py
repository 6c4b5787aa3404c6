"""The root ``convoy`` command.

Every subcommand is imported lazily from the module that implements it, so
``convoy --help`` stays fast and a spoke-only install (no SQLModel, no
GitPython) can still run ``convoy spoke ...``. Command groups of other sides
are found through the ``convoy.commands`` entry-point group, so the hub never
imports the spoke.
"""

from __future__ import annotations

import importlib
import importlib.util
from importlib import metadata

import click

__all__ = ["cli", "main"]

#: command name -> "module:attribute" of its click command.
LAZY_COMMANDS: dict[str, str] = {
    # rendering (issue 3)
    "build": "hub.commands.build:build",
    "render": "hub.commands.render:render",
    "validate": "hub.commands.render:validate",
    "preview": "hub.commands.render:preview",
    # the hub service (issue 4)
    "hub": "hub.commands.hubserve:hub",
    # the fleet-wide CLI (issue 6)
    "status": "hub.commands.fleet:status",
    "describe": "hub.commands.fleet:describe",
    "history": "hub.commands.fleet:history",
    "diff": "hub.commands.fleet:diff",
    "pause": "hub.commands.fleet:pause",
    "resume": "hub.commands.fleet:resume",
    "sync": "hub.commands.fleet:sync",
    "token": "hub.commands.fleet:token",
    "cluster": "hub.commands.fleet:cluster",
    "config": "hub.commands.fleet:config",
    "sandbox": "hub.commands.sandbox:sandbox",
    "rollout": "hub.commands.rollout:rollout",
    "rollback": "hub.commands.rollout:rollback",
}


class LazyGroup(click.Group):
    """A group whose commands are imported only when they are run or listed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        _load_plugin_groups()
        return sorted({*super().list_commands(ctx), *self._available()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        _load_plugin_groups()
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        target = LAZY_COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attribute = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.split(".")[0] in {"hub", "spoke", "protos"}:
                return None  # not written yet
            raise click.ClickException(
                f"`convoy {cmd_name}` needs the hub's dependencies ({exc.name} is missing): "
                "install convoy[hub]"
            ) from exc
        command = getattr(module, attribute)
        assert isinstance(command, click.Command)
        return command

    def _available(self) -> set[str]:
        found = set()
        for name, target in LAZY_COMMANDS.items():
            module_name = target.partition(":")[0]
            if importlib.util.find_spec(module_name.rpartition(".")[0] or module_name) is None:
                continue
            try:
                if importlib.util.find_spec(module_name) is not None:
                    found.add(name)
            except ModuleNotFoundError:
                continue
        return found


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="convoy")
def cli() -> None:
    """Convoy: GitOps for a fleet of Kubernetes clusters."""


_plugins_loaded = False


def _load_plugin_groups() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry in metadata.entry_points(group="convoy.commands"):
        try:
            command = entry.load()
        except ImportError:
            # A side whose extra is not installed simply does not offer its commands.
            continue
        cli.add_command(command, entry.name)


def main() -> None:
    cli()
