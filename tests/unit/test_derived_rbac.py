"""``convoy spoke install --rbac derived``: rules derived from a bundle (issue 17)."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest
import yaml

from kubesim import resources
from protos import k8s_schema
from spoke import derived_rbac, install, settings


def test_builtin_plurals_are_the_api_servers() -> None:
    checked = 0
    for (group, _version), table in resources.builtin_types().items():
        for rt in table.values():
            if k8s_schema.is_builtin(group, rt.kind):
                bundle = {"objects": [{"apiVersion": f"{group}/v1" if group else "v1", "kind": rt.kind,
                                       "metadata": {"name": "x", "namespace": "ns" if rt.namespaced else None}}]}
                rules = derived_rbac.derive(bundle, namespace="convoy-system")
                assert rules.cluster[0]["resources"] == [rt.plural], rt.kind
                assert bool(rules.namespaced) is rt.namespaced, rt.kind
                checked += 1
    assert checked > 40


def _bundle(*objects: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "convoy.dev/v1alpha1", "kind": "Bundle",
            "apps": [{"name": "web", "namespace": "shop", "dependsOn": []}], "objects": list(objects)}


def test_rules_follow_the_bundle() -> None:
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "gadgets.demo.io"},
           "spec": {"group": "demo.io", "scope": "Cluster", "names": {"plural": "gadgets", "kind": "Gadget"}}}
    rules = derived_rbac.derive(_bundle(
        crd,
        {"apiVersion": "demo.io/v1", "kind": "Gadget", "metadata": {"name": "g"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"convoy.dev/app": "web"}}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "other"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "b"},
         "roleRef": {"kind": "ClusterRole", "name": "view"}, "subjects": []},
    ), namespace="convoy-system")
    assert {"apiGroups": ["demo.io"], "resources": ["gadgets"], "verbs": ["get", "list", "watch"]} in rules.cluster
    assert {"apiGroups": ["demo.io"], "resources": ["gadgets"], "verbs": ["create", "patch", "delete"]} \
        in rules.cluster
    assert {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "resourceNames": ["view"],
            "verbs": ["bind"]} in rules.cluster
    # Namespaced kinds are written only where the bundle puts them: its own namespace, else its app's.
    assert rules.namespaced == {
        "shop": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "patch", "delete"]}],
        "other": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["create", "patch", "delete"]}]}
    assert not [r for r in rules.cluster if "update" in r["verbs"] or "*" in r["verbs"]]


def test_unknown_kind_is_named() -> None:
    with pytest.raises(derived_rbac.DerivationError) as refused:
        derived_rbac.derive(_bundle({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                                     "metadata": {"name": "tls", "namespace": "shop"}}),
                            namespace="convoy-system", source="edge.yaml")
    assert str(refused.value).startswith("edge.yaml: Certificate 'tls' (cert-manager.io/v1): unknown kind")


def test_install_reads_render_output_or_manifests(tmp_path: pathlib.Path) -> None:
    rendered = tmp_path / "edge.yaml"
    rendered.write_text("# cluster: edge\n# digest: sha256:00\n" + yaml.safe_dump(_bundle(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"convoy.dev/app": "web"}}})))
    manifests = install.install_manifests(cluster="edge", hub="hub:443", token="t", labels={},
                                          rbac=install.RbacMode.DERIVED, bundle=install.read_bundle(str(rendered)))
    roles = {(m["kind"], m["metadata"].get("namespace")): m for m in manifests if m["kind"] in ("Role", "ClusterRole")}
    assert roles[("Role", "shop")]["rules"] == [{"apiGroups": [""], "resources": ["configmaps"],
                                                 "verbs": ["create", "patch", "delete"]}]
    assert ("Namespace", "shop") in {(m["kind"], m["metadata"]["name"]) for m in manifests}
    plain = tmp_path / "plain.yaml"
    plain.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n")
    assert install.read_bundle(str(plain))["objects"][0]["kind"] == "Service"
    bad = tmp_path / "bad.yaml"
    bad.write_text("just: text\n")
    with pytest.raises(settings.SettingsError, match=r"--bundle .*bad\.yaml: expected the output of `convoy render"):
        install.read_bundle(str(bad))
    with pytest.raises(settings.SettingsError, match="--rbac derived needs --bundle"):
        install.install_manifests(cluster="edge", hub="hub:443", token="t", labels={}, rbac=install.RbacMode.DERIVED)
