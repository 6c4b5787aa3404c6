"""Issue 13 item 2 through a running hub: helm runs only when the hub's operator enabled it (setting
``allow_helm``), never because a commit asks; fleet.yaml's ``render: {external: allow}`` is not enough."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from protos.codec import pb
from tests.integration.hub_harness import (
    FleetRepo,
    admin_of,
    channel,
    hub_settings,
    registered_spoke,
    running_hub,
)

pytestmark = pytest.mark.kubectl

HELM_LAYER = """\
apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
helmCharts:
- {name: web, repo: 'https://charts.example.com', version: 1.0.0, releaseName: web}
"""


@pytest.fixture
def helm_marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marker = tmp_path / "helm-ran"
    (bin_dir / "helm").write_text(f"#!/bin/sh\necho \"$@\" >> {marker}\nexit 1\n")
    (bin_dir / "helm").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return marker


@pytest.mark.parametrize("allow_helm", [False, True])
async def test_helm_needs_the_hub_setting_not_the_commit(allow_helm: bool, tmp_path: Path, fleet_repo: FleetRepo,
                                                         helm_marker: Path, kubectl: str) -> None:
    settings = hub_settings(tmp_path / "hub", fleet_repo, allow_helm=allow_helm)
    async with running_hub(settings) as hub, channel(hub) as ch:
        await registered_spoke(hub, ch, "good")
        await registered_spoke(hub, ch, "bad")
        fleet = (fleet_repo.path / "fleet.yaml").read_text()
        fleet_repo.commit({"fleet.yaml": fleet + "render: {external: allow}\n",
                           "clusters/bad/web/kustomization.yaml": HELM_LAYER})
        admin = admin_of(hub, ch)
        await admin.call("SyncNow", pb.SyncNowRequest())
        errors = (await admin.call("GetCluster", pb.GetClusterRequest(name="bad"))).render_errors
        assert not (await admin.call("GetCluster", pb.GetClusterRequest(name="good"))).render_errors
        assert len(errors) == 1
        if allow_helm:
            assert helm_marker.exists()  # the operator's choice: helm ran (and this fake one failed)
            assert "external kubectl kustomize failed" in errors[0]
        else:
            assert "clusters/bad/web/kustomization.yaml: helmCharts: running helm is disabled on this hub" \
                in errors[0]
            assert not helm_marker.exists()
