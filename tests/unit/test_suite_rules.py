"""The test suite reads as one: shared fixtures in conftest.py, one polling helper, no real sleeps in unit tests."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _sources() -> dict[str, str]:
    return {str(path.relative_to(TESTS)): path.read_text(encoding="utf-8") for path in sorted(TESTS.rglob("*.py"))}


def test_no_test_module_is_imported_as_a_library() -> None:
    # Helpers and fixtures live in conftest.py and *_harness.py, not in modules pytest collects as tests.
    importing = re.compile(r"^\s*(from|import)\s+tests\.\S*\btest_\w+", re.M)
    offenders = [name for name, text in _sources().items() if importing.search(text)]
    assert offenders == []


def test_one_polling_helper() -> None:
    pattern = re.compile(r"^\s*(async\s+)?def\s+_?(poll|wait_for|wait_until|eventually)\b", re.M)
    defining = [name for name, text in _sources().items() if pattern.search(text)]
    assert defining == ["polling.py"]


def test_unit_tests_do_not_sleep_in_real_time() -> None:
    # `asyncio.sleep(0)` only yields to the loop; anything longer is waiting on the wall clock.
    pattern = re.compile(r"\btime\.sleep\(|\basyncio\.sleep\((?!0\))")
    sleeping = [name for name, text in _sources().items() if name.startswith("unit/") and pattern.search(text)]
    assert sleeping == []
