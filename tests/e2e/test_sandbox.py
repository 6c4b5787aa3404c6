"""`make demo` runs `convoy sandbox up`: it must converge, roll a change to the right clusters and fix drift."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_sandbox_walkthrough_completes(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hub", "sandbox", "up", "--clusters", "4", "--workdir", str(tmp_path / "sb"),
         "--timeout", "120"], capture_output=True, text=True, timeout=400, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "All 4 clusters Ready" in output
    # dev-eu-1, prod-ap-1, prod-eu-1, prod-us-1: the prod overlay bump moves exactly the prod ones.
    assert "Rolled forward in" in output and "prod-ap-1, prod-eu-1, prod-us-1." in output
    assert "Untouched (same digest, nothing re-applied): dev-eu-1." in output
    assert "Drift detected and corrected" in output
    assert "records it:" in output
    assert "Traceback" not in output
