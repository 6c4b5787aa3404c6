from __future__ import annotations

from typing import Any

import pytest

from hub.render import bundles
from hub.render.bundles import BundleTooLargeError, DuplicateObjectError, Item
from protos import bundle


def _obj(api_version: str, kind: str, name: str, namespace: str | None = None, **extra: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **extra}


CRD_CLUSTER = _obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "gadgets.demo.dev",
                   spec={"group": "demo.dev", "scope": "Cluster", "names": {"kind": "Gadget"}})
CRD_NS = _obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "widgets.demo.dev",
              spec={"group": "demo.dev", "scope": "Namespaced", "names": {"kind": "Widget"}})


def _items(app: str, objects: list[dict[str, Any]], custom: dict[tuple[str, str], bool]) -> list[Item]:
    return [bundles.make_item(obj, app=app, source=f"apps/{app}", custom=custom) for obj in objects]


def _header(name: str, *deps: str) -> dict[str, Any]:
    return bundles.app_header(name=name, namespace=None, depends_on=deps, drift_policy=None)


def test_crd_scopes_come_from_the_crds() -> None:
    assert bundles.crd_scopes([CRD_CLUSTER, CRD_NS, _obj("v1", "ConfigMap", "x")]) == {
        ("demo.dev", "Gadget"): True, ("demo.dev", "Widget"): False}


def test_apply_order_stages_then_apps_then_kinds() -> None:
    custom = bundles.crd_scopes([CRD_CLUSTER, CRD_NS])
    first = [  # app "base", kustomize order scrambled on purpose
        _obj("apps/v1", "Deployment", "op", "sys"),
        _obj("v1", "ServiceAccount", "op", "sys"),
        _obj("rbac.authorization.k8s.io/v1", "ClusterRole", "op"),
        _obj("v1", "Namespace", "sys"),
        CRD_CLUSTER,
        CRD_NS,
        _obj("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "op"),
    ]
    second = [  # app "web", depends on base
        _obj("demo.dev/v1", "Widget", "w", "shop"),
        _obj("demo.dev/v1", "Gadget", "g"),
        _obj("v1", "ConfigMap", "cfg", "shop"),
        _obj("v1", "Namespace", "shop"),
    ]
    assembled = bundles.assemble([_header("base"), _header("web", "base")],
                                 [_items("base", first, custom), _items("web", second, custom)],
                                 cluster="c1", max_bytes=1 << 20)
    order = [f"{o['kind']}/{o['metadata']['name']}" for o in assembled.bundle["objects"]]
    assert order == [
        # stage 0: CRDs and Namespaces, apps in dependsOn order
        "CustomResourceDefinition/gadgets.demo.dev", "CustomResourceDefinition/widgets.demo.dev",
        "Namespace/sys", "Namespace/shop",
        # stage 1: other cluster-scoped kinds, incl. a custom kind whose CRD says scope: Cluster
        "ClusterRole/op", "ValidatingWebhookConfiguration/op", "Gadget/g",
        # stage 2: namespaced kinds
        "ServiceAccount/op", "Deployment/op", "ConfigMap/cfg", "Widget/w",
    ]


def test_assembled_bytes_are_exactly_the_canonical_encoding() -> None:
    objects = [_obj("v1", "ConfigMap", "ü-config", "shop", data={"k": "välue", "b": "1", "a": "2"})]
    headers = [bundles.app_header(name="web", namespace="shop", depends_on=["base"], drift_policy="report")]
    assembled = bundles.assemble(headers, [_items("web", objects, {})], cluster="c1", max_bytes=1 << 20)
    assert assembled.data == bundle.encode(assembled.bundle)
    assert assembled.digest == bundle.digest_of(assembled.data)
    assert bundle.decode(assembled.data, expected_digest=assembled.digest) == assembled.bundle
    assert assembled.bundle["apps"] == [{"name": "web", "namespace": "shop", "dependsOn": ["base"],
                                         "driftPolicy": "report"}]


def test_duplicate_identity_names_both_apps_and_their_layers() -> None:
    cm = _obj("v1", "ConfigMap", "shared", "shop")
    with pytest.raises(DuplicateObjectError) as caught:
        bundles.assemble([_header("a"), _header("b")], [_items("a", [cm], {}), _items("b", [dict(cm)], {})],
                         cluster="c1", max_bytes=1 << 20)
    text = str(caught.value)
    assert "ConfigMap/shop/shared" in text and "app a (apps/a)" in text and "app b (apps/b)" in text
    assert caught.value.cluster == "c1"


def test_same_name_in_other_namespace_or_group_is_not_a_duplicate() -> None:
    objects = [_obj("v1", "ConfigMap", "x", "a"), _obj("v1", "ConfigMap", "x", "b"),
               _obj("demo.dev/v1", "ConfigMap", "x", "a")]
    assembled = bundles.assemble([_header("a")], [_items("a", objects, {})], cluster="c1", max_bytes=1 << 20)
    assert len(assembled.bundle["objects"]) == 3


def test_bundle_over_the_limit_is_refused_with_its_size() -> None:
    big = _obj("v1", "ConfigMap", "big", "shop", data={"blob": "x" * 5000})
    with pytest.raises(BundleTooLargeError, match="over the 4096-byte limit") as caught:
        bundles.assemble([_header("a")], [_items("a", [big], {})], cluster="c1", max_bytes=4096)
    assert "cluster c1" in str(caught.value)


def test_stamp_labels_and_default_namespace_without_touching_the_input() -> None:
    cm = _obj("v1", "ConfigMap", "cfg")
    stamped = bundles.stamp(cm, app="web", namespace="shop", cluster_scoped=False)
    assert stamped["metadata"] == {"name": "cfg", "namespace": "shop", "labels": {
        bundle.LABEL_MANAGED_BY: "convoy", bundle.LABEL_APP: "web"}}
    assert cm["metadata"] == {"name": "cfg"}
    explicit = bundles.stamp(_obj("v1", "ConfigMap", "cfg", "other"), app="web", namespace="shop",
                             cluster_scoped=False)
    assert explicit["metadata"]["namespace"] == "other"
    role = bundles.stamp(_obj("rbac.authorization.k8s.io/v1", "ClusterRole", "r"), app="web", namespace="shop",
                         cluster_scoped=True)
    assert "namespace" not in role["metadata"]


def test_decompress_refuses_garbage_and_bombs_with_a_bundle_error() -> None:
    data = bundle.encode({"apiVersion": bundle.API_VERSION, "kind": "Bundle", "apps": [], "objects": []})
    assert bundle.decompress(bundle.compress(data), max_size=len(data)) == data
    with pytest.raises(bundle.BundleError, match="not a valid zlib stream"):
        bundle.decompress(b"not zlib at all", max_size=1 << 20)
    with pytest.raises(bundle.BundleError, match="inflates past the 100-byte limit"):
        bundle.decompress(bundle.compress(b"x" * 10_000), max_size=100)
