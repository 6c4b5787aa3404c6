"""Fixtures for kubesim's own tests: one server per module, a fresh cluster per test."""

from __future__ import annotations

import itertools
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from kubesim.testing import KubeSim

_names = itertools.count()


@pytest.fixture(scope="module")
def sim() -> Iterator[KubeSim]:
    with KubeSim(clusters=0, workload_delay=0.05, crd_establish_delay=0.02) as server:
        yield server


@pytest.fixture
def cluster(sim: KubeSim) -> str:
    name = f"t{next(_names)}"
    sim.add_cluster(name)
    return name


@pytest.fixture
def api(sim: KubeSim, cluster: str) -> Iterator[client.ApiClient]:
    api_client: Any = sim.api_client(cluster)
    yield api_client
    api_client.close()


@pytest.fixture
def kubeconfig(sim: KubeSim, cluster: str, tmp_path: pathlib.Path) -> pathlib.Path:
    return sim.write_kubeconfig(tmp_path / "kubeconfig", [cluster])
