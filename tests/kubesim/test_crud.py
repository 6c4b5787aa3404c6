"""CRUD conformance with the unmodified official client's typed APIs."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.polling import wait_for


def _deployment(name: str, image: str = "nginx:1.27", **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "web", "image": image}]}}},
    }


def test_create_sets_server_fields_and_one_revision_counter(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    apps = client.AppsV1Api(api)
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "a"}, "data": {"k": "v"}})
    dep = apps.create_namespaced_deployment("default", _deployment("web"))
    assert len(cm.metadata.uid) == 36 and cm.metadata.uid != dep.metadata.uid
    assert cm.metadata.creation_timestamp is not None
    assert int(dep.metadata.resource_version) > int(cm.metadata.resource_version)
    assert cm.metadata.generation is None  # ConfigMap has no generation
    assert dep.metadata.generation == 1
    listed = core.list_namespaced_config_map("default")
    assert int(listed.metadata.resource_version) >= int(dep.metadata.resource_version)
    assert [m.manager for m in cm.metadata.managed_fields] == ["OpenAPI-Generator"]


def test_defaults_are_filled_in_like_a_real_api_server(api: client.ApiClient) -> None:
    dep = client.AppsV1Api(api).create_namespaced_deployment("default", _deployment("web"))
    assert dep.spec.revision_history_limit == 10
    assert dep.spec.progress_deadline_seconds == 600
    assert dep.spec.strategy.type == "RollingUpdate"
    assert dep.spec.template.spec.containers[0].image_pull_policy == "IfNotPresent"
    svc = client.CoreV1Api(api).create_namespaced_service(
        "default", {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}], "selector": {"app": "x"}}})
    assert svc.spec.cluster_ip and svc.spec.ports[0].protocol == "TCP" and svc.spec.ports[0].target_port == 80


def test_already_exists_and_missing_namespace(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    with pytest.raises(ApiException) as exists:
        core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    assert exists.value.status == 409
    body = json.loads(exists.value.body)
    assert body["reason"] == "AlreadyExists" and body["message"] == 'configmaps "a" already exists'
    assert body["details"] == {"name": "a", "kind": "configmaps"}
    with pytest.raises(ApiException) as missing:
        core.create_namespaced_config_map("nowhere", {"metadata": {"name": "a"}})
    assert missing.value.status == 404
    assert json.loads(missing.value.body)["message"] == 'namespaces "nowhere" not found'


def test_namespace_mismatch_is_400(api: client.ApiClient) -> None:
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(api).create_namespaced_config_map(
            "default", {"metadata": {"name": "a", "namespace": "kube-system"}})
    assert err.value.status == 400
    assert "does not match the namespace sent on the request" in json.loads(err.value.body)["message"]


def test_generate_name(api: client.ApiClient) -> None:
    cm = client.CoreV1Api(api).create_namespaced_config_map("default", {"metadata": {"generateName": "job-"}})
    assert cm.metadata.name.startswith("job-") and len(cm.metadata.name) == 9
    assert set(cm.metadata.name[4:]) <= set("bcdfghjklmnpqrstvwxz2456789")


def test_stale_resource_version_is_409_and_noop_keeps_it(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "a"}, "data": {"k": "v"}})
    same = core.replace_namespaced_config_map("a", "default", cm)
    assert same.metadata.resource_version == cm.metadata.resource_version  # no-op write
    cm.data = {"k": "w"}
    changed = core.replace_namespaced_config_map("a", "default", cm)
    assert int(changed.metadata.resource_version) > int(cm.metadata.resource_version)
    cm.data = {"k": "x"}
    with pytest.raises(ApiException) as stale:
        core.replace_namespaced_config_map("a", "default", cm)
    assert stale.value.status == 409
    assert json.loads(stale.value.body)["message"] == (
        'Operation cannot be fulfilled on configmaps "a": the object has been modified; please apply your '
        "changes to the latest version and try again")


def test_put_never_creates(api: client.ApiClient) -> None:
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(api).replace_namespaced_config_map("nope", "default", {"metadata": {"name": "nope"}})
    assert err.value.status == 404
    assert json.loads(err.value.body)["message"] == 'configmaps "nope" not found'


def test_generation_rules(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment("default", _deployment("web"))
    labelled = apps.patch_namespaced_deployment("web", "default", {"metadata": {"labels": {"x": "y"}}})
    assert labelled.metadata.generation == 1  # labels do not bump generation
    annotated = apps.patch_namespaced_deployment("web", "default", {"metadata": {"annotations": {"a": "b"}}})
    assert annotated.metadata.generation == 2  # Deployment annotations do
    bumped = apps.patch_namespaced_deployment(
        "web", "default", {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}})
    assert bumped.metadata.generation == 3
    assert bumped.spec.template.spec.containers[0].image == "nginx:2"


def test_status_subresource(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    dep = apps.create_namespaced_deployment("default", dict(_deployment("web"), status={"replicas": 7}))
    assert dep.status.replicas is None  # status is cleared on create
    body = {"status": {"replicas": 5, "observedGeneration": 1}}
    written = apps.patch_namespaced_deployment_status("web", "default", body)
    assert written.status.replicas == 5 and written.metadata.generation == 1
    status_entries = [m for m in written.metadata.managed_fields if m.subresource == "status"]
    assert status_entries and status_entries[0].manager == "OpenAPI-Generator"
    ignored = apps.patch_namespaced_deployment("web", "default", {"status": {"replicas": 9}})
    assert ignored.status.replicas == 5  # the main resource ignores status


def test_label_and_field_selectors(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    for name, labels in (("a", {"tier": "web", "n": "3"}), ("b", {"tier": "db"}), ("c", {})):
        core.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": labels}})

    def names(**kw: Any) -> list[str]:
        # Every namespace also holds the control plane's kube-root-ca.crt; these cases are about ours.
        return [i.metadata.name for i in core.list_namespaced_config_map("default", **kw).items
                if i.metadata.name != "kube-root-ca.crt"]

    assert names(label_selector="tier=web") == ["a"]
    assert names(label_selector="tier!=web") == ["b", "c"]
    assert names(label_selector="tier in (web,db)") == ["a", "b"]
    assert names(label_selector="tier notin (web)") == ["b", "c"]
    assert names(label_selector="!tier") == ["c"]
    assert names(label_selector="tier,n>2") == ["a"]
    assert names(field_selector="metadata.name!=b") == ["a", "c"]
    with pytest.raises(ApiException) as err:
        names(field_selector="data.x=1")
    assert err.value.status == 400
    assert json.loads(err.value.body)["message"] == "field label not supported: data.x"


def test_limit_and_continue(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    for i in range(5):
        core.create_namespaced_config_map("default", {"metadata": {"name": f"cm{i}"}})
    first = core.list_namespaced_config_map("default", limit=2)
    assert [i.metadata.name for i in first.items] == ["cm0", "cm1"] and first.metadata._continue
    core.create_namespaced_config_map("default", {"metadata": {"name": "zz"}})
    second = core.list_namespaced_config_map("default", limit=2, _continue=first.metadata._continue)
    assert [i.metadata.name for i in second.items] == ["cm2", "cm3"]
    assert second.metadata.resource_version == first.metadata.resource_version


def test_delete_returns_status_and_finalizers_hold(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    status = core.delete_namespaced_config_map("a", "default")
    assert status["kind"] == "Status" and status["status"] == "Success"
    assert status["details"]["name"] == "a" and status["details"]["kind"] == "configmaps"
    core.create_namespaced_config_map("default", {"metadata": {"name": "b", "finalizers": ["example.com/x"]}})
    held = core.delete_namespaced_config_map("b", "default")
    obj = core.read_namespaced_config_map("b", "default")
    assert obj.metadata.deletion_timestamp is not None and held is not None
    core.patch_namespaced_config_map("b", "default", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("b", "default")
    assert gone.value.status == 404


def test_garbage_collector_follows_owner_references(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    owner = core.create_namespaced_config_map("default", {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    core.create_namespaced_config_map("default", {"metadata": {"name": "dep", "ownerReferences": [ref]}})
    core.delete_namespaced_config_map("owner", "default")
    wait_for(lambda: "dep" not in [i.metadata.name for i in core.list_namespaced_config_map("default").items])
    owner = core.create_namespaced_config_map("default", {"metadata": {"name": "owner2"}})
    ref = dict(ref, name="owner2", uid=owner.metadata.uid)
    core.create_namespaced_config_map("default", {"metadata": {"name": "kept", "ownerReferences": [ref]}})
    core.delete_namespaced_config_map("owner2", "default", propagation_policy="Orphan")
    wait_for(lambda: _missing(core, "owner2"))
    assert core.read_namespaced_config_map("kept", "default").metadata.owner_references is None


def test_namespace_deletion_cascades(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    ns = core.create_namespace({"metadata": {"name": "shop"}})
    assert ns.spec.finalizers == ["kubernetes"] and ns.status.phase == "Active"
    assert ns.metadata.labels == {"kubernetes.io/metadata.name": "shop"}
    core.create_namespaced_config_map("shop", {"metadata": {"name": "a"}})
    core.delete_namespace("shop")
    wait_for(lambda: _namespace_missing(core, "shop"))
    with pytest.raises(ApiException) as err:
        core.delete_namespace("default")
    assert err.value.status == 403


def _missing(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespaced_config_map(name, "default")
    except ApiException as exc:
        return exc.status == 404
    return False


def _namespace_missing(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespace(name)
    except ApiException as exc:
        return exc.status == 404
    return False


def test_immutable_fields_are_refused(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    core = client.CoreV1Api(api)
    apps.create_namespaced_deployment("default", _deployment("web"))
    with pytest.raises(ApiException) as selector:
        apps.patch_namespaced_deployment("web", "default", {"spec": {
            "selector": {"matchLabels": {"app": "new"}}, "template": {"metadata": {"labels": {"app": "new"}}}}})
    assert selector.value.status == 422
    body = json.loads(selector.value.body)
    assert body["reason"] == "Invalid" and body["details"]["kind"] == "Deployment"
    assert body["message"] == (
        'Deployment.apps "web" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:'
        'map[string]string{"app":"new"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable')
    assert body["details"]["causes"][0]["field"] == "spec.selector"
    core.create_namespaced_config_map("default", {"metadata": {"name": "frozen"}, "data": {"a": "1"},
                                                  "immutable": True})
    with pytest.raises(ApiException) as frozen:
        core.patch_namespaced_config_map("frozen", "default", {"data": {"a": "2"}})
    assert frozen.value.status == 422
    assert "data: Forbidden: field is immutable when `immutable` is set" in json.loads(frozen.value.body)["message"]


def test_terminating_namespace_refuses_new_content(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": "closing"}})
    core.create_namespaced_config_map("closing", {"metadata": {"name": "held", "finalizers": ["example.com/x"]}})
    core.delete_namespace("closing")
    ns = core.read_namespace("closing")
    assert ns.status.phase == "Terminating" and ns.metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_config_map("closing", {"metadata": {"name": "new"}})
    assert refused.value.status == 403
    body = json.loads(refused.value.body)
    assert body["message"] == ('configmaps "new" is forbidden: unable to create new content in namespace closing '
                               "because it is being terminated")
    assert body["details"]["causes"][0]["reason"] == "NamespaceTerminating"
    with pytest.raises(ApiException) as again:
        core.delete_namespace("closing")
    assert again.value.status == 409
    core.patch_namespaced_config_map("held", "closing", {"metadata": {"finalizers": None}})
    wait_for(lambda: _namespace_missing(core, "closing"))


def test_required_fields_are_validated(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    bad = _deployment("web")
    bad["spec"]["template"]["spec"]["containers"][0].pop("image")
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(ApiException) as err:
        apps.create_namespaced_deployment("default", bad)
    assert err.value.status == 422
    body = json.loads(err.value.body)
    assert body["message"] == (
        'Deployment.apps "web" is invalid: [spec.template.metadata.labels: Invalid value: '
        'map[string]string{"app":"other"}: `selector` does not match template `labels`, '
        "spec.template.spec.containers[0].image: Required value]")
    assert [c["field"] for c in body["details"]["causes"]] == [
        "spec.template.metadata.labels", "spec.template.spec.containers[0].image"]
    with pytest.raises(ApiException) as no_ports:
        client.CoreV1Api(api).create_namespaced_service("default", {"metadata": {"name": "s"}, "spec": {}})
    assert json.loads(no_ports.value.body)["message"] == 'Service "s" is invalid: spec.ports: Required value'


def test_secrets_and_configmaps_hold_at_most_one_mebibyte(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    limit = 1024 * 1024
    fits = base64.b64encode(b"x" * (limit - 10)).decode()
    core.create_namespaced_secret("default", {"metadata": {"name": "fits"}, "data": {"a": fits}})
    too_big = {"a": base64.b64encode(b"x" * limit).decode(), "b": base64.b64encode(b"y").decode()}
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_secret("default", {"metadata": {"name": "big"}, "data": too_big})
    assert refused.value.status == 422 and f"must have at most {limit} bytes" in refused.value.body
    with pytest.raises(ApiException) as refused_cm:
        core.create_namespaced_config_map("default", {"metadata": {"name": "big"}, "data": {"a": "z" * (limit + 1)}})
    assert refused_cm.value.status == 422
    # An update that grows past the limit is refused and leaves the stored object as it was.
    with pytest.raises(ApiException):
        core.patch_namespaced_secret("fits", "default", {"data": {"more": base64.b64encode(b"m" * 100).decode()}})
    assert set(core.read_namespaced_secret("fits", "default").data) == {"a"}
