"""Watch semantics seen through kubernetes.watch.Watch, the DynamicClient, and raw HTTP."""

from __future__ import annotations

import json
import pathlib
import threading
import time
from typing import Any

import pytest
import urllib3
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

from kubesim.testing import KubeSim


def test_events_stream_as_they_happen(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    start = core.list_namespaced_config_map("default").metadata.resource_version
    seen: list[tuple[str, str]] = []
    arrived = threading.Event()

    def writer() -> None:
        core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
        arrived.wait(5)  # the ADDED event must arrive while the stream is still open
        core.patch_namespaced_config_map("a", "default", {"data": {"k": "v"}})
        core.delete_namespaced_config_map("a", "default")

    thread = threading.Thread(target=writer)
    thread.start()
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_config_map, "default", resource_version=start, timeout_seconds=5):
        seen.append((event["type"], event["object"].metadata.name))
        arrived.set()
        if len(seen) == 3:
            w.stop()
    thread.join()
    assert seen == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]


def test_watch_without_resource_version_starts_with_current_objects(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", {"metadata": {"name": "b"}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    events = list(watch.Watch().stream(core.list_namespaced_config_map, "default", timeout_seconds=1))
    assert [(e["type"], e["object"].metadata.name) for e in events] == [("ADDED", "a"), ("ADDED", "b"),
                                                                        ("ADDED", "kube-root-ca.crt")]


def test_selector_aware_added_and_deleted(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    start = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    core.patch_namespaced_config_map("a", "default", {"metadata": {"labels": {"sel": "yes"}}})
    core.patch_namespaced_config_map("a", "default", {"metadata": {"labels": {"sel": "no"}}})
    events = list(watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=start,
                                       label_selector="sel=yes", timeout_seconds=1))
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]


def test_too_old_resource_version_is_410(tmp_path: pathlib.Path) -> None:
    with KubeSim(clusters=["c"], watch_history=5) as small:
        api: Any = small.api_client("c")
        core = client.CoreV1Api(api)
        for i in range(10):
            core.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}"}})
        dyn = DynamicClient(api, cache_file=str(tmp_path / "cache.json"))
        cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
        with pytest.raises(ApiException) as err:
            list(dyn.watch(cms, namespace="default", resource_version="2", timeout=2))
        assert err.value.status == 410
        assert "Expired: too old resource version: 2" in str(err.value.reason)
        api.close()


def test_bookmarks_and_timeout(tmp_path: pathlib.Path) -> None:
    with KubeSim(clusters=["c"], bookmark_interval=0.1) as sim:
        api: Any = sim.api_client("c")
        dyn = DynamicClient(api, cache_file=str(tmp_path / "cache.json"))
        cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
        rv = cms.get(namespace="default").metadata.resourceVersion
        started = time.monotonic()
        events = list(dyn.watch(cms, namespace="default", resource_version=rv, timeout=1,
                                allow_watch_bookmarks=True))
        elapsed = time.monotonic() - started
        assert events and {e["type"] for e in events} == {"BOOKMARK"}
        assert events[0]["raw_object"]["metadata"]["resourceVersion"] == rv
        assert 0.9 <= elapsed < 5  # the stream ended on timeoutSeconds
        api.close()


def test_send_initial_events_ends_with_annotated_bookmark(sim: KubeSim, cluster: str, api: client.ApiClient) -> None:
    client.CoreV1Api(api).create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    http = urllib3.PoolManager()
    url = (f"{sim.url(cluster)}/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true"
           "&resourceVersionMatch=NotOlderThan&resourceVersion=&allowWatchBookmarks=true&timeoutSeconds=1")
    response = http.request("GET", url)
    assert response.status == 200 and response.headers["Transfer-Encoding"] == "chunked"
    lines = [json.loads(line) for line in response.data.splitlines()]
    assert [line["type"] for line in lines] == ["ADDED", "ADDED", "BOOKMARK"]  # a and kube-root-ca.crt
    assert lines[2]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    refused = http.request("GET", f"{sim.url(cluster)}/api/v1/configmaps?watch=true&sendInitialEvents=true")
    assert refused.status == 422


def test_dynamic_watch_of_one_object(api: client.ApiClient, tmp_path: pathlib.Path) -> None:
    dyn = DynamicClient(api, cache_file=str(tmp_path / "cache.json"))
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    cms.create(body={"metadata": {"name": "one"}}, namespace="default")
    cms.create(body={"metadata": {"name": "two"}}, namespace="default")
    events = list(dyn.watch(cms, namespace="default", name="two", timeout=1))
    assert [(e["type"], e["object"].metadata.name) for e in events] == [("ADDED", "two")]


def test_a_watch_whose_client_left_unsubscribes(sim: KubeSim, cluster: str, api: client.ApiClient) -> None:
    http = urllib3.PoolManager(retries=False)
    response = http.request("GET", f"{sim.url(cluster)}/api/v1/namespaces?watch=true&timeoutSeconds=300",
                            preload_content=False)
    chunks = response.stream(amt=None)  # held: dropping the generator would close the connection
    assert b'"ADDED"' in next(chunks)

    def watchers() -> int:
        running = sim._running().clusters.get(cluster)
        assert running is not None
        return sum(len(subs) for subs in running.store._subs.values())

    assert sim.call(watchers) == 1
    if response.connection is not None:
        response.connection.close()  # the client goes away mid-stream
    http.clear()
    deadline = time.monotonic() + 5
    while sim.call(watchers):
        assert time.monotonic() < deadline, "the watch kept its subscription after the client left"
        time.sleep(0.02)


def test_a_bookmark_arrives_shortly_before_the_timeout(sim: KubeSim, cluster: str) -> None:
    http = urllib3.PoolManager(retries=False)
    list_rv = json.loads(http.request("GET", f"{sim.url(cluster)}/api/v1/namespaces").data)["metadata"][
        "resourceVersion"]
    started = time.monotonic()
    response = http.request("GET", f"{sim.url(cluster)}/api/v1/namespaces?watch=true&allowWatchBookmarks=true"
                            f"&resourceVersion={list_rv}&timeoutSeconds=4")
    elapsed = time.monotonic() - started
    events = [json.loads(line) for line in response.data.splitlines()]
    assert [e["type"] for e in events] == ["BOOKMARK"]  # the default interval is 60 s: this is the early one
    assert events[0]["object"] == {"kind": "Namespace", "apiVersion": "v1", "metadata": {"resourceVersion": list_rv}}
    assert 3.5 <= elapsed < 8
