"""Authentication and RBAC: ServiceAccount tokens, the authorizer, escalation, reviews, kubectl auth can-i.

The rule cases below add resourceNames, ``*/subresource`` and non-resource rules to upstream's own
tables (``plugin/pkg/auth/authorizer/rbac/rbac_test.go``, run in test_rbac_conformance.py); the
messages are those kube-apiserver sends.
"""

from __future__ import annotations

import base64
import datetime
import json
import pathlib
import shutil
import subprocess
from typing import Any

import pytest
import urllib3
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from kubesim import rbac
from kubesim.faults import Faults
from kubesim.testing import KubeSim, kubeconfig_for, write_private
from tests.polling import wait_for

RULE_CASES = [
    # (name, rule, attributes, allowed), after pkg/apis/rbac/v1/evaluation_helpers.go
    ("star verb, exact match other", {"verbs": ["*"], "apiGroups": ["group1"], "resources": ["resource1"]},
     rbac.Attributes(verb="get", group="group1", resource="resource1"), True),
    ("star verb, other mismatch", {"verbs": ["*"], "apiGroups": ["group1"], "resources": ["resource1"]},
     rbac.Attributes(verb="get", group="group2", resource="resource1"), False),
    ("star group, exact match other", {"verbs": ["get"], "apiGroups": ["*"], "resources": ["resource1"]},
     rbac.Attributes(verb="get", group="group1", resource="resource1"), True),
    ("star resource, exact match other", {"verbs": ["get"], "apiGroups": ["group1"], "resources": ["*"]},
     rbac.Attributes(verb="get", group="group1", resource="resource1"), True),
    ("tuple expansion", {"verbs": ["get", "list"], "apiGroups": ["group1", "group2"],
                         "resources": ["resource1", "resource2"]},
     rbac.Attributes(verb="list", group="group2", resource="resource2"), True),
    ("subresource expansion", {"verbs": ["*"], "apiGroups": ["*"], "resources": ["resource1/subresource1"]},
     rbac.Attributes(verb="get", group="group1", resource="resource1", subresource="subresource1"), True),
    ("subresource does not match its parent", {"verbs": ["*"], "apiGroups": ["*"], "resources": ["resource1"]},
     rbac.Attributes(verb="get", group="group1", resource="resource1", subresource="subresource1"), False),
    ("star subresource", {"verbs": ["get"], "apiGroups": [""], "resources": ["*/scale"]},
     rbac.Attributes(verb="get", resource="deployments", subresource="scale"), True),
    ("resourceNames restrict", {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"],
                                "resourceNames": ["a"]},
     rbac.Attributes(verb="get", resource="secrets", name="b"), False),
    ("resourceNames never allow list", {"verbs": ["list"], "apiGroups": [""], "resources": ["secrets"],
                                        "resourceNames": ["a"]},
     rbac.Attributes(verb="list", resource="secrets"), False),
    ("nonResourceURL exact", {"verbs": ["get"], "nonResourceURLs": ["/version"]},
     rbac.Attributes(verb="get", resource_request=False, path="/version"), True),
    ("nonResourceURL prefix star", {"verbs": ["get"], "nonResourceURLs": ["/apis/*"]},
     rbac.Attributes(verb="get", resource_request=False, path="/apis/apps/v1"), True),
    ("nonResourceURL rule never matches a resource", {"verbs": ["*"], "nonResourceURLs": ["*"]},
     rbac.Attributes(verb="get", resource="pods"), False),
]


@pytest.mark.parametrize(("rule", "attrs", "allowed"), [c[1:] for c in RULE_CASES], ids=[c[0] for c in RULE_CASES])
def test_rule_matches_as_upstream(rule: dict[str, Any], attrs: rbac.Attributes, allowed: bool) -> None:
    assert rbac.rule_allows(rule, attrs) is allowed


def test_covers_splits_rules_as_upstream() -> None:
    owner = [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["configmaps"]}]
    assert rbac.covers(owner, [{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"],
                                "resourceNames": ["x"]}])
    assert rbac.uncovered(owner, [{"verbs": ["get", "delete"], "apiGroups": [""], "resources": ["configmaps"]}]) \
        == [{"verbs": ["delete"], "apiGroups": [""], "resources": ["configmaps"]}]


# -- against a server ---------------------------------------------------------------------------------


def _create(api: client.ApiClient, path: str, body: dict[str, Any]) -> Any:
    return api.call_api(path, "POST", body=body, response_type="object", auth_settings=["BearerToken"],
                        _return_http_data_only=True)


def _sa_client(sim: KubeSim, cluster: str, token: str) -> Any:
    return config.new_client_from_config_dict(  # type: ignore[no-untyped-call]
        kubeconfig_for(sim.url, [cluster], ca_pem=sim.ca_pem, token=token))


def _token(api: client.ApiClient, namespace: str, name: str) -> str:
    answer = client.CoreV1Api(api).create_namespaced_service_account_token(
        name, namespace, {"spec": {"audiences": ["https://kubernetes.default.svc"]}})
    return str(answer.status.token)


def _setup_reader(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    for ns in ("a", "b"):
        core.create_namespace({"metadata": {"name": ns}})
    core.create_namespaced_service_account("a", {"metadata": {"name": "reader"}})
    rbac_api = client.RbacAuthorizationV1Api(api)
    rbac_api.create_namespaced_role("a", {"metadata": {"name": "cm-reader"}, "rules": [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]})
    rbac_api.create_namespaced_role_binding("a", {
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader"}]})


def test_new_namespace_gets_default_account_and_root_ca(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": "fresh"}})
    wait_for(lambda: [sa.metadata.name for sa in core.list_namespaced_service_account("fresh").items] == ["default"],
             what="the default ServiceAccount")
    wait_for(lambda: [c.metadata.name for c in core.list_namespaced_config_map("fresh").items] == ["kube-root-ca.crt"],
             what="kube-root-ca.crt")
    assert [sa.metadata.name for sa in core.list_namespaced_service_account("default").items] == ["default"]


def test_service_account_token_is_held_to_its_rules(sim: KubeSim, cluster: str, api: client.ApiClient) -> None:
    _setup_reader(api)
    reader = _sa_client(sim, cluster, _token(api, "a", "reader"))
    core = client.CoreV1Api(reader)
    names = [c.metadata.name for c in core.list_namespaced_config_map("a").items]
    assert "kube-root-ca.crt" in names
    with pytest.raises(ApiException) as listing:
        core.list_namespaced_config_map("b")
    assert listing.value.status == 403
    assert json.loads(listing.value.body) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'configmaps is forbidden: User "system:serviceaccount:a:reader" cannot list resource '
                   '"configmaps" in API group "" in the namespace "b"',
        "reason": "Forbidden", "details": {"kind": "configmaps"}, "code": 403}
    with pytest.raises(ApiException) as deleting:
        core.delete_namespaced_config_map("kube-root-ca.crt", "a")
    assert json.loads(deleting.value.body)["message"] == (
        'configmaps "kube-root-ca.crt" is forbidden: User "system:serviceaccount:a:reader" cannot delete '
        'resource "configmaps" in API group "" in the namespace "a"')
    with pytest.raises(ApiException) as nodes:
        core.list_node()
    assert json.loads(nodes.value.body)["message"].endswith('cannot list resource "nodes" in API group "" '
                                                            "at the cluster scope")
    reader.close()


def test_unknown_or_dead_token_is_401(sim: KubeSim, cluster: str, api: client.ApiClient) -> None:
    _setup_reader(api)
    token = _token(api, "a", "reader")
    client.CoreV1Api(api).delete_namespaced_service_account("reader", "a")
    for bad in (token, "not-a-token"):
        stranger = _sa_client(sim, cluster, bad)
        with pytest.raises(ApiException) as denied:
            client.CoreV1Api(stranger).list_namespaced_config_map("a")
        assert denied.value.status == 401
        stranger.close()


def test_token_secret_is_filled_and_authenticates(sim: KubeSim, cluster: str, api: client.ApiClient) -> None:
    _setup_reader(api)
    core = client.CoreV1Api(api)
    core.create_namespaced_secret("a", {"metadata": {"name": "reader-token", "annotations": {
        "kubernetes.io/service-account.name": "reader"}}, "type": "kubernetes.io/service-account-token"})
    secret = wait_for(lambda: (lambda s: s if (s.data or {}).get("token") else None)(
        core.read_namespaced_secret("reader-token", "a")), what="the token controller")
    token = base64.b64decode(secret.data["token"]).decode()
    reader = _sa_client(sim, cluster, token)
    assert client.CoreV1Api(reader).list_namespaced_config_map("a").items
    reader.close()


def test_escalation_and_bind_are_refused(sim: KubeSim, cluster: str, api: client.ApiClient) -> None:
    _setup_reader(api)
    rbac_api = client.RbacAuthorizationV1Api(api)
    # The reader may write Roles in a, but not grant more than it holds.
    rbac_api.create_namespaced_role("a", {"metadata": {"name": "role-writer"}, "rules": [
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"],
         "verbs": ["create", "patch"]}]})
    rbac_api.create_namespaced_role_binding("a", {
        "metadata": {"name": "role-writer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "role-writer"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader"}]})
    reader = client.RbacAuthorizationV1Api(_sa_client(sim, cluster, _token(api, "a", "reader")))
    reader.create_namespaced_role("a", {"metadata": {"name": "subset"}, "rules": [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]})
    with pytest.raises(ApiException) as escalate:
        reader.create_namespaced_role("a", {"metadata": {"name": "more"}, "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]})
    message = json.loads(escalate.value.body)["message"]
    assert escalate.value.status == 403
    assert message.startswith('roles.rbac.authorization.k8s.io "more" is forbidden: user '
                              '"system:serviceaccount:a:reader"')
    assert 'is attempting to grant RBAC permissions not currently held:\n{APIGroups:[""], Resources:["secrets"], ' \
           'Verbs:["get"]}' in message
    with pytest.raises(ApiException) as patched:  # a patch is judged on what it would write
        reader.patch_namespaced_role("subset", "a", {"rules": [
            {"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["get"]}]})
    assert patched.value.status == 403
    assert "not currently held" in json.loads(patched.value.body)["message"]
    assert client.RbacAuthorizationV1Api(api).read_namespaced_role("subset", "a").rules[0].resources == ["configmaps"]
    with pytest.raises(ApiException) as bind:
        reader.create_namespaced_role_binding("a", {
            "metadata": {"name": "admin"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader"}]})
    assert bind.value.status == 403


def test_aggregated_cluster_role_follows_its_selector(api: client.ApiClient) -> None:
    rbac_api = client.RbacAuthorizationV1Api(api)
    rbac_api.create_cluster_role({"metadata": {"name": "aggregate"}, "aggregationRule": {
        "clusterRoleSelectors": [{"matchLabels": {"rbac.example.com/aggregate-to-x": "true"}}]}})
    rbac_api.create_cluster_role({"metadata": {"name": "part", "labels": {"rbac.example.com/aggregate-to-x": "true"}},
                                  "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}]})
    wait_for(lambda: [r.resources for r in (rbac_api.read_cluster_role("aggregate").rules or [])]
             == [["deployments"]], what="the aggregated rules")


def test_subject_access_review(api: client.ApiClient) -> None:
    _setup_reader(api)
    review = client.AuthorizationV1Api(api).create_subject_access_review({
        "spec": {"user": "system:serviceaccount:a:reader",
                 "groups": ["system:serviceaccounts", "system:authenticated"],
                 "resourceAttributes": {"namespace": "a", "verb": "list", "resource": "configmaps"}}})
    assert review.status.allowed is True
    assert review.status.reason == ('RBAC: allowed by RoleBinding "reader/a" of Role "cm-reader" to '
                                    'ServiceAccount "reader/a"')


@pytest.mark.kubectl
def test_kubectl_auth_can_i_as_a_service_account(sim: KubeSim, cluster: str, api: client.ApiClient,
                                                 tmp_path: pathlib.Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed")
    _setup_reader(api)
    path = tmp_path / "kubeconfig"
    write_private(path, json.dumps(kubeconfig_for(sim.url, [cluster], ca_pem=sim.ca_pem, token=None)))
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}

    def can_i(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([kubectl, "--kubeconfig", str(path), "auth", "can-i", *args,
                               "--as", "system:serviceaccount:a:reader"], capture_output=True, text=True,
                              env=env, timeout=30, check=False)

    assert can_i("list", "configmaps", "-n", "a").stdout.strip() == "yes"
    assert can_i("list", "configmaps", "-n", "b").stdout.strip() == "no"
    listing = can_i("--list", "-n", "a")
    assert listing.returncode == 0, listing.stderr
    rows = [line.split() for line in listing.stdout.splitlines()[1:]]
    assert ["configmaps", "[]", "[]", "[get", "list]"] in rows
    assert not any(row[0] == "secrets" for row in rows)


def test_impersonation_needs_the_impersonate_verb(sim: KubeSim, cluster: str, api: client.ApiClient) -> None:
    _setup_reader(api)
    reader = _sa_client(sim, cluster, _token(api, "a", "reader"))
    reader.set_default_header("Impersonate-User", "kubernetes-admin")
    with pytest.raises(ApiException) as denied:
        client.CoreV1Api(reader).list_namespace()
    assert json.loads(denied.value.body)["message"] == (
        'users "kubernetes-admin" is forbidden: User "system:serviceaccount:a:reader" cannot impersonate '
        'resource "users" in API group "" at the cluster scope')
    reader.close()


def test_bootstrap_policy_is_there(api: client.ApiClient) -> None:
    names = {r.metadata.name for r in client.RbacAuthorizationV1Api(api).list_cluster_role().items}
    assert {"cluster-admin", "system:discovery", "system:basic-user", "system:public-info-viewer"} <= names
    bound = client.RbacAuthorizationV1Api(api).read_cluster_role_binding("cluster-admin")
    assert [(s.kind, s.name) for s in bound.subjects] == [("Group", "system:masters")]


def test_deleting_a_namespace_empties_it_then_it_is_gone(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": "brief"}})
    wait_for(lambda: len(core.list_namespaced_config_map("brief").items) == 1, what="kube-root-ca.crt")
    core.create_namespaced_config_map("brief", {"metadata": {"name": "mine"}})
    core.delete_namespace("brief")

    def gone() -> bool:
        try:
            core.read_namespace("brief")
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, what="the namespace to finish terminating")
    assert [c for c in core.list_config_map_for_all_namespaces().items if c.metadata.namespace == "brief"] == []
    assert [s for s in core.list_service_account_for_all_namespaces().items if s.metadata.namespace == "brief"] == []


def test_token_request_expiry_is_honoured(sim: KubeSim, cluster: str, api: client.ApiClient) -> None:
    _setup_reader(api)
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as too_short:
        core.create_namespaced_service_account_token("reader", "a", {"spec": {"expirationSeconds": 599}})
    assert too_short.value.status == 422
    assert json.loads(too_short.value.body)["message"] == (
        'TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: Invalid value: 599: '
        "may not specify a duration less than 10 minutes")
    before = datetime.datetime.now(datetime.UTC)
    answer: Any = core.create_namespaced_service_account_token("reader", "a", {"spec": {"expirationSeconds": 600}})
    assert answer.spec.expiration_seconds == 600
    lifetime = (answer.status.expiration_timestamp - before).total_seconds()
    assert 598 <= lifetime <= 602
    core.create_namespaced_secret("a", {"metadata": {"name": "reader-token", "annotations": {
        "kubernetes.io/service-account.name": "reader"}}, "type": "kubernetes.io/service-account-token"})
    secret = wait_for(lambda: (lambda s: s if (s.data or {}).get("token") else None)(
        core.read_namespaced_secret("reader-token", "a")), what="the token controller")
    requested = _sa_client(sim, cluster, answer.status.token)
    legacy = _sa_client(sim, cluster, base64.b64decode(secret.data["token"]).decode())
    assert client.CoreV1Api(requested).list_namespaced_config_map("a").items
    # The cluster's clock moves past the expiry: the requested token is refused, the Secret's is not.
    sim.set_faults(cluster, Faults(clock_ahead=601))
    with pytest.raises(ApiException) as expired:
        client.CoreV1Api(requested).list_namespaced_config_map("a")
    assert expired.value.status == 401
    sim.set_faults(cluster, Faults(clock_ahead=10 * 365 * 24 * 3600))
    assert client.CoreV1Api(legacy).list_namespaced_config_map("a").items
    requested.close()
    legacy.close()


def test_apply_that_creates_needs_create_too(sim: KubeSim, cluster: str, api: client.ApiClient) -> None:
    _setup_reader(api)
    client.RbacAuthorizationV1Api(api).patch_namespaced_role("cm-reader", "a", {"rules": [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "patch"]}]})
    client.CoreV1Api(api).create_namespaced_config_map("a", {"metadata": {"name": "there"}})
    token = _token(api, "a", "reader")
    http = urllib3.PoolManager()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/apply-patch+yaml"}
    base = f"{sim.url(cluster)}/api/v1/namespaces/a/configmaps"

    def apply(name: str) -> Any:
        body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                           "data": {"k": "v"}})
        return http.request("PATCH", f"{base}/{name}?fieldManager=test", body=body, headers=headers)

    assert apply("there").status == 200  # patch alone suffices for an object that exists
    refused = apply("new")
    assert refused.status == 403
    assert json.loads(refused.data)["message"] == (
        'configmaps "new" is forbidden: User "system:serviceaccount:a:reader" cannot create resource '
        '"configmaps" in API group "" in the namespace "a"')
    assert http.request("GET", f"{base}/new", headers={"Authorization": f"Bearer {token}"}).status == 404
    client.RbacAuthorizationV1Api(api).patch_namespaced_role("cm-reader", "a", {"rules": [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "patch", "create"]}]})
    assert apply("new").status == 201
