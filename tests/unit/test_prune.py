"""Prune decisions: only Convoy's own objects for this cluster, namespaces and CRDs last."""

from __future__ import annotations

from typing import Any

from protos.bundle import ANNOTATION_PRUNE, LABEL_CLUSTER, LABEL_MANAGED_BY
from protos.objects import ObjectRef
from spoke import prune
from spoke.prune import PruneReason

CM = ObjectRef("", "ConfigMap", "shop", "cfg")
DEP = ObjectRef("apps", "Deployment", "shop", "web")
NS = ObjectRef("", "Namespace", "", "shop")
CRD = ObjectRef("apiextensions.k8s.io", "CustomResourceDefinition", "", "widgets.example.com")
ROLE = ObjectRef("rbac.authorization.k8s.io", "ClusterRole", "", "reader")


def live_obj(*, cluster: str | None = "east", managed: str | None = "convoy",
             annotations: dict[str, str] | None = None) -> dict[str, Any]:
    labels = {}
    if managed is not None:
        labels[LABEL_MANAGED_BY] = managed
    if cluster is not None:
        labels[LABEL_CLUSTER] = cluster
    return {"metadata": {"labels": labels, "annotations": annotations or {}}}


def decide(inventory: list[ObjectRef], desired: list[ObjectRef],
           live: dict[ObjectRef, dict[str, Any]]) -> list[prune.PruneDecision]:
    return prune.prune_set(inventory=inventory, desired=desired, live=live, cluster="east")


def test_removed_object_is_deleted_and_desired_ones_are_not_considered() -> None:
    decisions = decide([CM, DEP], [DEP], {CM: live_obj(), DEP: live_obj()})
    assert decisions == [prune.PruneDecision(CM, True, PruneReason.REMOVED)]


def test_objects_outside_the_inventory_are_never_considered() -> None:
    assert decide([], [], {CM: live_obj()}) == []


def test_foreign_owner_label_is_never_pruned() -> None:
    (d,) = decide([CM], [], {CM: live_obj(managed="helm")})
    assert not d.delete and d.reason == PruneReason.NOT_MANAGED
    assert "helm" in str(d) and str(CM) in str(d)
    (d,) = decide([CM], [], {CM: live_obj(managed=None)})
    assert not d.delete and d.reason == PruneReason.NOT_MANAGED


def test_object_of_another_cluster_is_never_pruned() -> None:
    (d,) = decide([CM], [], {CM: live_obj(cluster="west")})
    assert not d.delete and d.reason == PruneReason.OTHER_CLUSTER and "west" in d.detail
    (d,) = decide([CM], [], {CM: live_obj(cluster=None)})
    assert not d.delete and d.reason == PruneReason.OTHER_CLUSTER


def test_prune_disabled_annotation_keeps_the_object() -> None:
    (d,) = decide([CM], [], {CM: live_obj(annotations={ANNOTATION_PRUNE: "disabled"})})
    assert not d.delete and d.reason == PruneReason.PRUNE_DISABLED


def test_already_gone_object_is_not_deleted() -> None:
    (d,) = decide([CM], [], {})
    assert not d.delete and d.reason == PruneReason.ALREADY_GONE


def test_namespaces_and_crds_go_last_namespaced_objects_first() -> None:
    inventory = [NS, CRD, ROLE, CM, DEP]
    live = {ref: live_obj() for ref in inventory}
    decisions = decide(inventory, [], live)
    assert [d.ref for d in decisions] == [CM, DEP, ROLE, NS, CRD]
    assert all(d.delete for d in decisions)


def test_duplicate_inventory_entries_give_one_decision() -> None:
    assert len(decide([CM, CM], [], {CM: live_obj()})) == 1


def test_namespace_holding_objects_that_stay_is_kept() -> None:
    kept = ObjectRef("", "ConfigMap", "shop", "keep-me")
    live = {NS: live_obj(), kept: live_obj(annotations={ANNOTATION_PRUNE: "disabled"})}
    decisions = {d.ref: d for d in decide([kept, NS], [], live)}
    assert decisions[kept].reason == PruneReason.PRUNE_DISABLED
    assert not decisions[NS].delete and decisions[NS].reason == PruneReason.IN_USE
    assert str(kept) in decisions[NS].detail
    # a desired object still in the namespace keeps it too
    (d,) = decide([NS], [DEP], {NS: live_obj()})
    assert not d.delete and d.reason == PruneReason.IN_USE


def test_crd_whose_custom_resources_stay_is_kept() -> None:
    widget = ObjectRef("example.com", "Widget", "shop", "w")
    crd_live = live_obj()
    crd_live["spec"] = {"group": "example.com", "names": {"kind": "Widget", "plural": "widgets"}}
    (d,) = decide([CRD], [widget], {CRD: crd_live})
    assert not d.delete and d.reason == PruneReason.IN_USE
    # when the custom resources go too, the CRD goes after them
    decisions = decide([CRD, widget], [], {CRD: crd_live, widget: live_obj()})
    assert [(d.ref, d.delete) for d in decisions] == [(widget, True), (CRD, True)]
