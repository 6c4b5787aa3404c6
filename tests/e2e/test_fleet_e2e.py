"""The whole product, end to end: Git commit -> hub -> spokes -> kubesim clusters -> status.

One fleet (5 clusters of the sample) serves the tests in this module, in order.
"""

from __future__ import annotations

import json
import time

import grpc
import pytest
from click.testing import CliRunner, Result
from kubernetes import client as kube
from kubernetes.client.exceptions import ApiException

from hub import localfleet
from hub.cli import cli
from protos.convoy.v1 import convoy_pb2 as pb
from protos.convoy.v1 import convoy_pb2_grpc as pb_grpc

PROD = {"prod-eu-1", "prod-us-1", "prod-ap-1"}
ALL = {"dev-eu-1", "staging-eu-1", *PROD}


def apps(fleet: localfleet.LocalFleet, cluster: str) -> kube.AppsV1Api:
    return kube.AppsV1Api(fleet.api_client(cluster))


def core(fleet: localfleet.LocalFleet, cluster: str) -> kube.CoreV1Api:
    return kube.CoreV1Api(fleet.api_client(cluster))


def image(fleet: localfleet.LocalFleet, cluster: str) -> str:
    return str(apps(fleet, cluster).read_namespaced_deployment("web", "shop").spec.template.spec.containers[0].image)


def settle(fleet: localfleet.LocalFleet, commit: str, clusters: set[str] | None = None,
           timeout: float = 90) -> dict[str, pb.ClusterSummary]:
    with fleet.admin() as admin:
        admin.sync_now()
    names = clusters or ALL
    return localfleet.wait_until(
        lambda: (s := fleet.statuses()) and all(
            s[n].desired_commit == commit and s[n].applied_digest == s[n].desired_digest
            and s[n].phase == pb.PHASE_READY for n in names) and s,
        timeout=timeout, what=f"clusters at commit {commit[:8]}", interval=0.3)


def convoy(fleet: localfleet.LocalFleet, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"CONVOY_CONFIG": str(fleet.cli_config)}, catch_exceptions=False)


def config_resource_versions(fleet: localfleet.LocalFleet, cluster: str) -> dict[str, str]:
    """resourceVersions of objects no controller writes to, so any change means Convoy re-applied."""
    versions = {f"cm/{c.metadata.namespace}/{c.metadata.name}": c.metadata.resource_version
                for c in core(fleet, cluster).list_config_map_for_all_namespaces(
                    label_selector="app.kubernetes.io/managed-by=convoy").items}
    deployment = apps(fleet, cluster).read_namespaced_deployment("web", "shop")
    versions["deploy/shop/web/generation"] = str(deployment.metadata.generation)
    return versions


def test_first_commit_reaches_every_cluster_with_its_own_config(e2e_fleet: localfleet.LocalFleet) -> None:
    statuses = e2e_fleet.statuses()
    assert set(statuses) == ALL
    for name in ALL:
        cm = core(e2e_fleet, name).read_namespaced_config_map("web-config", "shop")
        assert cm.data["CLUSTER_NAME"] == name
        assert statuses[name].objects_total > 0
        assert statuses[name].objects_ready == statuses[name].objects_total
    # The per-cluster layer applies to prod-eu-1 alone.
    annotated = {n for n in ALL
                 if (apps(e2e_fleet, n).read_namespaced_deployment("web", "shop").metadata.annotations or {})
                 .get("demo.convoy.dev/capacity") == "high"}
    assert annotated == {"prod-eu-1"}


def test_group_overlay_changes_only_matching_clusters(e2e_fleet: localfleet.LocalFleet) -> None:
    before = e2e_fleet.statuses()
    overlay = "apps/web/overlays/env/prod/kustomization.yaml"
    text = e2e_fleet.read(overlay)
    assert 'newTag: "1.27"' in text
    sha = e2e_fleet.commit("prod: nginx 1.28", {overlay: text.replace('newTag: "1.27"', 'newTag: "1.28"')})
    after = settle(e2e_fleet, sha)
    for name in PROD:
        assert after[name].desired_digest != before[name].desired_digest
        assert image(e2e_fleet, name) == "nginx:1.28"
    for name in ALL - PROD:
        assert after[name].desired_digest == before[name].desired_digest
        assert image(e2e_fleet, name) != "nginx:1.28"


def test_object_removed_from_git_is_pruned_everywhere(e2e_fleet: localfleet.LocalFleet) -> None:
    kustomization = "apps/web/base/kustomization.yaml"
    text = e2e_fleet.read(kustomization)
    assert "service.yaml" in text
    sha = e2e_fleet.commit("web: drop the Service", {kustomization: text.replace("  - service.yaml\n", "")})
    settle(e2e_fleet, sha)
    for name in ALL:
        with pytest.raises(ApiException) as gone:
            core(e2e_fleet, name).read_namespaced_service("web", "shop")
        assert gone.value.status == 404
    sha = e2e_fleet.commit("web: Service back", {kustomization: text})
    settle(e2e_fleet, sha)
    assert core(e2e_fleet, "dev-eu-1").read_namespaced_service("web", "shop").metadata.name == "web"


def test_broken_app_for_one_group_keeps_last_good_state_there(e2e_fleet: localfleet.LocalFleet) -> None:
    before = e2e_fleet.statuses()
    overlay = "apps/web/overlays/env/staging/kustomization.yaml"
    good = e2e_fleet.read(overlay)
    sha = e2e_fleet.commit("staging: broken overlay", {overlay: good + "\nresources: [does-not-exist.yaml]\n  bad"})
    cm = "apps/web/base/configmap.yaml"
    cm_text = e2e_fleet.read(cm)
    sha = e2e_fleet.commit("web: release marker", {cm: cm_text.rstrip("\n") + "\n  RELEASE: r2\n"})
    moved = ALL - {"staging-eu-1"}
    settle(e2e_fleet, sha, moved)
    statuses = e2e_fleet.statuses()
    staging = statuses["staging-eu-1"]
    assert staging.desired_digest == before["staging-eu-1"].desired_digest
    assert staging.applied_digest == before["staging-eu-1"].applied_digest
    with e2e_fleet.admin() as admin:
        detail = admin.get_cluster("staging-eu-1")
    assert any(overlay in error for error in [*detail.render_errors, *detail.summary.render_errors]), detail
    # What the operator sees (issue 12): not Ready, counted apart, the gate fails, the error once.
    table = convoy(e2e_fleet, "status")
    row = next(line for line in table.output.splitlines() if line.startswith("staging-eu-1 "))
    assert "Ready (render error)" in row, table.output
    assert "5 clusters: 4 Ready, 1 Ready (render error)" in table.output
    assert convoy(e2e_fleet, "status", "--exit-code").exit_code == 1
    document = json.loads(convoy(e2e_fleet, "status", "-o", "json").output)
    broken = next(c for c in document["clusters"] if c["name"] == "staging-eu-1")
    assert broken["phase"] == "Ready (render error)" and overlay in broken["renderErrors"][0]
    described = convoy(e2e_fleet, "describe", "staging-eu-1").output
    errors = [line for line in described.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and errors[0].count(overlay) == 1, described
    synced = convoy(e2e_fleet, "sync")
    assert synced.exit_code == 1 and "1 refused by render errors (staging-eu-1)" in synced.output, synced.output
    assert "4 clusters desire it now" in synced.output and overlay in synced.output
    for name in moved:
        assert core(e2e_fleet, name).read_namespaced_config_map("web-config", "shop").data["RELEASE"] == "r2"
    assert "RELEASE" not in core(e2e_fleet, "staging-eu-1").read_namespaced_config_map("web-config", "shop").data
    fixed = e2e_fleet.commit("staging: fix overlay", {overlay: good})
    settle(e2e_fleet, fixed)
    assert core(e2e_fleet, "staging-eu-1").read_namespaced_config_map("web-config", "shop").data["RELEASE"] == "r2"


def test_manual_drift_is_corrected_and_in_history(e2e_fleet: localfleet.LocalFleet) -> None:
    api = apps(e2e_fleet, "prod-us-1")
    desired = api.read_namespaced_deployment("web", "shop").spec.replicas
    api.patch_namespaced_deployment("web", "shop", {"spec": {"replicas": desired + 2}}, field_manager="someone")
    localfleet.wait_until(lambda: api.read_namespaced_deployment("web", "shop").spec.replicas == desired,
                          timeout=15, what="drift correction")

    def drift_event() -> bool:
        with e2e_fleet.admin() as admin:
            events = admin.history(pb.HistoryRequest(cluster="prod-us-1", limit=100)).events
        return any(e.kind == "drift" for e in events)

    localfleet.wait_until(drift_event, timeout=15, what="a drift event in prod-us-1's history")


def test_hub_restart_reconnects_without_reapplying(e2e_fleet: localfleet.LocalFleet) -> None:
    before = {n: config_resource_versions(e2e_fleet, n) for n in ALL}
    e2e_fleet.restart_hub()
    e2e_fleet.wait_all_ready(timeout=60)
    assert {n: config_resource_versions(e2e_fleet, n) for n in ALL} == before


def test_spoke_restart_neither_registers_again_nor_reapplies(e2e_fleet: localfleet.LocalFleet) -> None:
    def registrations() -> int:
        with e2e_fleet.admin() as admin:
            events = admin.history(pb.HistoryRequest(cluster="dev-eu-1", limit=500)).events
        return sum(1 for e in events if e.kind == "registration")

    count = registrations()
    before = config_resource_versions(e2e_fleet, "dev-eu-1")
    e2e_fleet.stop_spoke("dev-eu-1")
    e2e_fleet.start_spoke("dev-eu-1")
    e2e_fleet.wait_all_ready(timeout=60)
    assert registrations() == count
    assert config_resource_versions(e2e_fleet, "dev-eu-1") == before


def test_paused_cluster_receives_nothing_until_resumed(e2e_fleet: localfleet.LocalFleet) -> None:
    with e2e_fleet.admin() as admin:
        admin.set_paused(pb.SetPausedRequest(clusters=["prod-ap-1"], paused=True))
    overlay = "apps/web/overlays/env/prod/kustomization.yaml"
    sha = e2e_fleet.commit("prod: nginx 1.29", {overlay: e2e_fleet.read(overlay).replace("1.28", "1.29")})
    settle(e2e_fleet, sha, PROD - {"prod-ap-1"})
    assert image(e2e_fleet, "prod-ap-1") == "nginx:1.28"
    assert e2e_fleet.statuses()["prod-ap-1"].paused
    with e2e_fleet.admin() as admin:
        admin.set_paused(pb.SetPausedRequest(clusters=["prod-ap-1"], paused=False))
    localfleet.wait_until(lambda: image(e2e_fleet, "prod-ap-1") == "nginx:1.29", timeout=30,
                          what="prod-ap-1 to move on after resume")


def _spoke_channel(fleet: localfleet.LocalFleet) -> grpc.Channel:
    ca = (fleet.hub_dir / "tls" / "ca.crt")
    pem = ca.read_bytes() if ca.exists() else next(fleet.hub_dir.rglob("ca*.crt")).read_bytes()
    return grpc.secure_channel(fleet.hub_address, grpc.ssl_channel_credentials(root_certificates=pem))


def test_stolen_credential_cannot_read_another_clusters_bundle(e2e_fleet: localfleet.LocalFleet) -> None:
    statuses = e2e_fleet.statuses()
    victim_digest = statuses["prod-eu-1"].desired_digest
    assert victim_digest != statuses["dev-eu-1"].desired_digest
    with _spoke_channel(e2e_fleet) as channel:
        stub = pb_grpc.SpokeServiceStub(channel)
        thief = stub.Register(pb.RegisterRequest(bootstrap_token=e2e_fleet.bootstrap_token,
                                                 cluster_name="thief", labels={"env": "dev"}), timeout=10)
        metadata = (("authorization", f"Bearer {thief.credential}"),)
        with pytest.raises(grpc.RpcError) as denied:
            list(stub.GetBundle(pb.GetBundleRequest(digest=victim_digest), metadata=metadata, timeout=10))
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_expired_token_cannot_register(e2e_fleet: localfleet.LocalFleet) -> None:
    with e2e_fleet.admin() as admin:
        created = admin.create_token(pb.CreateTokenRequest(ttl_seconds=1, uses=5))
    time.sleep(1.5)  # the token's one-second lifetime is the thing under test
    with _spoke_channel(e2e_fleet) as channel, pytest.raises(grpc.RpcError) as refused:
        pb_grpc.SpokeServiceStub(channel).Register(
            pb.RegisterRequest(bootstrap_token=created.token, cluster_name="late", labels={}), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "expired" in (refused.value.details() or "")
