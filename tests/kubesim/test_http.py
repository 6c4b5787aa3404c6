"""Wire details checked over raw HTTP: status codes, headers, discovery formats, error bodies, the CLI."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import Any

import urllib3
import yaml
from kubernetes import client

from kubesim.testing import KubeSim
from tests.kubesim.objects import CRD

JSON = {"Content-Type": "application/json"}
APPLY = {"Content-Type": "application/apply-patch+yaml"}


def _http() -> urllib3.PoolManager:
    return urllib3.PoolManager(retries=False)


def test_apply_answers_201_on_create_then_200(sim: KubeSim, cluster: str) -> None:
    url = f"{sim.url(cluster)}/api/v1/namespaces/default/configmaps/a?fieldManager=m"
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}})
    first = _http().request("PATCH", url, body=body, headers=APPLY)
    assert first.status == 201 and first.headers["Content-Type"] == "application/json"
    second = _http().request("PATCH", url, body=body, headers=APPLY)
    assert second.status == 200
    assert (json.loads(second.data)["metadata"]["resourceVersion"]
            == json.loads(first.data)["metadata"]["resourceVersion"])
    in_missing_ns = _http().request("PATCH", url.replace("/default/", "/nowhere/"), body=body, headers=APPLY)
    assert in_missing_ns.status == 404
    assert json.loads(in_missing_ns.data)["message"] == 'namespaces "nowhere" not found'


def test_unknown_fields_warn_by_default_and_fail_when_strict(sim: KubeSim, cluster: str) -> None:
    url = f"{sim.url(cluster)}/api/v1/namespaces/default/configmaps"
    warned = _http().request("POST", url, body=json.dumps({"metadata": {"name": "a"}, "dta": {"k": "v"}}),
                             headers=JSON)
    assert warned.status == 201
    assert warned.headers.getlist("Warning") == ['299 - "unknown field \\"dta\\""']
    assert "dta" not in json.loads(warned.data)  # dropped, as a real server does
    strict = _http().request("POST", url + "?fieldValidation=Strict",
                             body=json.dumps({"metadata": {"name": "b"}, "dta": {}}), headers=JSON)
    assert strict.status == 400
    assert json.loads(strict.data)["message"] == 'strict decoding error: unknown field "dta"'


def test_aggregated_discovery_with_etag(sim: KubeSim, cluster: str) -> None:
    accept = {"Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"}
    first = _http().request("GET", f"{sim.url(cluster)}/apis", headers=accept)
    assert first.status == 200
    assert first.headers["Content-Type"] == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    doc = json.loads(first.data)
    apps = next(item for item in doc["items"] if item["metadata"]["name"] == "apps")
    deployments = next(r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments")
    assert deployments["scope"] == "Namespaced" and deployments["responseKind"]["kind"] == "Deployment"
    again = _http().request("GET", f"{sim.url(cluster)}/apis",
                            headers={**accept, "If-None-Match": first.headers["ETag"]})
    assert again.status == 304
    legacy = _http().request("GET", f"{sim.url(cluster)}/apis")
    assert legacy.headers["Content-Type"] == "application/json" and json.loads(legacy.data)["kind"] == "APIGroupList"


def test_unknown_paths(sim: KubeSim, cluster: str) -> None:
    nowhere = _http().request("GET", f"{sim.url(cluster)}/apis/nope.example.com/v1/things")
    assert nowhere.status == 404 and nowhere.data == b"404 page not found\n"
    no_resource = _http().request("GET", f"{sim.url(cluster)}/api/v1/things")
    assert no_resource.status == 404
    assert json.loads(no_resource.data)["message"] == "the server could not find the requested resource"
    no_cluster = _http().request("GET", f"{sim.base_url}/clusters/not-there/api/v1/namespaces")
    assert no_cluster.status == 404


def test_foreground_deletion_waits_for_dependents(sim: KubeSim, cluster: str, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    owner = core.create_namespaced_config_map("default", {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid,
           "blockOwnerDeletion": True}
    core.create_namespaced_config_map("default", {"metadata": {"name": "dep", "ownerReferences": [ref],
                                                               "finalizers": ["example.com/hold"]}})
    core.delete_namespaced_config_map("owner", "default", propagation_policy="Foreground")
    deadline = time.monotonic() + 5
    while not core.read_namespaced_config_map("dep", "default").metadata.deletion_timestamp:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    held = core.read_namespaced_config_map("owner", "default")
    assert held.metadata.finalizers == ["foregroundDeletion"] and held.metadata.deletion_timestamp
    core.patch_namespaced_config_map("dep", "default", {"metadata": {"finalizers": None}})
    while _exists(core, "owner"):
        assert time.monotonic() < deadline
        time.sleep(0.01)


def _exists(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespaced_config_map(name, "default")
    except client.ApiException as exc:
        assert exc.status == 404
        return False
    return True


def test_dry_run_create_and_update(sim: KubeSim, cluster: str) -> None:
    url = f"{sim.url(cluster)}/api/v1/namespaces/default/configmaps"
    dry = _http().request("POST", url + "?dryRun=All", body=json.dumps({"metadata": {"name": "a"}}), headers=JSON)
    assert dry.status == 201
    made = json.loads(dry.data)["metadata"]
    assert made["uid"] and made["creationTimestamp"] and "resourceVersion" not in made
    assert _http().request("GET", f"{url}/a").status == 404
    bad = _http().request("POST", url + "?dryRun=Some", body=json.dumps({"metadata": {"name": "a"}}), headers=JSON)
    assert bad.status == 422


def test_many_clusters_are_independent(sim: KubeSim) -> None:
    names = [f"many-{i}" for i in range(1000)]
    for name in names:
        sim.add_cluster(name)
    http = _http()
    for name in names[::250]:
        body = json.dumps({"metadata": {"name": name}})
        assert http.request("POST", f"{sim.url(name)}/api/v1/namespaces/default/configmaps", body=body,
                            headers=JSON).status == 201
    listed = json.loads(http.request("GET", f"{sim.url('many-250')}/api/v1/namespaces/default/configmaps").data)
    assert [item["metadata"]["name"] for item in listed["items"]] == ["kube-root-ca.crt", "many-250"]
    booted = sim.call(lambda: sum(1 for n in names if sim._running().clusters.get(n).started))  # type: ignore[union-attr]
    assert booted == 4  # clusters nobody used stay unbuilt


def test_cli_serve_writes_kubeconfig_and_stops_on_sigterm(tmp_path: pathlib.Path) -> None:
    kubeconfig = tmp_path / "kc.yaml"
    proc = subprocess.Popen([sys.executable, "-m", "kubesim", "serve", "--names", "east,west", "--kubeconfig",
                             str(kubeconfig), "--token", "tok", "--kube-version", "v1.30.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=pathlib.Path(__file__).resolve().parents[2], env=dict(os.environ))
    try:
        deadline = time.monotonic() + 20
        while not (kubeconfig.exists() and kubeconfig.read_text()):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        doc: Any = yaml.safe_load(kubeconfig.read_text())
        assert [c["name"] for c in doc["contexts"]] == ["east", "west"]
        assert doc["users"][0]["user"] == {"token": "tok"}
        server = doc["clusters"][1]["cluster"]["server"]
        assert server.startswith("http://127.0.0.1:") and server.endswith("/clusters/west")
        response = _http().request("GET", server + "/version", headers={"Authorization": "Bearer tok"})
        assert response.status == 200
        assert {k: v for k, v in json.loads(response.data).items() if k in ("major", "minor")} == {
            "major": "1", "minor": "30"}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "east: http://127.0.0.1:" in out


def test_scale_subresource(sim: KubeSim, cluster: str, api: client.ApiClient, kubectl: str,
                           tmp_path: pathlib.Path, isolated_home: str) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment("default", {"metadata": {"name": "web"}, "spec": {
        "replicas": 2, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    current = apps.read_namespaced_deployment_scale("web", "default")
    assert current.spec.replicas == 2 and current.status.selector == "app=web"
    scaled = apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 4}})
    assert scaled.spec.replicas == 4
    dep = apps.read_namespaced_deployment("web", "default")
    assert dep.spec.replicas == 4 and dep.metadata.generation == 2
    assert any(m.subresource == "scale" for m in dep.metadata.managed_fields)
    path = sim.write_kubeconfig(tmp_path / "kc", [cluster])
    out = subprocess.run([kubectl, "--kubeconfig", str(path), "scale", "deployment/web", "--replicas=1"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert apps.read_namespaced_deployment("web", "default").spec.replicas == 1


def test_secret_string_data_is_folded_into_data(api: client.ApiClient) -> None:
    secret = client.CoreV1Api(api).create_namespaced_secret(
        "default", {"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}, "data": {"a": "Yg=="}})
    assert secret.data == {"a": "Yg==", "password": "aHVudGVyMg=="}
    assert secret.string_data is None and secret.type == "Opaque"


def test_terminating_crd_stays_discoverable_with_fewer_verbs(api: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(api)
    ext.create_custom_resource_definition(CRD)
    custom = client.CustomObjectsApi(api)
    deadline = time.monotonic() + 5
    while True:
        try:
            custom.create_namespaced_custom_object("example.com", "v1", "default", "widgets", {
                "apiVersion": "example.com/v1", "kind": "Widget",
                "metadata": {"name": "held", "finalizers": ["example.com/hold"]}})
            break
        except client.ApiException as exc:
            assert exc.status == 404 and time.monotonic() < deadline
            time.sleep(0.01)
    ext.delete_custom_resource_definition("widgets.example.com")
    while not custom.get_namespaced_custom_object("example.com", "v1", "default", "widgets", "held")[
            "metadata"].get("deletionTimestamp"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    crd = ext.read_custom_resource_definition("widgets.example.com")
    assert {c.type: c.reason for c in crd.status.conditions}["Terminating"] == "InstanceDeletionInProgress"
    resources = {r.name: r for r in client.CustomObjectsApi(api).get_api_resources("example.com", "v1").resources}
    assert sorted(resources["widgets"].verbs) == ["delete", "deletecollection", "get", "list", "watch"]
    custom.patch_namespaced_custom_object("example.com", "v1", "default", "widgets", "held",
                                          {"metadata": {"finalizers": None}})
    while True:
        try:
            ext.read_custom_resource_definition("widgets.example.com")
        except client.ApiException as exc:
            assert exc.status == 404
            break
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_delete_collection_by_label(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    for name, tier in (("a", "web"), ("b", "web"), ("c", "db")):
        core.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": {"tier": tier}}})
    deleted = core.delete_collection_namespaced_config_map("default", label_selector="tier=web")
    assert deleted.kind == "ConfigMapList"  # the real server answers with the list of deleted objects
    assert [i.metadata.name for i in core.list_namespaced_config_map("default").items] == ["c", "kube-root-ca.crt"]


async def test_async_users_start_the_server_on_their_loop() -> None:
    import aiohttp

    from kubesim import server

    running = await server.start(server.ServerOptions(clusters=("solo",)))
    try:
        async with aiohttp.ClientSession() as http, http.get(running.url("solo") + "/api/v1/namespaces") as resp:
            assert resp.status == 200
            names = [item["metadata"]["name"] for item in (await resp.json())["items"]]
        assert names == ["default", "kube-node-lease", "kube-public", "kube-system"]
    finally:
        await running.stop()


def test_decoding_errors_are_400_like_the_go_decoder(sim: KubeSim, cluster: str) -> None:
    url = f"{sim.url(cluster)}/api/v1/namespaces/default"
    number = _http().request("POST", f"{url}/configmaps", headers=JSON,
                             body=json.dumps({"metadata": {"name": "a"}, "data": {"port": 8080}}))
    assert number.status == 400
    assert json.loads(number.data)["message"] == (
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal number into Go '
        "struct field ConfigMap.data of type string")
    plain = _http().request("POST", f"{url}/secrets", headers=JSON,
                            body=json.dumps({"metadata": {"name": "s"}, "data": {"password": "hunter2!"}}))
    assert plain.status == 400
    assert json.loads(plain.data)["message"] == (
        'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 7')
    label = _http().request("POST", f"{url}/configmaps", headers=JSON,
                            body=json.dumps({"metadata": {"name": "b", "labels": {"on": True}}}))
    assert label.status == 400 and "ObjectMeta.metadata.labels of type string" in json.loads(label.data)["message"]
