"""kstatus health rules, one case per YAML fixture in tests/testdata/health."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from protos.status import HealthStatus
from spoke import health

FIXTURES = sorted((Path(__file__).parent.parent / "testdata" / "health").glob("*.yaml"))


def _load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        data: dict[str, Any] = yaml.load(f, Loader=yaml.CSafeLoader)
    return data


def test_there_are_enough_fixtures() -> None:
    assert len(FIXTURES) >= 40


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_fixture(path: Path) -> None:
    case = _load(path)
    result = health.compute(case["object"])
    assert result.status == HealthStatus(case["expect"]["status"]), result.reason
    assert case["expect"]["reason"] in result.reason


def test_compute_does_not_mutate_the_object() -> None:
    case = _load(next(p for p in FIXTURES if p.stem == "deployment-ready"))
    before = yaml.safe_dump(case["object"])
    health.compute(case["object"])
    assert yaml.safe_dump(case["object"]) == before


def test_every_status_is_reachable_from_the_fixtures() -> None:
    seen = {HealthStatus(_load(p)["expect"]["status"]) for p in FIXTURES}
    assert seen == set(HealthStatus)

