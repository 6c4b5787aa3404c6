"""``convoy spoke ...``: run and install the agent."""

from __future__ import annotations

import click

from spoke.install import install
from spoke.settings import run

__all__ = ["spoke"]


@click.group()
def spoke() -> None:
    """Run or install the spoke agent."""


spoke.add_command(run)
spoke.add_command(install)
