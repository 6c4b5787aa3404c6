"""Every ``--flag`` README.md and docs/*.md name is a flag of the real program, and help shows real defaults.

Attribution: a ``convoy X Y ...`` line of a code block, or an inline code span that starts with
``convoy X Y``, names flags of the command ``convoy X Y`` (or of any command it names with ``a|b``);
``python -m kubesim``/``kubesim`` and ``python -m bench`` likewise. Spans and lines of other tools
(``kubectl``, ``kubeadm``, ``git``...) are not ours and are skipped. Any other ``--flag`` in the text
(prose like "`--poll-interval` (15 s)") must be a flag of *some* command in the tree.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bench.__main__ import build_parser as bench_parser
from hub import settings as hub_settings
from hub.cli import cli
from kubesim.cli import main as kubesim_cli
from spoke import settings as spoke_settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
#: Other people's tools: their flags are not ours to check.
FOREIGN = {"kubectl", "kubeadm", "kustomize", "git", "pip", "helm", "ssh-keygen", "gpg", "curl", "docker",
           "pytest", "ruff", "mypy", "lint-imports", "python3", "make", "skopeo", "docker-registry", "sops", "age",
           "age-keygen", "npm", "gh"}


@dataclasses.dataclass(frozen=True)
class Mention:
    where: str             #: file:line
    text: str              #: the line or code span the flag was found in
    flag: str
    command: tuple[str, ...] | None   #: ("convoy", "hub", "serve"), or None: any command


def _tree(command: click.Command, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None:
                yield from _tree(sub, (*path, name))


def _flags_of(command: click.Command) -> set[str]:
    flags = {"--help"}
    for param in command.params:
        if isinstance(param, click.Option):
            flags.update(opt for opt in (*param.opts, *param.secondary_opts) if opt.startswith("--"))
    return flags


def _argparse_flags(parser: argparse.ArgumentParser) -> set[str]:
    return {opt for action in parser._actions for opt in action.option_strings if opt.startswith("--")}


def command_flags() -> dict[tuple[str, ...], set[str]]:
    """Command path -> its flags, for the whole ``convoy`` tree, kubesim and bench."""
    table = {path: _flags_of(command) for path, command in _tree(cli, ("convoy",))}
    table["convoy",] |= {"--version"}
    table.update({path: _flags_of(command) for path, command in _tree(kubesim_cli, ("kubesim",))})
    table["bench",] = _argparse_flags(bench_parser())
    return table


def _command_of(words: list[str], table: dict[tuple[str, ...], set[str]]) -> tuple[tuple[str, ...], ...] | None:
    """The command paths a line names (several with ``a|b``), or None when it is not one of ours."""
    if words[:3] == ["python", "-m", "kubesim"] or words[:1] == ["kubesim"]:
        root, rest = ("kubesim",), words[3:] if words[0] == "python" else words[1:]
    elif words[:3] == ["python", "-m", "bench"]:
        return (("bench",),)
    elif words[:1] == ["convoy"]:
        root, rest = ("convoy",), words[1:]
    else:
        return None
    paths: list[tuple[str, ...]] = [root]
    for word in rest:
        following = [(*path, name) for path in paths for name in word.replace("\\|", "|").split("|")
                     if (*path, name) in table]
        if not following:
            break
        paths = following
    return tuple(paths)


def _mentions_in(text: str, where: str, table: dict[tuple[str, ...], set[str]]) -> Iterator[Mention]:
    words = text.replace("`", " ").split()
    if not words or words[0] in FOREIGN:
        return
    paths = _command_of(words, table)
    for flag in FLAG.findall(text):
        if paths is None:
            yield Mention(where, text, flag, None)
        else:
            for path in paths:
                yield Mention(where, text, flag, path)


def _blank(match: re.Match[str]) -> str:
    """The matched text as blanks, line breaks kept: offsets and line numbers stay right."""
    return re.sub(r"[^\n]", " ", match.group(0))


def doc_mentions(table: dict[tuple[str, ...], set[str]]) -> list[Mention]:
    found: list[Mention] = []
    for doc in DOCS:
        text = doc.read_text()
        name = doc.relative_to(ROOT)
        # Code blocks first, line by line (shell continuations joined); then the prose around them,
        # where an inline code span may wrap onto the next line.
        prose = re.sub(r"^```.*?^```", _blank, text, flags=re.S | re.M)
        for block in re.finditer(r"^```[^\n]*\n(.*?)^```", text, re.S | re.M):
            first = text.count("\n", 0, block.start(1)) + 1
            lines = block.group(1).splitlines()
            number = 0
            while number < len(lines):
                line, where = lines[number], f"{name}:{first + number}"
                number += 1
                while line.endswith("\\") and number < len(lines):
                    line = line[:-1] + " " + lines[number].strip()
                    number += 1
                command, _, comment = line.partition(" #")
                found.extend(_mentions_in(command.strip(), where, table))
                # A comment after a command (`convoy rollback ... # until --unpin`) is prose.
                found.extend(Mention(where, line, flag, None) for flag in FLAG.findall(comment))
        for span in re.finditer(r"`([^`]+)`", prose):
            where = f"{name}:{prose.count(chr(10), 0, span.start()) + 1}"
            found.extend(_mentions_in(" ".join(span.group(1).split()), where, table))
        outside = re.sub(r"`[^`]*`", _blank, prose)
        for number, line in enumerate(outside.splitlines(), start=1):
            found.extend(Mention(f"{name}:{number}", line, flag, None) for flag in FLAG.findall(line))
    return found


TABLE = command_flags()
MENTIONS = doc_mentions(TABLE)
EVERY_FLAG = set().union(*TABLE.values())


def test_the_docs_name_flags_and_commands() -> None:
    assert len(MENTIONS) >= 40
    assert any(m.command == ("convoy", "hub", "serve") for m in MENTIONS)
    assert ("convoy", "spoke", "run") in TABLE and ("kubesim", "serve") in TABLE


@pytest.mark.parametrize("mention", MENTIONS, ids=lambda m: f"{m.where}:{m.flag}")
def test_every_flag_in_the_docs_exists(mention: Mention) -> None:
    if mention.command is None:
        assert mention.flag in EVERY_FLAG, f"{mention.where}: {mention.flag} is no flag of any command " \
                                           f"({mention.text.strip()!r})"
    else:
        assert mention.flag in TABLE[mention.command], (
            f"{mention.where}: `{' '.join(mention.command)}` has no flag {mention.flag} "
            f"({mention.text.strip()!r}); it has {', '.join(sorted(TABLE[mention.command]))}")


def test_the_readme_names_hub_flags_that_exist() -> None:
    """The flags the README's hub paragraph recommends are flags of `convoy hub serve`."""
    readme = (ROOT / "README.md").read_text()
    paragraph = readme[readme.index("Every flag also reads"):readme.index("Point your Git host")]
    serve_flags = TABLE["convoy", "hub", "serve"]
    missing = sorted({flag for flag in FLAG.findall(paragraph) if flag not in serve_flags})
    assert not missing, f"README names hub flags `convoy hub serve` does not accept: {missing}"


def _help(*args: str) -> str:
    result = CliRunner().invoke(cli, [*args, "--help"], terminal_width=400)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_every_hub_setting_has_a_flag_whose_help_shows_its_default() -> None:
    text = _help("hub", "serve")
    serve_flags = TABLE["convoy", "hub", "serve"]
    for field in dataclasses.fields(hub_settings.HubSettings):
        flag = "--" + field.name.replace("_", "-")
        if field.metadata.get("secret"):
            assert flag not in serve_flags, f"{flag}: a secret must not be passed in argv"
            continue
        assert flag in serve_flags, f"hub setting {field.name} has no flag {flag}"
        shown = hub_settings.display_default(field)
        own_help = text.split(flag + " ", 1)[1].split(" --", 1)[0]
        if shown:
            assert f"[{shown}]" in own_help, f"{flag}: help {own_help!r} does not show the default [{shown}]"
    assert "[30s]" in text.split("--heartbeat-seconds ", 1)[1].split(" --", 1)[0]
    assert "[256KiB]" in text.split("--inline-bundle-bytes ", 1)[1].split(" --", 1)[0]


def test_spoke_run_help_shows_the_settings_defaults() -> None:
    text = _help("spoke", "run")
    defaults = {field.name: field.default for field in dataclasses.fields(spoke_settings.SpokeSettings)}
    for flag, name in (("--heartbeat", "heartbeat"), ("--health-timeout", "health_timeout"),
                       ("--health-port", "health_port"), ("--namespace", "namespace"),
                       ("--health-host", "health_host")):
        help_text = text.split(flag + " ", 1)[1].split(" --", 1)[0]
        value = defaults[name]
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        assert f"default {shown}" in help_text, f"{flag}: help {help_text!r} does not show the default {shown}"
