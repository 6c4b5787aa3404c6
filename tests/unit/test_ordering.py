"""Apply order: stages, kind order inside a stage, apps in dependsOn order."""

from __future__ import annotations

from typing import Any

import pytest

from protos.bundle import LABEL_APP
from spoke.apply import ordering
from spoke.apply.ordering import PRELUDE, Stage


def obj(api_version: str, kind: str, name: str, *, app: str = "web", namespace: str | None = None,
        **extra: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": {LABEL_APP: app}}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **extra}


def crd(kind: str, group: str, scope: str, app: str) -> dict[str, Any]:
    return obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"{kind.lower()}s.{group}", app=app,
               spec={"group": group, "scope": scope, "names": {"kind": kind, "plural": kind.lower() + "s"}})


def names(objs: tuple[Any, ...]) -> list[str]:
    return [f"{o['kind']}/{o['metadata']['name']}" for o in objs]


def test_stage_of_builtins_and_custom_resources() -> None:
    assert ordering.stage_of(obj("v1", "Namespace", "shop")) == Stage.CRDS_AND_NAMESPACES
    assert ordering.stage_of(crd("Widget", "example.com", "Namespaced", "a")) == Stage.CRDS_AND_NAMESPACES
    assert ordering.stage_of(obj("rbac.authorization.k8s.io/v1", "ClusterRole", "r")) == Stage.CLUSTER_SCOPED
    # a namespaced built-in written without a namespace is still namespaced
    assert ordering.stage_of(obj("apps/v1", "Deployment", "web")) == Stage.NAMESPACED
    scopes = {("example.com", "Widget"): False, ("example.com", "Cluster"): True}
    assert ordering.stage_of(obj("example.com/v1", "Widget", "w"), crd_scopes=scopes) == Stage.NAMESPACED
    assert ordering.stage_of(obj("example.com/v1", "Cluster", "c", namespace="x"),
                             crd_scopes=scopes) == Stage.CLUSTER_SCOPED
    # unknown custom kinds fall back to whether the manifest names a namespace
    assert ordering.stage_of(obj("x.io/v1", "Thing", "t", namespace="shop")) == Stage.NAMESPACED
    assert ordering.stage_of(obj("x.io/v1", "Thing", "t")) == Stage.CLUSTER_SCOPED


def test_kind_rank_puts_dependencies_first_and_webhooks_last() -> None:
    kinds = ["ValidatingWebhookConfiguration", "Deployment", "Widget", "Service", "ConfigMap",
             "ServiceAccount", "Role", "RoleBinding"]
    assert sorted(kinds, key=ordering.kind_rank) == [
        "ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Service", "Deployment", "Widget",
        "ValidatingWebhookConfiguration"]


def test_plan_puts_all_crds_and_namespaces_first_then_apps_in_dependency_order() -> None:
    bundle = {
        "apps": [{"name": "web", "dependsOn": ["platform"]}, {"name": "platform", "dependsOn": []}],
        "objects": [
            obj("apps/v1", "Deployment", "web", app="web", namespace="shop"),
            obj("example.com/v1", "Widget", "w1", app="web", namespace="shop"),
            obj("v1", "ConfigMap", "cfg", app="web", namespace="shop"),
            obj("v1", "Namespace", "shop", app="web"),
            obj("rbac.authorization.k8s.io/v1", "ClusterRole", "reader", app="platform"),
            crd("Widget", "example.com", "Namespaced", app="platform"),
            obj("v1", "Namespace", "platform", app="platform"),
            obj("v1", "ServiceAccount", "op", app="platform", namespace="platform"),
        ],
    }
    steps = ordering.plan(bundle)
    assert [s.app for s in steps] == [PRELUDE, "platform", "web"]
    assert names(steps[0].objects()) == [
        "CustomResourceDefinition/widgets.example.com", "Namespace/shop", "Namespace/platform"]
    assert [s for s, _ in steps[1].stages] == [Stage.CLUSTER_SCOPED, Stage.NAMESPACED]
    assert names(steps[1].objects(Stage.CLUSTER_SCOPED)) == ["ClusterRole/reader"]
    assert names(steps[1].objects(Stage.NAMESPACED)) == ["ServiceAccount/op"]
    assert steps[2].depends_on == ("platform",)
    assert names(steps[2].objects()) == ["ConfigMap/cfg", "Deployment/web", "Widget/w1"]


def test_plan_keeps_bundle_order_among_equal_kinds_and_handles_undeclared_apps() -> None:
    bundle = {
        "apps": [{"name": "a"}],
        "objects": [
            obj("v1", "ConfigMap", "z", app="a", namespace="n"),
            obj("v1", "ConfigMap", "b", app="a", namespace="n"),
            obj("v1", "ConfigMap", "stray", app="ghost", namespace="n"),
        ],
    }
    steps = ordering.plan(bundle)
    assert [s.app for s in steps] == ["a", "ghost"]
    assert names(steps[0].objects()) == ["ConfigMap/z", "ConfigMap/b"]


def test_cluster_scoped_custom_resource_goes_in_the_cluster_stage() -> None:
    bundle = {
        "apps": [{"name": "a"}],
        "objects": [obj("example.com/v1", "Tenant", "t1", app="a"), crd("Tenant", "example.com", "Cluster", "a")],
    }
    steps = ordering.plan(bundle)
    assert names(steps[1].objects(Stage.CLUSTER_SCOPED)) == ["Tenant/t1"]


def test_dependency_cycle_is_a_typed_error_naming_the_apps() -> None:
    bundle = {"apps": [{"name": "ok"}, {"name": "a", "dependsOn": ["b"]}, {"name": "b", "dependsOn": ["a"]}],
              "objects": []}
    with pytest.raises(ordering.OrderingError, match="a, b") as info:
        ordering.plan(bundle)
    assert info.value.apps == ("a", "b")


def test_dependency_outside_the_bundle_does_not_block_ordering() -> None:
    bundle = {"apps": [{"name": "a", "dependsOn": ["elsewhere"]}],
              "objects": [obj("v1", "ConfigMap", "c", app="a", namespace="n")]}
    (step,) = ordering.plan(bundle)
    assert step.app == "a" and step.depends_on == ("elsewhere",)
