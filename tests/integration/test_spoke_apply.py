"""The staged apply engine against kubesim over HTTP with the official client.

Covers: CRD + custom resource in one bundle; no writes for an unchanged bundle; prune of a removed
object and a removed namespace; a foreign owner label never pruned; immutable-field changes failing
clearly and recreated with the force annotation; injected 500s and 429s survived.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from protos import bundle as bundles
from protos.objects import ObjectRef
from protos.status import Action
from spoke import inventory
from spoke.apply import engine, pruning
from spoke.cluster import ClusterClient
from tests.integration.spoke_harness import configmap, deployment, make_bundle, namespace

CLUSTER = "edge-1"


@pytest.fixture
def client(kubesim_server: Any, kube_cluster: str) -> Iterator[ClusterClient]:
    c = ClusterClient.from_config_dict(kubesim_server.kubeconfig(kube_cluster))
    yield c
    c.close()


def _reconcile(client: ClusterClient, bundle: dict[str, Any],
               previous: inventory.Inventory | None) -> tuple[engine.ApplyResult, list[Any], inventory.Inventory]:
    """apply → prune → new inventory, as the agent does."""
    result = engine.apply_bundle(client, bundle, previous=previous, options=engine.EngineOptions(cluster=CLUSTER))
    pruned = pruning.prune_all(client, inventory=list(previous.entries.values()) if previous else [],
                               desired=result.desired, cluster=CLUSTER)
    inv = inventory.Inventory(entries={e.ref: e for e in [*result.inventory, *pruned.retained]})
    return result, pruned.entries, inv


def _actions(result: engine.ApplyResult) -> dict[str, Action]:
    return {str(e.ref): e.action for e in result.changeset}


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {"group": "example.com", "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                               "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]},
}


def test_crd_and_its_custom_resource_in_one_bundle(client: ClusterClient) -> None:
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1", "namespace": "shop"},
              "spec": {"size": 3}}
    # The custom resource comes first in the bundle: the stages must still put the CRD first.
    bundle = make_bundle([widget, configmap("cfg", "shop"), namespace("shop"), CRD])
    result, _, _ = _reconcile(client, bundle, None)
    assert result.errors == []
    assert _actions(result) == {"CustomResourceDefinition.apiextensions.k8s.io/widgets.example.com": Action.CREATED,
                                "Namespace/shop": Action.CREATED, "ConfigMap/shop/cfg": Action.CREATED,
                                "Widget.example.com/shop/w1": Action.CREATED}
    live = client.get("example.com/v1", "Widget", "shop", "w1")
    assert live is not None and live["spec"] == {"size": 3}
    assert live["metadata"]["labels"][bundles.LABEL_CLUSTER] == CLUSTER
    assert live["metadata"]["labels"][bundles.LABEL_MANAGED_BY] == "convoy"
    managers = {m["manager"] for m in live["metadata"]["managedFields"]}
    assert "convoy" in managers


def test_unchanged_bundle_causes_no_writes(client: ClusterClient) -> None:
    objects = [namespace("quiet"), configmap("a", "quiet"), configmap("b", "quiet", {"x": "1"}),
               {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa", "namespace": "quiet"}}]
    bundle = make_bundle(objects)
    _, _, inv = _reconcile(client, bundle, None)

    def versions() -> dict[str, str]:
        out = {}
        for kind, api in (("ConfigMap", "v1"), ("ServiceAccount", "v1")):
            for item in client.list(api, kind, namespace="quiet").items:
                out[f"{kind}/{item['metadata']['name']}"] = item["metadata"]["resourceVersion"]
        ns = client.get("v1", "Namespace", "", "quiet")
        assert ns is not None
        out["Namespace/quiet"] = ns["metadata"]["resourceVersion"]
        return out

    before = versions()
    cluster_rv = client.list("v1", "ConfigMap").resource_version
    result, pruned, _ = _reconcile(client, bundle, inv)
    assert set(_actions(result).values()) == {Action.UNCHANGED}
    assert pruned == []
    assert versions() == before
    # Nothing at all was written in the cluster: its global revision did not move.
    assert client.list("v1", "ConfigMap").resource_version == cluster_rv


def test_a_changed_object_is_configured_and_the_rest_untouched(client: ClusterClient) -> None:
    bundle = make_bundle([namespace("chg"), configmap("a", "chg"), configmap("b", "chg")])
    _, _, inv = _reconcile(client, bundle, None)
    changed = make_bundle([namespace("chg"), configmap("a", "chg", {"key": "new"}), configmap("b", "chg")])
    result, _, _ = _reconcile(client, changed, inv)
    assert _actions(result) == {"Namespace/chg": Action.UNCHANGED, "ConfigMap/chg/a": Action.CONFIGURED,
                                "ConfigMap/chg/b": Action.UNCHANGED}
    live = client.get("v1", "ConfigMap", "chg", "a")
    assert live is not None and live["data"] == {"key": "new"}


def test_prune_removed_object_and_removed_namespace(client: ClusterClient) -> None:
    bundle = make_bundle([namespace("keep"), configmap("stay", "keep"), configmap("go", "keep"),
                          namespace("gone"), configmap("inside", "gone")])
    _, _, inv = _reconcile(client, bundle, None)
    smaller = make_bundle([namespace("keep"), configmap("stay", "keep")])
    _result, pruned, inv2 = _reconcile(client, smaller, inv)
    assert {str(e.ref): e.action for e in pruned} == {"ConfigMap/keep/go": Action.PRUNED,
                                                      "ConfigMap/gone/inside": Action.PRUNED,
                                                      "Namespace/gone": Action.PRUNED}
    assert [str(e.ref) for e in pruned][-1] == "Namespace/gone"  # namespaces last
    assert client.get("v1", "ConfigMap", "keep", "go") is None
    gone = client.get("v1", "Namespace", "", "gone")
    assert gone is None or gone["metadata"].get("deletionTimestamp")
    assert client.get("v1", "ConfigMap", "keep", "stay") is not None
    assert ObjectRef("", "ConfigMap", "keep", "go") not in inv2.entries


def test_foreign_owner_label_is_never_pruned(client: ClusterClient) -> None:
    bundle = make_bundle([namespace("own"), configmap("mine", "own"), configmap("taken", "own"),
                          configmap("keepme", "own", annotations={bundles.ANNOTATION_PRUNE: "disabled"})])
    _, _, inv = _reconcile(client, bundle, None)
    # Someone else takes ownership of one object after Convoy applied it.
    taken = client.get("v1", "ConfigMap", "own", "taken")
    assert taken is not None
    taken["metadata"]["labels"][bundles.LABEL_MANAGED_BY] = "helm"
    client.replace(taken, manager="helm")
    _result, pruned, _ = _reconcile(client, make_bundle([namespace("own")]), inv)
    by_ref = {str(e.ref): e for e in pruned}
    assert by_ref["ConfigMap/own/mine"].action == Action.PRUNED
    assert by_ref["ConfigMap/own/taken"].action == Action.SKIPPED
    assert "not managed by convoy" in by_ref["ConfigMap/own/taken"].message
    assert by_ref["ConfigMap/own/keepme"].action == Action.SKIPPED
    assert client.get("v1", "ConfigMap", "own", "taken") is not None
    assert client.get("v1", "ConfigMap", "own", "keepme") is not None
    assert client.get("v1", "ConfigMap", "own", "mine") is None


def test_ssa_annotations_if_not_present_and_ignore(client: ClusterClient) -> None:
    once = configmap("once", "ann", {"v": "1"}, annotations={bundles.ANNOTATION_SSA: "IfNotPresent"})
    ignored = configmap("ignored", "ann", annotations={bundles.ANNOTATION_SSA: "Ignore"})
    _, _, inv = _reconcile(client, make_bundle([namespace("ann"), once, ignored]), None)
    assert client.get("v1", "ConfigMap", "ann", "once") is not None
    assert client.get("v1", "ConfigMap", "ann", "ignored") is None
    once2 = configmap("once", "ann", {"v": "2"}, annotations={bundles.ANNOTATION_SSA: "IfNotPresent"})
    result, _, _ = _reconcile(client, make_bundle([namespace("ann"), once2, ignored]), inv)
    assert _actions(result)["ConfigMap/ann/once"] == Action.SKIPPED
    live = client.get("v1", "ConfigMap", "ann", "once")
    assert live is not None and live["data"] == {"v": "1"}


def test_immutable_field_change_fails_clearly_then_recreated_with_force(client: ClusterClient) -> None:
    def dep(selector: str, force: bool) -> dict[str, Any]:
        d = deployment("web", "imm", annotations={bundles.ANNOTATION_FORCE: "true"} if force else None)
        d["spec"]["selector"] = {"matchLabels": {"app": selector}}
        d["spec"]["template"]["metadata"]["labels"] = {"app": selector}
        return d

    _, _, inv = _reconcile(client, make_bundle([namespace("imm"), dep("web", False)]), None)
    first = client.get("apps/v1", "Deployment", "imm", "web")
    assert first is not None
    result, _, inv = _reconcile(client, make_bundle([namespace("imm"), dep("web2", False)]), inv)
    entry = {str(e.ref): e for e in result.changeset}["Deployment.apps/imm/web"]
    assert entry.action == Action.FAILED
    assert "immutable" in entry.message and bundles.ANNOTATION_FORCE in entry.message
    assert any(e.startswith("Deployment.apps/imm/web") for e in result.errors)
    result, _, _ = _reconcile(client, make_bundle([namespace("imm"), dep("web2", True)]), inv)
    entry = {str(e.ref): e for e in result.changeset}["Deployment.apps/imm/web"]
    assert entry.action == Action.CREATED and "recreated" in entry.message
    live = client.get("apps/v1", "Deployment", "imm", "web")
    assert live is not None and live["spec"]["selector"] == {"matchLabels": {"app": "web2"}}
    assert live["metadata"]["uid"] != first["metadata"]["uid"]


def test_injected_500s_429s_and_dropped_connections_are_survived(kubesim_server: Any, kube_cluster: str,
                                             client: ClusterClient) -> None:
    from kubesim import faults

    objects = [namespace("flaky")] + [configmap(f"cm-{i}", "flaky") for i in range(30)]
    kubesim_server.set_faults(kube_cluster, faults.Faults(error_rates={500: 0.15, 429: 0.15}, drop_rate=0.05, seed=7))
    try:
        result, _, _ = _reconcile(client, make_bundle(objects), None)
    finally:
        kubesim_server.clear_faults(kube_cluster)
    assert result.errors == []
    assert {e.action for e in result.changeset} == {Action.CREATED}
    # The namespace also holds the control plane's kube-root-ca.crt, which is not ours.
    ours = [c for c in client.list("v1", "ConfigMap", namespace="flaky").items
            if c["metadata"]["name"] != "kube-root-ca.crt"]
    assert len(ours) == 30


def _dependent_bundle(db_annotations: dict[str, str]) -> dict[str, Any]:
    db = deployment("pg", "data", annotations=db_annotations)
    db["metadata"]["labels"] = {bundles.LABEL_APP: "db"}
    web = configmap("web-config", "data")
    web["metadata"]["labels"] = {bundles.LABEL_APP: "web"}
    ns = namespace("data")
    ns["metadata"]["labels"] = {bundles.LABEL_APP: "db"}
    return make_bundle([web, db, ns], apps=[{"name": "web", "namespace": "data", "dependsOn": ["db"]},
                                           {"name": "db", "namespace": "data", "dependsOn": []}])


def test_an_app_waits_until_the_apps_it_depends_on_are_healthy(client: ClusterClient) -> None:
    result = engine.apply_bundle(client, _dependent_bundle({"kubesim.convoy.dev/delay": "0.5"}), previous=None,
                                 options=engine.EngineOptions(cluster=CLUSTER, dependency_timeout=20))
    assert result.errors == []
    db = client.get("apps/v1", "Deployment", "data", "pg")
    web = client.get("v1", "ConfigMap", "data", "web-config")
    assert db is not None and web is not None
    # One revision counter per cluster: the web config was written after the database became available.
    available = [c for c in db["status"].get("conditions", []) if c["type"] == "Available"]
    assert available and available[0]["status"] == "True"
    assert int(web["metadata"]["resourceVersion"]) > int(db["metadata"]["resourceVersion"])


def test_an_app_whose_dependency_never_becomes_healthy_waits(client: ClusterClient) -> None:
    result = engine.apply_bundle(client, _dependent_bundle({"kubesim.convoy.dev/outcome": "stuck"}), previous=None,
                                 options=engine.EngineOptions(cluster=CLUSTER, dependency_timeout=1))
    entry = {str(e.ref): e for e in result.changeset}["ConfigMap/data/web-config"]
    assert entry.action == Action.WAITING
    assert entry.message.startswith("waiting for db: Deployment.apps/data/pg is InProgress")
    assert client.get("v1", "ConfigMap", "data", "web-config") is None
