"""What `convoy sandbox up` prints for the user to type next, when convoy is not on their PATH."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.commands import sandbox


def _venv(tmp_path: Path, *, activate: bool) -> Path:
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "convoy").write_text("#!/bin/sh\n")
    if activate:
        (bin_dir / "activate").write_text("")
    return bin_dir


def test_convoy_on_path_is_typed_as_is(tmp_path: Path) -> None:
    bin_dir = _venv(tmp_path, activate=True)
    assert sandbox.convoy_command(found=str(bin_dir / "convoy"), bin_dir=bin_dir) == ("convoy", None)


def test_after_make_demo_the_venv_is_activated_first(tmp_path: Path) -> None:
    # `make demo` runs .venv/bin/convoy; the user's shell has no convoy (or another one) on PATH.
    bin_dir = _venv(tmp_path, activate=True)
    for found in (None, "/usr/local/bin/convoy"):
        assert sandbox.convoy_command(found=found, bin_dir=bin_dir) == ("convoy", f"source {bin_dir / 'activate'}")


def test_without_an_activate_script_the_full_path_is_printed(tmp_path: Path) -> None:
    bin_dir = _venv(tmp_path, activate=False)
    assert sandbox.convoy_command(found=None, bin_dir=bin_dir) == (str(bin_dir / "convoy"), None)


def test_the_pointer_lives_in_the_xdg_state_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert sandbox.pointer_path() == tmp_path / "convoy" / "sandbox.json"
