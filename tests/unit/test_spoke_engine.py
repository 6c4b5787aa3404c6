"""Preparing a bundle for apply: ownership stamps, namespaces, identities and hashes (no cluster needed)."""

from __future__ import annotations

from protos import bundle as bundles
from protos.objects import ObjectRef
from spoke.apply import applying, engine, ordering


def _bundle() -> dict[str, object]:
    return {
        "apiVersion": bundles.API_VERSION, "kind": "Bundle",
        "apps": [{"name": "db", "namespace": "data", "dependsOn": []},
                 {"name": "web", "namespace": "shop", "dependsOn": ["db"]}],
        "objects": [
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "cfg", "labels": {bundles.LABEL_APP: "web"}}},
            {"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": "shop", "labels": {bundles.LABEL_APP: "web"}}},
            {"apiVersion": "apps/v1", "kind": "StatefulSet",
             "metadata": {"name": "pg", "namespace": "data", "labels": {bundles.LABEL_APP: "db"}}},
        ],
    }


def test_prepare_stamps_every_object_for_this_cluster() -> None:
    _, desired = engine.prepare(_bundle(), cluster="edge-7")
    for d in desired.values():
        labels = d.manifest["metadata"]["labels"]
        assert labels[bundles.LABEL_CLUSTER] == "edge-7"
        assert labels[bundles.LABEL_MANAGED_BY] == bundles.MANAGED_BY_VALUE


def test_namespaced_objects_without_namespace_get_their_apps() -> None:
    _, desired = engine.prepare(_bundle(), cluster="c")
    assert ObjectRef("", "ConfigMap", "shop", "cfg") in desired
    assert ObjectRef("", "Namespace", "", "shop") in desired
    assert desired[ObjectRef("apps", "StatefulSet", "data", "pg")].app == "db"


def test_steps_keep_the_plan_order_and_dependencies() -> None:
    steps, _ = engine.prepare(_bundle(), cluster="c")
    assert [s.app for s in steps] == [ordering.PRELUDE, "db", "web"]
    assert steps[2].depends_on == ("db",)


def test_prepare_does_not_change_the_bundle_and_hashes_differ_by_cluster() -> None:
    bundle = _bundle()
    before = bundles.encode(bundle)
    _, a = engine.prepare(bundle, cluster="a")
    _, b = engine.prepare(bundle, cluster="b")
    assert bundles.encode(bundle) == before
    ref = ObjectRef("", "ConfigMap", "shop", "cfg")
    assert a[ref].hash != b[ref].hash


def test_stamp_keeps_existing_labels() -> None:
    out = applying.stamp({"metadata": {"name": "x", "labels": {"team": "a"}}}, cluster="c")
    assert out["metadata"]["labels"] == {"team": "a", bundles.LABEL_MANAGED_BY: "convoy", bundles.LABEL_CLUSTER: "c"}
