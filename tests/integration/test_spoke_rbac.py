"""The spoke on its own ServiceAccount, against kubesim's RBAC (issue 17).

``convoy spoke install`` is applied by the admin, the spoke then runs with a TokenRequest token of the
ServiceAccount the install made: the default install is proven sufficient, and ``--rbac namespaced``
refuses a bundle that writes outside its namespaces with a status naming the kind and the verb.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client as kube_client

from kubesim.testing import KubeSim, kubeconfig_for
from protos import codec
from protos.status import Phase
from spoke import install, settings
from spoke.agent import Agent
from spoke.cluster import ClusterClient
from spoke.settings import SpokeSettings
from tests.integration.spoke_harness import FakeHub, configmap, make_bundle, namespace
from tests.polling import wait_for


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    fake = FakeHub().start()
    yield fake
    fake.stop()


def _install(sim: KubeSim, cluster: str, hub: FakeHub, **mode: Any) -> dict[str, Any]:
    """Apply the install as the admin; a kubeconfig with the spoke's ServiceAccount token."""
    manifests = install.install_manifests(cluster=cluster, hub=hub.address, token=hub.token, labels={},
                                          insecure=True, **mode)
    admin = ClusterClient.from_config_dict(sim.kubeconfig(cluster))
    try:
        for manifest in manifests:
            if manifest["kind"] != "Deployment":  # the test runs the agent in-process instead
                admin.apply_status(manifest, manager=install.FIELD_MANAGER, force=True)
    finally:
        admin.close()
    api = sim.api_client(cluster)
    try:
        answer = kube_client.CoreV1Api(api).create_namespaced_service_account_token(
            install.NAME, settings.DEFAULT_NAMESPACE, {"spec": {}})
    finally:
        api.close()
    return kubeconfig_for(sim.url, [cluster], ca_pem=sim.ca_pem, token=answer.status.token)


@pytest.fixture
def spawn(kubesim_server: KubeSim, kube_cluster: str, hub: FakeHub) -> Iterator[Callable[..., Agent]]:
    agents: list[Agent] = []

    def make(**mode: Any) -> Agent:
        kubeconfig = _install(kubesim_server, kube_cluster, hub, **mode)
        agent = Agent(SpokeSettings(hub=hub.address, cluster=kube_cluster, token=hub.token, insecure=True,
                                    health_port=0, health_host="127.0.0.1", heartbeat=2.0, reconnect_cap=1.0),
                      cluster=ClusterClient.from_config_dict(kubeconfig))
        agents.append(agent.start())
        return agent

    yield make
    for agent in agents:
        agent.stop()
        agent.client.close()


def _last_report(hub: FakeHub, check: Callable[[Any], bool]) -> Callable[[], Any]:
    def look() -> Any:
        with hub._cond:
            reports = list(hub.reports)
        return next((r for r in reversed(reports) if check(r)), None)
    return look


def _bundle(*objects: dict[str, Any]) -> dict[str, Any]:
    return make_bundle(list(objects), apps=[{"name": "app", "namespace": "team-a", "dependsOn": []}])


def test_default_install_is_enough_for_the_spoke(hub: FakeHub, spawn: Callable[..., Agent]) -> None:
    cluster_role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": "team-a-reader"},
                    "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}
    digest = hub.publish(_bundle(namespace("team-a"), configmap("settings", "team-a", {"a": "1"}), cluster_role))
    spawn()
    ready = wait_for(_last_report(hub, lambda r: r.applied_digest == digest
                                  and codec.PHASE_FROM_WIRE[r.phase] == Phase.READY),
                     timeout=30, what="Ready on the ServiceAccount token")
    assert {o.ref.kind for o in ready.objects} >= {"Namespace", "ConfigMap", "ClusterRole"}


def test_namespaced_install_refuses_a_kind_outside_its_grant(hub: FakeHub, spawn: Callable[..., Agent]) -> None:
    cluster_role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": "team-a-reader"},
                    "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}
    hub.publish(_bundle(namespace("team-a"), configmap("settings", "team-a", {"a": "1"}), cluster_role))
    spawn(rbac=install.RbacMode.NAMESPACED, namespaces=["team-a"])
    failed = wait_for(_last_report(hub, lambda r: any(o.action == "failed" for o in r.objects)),
                      timeout=30, what="a failed object")
    (bad,) = [o for o in failed.objects if o.action == "failed"]
    assert bad.ref.kind == "ClusterRole"
    assert ('cannot patch resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope'
            in bad.error), bad.error
    assert "system:serviceaccount:convoy-system:convoy-spoke" in bad.error


def _fleet_bundle(*extra: dict[str, Any]) -> dict[str, Any]:
    """A bundle touching each kind of rule derived mode makes: CRD and custom resource, RBAC, two namespaces."""
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.demo.convoy.dev"},
           "spec": {"group": "demo.convoy.dev", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
    widget = {"apiVersion": "demo.convoy.dev/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "team-b"},
              "spec": {"size": 3}}
    reader = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
              "metadata": {"name": "team-a-reader"},
              "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "team-a-reader", "namespace": "team-a"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "team-a-reader"},
               "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "team-a"}]}
    # The ConfigMap names no namespace: the spoke puts it in its app's, and so must the derived Role.
    return make_bundle([namespace("team-a"), namespace("team-b"), crd, widget, reader, binding,
                        configmap("settings", "", {"a": "1"}), *extra],
                       apps=[{"name": "app", "namespace": "team-a", "dependsOn": []}], app="app")


def test_derived_install_applies_the_whole_bundle(hub: FakeHub, spawn: Callable[..., Agent]) -> None:
    bundle = _fleet_bundle()
    digest = hub.publish(bundle)
    spawn(rbac=install.RbacMode.DERIVED, bundle=bundle)
    ready = wait_for(_last_report(hub, lambda r: r.applied_digest == digest
                                  and codec.PHASE_FROM_WIRE[r.phase] == Phase.READY),
                     timeout=30, what="Ready on the derived rules")
    assert {(o.ref.kind, o.ref.namespace) for o in ready.objects} >= {
        ("CustomResourceDefinition", ""), ("Widget", "team-b"), ("ClusterRole", ""), ("RoleBinding", "team-a"),
        ("ConfigMap", "team-a")}
    assert not [o for o in ready.objects if o.action == "failed"]


def test_derived_install_refuses_a_kind_the_bundle_did_not_hold(hub: FakeHub, spawn: Callable[..., Agent]) -> None:
    spawn(rbac=install.RbacMode.DERIVED, bundle=_fleet_bundle())
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "team-a"},
              "stringData": {"k": "v"}}
    digest = hub.publish(_fleet_bundle(secret))
    # The spoke reads the live objects of each kind (a list across namespaces) before it writes any:
    # the bundle fails there, naming the kind and the verb the derived rules lack.
    failed = wait_for(_last_report(hub, lambda r: any(digest in e for e in r.errors)),
                      timeout=30, what="the bundle's error")
    (error,) = [e for e in failed.errors if digest in e]
    assert error.startswith(f"bundle {digest}: Secret list: "), error
    assert ('User "system:serviceaccount:convoy-system:convoy-spoke" cannot list resource "secrets" in API group "" '
            "at the cluster scope" in error), error


@pytest.mark.kubectl
def test_can_i_list_shows_exactly_the_install_rules(kubesim_server: KubeSim, kube_cluster: str, hub: FakeHub,
                                                    tmp_path: Any) -> None:
    import shutil

    import yaml

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed")
    _install(kubesim_server, kube_cluster, hub)
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubesim_server.kubeconfig(kube_cluster)))
    listing = subprocess.run([kubectl, "--kubeconfig", str(path), "auth", "can-i", "--list", "-n",
                              settings.DEFAULT_NAMESPACE, "--as",
                              f"system:serviceaccount:{settings.DEFAULT_NAMESPACE}:{install.NAME}"],
                             capture_output=True, text=True, timeout=30, check=False,
                             env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert listing.returncode == 0, listing.stderr
    rows = {" ".join(line.split()) for line in listing.stdout.splitlines()[1:]}
    # The install's ClusterRole and state Role, then what every authenticated user holds.
    assert "*.* [] [] [*]" in rows
    assert "[*] [] [get]" in rows
    assert "configmaps [] [] [get list watch create update patch delete]" in rows
    assert "secrets [] [] [get list watch create update patch delete]" in rows
