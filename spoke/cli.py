"""``convoy spoke ...``: run and install the agent."""

from __future__ import annotations

import click

__all__ = ["spoke"]


@click.group()
def spoke() -> None:
    """Run or install the spoke agent."""
