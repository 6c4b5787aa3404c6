"""Fixtures of the integration tests: a real fleet Git repository and the hub's databases.

The helpers they are built on (``FleetRepo``, the running hub, the stand-in spoke and admin
clients) are in ``hub_harness.py``; the stand-in hub for spoke tests is in ``spoke_harness.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.hub_harness import FleetRepo, fresh_postgres, standard_fleet


@pytest.fixture
def fleet_repo(tmp_path: Path) -> FleetRepo:
    """A Git repository holding the standard one-app fleet, committed once on ``main``."""
    repo = FleetRepo(tmp_path / "fleet")
    standard_fleet(repo)
    return repo


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """None (the hub's default SQLite in its data dir) or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    server = request.getfixturevalue("postgres_url")
    with fresh_postgres(server) as url:
        yield url
