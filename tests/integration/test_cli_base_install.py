"""`pip install convoy-fleet` without extras: the CLI works, and a hub command says which extra it needs.

A real virtualenv holding only the base dependencies of pyproject.toml (from the pip cache / the
configured index) and the project installed with ``--no-deps``. This is what an operator's laptop
or a spoke-less CI job has; the import-linter contracts cannot see a third-party import that a
command module makes at load time, this can.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: What the source distribution needs: the packages, the metadata, and the sample fleet behind hub/sample_fleet.
SOURCES = ["pyproject.toml", "README.md", "hub", "spoke", "protos", "kubesim", "fleet-config"]


@pytest.fixture(scope="module")
def convoy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `convoy` script of a fresh venv with the base dependencies only."""
    base = tmp_path_factory.mktemp("base-install")
    source = base / "src"
    source.mkdir()
    # A copy, so the build writes no build/ or egg-info into the checkout.
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, source / name)
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    subprocess.run([*pip, *dependencies], check=True, capture_output=True)
    subprocess.run([*pip, "--no-deps", str(source)], check=True, capture_output=True)
    return venv / "bin" / "convoy"


def _run(convoy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return subprocess.run([str(convoy), *args], capture_output=True, text=True, timeout=120, env=env,
                          cwd=convoy.parent)


def test_the_venv_really_lacks_the_extras(convoy: Path) -> None:
    python = convoy.parent / "python"
    for module in ("sqlmodel", "git", "kubernetes", "jsonpatch", "aiohttp"):
        probe = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, text=True)
        assert probe.returncode != 0, f"{module} is installed in the base venv"


@pytest.mark.parametrize("args", [
    ["--help"], ["--version"], ["spoke", "--help"], ["spoke", "install", "--help"], ["spoke", "run", "--help"],
    ["status", "--help"], ["token", "--help"], ["config", "--help"],
])
def test_the_cli_works_without_extras(convoy: Path, args: list[str]) -> None:
    result = _run(convoy, *args)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_every_command_and_what_it_needs(convoy: Path) -> None:
    result = _run(convoy, "--help")
    listed = {line.split()[0]: " ".join(line.split()[1:]) for line in result.stdout.splitlines()
              if line.startswith("  ") and not line.strip().startswith("-")}
    assert listed["hub"] == "(needs convoy-fleet[hub])"
    assert listed["spoke"] == "Run or install the spoke agent."
    assert listed["completion"].startswith("Print the completion script")  # needs no extra


@pytest.mark.parametrize(("args", "extra"), [
    (["hub", "serve", "--help"], "hub"), (["render", "--repo", ".", "--cluster", "c"], "hub"),
    (["sandbox", "up"], "all"), (["spoke", "run", "--hub", "127.0.0.1:1", "--cluster", "c", "--insecure"], "spoke"),
])
def test_a_command_that_needs_an_extra_says_which(convoy: Path, args: list[str], extra: str) -> None:
    result = _run(convoy, *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"`convoy {args[0]}` needs convoy-fleet[{extra}]" in result.stderr
    assert f"pip install 'convoy-fleet[{extra}]'" in result.stderr and len(result.stderr.strip().splitlines()) == 1
