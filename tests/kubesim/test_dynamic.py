"""DynamicClient, create_from_yaml, CustomObjectsApi and ApiextensionsV1Api against kubesim."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest
from kubernetes import client, utils
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ApiException as DynamicApiException
from kubernetes.dynamic.exceptions import ConflictError, NotFoundError

from tests.kubesim.objects import CRD
from tests.polling import wait_for


@pytest.fixture
def dyn(api: client.ApiClient, tmp_path: pathlib.Path) -> DynamicClient:
    return DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))


def _established(ext: client.ApiextensionsV1Api, name: str) -> bool:
    crd = ext.read_custom_resource_definition(name)
    return any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or []))


def test_server_side_apply_create_noop_conflict_force(dyn: DynamicClient) -> None:
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s", "namespace": "default"},
            "data": {"a": "1"}}
    created = dyn.server_side_apply(cms, body=body, field_manager="one")
    assert created.metadata.managedFields[0].manager == "one"
    assert created.metadata.managedFields[0].operation == "Apply"
    again = dyn.server_side_apply(cms, body=body, field_manager="one")
    assert again.metadata.resourceVersion == created.metadata.resourceVersion
    with pytest.raises(ConflictError) as err:
        dyn.server_side_apply(cms, body=dict(body, data={"a": "2"}), field_manager="two")
    status = json.loads(err.value.body)
    assert status["reason"] == "Conflict"
    assert status["message"] == 'Apply failed with 1 conflict: conflict with "one": .data.a'
    assert status["details"]["causes"] == [
        {"reason": "FieldManagerConflict", "message": 'conflict with "one"', "field": ".data.a"}]
    forced = dyn.server_side_apply(cms, body=dict(body, data={"a": "2"}), field_manager="two",
                                   force_conflicts=True)
    assert forced.data.a == "2"
    assert [m.manager for m in forced.metadata.managedFields] == ["two"]


def test_apply_requires_field_manager_and_dry_run_persists_nothing(dyn: DynamicClient) -> None:
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d", "namespace": "default"}}
    with pytest.raises(DynamicApiException) as err:
        cms.patch(body=body, name="d", namespace="default", content_type="application/apply-patch+yaml")
    assert err.value.status == 422
    assert "fieldManager: Required value: is required for apply patch" in json.loads(err.value.body)["message"]
    dry = dyn.server_side_apply(cms, body=body, field_manager="m", dry_run="All")
    assert dry.metadata.uid and not dry.metadata.resourceVersion
    with pytest.raises(NotFoundError):
        cms.get(name="d", namespace="default")


def test_patch_types(dyn: DynamicClient) -> None:
    deps = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    deps.create(body={"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"},
                      "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
                          "metadata": {"labels": {"a": "b"}},
                          "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}}}},
                namespace="default")
    # Strategic merge (the DynamicClient default) merges containers by name.
    merged = deps.patch(name="w", namespace="default",
                        body={"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "z"}]}}}})
    assert [(c.name, c.image) for c in merged.spec.template.spec.containers] == [("a", "x"), ("b", "z")]
    # A JSON merge patch replaces the list.
    replaced = deps.patch(name="w", namespace="default", content_type="application/merge-patch+json",
                          body={"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "q"}]}}}})
    assert [c.name for c in replaced.spec.template.spec.containers] == ["c"]
    jp = deps.patch(name="w", namespace="default", content_type="application/json-patch+json",
                    body=[{"op": "replace", "path": "/spec/replicas", "value": 4}])
    assert jp.spec.replicas == 4
    with pytest.raises(DynamicApiException) as failed:
        deps.patch(name="w", namespace="default", content_type="application/json-patch+json",
                   body=[{"op": "test", "path": "/spec/replicas", "value": 5}])
    assert failed.value.status == 422


def test_custom_resources_lifecycle(api: client.ApiClient, dyn: DynamicClient) -> None:
    ext = client.ApiextensionsV1Api(api)
    created = ext.create_custom_resource_definition(CRD)
    assert created.metadata.generation == 1
    assert created.status.accepted_names.plural == "" and created.status.stored_versions == ["v1"]
    wait_for(lambda: _established(ext, "widgets.example.com"))
    custom = client.CustomObjectsApi(api)
    widget = custom.create_namespaced_custom_object(
        "example.com", "v1", "default", "widgets",
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"},
         "spec": {"tags": ["a"], "unknown": True}, "status": {"x": 1}})
    assert widget["spec"] == {"tags": ["a"], "size": 1}  # pruned and defaulted
    assert "status" not in widget and widget["metadata"]["generation"] == 1
    with pytest.raises(ApiException) as invalid:
        custom.create_namespaced_custom_object(
            "example.com", "v1", "default", "widgets",
            {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w2"},
             "spec": {"size": "big", "color": "green"}})
    assert invalid.value.status == 422
    assert json.loads(invalid.value.body)["details"]["kind"] == "Widget"
    # Strategic merge is refused for custom resources, as on a real server.
    widgets = dyn.resources.get(api_version="example.com/v1", kind="Widget")
    with pytest.raises(DynamicApiException) as unsupported:
        widgets.patch(name="w1", namespace="default", body={"spec": {"size": 2}})
    assert unsupported.value.status == 415
    patched = widgets.patch(name="w1", namespace="default", body={"spec": {"size": 2}},
                            content_type="application/merge-patch+json")
    assert patched.metadata.generation == 2
    labelled = widgets.patch(name="w1", namespace="default", body={"metadata": {"labels": {"l": "v"}}},
                             content_type="application/merge-patch+json")
    assert labelled.metadata.generation == 2
    with pytest.raises(ApiException) as no_rv:
        custom.replace_namespaced_custom_object(
            "example.com", "v1", "default", "widgets", "w1",
            {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {}})
    assert no_rv.value.status == 422
    # Deleting the CRD deletes its objects and removes the type from discovery.
    ext.delete_custom_resource_definition("widgets.example.com")
    wait_for(lambda: _crd_gone(ext))
    with pytest.raises(ApiException) as gone:
        custom.list_namespaced_custom_object("example.com", "v1", "default", "widgets")
    assert gone.value.status == 404


def _crd_gone(ext: client.ApiextensionsV1Api) -> bool:
    try:
        ext.read_custom_resource_definition("widgets.example.com")
    except ApiException as exc:
        return exc.status == 404
    return False


def test_custom_resources_are_404_until_established(sim: Any, cluster: str, api: client.ApiClient) -> None:
    from kubesim.testing import KubeSim

    with KubeSim(clusters=["slow"], crd_establish_delay=0.5) as slow:
        slow_api: Any = slow.api_client("slow")
        ext = client.ApiextensionsV1Api(slow_api)
        custom = client.CustomObjectsApi(slow_api)
        ext.create_custom_resource_definition(CRD)
        with pytest.raises(ApiException) as early:
            custom.list_namespaced_custom_object("example.com", "v1", "default", "widgets")
        assert early.value.status == 404
        wait_for(lambda: _established(ext, "widgets.example.com"))
        assert custom.list_namespaced_custom_object("example.com", "v1", "default", "widgets")["items"] == []
        slow_api.close()


def test_create_from_yaml(api: client.ApiClient, tmp_path: pathlib.Path) -> None:
    manifest = tmp_path / "app.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n"
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n"
        "spec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n"
        "    spec: {containers: [{name: web, image: nginx}]}\n---\n"
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
        "spec: {type: LoadBalancer, selector: {app: web}, ports: [{port: 80}]}\n")
    utils.create_from_yaml(api, str(manifest))
    apps = client.AppsV1Api(api)
    core = client.CoreV1Api(api)
    ready = wait_for(lambda: (apps.read_namespaced_deployment("web", "shop").status.available_replicas or 0) == 1)
    assert ready
    svc = wait_for(lambda: core.read_namespaced_service("web", "shop").status.load_balancer.ingress)
    assert svc[0].ip


def test_discovery_documents(api: client.ApiClient) -> None:
    groups = client.ApisApi(api).get_api_versions()
    names = {g.name for g in groups.groups}
    assert {"apps", "batch", "rbac.authorization.k8s.io", "networking.k8s.io", "policy", "autoscaling",
            "coordination.k8s.io", "storage.k8s.io", "apiextensions.k8s.io"} <= names
    resources = client.AppsV1Api(api).get_api_resources()
    deployments = next(r for r in resources.resources if r.name == "deployments")
    assert deployments.kind == "Deployment" and deployments.namespaced and deployments.short_names == ["deploy"]
    assert "deployments/status" in {r.name for r in resources.resources}
    version = client.VersionApi(api).get_code()
    assert version.major == "1"


def test_custom_resource_scale_subresource(api: client.ApiClient) -> None:
    crd = json.loads(json.dumps(CRD))
    crd["metadata"]["name"] = "scalers.example.com"
    crd["spec"]["names"] = {"plural": "scalers", "singular": "scaler", "kind": "Scaler"}
    version = crd["spec"]["versions"][0]
    version["subresources"]["scale"] = {"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.size"}
    ext = client.ApiextensionsV1Api(api)
    ext.create_custom_resource_definition(crd)
    wait_for(lambda: _established(ext, "scalers.example.com"))
    custom = client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object("example.com", "v1", "default", "scalers", {
        "apiVersion": "example.com/v1", "kind": "Scaler", "metadata": {"name": "s"}, "spec": {"size": 2}})
    resources = {r.name for r in custom.get_api_resources("example.com", "v1").resources}
    assert {"scalers/scale", "scalers/status"} <= resources
    scale = custom.get_namespaced_custom_object_scale("example.com", "v1", "default", "scalers", "s")
    assert scale["spec"] == {"replicas": 2}
    custom.patch_namespaced_custom_object_scale("example.com", "v1", "default", "scalers", "s",
                                                {"spec": {"replicas": 5}})
    scaler = custom.get_namespaced_custom_object("example.com", "v1", "default", "scalers", "s")
    assert scaler["spec"]["size"] == 5 and scaler["metadata"]["generation"] == 2
