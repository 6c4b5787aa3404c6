"""The root ``convoy`` command.

Command groups of other sides (``convoy spoke ...``) are found through the
``convoy.commands`` entry-point group, so the hub never imports the spoke and a
spoke-only install runs ``convoy spoke`` without the hub's dependencies: every
hub command imports its implementation lazily.
"""

from __future__ import annotations

from importlib import metadata

import click

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="convoy")
def cli() -> None:
    """Convoy: GitOps for a fleet of Kubernetes clusters."""


def _load_plugin_groups() -> None:
    for entry in metadata.entry_points(group="convoy.commands"):
        try:
            command = entry.load()
        except ImportError:
            # A side whose extra is not installed simply does not offer its commands.
            continue
        cli.add_command(command, entry.name)


def main() -> None:
    _load_plugin_groups()
    cli()
