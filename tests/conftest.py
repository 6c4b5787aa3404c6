"""Fixtures every test layer shares.

PostgreSQL tests run whenever the server is reachable; under CI=true a missing
server is a failure, not a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator

import pytest

POSTGRES_URL = os.environ.get(
    "CONVOY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _postgres_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of a reachable PostgreSQL server (mandatory in CI)."""
    if not _postgres_reachable():
        if IN_CI:
            pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432 and CI requires it")
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    return POSTGRES_URL


@pytest.fixture(scope="session")
def kubectl() -> str:
    """Path of kubectl, the oracle for kubesim and the native renderer (mandatory in CI)."""
    path = shutil.which("kubectl")
    if path is None:
        if IN_CI:
            pytest.fail("kubectl is not on PATH and CI requires it as the oracle")
        pytest.skip("kubectl is not on PATH")
    return path


@pytest.fixture
def isolated_home(tmp_path: os.PathLike[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A HOME of its own, so CLI config and kubectl caches never touch the user's."""
    home = os.fspath(tmp_path) + "/home"
    os.makedirs(home)
    monkeypatch.setenv("HOME", home)
    monkeypatch.setenv("XDG_CONFIG_HOME", home + "/.config")
    yield home


# -- kubesim: the Kubernetes API emulator (owned by kubesim; see kubesim/testing.py) ---------------

from typing import TYPE_CHECKING  # noqa: E402  (kept with the fixtures it serves)

if TYPE_CHECKING:
    from kubesim.testing import KubeSim

_kube_cluster_names = iter(range(1_000_000))


@pytest.fixture(scope="session")
def kubesim_server() -> Iterator[KubeSim]:
    """One kubesim for the session, started with no clusters; add them with ``kube_cluster``."""
    from kubesim.testing import KubeSim

    with KubeSim(clusters=0) as server:
        yield server


@pytest.fixture
def kube_cluster(kubesim_server: KubeSim) -> str:
    """A fresh, uniquely named cluster on the session's kubesim; use ``kubesim_server.api_client(name)``."""
    name = f"kc{next(_kube_cluster_names)}"
    kubesim_server.add_cluster(name)
    return name
