"""`convoy drift adopt` (issue 21 part 1) against a real hub and a real Git repository of the sample fleet.

Stand-in spokes report drift as a spoke does; the real CLI writes the patches on a new branch without
touching the working tree, and `convoy preview` of that branch shows exactly the drifted clusters change.
"""

from __future__ import annotations

import json
from pathlib import Path

import git
import pytest
import yaml
from grpc import aio

from hub.commands import hubserve
from protos.codec import pb
from tests.integration.hub_harness import (
    GIT_ENV,
    Spoke,
    admin_of,
    channel,
    convoy,
    hub_settings,
    running_hub,
    sample_repo,
)

WEB = pb.ObjectRef(group="apps", kind="Deployment", namespace="shop", name="web")
VIEWER = pb.ObjectRef(group="rbac.authorization.k8s.io", kind="ClusterRole", name="platform-viewer")
ACCOUNT = pb.ObjectRef(kind="ServiceAccount", namespace="platform-system", name="platform-viewer")
PROD = {"prod-eu-1": {"env": "prod", "region": "eu"}, "prod-us-1": {"env": "prod", "region": "us"},
        "prod-ap-1": {"env": "prod", "region": "ap"}}


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in GIT_ENV.items():
        monkeypatch.setenv(name, value)


def _item(ref: pb.ObjectRef, app: str, *fields: tuple[str, str, str], kind: str = "modified") -> pb.DriftItem:
    item = pb.DriftItem(ref=ref, app=app, kind_of_drift=kind, managers=["kubectl"],
                        fields=[pb.FieldDrift(path=p, desired=d, live=v) for p, d, v in fields])
    item.detected_at.FromJsonString("2026-12-05T10:00:00Z")
    return item


async def _spokes(hub: hubserve.RunningHub, ch: aio.Channel, drift: dict[str, list[pb.DriftItem]]) -> None:
    """Register each cluster (names declared in Git need an any-name token) and report its drift."""
    admin = admin_of(hub, ch)
    token = (await admin.call("CreateToken", pb.CreateTokenRequest(ttl_seconds=600, uses=len(drift),
                                                                   any_name=True))).token
    for name, items in drift.items():
        spoke = Spoke(ch)
        await spoke.register(token, name, PROD.get(name, {}))
        await spoke.report(phase=pb.PHASE_DRIFTED, drift=items)


def _show(repo: git.Repo, rev: str, path: str) -> str:
    return str(repo.git.show(f"{rev}:{path}"))


async def _preview(hub: hubserve.RunningHub, tmp_path: Path, repo: git.Repo, branch: str) -> dict[str, str]:
    result = await convoy(hub, tmp_path, "preview", "--repo", str(repo.working_tree_dir), "--base", "master"
                          if "master" in repo.heads else "main", "--head", branch, "-o", "json")
    assert result.exit_code == 0, result.output
    return {c["cluster"]: c["status"] for c in json.loads(result.output)["clusters"]}


async def test_adopt_writes_the_cluster_layer_on_a_new_branch_and_preview_shows_only_that_cluster(
        tmp_path: Path) -> None:
    repo, head = sample_repo(tmp_path)
    (Path(str(repo.working_tree_dir)) / "notes.txt").write_text("uncommitted, must stay as it is\n")
    settings = hub_settings(tmp_path / "hub", Path(str(repo.working_tree_dir)))
    async with running_hub(settings) as hub, channel(hub) as ch:
        await _spokes(hub, ch, {"prod-us-1": [_item(WEB, "web", (".spec.replicas", "3", "5"),
                                                    ('.spec.template.spec.containers[name="web"].image',
                                                     '"nginx:1.27"', '"nginx:1.28"'))],
                                "prod-ap-1": []})
        dry = await convoy(hub, tmp_path, "drift", "adopt", "prod-us-1", "--repo", str(repo.working_tree_dir),
                           "--branch", "adopt-us", "--dry-run")
        assert dry.exit_code == 0, dry.output
        assert "--- clusters/prod-us-1/web/kustomization.yaml" in dry.output and "replicas: 5" in dry.output
        assert "--- commit message (branch adopt-us)\nAdopt manual change on prod-us-1" in dry.output
        assert [h.name for h in repo.heads] == [repo.active_branch.name]  # a dry run makes no branch
        result = await convoy(hub, tmp_path, "drift", "adopt", "prod-us-1", "--repo", str(repo.working_tree_dir),
                              "--branch", "adopt-us")
        assert result.exit_code == 0, result.output
        assert "branch adopt-us" in result.output and "clusters/prod-us-1/web/kustomization.yaml" in result.output
        # The working tree, its uncommitted file and the checked-out branch are untouched.
        assert repo.head.commit.hexsha == head and repo.active_branch.name in ("main", "master")
        assert repo.untracked_files == ["notes.txt"] and not repo.is_dirty()
        commit = repo.commit("adopt-us")
        assert commit.parents[0].hexsha == head
        subject, _, body = str(commit.message).partition("\n\n")
        assert subject == ("Adopt manual change on prod-us-1: Deployment/web .spec.replicas, "
                           '.spec.template.spec.containers[name="web"].image')
        assert "changed by kubectl, detected 2026-12-05T10:00:00Z" in body and ".spec.replicas: 3 -> 5" in body
        assert commit.author.name == GIT_ENV["GIT_AUTHOR_NAME"]
        layer = yaml.safe_load(_show(repo, "adopt-us", "clusters/prod-us-1/web/kustomization.yaml"))
        assert layer["kind"] == "Component" and len(layer["patches"]) == 1
        assert yaml.safe_load(layer["patches"][0]["patch"])["spec"]["replicas"] == 5
        assert _show(repo, "adopt-us", "fleet.yaml") == _show(repo, head, "fleet.yaml")
        statuses = await _preview(hub, tmp_path, repo, "adopt-us")
        assert {name for name, status in statuses.items() if status != "unchanged"} == {"prod-us-1"}

        # A cluster without drift: a clear refusal, no branch.
        result = await convoy(hub, tmp_path, "drift", "adopt", "prod-ap-1", "--repo", str(repo.working_tree_dir))
        assert result.exit_code == 1 and "cluster prod-ap-1: the hub has no drift reported" in result.output


async def test_adopt_appends_to_an_existing_layer_and_wires_a_missing_cluster_layer(tmp_path: Path) -> None:
    repo, head = sample_repo(tmp_path)
    settings = hub_settings(tmp_path / "hub", Path(str(repo.working_tree_dir)))
    async with running_hub(settings) as hub, channel(hub) as ch:
        await _spokes(hub, ch, {"prod-eu-1": [
            _item(WEB, "web", ('.spec.template.spec.containers[name="web"].image', '"nginx:1.27"', '"nginx:1.28"')),
            _item(VIEWER, "platform", (".metadata.labels.team", "<absent>", '"sre"')),
            _item(ACCOUNT, "platform", (".metadata.labels.team", "<absent>", '"sre"'))]})
        result = await convoy(hub, tmp_path, "drift", "adopt", "prod-eu-1", "--repo", str(repo.working_tree_dir),
                              "--branch", "adopt-eu")
        assert result.exit_code == 0, result.output
        layer_path = "clusters/prod-eu-1/web/kustomization.yaml"
        before, after = _show(repo, head, layer_path), _show(repo, "adopt-eu", layer_path)
        assert after.startswith(before)  # the comments and the earlier patch stay as they were
        assert [p.get("target", {}).get("kind") for p in yaml.safe_load(after)["patches"]] == [None, "Deployment"]
        # platform had no clusterLayer: fleet.yaml gets one (comments kept), and the layer is created.
        fleet_before, fleet_after = _show(repo, head, "fleet.yaml"), _show(repo, "adopt-eu", "fleet.yaml")
        assert fleet_after.count("# ") == fleet_before.count("# ")
        platform = yaml.safe_load(fleet_after)["apps"][0]
        assert platform["name"] == "platform" and platform["clusterLayer"] == "clusters/{cluster}/{app}"
        assert fleet_after.count("clusterLayer:") == fleet_before.count("clusterLayer:") + 1
        platform_layer = yaml.safe_load(_show(repo, "adopt-eu", "clusters/prod-eu-1/platform/kustomization.yaml"))
        # The ServiceAccount names its own namespace (platform has no app namespace): the target says it.
        assert [p["target"].get("namespace") for p in platform_layer["patches"]] == [None, "platform-system"]
        assert "clusters/prod-eu-1/platform/kustomization.yaml" in result.output
        statuses = await _preview(hub, tmp_path, repo, "adopt-eu")
        assert {name for name, status in statuses.items() if status != "unchanged"} == {"prod-eu-1"}


async def test_selector_adopts_one_shared_overlay_or_names_the_clusters_that_differ(tmp_path: Path) -> None:
    repo, _ = sample_repo(tmp_path)
    image = ('.spec.template.spec.containers[name="web"].image', '"nginx:1.27"', '"nginx:1.29"')
    settings = hub_settings(tmp_path / "hub", Path(str(repo.working_tree_dir)))
    async with running_hub(settings) as hub, channel(hub) as ch:
        await _spokes(hub, ch, {"prod-eu-1": [_item(WEB, "web", image)], "prod-us-1": [_item(WEB, "web", image)],
                                "prod-ap-1": [_item(WEB, "web", (image[0], image[1], '"nginx:1.30"'))]})
        result = await convoy(hub, tmp_path, "drift", "adopt", "prod-eu-1", "--repo", str(repo.working_tree_dir),
                              "--selector", "env=prod")
        assert result.exit_code == 1
        assert "did not drift the way prod-eu-1 did" in result.output and "prod-ap-1" in result.output
        assert [h.name for h in repo.heads] == [repo.active_branch.name]  # no branch left behind

        # The overlay would also reach dev-eu-1 and staging-eu-1 (declared in Git, no report): refused.
        result = await convoy(hub, tmp_path, "drift", "adopt", "prod-eu-1", "--repo", str(repo.working_tree_dir),
                              "--selector", "region in (eu,us)")
        assert result.exit_code == 1 and "no report from: dev-eu-1, staging-eu-1" in result.output

        selector = "env=prod,region in (eu,us)"
        result = await convoy(hub, tmp_path, "drift", "adopt", "prod-eu-1", "--repo", str(repo.working_tree_dir),
                              "--selector", selector, "--branch", "adopt-eu-us")
        assert result.exit_code == 0, result.output
        web = next(a for a in yaml.safe_load(_show(repo, "adopt-eu-us", "fleet.yaml"))["apps"] if a["name"] == "web")
        overlay = web["overlays"][-1]
        assert overlay["selector"] == selector
        assert overlay["path"].startswith("apps/web/overlays/adopted/deployment-web-")
        statuses = await _preview(hub, tmp_path, repo, "adopt-eu-us")
        assert {name for name, status in statuses.items() if status != "unchanged"} == {"prod-eu-1", "prod-us-1"}


async def test_secret_data_is_refused_and_names_convoy_seal(tmp_path: Path) -> None:
    repo, _ = sample_repo(tmp_path)
    secret = pb.ObjectRef(kind="Secret", namespace="shop", name="db")
    settings = hub_settings(tmp_path / "hub", Path(str(repo.working_tree_dir)))
    async with running_hub(settings) as hub, channel(hub) as ch:
        await _spokes(hub, ch, {"prod-us-1": [_item(secret, "web", (".data.password", "<redacted>", "<redacted>"))]})
        result = await convoy(hub, tmp_path, "drift", "adopt", "prod-us-1", "--repo", str(repo.working_tree_dir))
        assert result.exit_code == 1, result.output
        assert "Secret/shop/db .data.password" in result.output and "convoy seal" in result.output
