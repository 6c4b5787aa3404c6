"""``convoy build DIR``: build one kustomization directory exactly as the hub's engine would.

Native when the kustomization stays inside the native subset, else the external
tool, with the reason on stderr; ``--native-only`` fails instead, naming the
feature. Output is the objects as YAML documents (or a JSON list). Every error
is one line on stderr and exit code 1.
"""

from __future__ import annotations

import json
import os
from typing import Any

import click
import yaml

from hub.render.kustomize import BuildOptions, BuildResult, external
from hub.render.kustomize import build as build_kustomization
from hub.tree import repofs
from hub.tree.errors import RenderError

__all__ = ["build", "format_objects"]


def format_objects(objects: list[dict[str, Any]], output: str) -> str:
    """The objects as multi-document YAML (kubectl kustomize's layout) or a JSON list."""
    if output == "json":
        return json.dumps(objects, indent=2, sort_keys=True) + "\n"
    return "---\n".join(yaml.safe_dump(obj, sort_keys=True, default_flow_style=False) for obj in objects)


def _run(directory: str, *, native_only: bool) -> BuildResult:
    absolute = os.path.realpath(directory)
    fs = repofs.DirectoryFS(_view_root(absolute))
    return build_kustomization(fs, os.path.relpath(absolute, fs.root),
                               options=BuildOptions(allow_external=not native_only))


def _view_root(absolute: str) -> str:
    """Where the repository view starts: the enclosing Git working tree, else just above what DIR uses.

    Paths in messages are relative to it, and nothing above it can be read.
    """
    probe = absolute
    while True:
        if os.path.exists(os.path.join(probe, ".git")):
            return probe
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    # No repository: the deepest directory holding DIR and every base it reaches, and one more
    # level so that messages name DIR itself ("app/kustomization.yaml").
    needed = "/" + external.needed_root(repofs.DirectoryFS("/"), [absolute.lstrip("/")])
    return os.path.dirname(needed) if needed != "/" else needed


@click.command(name="build")
@click.argument("directory", type=click.Path(file_okay=False, dir_okay=True))
@click.option("--native-only", is_flag=True, help="Fail instead of handing unsupported features to kustomize.")
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
def build(directory: str, native_only: bool, output: str) -> None:
    """Build one kustomization DIRECTORY as the hub would (for debugging overlays).

    What kustomize accepts but a cluster will refuse (a generated ConfigMap key with a space) is built,
    with a "warning:" line on stderr.

    \b
    Examples:
      convoy build fleet-config/apps/web/overlays/env/prod
      convoy build apps/web/base --native-only
    """
    if not os.path.isdir(directory):
        raise click.ClickException(f"{directory}: no such directory")
    try:
        result = _run(directory, native_only=native_only)
    except RenderError as exc:
        raise click.ClickException(str(exc)) from None
    if result.engine == "external":
        click.echo(f"built by the external kustomize: {result.external_reason}", err=True)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(format_objects(result.objects, output), nl=False)
