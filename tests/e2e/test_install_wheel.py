"""What `pip install 'convoy-fleet[...]'` gives a new user: the built wheel in fresh virtualenvs.

The wheel is built from a copy of the sources (`pip wheel`), then installed with each extra set
into its own venv (dependencies from the pip cache or the configured index) and run from outside
the source tree, so nothing here can borrow a module from the checkout. With the hub and spoke extras
a real `convoy sandbox up` runs to the end from the installed package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: What the wheel is built from: the packages, the metadata, and the sample fleet behind hub/sample_fleet.
SOURCES = ["pyproject.toml", "README.md", "hub", "spoke", "protos", "kubesim", "fleet-config"]
VERSION = "0.1.0"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("wheel")
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
    out = base / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)],
                   check=True, capture_output=True, timeout=600)
    (built,) = out.glob("*.whl")
    assert built.name == f"convoy_fleet-{VERSION}-py3-none-any.whl"
    return built


class Venv:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.bin = path / "bin"
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
        # Nothing from the caller's environment points Python at the checkout or another venv.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        self.env["PATH"] = os.pathsep.join(p for p in self.env.get("PATH", "").split(os.pathsep)
                                           if Path(p).resolve() != (ROOT / ".venv" / "bin").resolve())

    def install(self, wheel: Path, extras: str) -> None:
        requirement = f"{wheel}[{extras}]" if extras else str(wheel)
        result = subprocess.run([str(self.bin / "python"), "-m", "pip", "install", "-q",
                                 "--disable-pip-version-check", requirement],
                                capture_output=True, text=True, env=self.env, timeout=900, check=False)
        assert result.returncode == 0, result.stderr[-3000:]

    def run(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.bin / args[0]), *args[1:]], capture_output=True, text=True,
                              env={**self.env, **env}, cwd=self.path.parent, timeout=timeout, check=False)


def _installed(tmp_path: Path, wheel: Path, extras: str) -> Venv:
    venv = Venv(tmp_path / "venv")
    venv.install(wheel, extras)
    # The packages come from the venv, not from the checkout.
    where = venv.run("python", "-c", "import hub, spoke, protos, kubesim; print(hub.__file__)")
    assert where.returncode == 0 and where.stdout.startswith(str(venv.path)), where
    version = venv.run("convoy", "--version")
    assert (version.returncode, version.stdout.strip()) == (0, f"convoy, version {VERSION}"), version
    return venv


def _needs(result: subprocess.CompletedProcess[str], command: str, extra: str) -> None:
    """One line naming the extra to install, exit 2, no traceback."""
    line = result.stderr.strip()
    assert result.returncode == 2 and "\n" not in line, result
    assert line.startswith(f"Error: `convoy {command}` needs convoy-fleet[{extra}] ("), line
    assert line.endswith(f" is not installed): pip install 'convoy-fleet[{extra}]'"), line


def test_base_install(tmp_path: Path, wheel: Path) -> None:
    venv = _installed(tmp_path, wheel, "")
    assert venv.run("convoy", "status", "--help").returncode == 0
    _needs(venv.run("convoy", "sandbox", "up", "--help"), "sandbox", "all")
    _needs(venv.run("convoy", "hub", "serve", "--help"), "hub", "hub")


def test_spoke_extra(tmp_path: Path, wheel: Path) -> None:
    venv = _installed(tmp_path, wheel, "spoke")
    assert venv.run("convoy", "spoke", "run", "--help").returncode == 0
    assert venv.run("python", "-c", "import sqlmodel").returncode != 0, "the spoke extra pulled in SQLModel"
    _needs(venv.run("convoy", "sandbox", "up", "--help"), "sandbox", "all")
    _needs(venv.run("convoy", "hub", "serve", "--help"), "hub", "hub")


def test_hub_extra_then_a_real_sandbox(tmp_path: Path, wheel: Path) -> None:
    venv = _installed(tmp_path, wheel, "hub")
    assert venv.run("convoy", "hub", "serve", "--help").returncode == 0
    # The case: a spoke command with only the hub extra says which extra, no traceback.
    _needs(venv.run("convoy", "spoke", "run", "--hub", "127.0.0.1:1", "--cluster", "c", "--insecure"),
           "spoke", "spoke")
    assert venv.run("convoy", "sandbox", "up", "--help").returncode == 0
    # The sandbox runs spokes too: it says so before it starts anything.
    _needs(venv.run("convoy", "sandbox", "up"), "sandbox", "all")

    venv.install(wheel, "all")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    result = venv.run("convoy", "sandbox", "up", "--clusters", "4", "--timeout", "120", timeout=600,
                      TMPDIR=str(scratch), XDG_STATE_HOME=str(tmp_path / "state"))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "All 4 clusters Ready" in output and "Traceback" not in output
    assert "Rolled forward in" in output and "Drift detected and corrected" in output
    # It ran from the installed package: the sample fleet shipped inside it, the venv's own convoy.
    assert f"source {venv.bin / 'activate'}" in output
    # Without --keep the temporary work directory goes with the sandbox.
    assert not list(scratch.glob("convoy-sandbox-*"))
