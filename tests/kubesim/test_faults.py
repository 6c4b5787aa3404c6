"""Fault injection, switched at run time in-process and over HTTP."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import urllib3
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from kubesim.faults import Faults, FaultsError
from kubesim.testing import KubeSim


def test_error_rates_by_status(sim: KubeSim, cluster: str, api: client.ApiClient) -> None:
    # Raw HTTP without retries: urllib3 (under the official client) would honour Retry-After and retry.
    http = urllib3.PoolManager(retries=False)
    url = f"{sim.url(cluster)}/api/v1/namespaces"
    sim.set_faults(cluster, Faults(error_rates={429: 1.0}, retry_after=3))
    throttled = http.request("GET", url)
    assert throttled.status == 429 and throttled.headers["Retry-After"] == "3"
    body = json.loads(throttled.data)
    assert body["reason"] == "TooManyRequests" and body["details"] == {"retryAfterSeconds": 3}
    sim.set_faults(cluster, Faults(error_rates={503: 1.0}))
    assert http.request("GET", url).status == 503
    sim.set_faults(cluster, Faults(error_rates={500: 1.0}))
    with pytest.raises(ApiException) as failed:
        client.CoreV1Api(api).list_namespace()
    assert failed.value.status == 500
    sim.clear_faults(cluster)
    assert client.CoreV1Api(api).list_namespace().items


def test_partial_error_rate_is_repeatable_with_a_seed(sim: KubeSim, cluster: str, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)

    def outcomes() -> list[int]:
        sim.set_faults(cluster, Faults(error_rates={500: 0.5}, seed=7))
        codes = []
        for _ in range(40):
            try:
                core.read_namespace("default")
                codes.append(200)
            except ApiException as exc:
                codes.append(exc.status)
        return codes

    first = outcomes()
    assert set(first) == {200, 500}
    assert outcomes() == first
    sim.clear_faults(cluster)


def test_latency_and_dropped_connections(sim: KubeSim, cluster: str, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    sim.set_faults(cluster, Faults(latency=0.3))
    started = time.monotonic()
    core.read_namespace("default")
    assert time.monotonic() - started >= 0.3
    sim.set_faults(cluster, Faults(drop_rate=1.0))
    http = urllib3.PoolManager(retries=False)
    with pytest.raises(urllib3.exceptions.ProtocolError):
        http.request("GET", f"{sim.url(cluster)}/api/v1/namespaces")
    sim.clear_faults(cluster)


def test_watch_streams_cut_mid_way(sim: KubeSim, cluster: str, api: client.ApiClient) -> None:
    sim.set_faults(cluster, Faults(watch_cut_after=0.2))
    http = urllib3.PoolManager(retries=False)
    started = time.monotonic()
    response = http.request("GET", f"{sim.url(cluster)}/api/v1/namespaces?watch=true&timeoutSeconds=10",
                            preload_content=False)
    lines: list[bytes] = []
    with pytest.raises(urllib3.exceptions.ProtocolError):
        for chunk in response.stream(amt=None):
            lines.append(chunk)
    assert time.monotonic() - started < 5  # cut long before the 10 s timeout
    assert b'"ADDED"' in b"".join(lines)  # events flowed before the cut
    sim.clear_faults(cluster)
    core = client.CoreV1Api(api)
    events = list(watch.Watch().stream(core.list_namespace, timeout_seconds=1))
    assert len(events) == 4


def test_faults_over_http(sim: KubeSim, cluster: str, api: client.ApiClient) -> None:
    http = urllib3.PoolManager()
    admin = f"{sim.base_url}/kubesim/v1/clusters/{cluster}/faults"
    put = http.request("PUT", admin, body=json.dumps({"error_rates": {"500": 1.0}}),
                       headers={"Content-Type": "application/json"})
    assert put.status == 200
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(api).list_namespace()
    assert err.value.status == 500
    bad = http.request("PUT", admin, body=json.dumps({"error_rates": {"404": 1.0}}))
    assert bad.status == 400 and "404" in json.loads(bad.data)["message"]
    assert http.request("DELETE", admin).status == 200
    assert client.CoreV1Api(api).list_namespace().items


def test_faults_document_is_checked() -> None:
    with pytest.raises(FaultsError, match="drop_rate"):
        Faults(drop_rate=2.0)
    with pytest.raises(FaultsError, match="unknown field"):
        Faults.from_json({"latency": 1, "nope": 2})
    parsed: Any = Faults.from_json({"error_rates": {"429": 0.1}, "watch_cut_after": 2})
    assert parsed.error_rates == {429: 0.1} and parsed.watch_cut_after == 2.0


def test_a_cut_switched_on_later_reaches_open_watches(sim: KubeSim, cluster: str, api: client.ApiClient) -> None:
    http = urllib3.PoolManager(retries=False)
    response = http.request("GET", f"{sim.url(cluster)}/api/v1/namespaces?watch=true&timeoutSeconds=30",
                            preload_content=False)
    chunks = response.stream(amt=None)
    assert b'"ADDED"' in next(chunks)
    started = time.monotonic()
    sim.set_faults(cluster, Faults(watch_cut_after=0.0))
    with pytest.raises(urllib3.exceptions.ProtocolError):
        for _chunk in chunks:
            pass
    assert time.monotonic() - started < 5
    sim.clear_faults(cluster)


def test_bad_gateway_and_gateway_timeout(sim: KubeSim, cluster: str) -> None:
    # A load balancer in front of the API server answers these, with no Kubernetes Status body.
    http = urllib3.PoolManager(retries=False)
    url = f"{sim.url(cluster)}/api/v1/namespaces"
    sim.set_faults(cluster, Faults(error_rates={502: 1.0}))
    assert http.request("GET", url).status == 502
    sim.set_faults(cluster, Faults(error_rates={504: 1.0}))
    assert http.request("GET", url).status == 504
    sim.clear_faults(cluster)
    assert http.request("GET", url).status == 200


def test_stalled_body_sends_headers_then_nothing(sim: KubeSim, cluster: str) -> None:
    sim.set_faults(cluster, Faults(stall_rate=1.0, stall_for=30.0))
    http = urllib3.PoolManager(retries=False)
    started = time.monotonic()
    response = http.request("GET", f"{sim.url(cluster)}/api/v1/namespaces", preload_content=False,
                            timeout=urllib3.Timeout(connect=5, read=0.5))
    assert response.status == 200  # the headers came: only a read timeout notices the stall
    with pytest.raises((urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ProtocolError)):
        response.read()
    assert time.monotonic() - started < 10
    sim.clear_faults(cluster)
    assert http.request("GET", f"{sim.url(cluster)}/api/v1/namespaces").status == 200


def test_stall_fields_are_checked() -> None:
    with pytest.raises(FaultsError, match="stall_rate"):
        Faults(stall_rate=1.5)
    parsed = Faults.from_json({"error_rates": {"502": 1, "504": 0.5}, "stall_rate": 0.5, "stall_for": 3})
    assert parsed.error_rates == {502: 1.0, 504: 0.5} and parsed.stall_for == 3.0
    assert Faults.from_json(parsed.to_json()) == parsed


def test_a_stalled_watch_sends_nothing_more_until_cut(sim: KubeSim, cluster: str, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    http = urllib3.PoolManager(retries=False)
    response = http.request("GET", f"{sim.url(cluster)}/api/v1/namespaces/default/configmaps?watch=true"
                                   "&allowWatchBookmarks=true&timeoutSeconds=60", preload_content=False,
                            timeout=urllib3.Timeout(connect=5, read=1.0))
    assert response.status == 200
    sim.set_faults(cluster, Faults(watch_stall_after=0.0, stall_for=30.0))
    core.create_namespaced_config_map("default", {"metadata": {"name": "unheard"}})
    # The event is never sent: the stream stays open and silent (no FIN), so only a read timeout notices.
    heard = b""
    with pytest.raises((urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ProtocolError)):
        while chunk := response.read(1):  # what was sent before the stall (objects already there), then nothing
            heard += chunk
    assert b"unheard" not in heard
    sim.clear_faults(cluster)
    assert Faults.from_json({"watch_stall_after": 2, "stall_for": 5}).watch_stall_after == 2.0
    assert Faults.from_json(Faults(watch_stall_after=1.5).to_json()).watch_stall_after == 1.5
