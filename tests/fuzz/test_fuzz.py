"""Each fuzz target, run for a bounded time in its own process (atheris fuzzes once per process).

Every run starts by replaying the seed corpus, which holds every crash found so far (``regression-*``),
then mutates for ``SECONDS`` seconds. A crash fails the test with the target's traceback and the path of
the crashing input; turn it into a ``regression-*`` seed and a test in ``test_fuzz_regressions.py``.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
TARGETS = ("kustomize", "fleet", "bundle", "inventory", "requests")
#: Mutation time per target, after the seed corpus is replayed (about a minute and a half for all five).
SECONDS = int(os.environ.get("CONVOY_FUZZ_SECONDS", "12"))

pytest.importorskip("atheris")


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_target_finds_no_crash(target: str, tmp_path: pathlib.Path) -> None:
    seeds = HERE / "corpus" / target
    assert any(seeds.iterdir()), f"no seed corpus in {seeds}"
    work = tmp_path / "corpus"  # new inputs go here, never into the repository's seeds
    work.mkdir()
    run = subprocess.run(
        [sys.executable, str(HERE / f"fuzz_{target}.py"), f"-max_total_time={SECONDS}", "-rss_limit_mb=1024",
         "-max_len=8192", "-timeout=20", f"-artifact_prefix={tmp_path}/", "-print_final_stats=1",
         str(work), str(seeds)],
        capture_output=True, text=True, timeout=SECONDS + 240, check=False)
    crashes = sorted(str(path) for path in tmp_path.iterdir() if path.is_file())
    assert run.returncode == 0 and not crashes, (
        f"fuzz_{target} crashed (exit {run.returncode}); inputs: {crashes}\n{run.stderr[-6000:]}")
    assert "stat::number_of_executed_units" in run.stderr  # it really ran
