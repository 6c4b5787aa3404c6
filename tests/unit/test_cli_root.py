"""The root `convoy` command: every group registered one way, and a broken import is never hidden."""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from hub import cli as root
from protos import version

ROOT = Path(__file__).resolve().parents[2]


def _declared() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return dict(project["entry-points"][root.ENTRY_POINT_GROUP])


def test_every_command_group_is_an_entry_point_and_the_install_is_current() -> None:
    declared = _declared()
    assert {"hub", "spoke", "status", "render", "sandbox"} <= set(declared)
    installed = {entry.name: entry.value for entry in metadata.entry_points(group=root.ENTRY_POINT_GROUP)}
    # A stale editable install hides new commands; `pip install -e .` (or `make venv`) refreshes it.
    assert installed == declared
    context = click.Context(root.cli)
    assert root.cli.list_commands(context) == sorted(declared)
    for name in declared:
        assert isinstance(root.cli.get_command(context, name), click.Command), name


def test_the_root_command_names_no_side() -> None:
    source = (ROOT / "hub/cli.py").read_text(encoding="utf-8")
    assert "hub.commands" not in source and "spoke.cli" not in source


@pytest.mark.parametrize("command", ["build", "spoke"])
def test_a_broken_import_inside_the_project_is_reported_not_hidden(
        command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    module = _declared()[command].split(":")[0]
    # `None` in sys.modules makes the import fail with ModuleNotFoundError naming the project module,
    # as a module renamed without its importers would.
    monkeypatch.setitem(sys.modules, module, None)
    result = CliRunner().invoke(root.cli, [command, "--help"])
    assert isinstance(result.exception, ModuleNotFoundError) and result.exception.name == module
    assert "No such command" not in result.output
    listing = CliRunner().invoke(root.cli, ["--help"])
    assert isinstance(listing.exception, ModuleNotFoundError)


def test_a_missing_extra_names_the_extra_and_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = metadata.EntryPoint(name="demo", value="no_such_dependency_xyz:cmd [hub]", group=root.ENTRY_POINT_GROUP)
    monkeypatch.setattr(root, "_registered", lambda: {"demo": entry})
    listing = CliRunner().invoke(root.cli, ["--help"])
    assert listing.exit_code == 0 and "(needs convoy-fleet[hub])" in listing.output
    result = CliRunner().invoke(root.cli, ["demo", "serve", "--help"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert ("`convoy demo` needs convoy-fleet[hub] (no_such_dependency_xyz is not installed): "
            "pip install 'convoy-fleet[hub]'") in result.output


@pytest.mark.parametrize(("shell", "marker"), [
    ("bash", "complete -o nosort -F _convoy_completion convoy"),
    ("zsh", "#compdef convoy"), ("fish", "complete --no-files --command convoy")])
def test_completion_prints_a_script_for_each_shell(shell: str, marker: str) -> None:
    result = CliRunner().invoke(root.cli, ["completion", shell])
    assert result.exit_code == 0, result.output
    assert marker in result.output and "_CONVOY_COMPLETE" in result.output
    assert CliRunner().invoke(root.cli, ["completion", "tcsh"]).exit_code == 2


def test_version_client_only_asks_no_hub(tmp_path: Path) -> None:
    result = CliRunner().invoke(root.cli, ["version", "--client"], env={"CONVOY_CONFIG": str(tmp_path / "none.yaml")})
    assert result.exit_code == 0, result.output
    assert result.output == f"Client Version: {version.installed()}\n"


def _leaves(command: click.Command, path: tuple[str, ...],
            ctx: click.Context) -> list[tuple[tuple[str, ...], click.Command]]:
    if not isinstance(command, click.Group):
        return [(path, command)]
    found = []
    for name in command.list_commands(ctx):
        sub = command.get_command(ctx, name)
        if sub is not None and not sub.hidden:
            found += _leaves(sub, (*path, name), ctx)
    return found


def test_every_command_help_has_examples() -> None:
    missing = [" ".join(path) for path, command in _leaves(root.cli, ("convoy",), click.Context(root.cli))
               if "Examples:" not in (command.help or "")]
    assert missing == []


def test_the_missing_extra_hint_names_the_distribution_pyproject_builds() -> None:
    # `pip install 'convoy[hub]'` would install someone else's project from the public index.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == root.DISTRIBUTION == "convoy-fleet"
    assert metadata.distribution(root.DISTRIBUTION).entry_points.select(group=root.ENTRY_POINT_GROUP)
