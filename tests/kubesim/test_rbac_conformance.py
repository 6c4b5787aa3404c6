"""Upstream's RBAC authorizer tables (tests/testdata/kubesim/rbac_upstream.yaml), run against kubesim's.

The fixture is ``plugin/pkg/auth/authorizer/rbac/rbac_test.go`` (TestRuleMatches, TestAuthorizer) of
kubernetes/kubernetes transcribed case for case; the authorizer cases run over a real cluster store
holding the roles and bindings, as the RBAC authorizer reads them.
"""

from __future__ import annotations

import itertools
import pathlib
from typing import Any

import pytest
import yaml

from kubesim import authorizing, rbac, wiring
from kubesim.clusters import Cluster, ClusterOptions

FIXTURE = yaml.safe_load((pathlib.Path(__file__).parents[1] / "testdata" / "kubesim" / "rbac_upstream.yaml")
                         .read_text())
RBAC = "rbac.authorization.k8s.io"
_names = itertools.count()


def _attrs(request: dict[str, Any]) -> rbac.Attributes:
    if "path" in request:
        return rbac.Attributes(verb=request["verb"], resource_request=False, path=request["path"])
    return rbac.Attributes(verb=request["verb"], group=request.get("group", ""), resource=request["resource"],
                           subresource=request.get("subresource", ""), namespace=request.get("namespace", ""))


@pytest.mark.parametrize("case", FIXTURE["ruleMatches"], ids=[c["name"] for c in FIXTURE["ruleMatches"]])
def test_rule_matches(case: dict[str, Any]) -> None:
    wrong = [r for r in case["requests"] if rbac.rule_allows(case["rule"], _attrs(r)) is not r["allowed"]]
    assert wrong == []


def _cluster(case: dict[str, Any]) -> Cluster:
    cluster = wiring.cluster_set(ClusterOptions()).add(f"conformance-{next(_names)}")
    store = cluster.store
    for role in case.get("clusterRoles", []):
        store.put((RBAC, "clusterroles"), {"metadata": {"name": role["name"]}, "rules": role["rules"]})
    for binding in case.get("clusterRoleBindings", []):
        store.put((RBAC, "clusterrolebindings"), {
            "metadata": {"name": f"b{next(_names)}"}, "subjects": binding["subjects"],
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": binding["role"]}})
    for binding in case.get("roleBindings", []):
        store.put((RBAC, "rolebindings"), {
            "metadata": {"name": f"b{next(_names)}", "namespace": binding["namespace"]},
            "subjects": binding["subjects"],
            "roleRef": {"apiGroup": RBAC, "kind": binding["roleKind"], "name": binding["role"]}})
    return cluster


@pytest.mark.parametrize("case", FIXTURE["authorizer"], ids=[f"case{i}" for i in range(len(FIXTURE["authorizer"]))])
def test_authorizer(case: dict[str, Any]) -> None:
    cluster = _cluster(case)

    def allowed(request: dict[str, Any]) -> bool:
        user = rbac.UserInfo(request.get("user", ""), tuple(request.get("groups", ())))
        return authorizing.authorize(cluster, user, _attrs(request))[0]

    assert [r for r in case["shouldPass"] if not allowed(r)] == []
    assert [r for r in case["shouldFail"] if allowed(r)] == []
