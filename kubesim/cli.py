"""``kubesim serve``."""

from __future__ import annotations

import click

__all__ = ["main"]


@click.group()
def main() -> None:
    """The Kubernetes API emulator."""
