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
