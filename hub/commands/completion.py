"""``convoy completion bash|zsh|fish``: the shell completion script, from click's own completion support.

Cluster names complete from the hub when it is reachable (:func:`hub.commands.fleet.complete_clusters`).
"""

from __future__ import annotations

import click
from click import shell_completion

__all__ = ["COMPLETE_VAR", "completion"]

#: The environment variable the script sets to ask `convoy` for completions (see hub.cli.main).
COMPLETE_VAR = "_CONVOY_COMPLETE"


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the completion script for SHELL: commands, options and cluster names.

    \\b
    Examples:
      source <(convoy completion bash)                          # in ~/.bashrc
      convoy completion zsh > "${fpath[1]}/_convoy"             # then restart zsh
      convoy completion fish > ~/.config/fish/completions/convoy.fish
    """
    root = click.get_current_context().find_root().command
    cls = shell_completion.get_completion_class(shell)
    if cls is None:  # not reached: click.Choice holds only the shells click supports
        raise click.BadParameter(f"no completion for {shell}")
    click.echo(cls(root, {}, "convoy", COMPLETE_VAR).source())
