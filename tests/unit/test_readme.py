"""Every `convoy ...` command shown in the README parses against the real CLI (flags and arguments)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from hub.cli import cli

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    commands: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("convoy "):
                commands.append(line)
    return commands


def parse(argv: list[str]) -> click.Context:
    """Parse like click would, down to the leaf command, without running anything."""
    command: click.Command = cli
    ctx = command.make_context("convoy", list(argv))
    while isinstance(command, click.Group):
        name, *rest = [*ctx.protected_args, *ctx.args]
        sub = command.get_command(ctx, name)
        assert sub is not None, f"unknown command {name!r} in {argv}"
        command = sub
        ctx = command.make_context(name, rest, parent=ctx)
    return ctx


def test_the_readme_shows_commands() -> None:
    assert len(readme_commands()) >= 10


@pytest.mark.parametrize("line", readme_commands())
def test_readme_command_parses(line: str) -> None:
    parse(shlex.split(line)[1:])
