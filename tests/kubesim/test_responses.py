"""Answers shaped as kube-apiserver shapes them (issue 17): DELETE bodies, metadata-only reads, APIServices."""

from __future__ import annotations

import json
from typing import Any

import urllib3
from kubernetes import client

from kubesim.testing import KubeSim

JSON = {"Content-Type": "application/json"}


def test_deleting_a_service_answers_with_the_service(sim: KubeSim, cluster: str, api: client.ApiClient) -> None:
    client.CoreV1Api(api).create_namespaced_service("default", {
        "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}})
    client.CoreV1Api(api).create_namespaced_config_map("default", {"metadata": {"name": "cm"}})
    http = urllib3.PoolManager()
    gone = json.loads(http.request("DELETE", f"{sim.url(cluster)}/api/v1/namespaces/default/services/web").data)
    assert (gone["kind"], gone["metadata"]["name"]) == ("Service", "web")
    status = json.loads(http.request("DELETE", f"{sim.url(cluster)}/api/v1/namespaces/default/configmaps/cm").data)
    assert (status["kind"], status["status"]) == ("Status", "Success")


def test_metadata_only_reads(sim: KubeSim, cluster: str, api: client.ApiClient) -> None:
    client.CoreV1Api(api).create_namespaced_config_map("default", {"metadata": {"name": "cm", "labels": {"a": "b"}},
                                                                   "data": {"secret-ish": "value"}})
    http = urllib3.PoolManager()
    base = f"{sim.url(cluster)}/api/v1/namespaces/default/configmaps"
    listed = json.loads(http.request("GET", base, headers={
        "Accept": "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"}).data)
    assert (listed["kind"], listed["apiVersion"]) == ("PartialObjectMetadataList", "meta.k8s.io/v1")
    item = next(i for i in listed["items"] if i["metadata"]["name"] == "cm")
    assert set(item) == {"kind", "apiVersion", "metadata"} and item["kind"] == "PartialObjectMetadata"
    one = json.loads(http.request("GET", f"{base}/cm", headers={
        "Accept": "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"}).data)
    assert one == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": item["metadata"]}
    assert one["metadata"]["labels"] == {"a": "b"}


def test_metadata_only_watch_streams_partial_objects(sim: KubeSim, cluster: str, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", {"metadata": {"name": "cm", "labels": {"a": "b"}},
                                                  "data": {"secret-ish": "value"}})
    start = core.list_namespaced_config_map("default").metadata.resource_version
    core.patch_namespaced_config_map("cm", "default", {"metadata": {"labels": {"a": "c"}}})
    http = urllib3.PoolManager()
    base = f"{sim.url(cluster)}/api/v1/namespaces/default/configmaps"
    accept = {"Accept": "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"}
    # From the start (initial ADDED events) and resumed from a resourceVersion (the MODIFIED event).
    initial = http.request("GET", f"{base}?watch=1&timeoutSeconds=1", headers=accept).data
    resumed = http.request("GET", f"{base}?watch=1&timeoutSeconds=1&resourceVersion={start}", headers=accept).data
    events = [json.loads(line) for line in (initial + resumed).splitlines()]
    seen = [(e["type"], e["object"]["metadata"]["name"]) for e in events]
    assert ("ADDED", "cm") in seen and ("MODIFIED", "cm") in seen
    for event in events:
        assert set(event["object"]) == {"kind", "apiVersion", "metadata"}
        assert (event["object"]["kind"], event["object"]["apiVersion"]) == ("PartialObjectMetadata", "meta.k8s.io/v1")
    assert events[-1]["object"]["metadata"]["labels"] == {"a": "c"}
    # Without the metadata Accept header the same watch carries whole ConfigMaps.
    whole = json.loads(http.request("GET", f"{base}?watch=1&timeoutSeconds=1&resourceVersion={start}").data)
    assert whole["object"]["kind"] == "ConfigMap" and whole["object"]["data"] == {"secret-ish": "value"}


def test_kubernetes_service_is_there_as_on_a_real_cluster(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    svc: Any = core.read_namespaced_service("kubernetes", "default")
    assert svc.metadata.labels == {"component": "apiserver", "provider": "kubernetes"}
    assert (svc.spec.type, svc.spec.cluster_ip, svc.spec.cluster_ips, svc.spec.session_affinity) \
        == ("ClusterIP", "10.96.0.1", ["10.96.0.1"], "None")
    assert [(p.name, p.port, p.protocol, p.target_port) for p in svc.spec.ports] == [("https", 443, "TCP", 6443)]
    endpoints: Any = core.read_namespaced_endpoints("kubernetes", "default")
    assert [[a.ip for a in s.addresses] for s in endpoints.subsets] == [["172.18.0.2"]]
    assert [(p.name, p.port) for p in endpoints.subsets[0].ports] == [("https", 6443)]
    slice_: Any = client.DiscoveryV1Api(api).read_namespaced_endpoint_slice("kubernetes", "default")
    assert slice_.metadata.labels["kubernetes.io/service-name"] == "kubernetes"
    assert [(p.name, p.port) for p in slice_.ports] == [("https", 6443)]
    # A Service of the user's gets the next free address, never the API server's.
    mine: Any = core.create_namespaced_service("default", {"metadata": {"name": "web"},
                                                           "spec": {"ports": [{"port": 80}]}})
    assert mine.spec.cluster_ip not in ("10.96.0.1", "")
    assert sorted(s.metadata.name for s in core.list_namespaced_service("default").items) == ["kubernetes", "web"]


def test_every_builtin_group_version_is_a_local_apiservice(api: client.ApiClient) -> None:
    registered: Any = client.ApiregistrationV1Api(api).list_api_service()
    by_name = {s.metadata.name: s for s in registered.items}
    assert {"v1.", "v1.apps", "v1.rbac.authorization.k8s.io", "v1.apiregistration.k8s.io"} <= set(by_name)
    apps = by_name["v1.apps"]
    assert (apps.spec.group, apps.spec.version) == ("apps", "v1")
    assert [(c.type, c.status, c.reason) for c in apps.status.conditions] == [("Available", "True", "Local")]



def test_error_body_is_encoded_as_the_api_server_encodes_it(sim: KubeSim, cluster: str) -> None:
    missing = urllib3.PoolManager().request("GET", f"{sim.url(cluster)}/api/v1/namespaces/default/configmaps/nope")
    assert missing.status == 404 and missing.headers["Content-Type"] == "application/json"
    # encoding/json's Encoder: compact, fields in Go struct order, one trailing newline.
    assert missing.data == (b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                            b'"message":"configmaps \\"nope\\" not found","reason":"NotFound",'
                            b'"details":{"name":"nope","kind":"configmaps"},"code":404}\n')
