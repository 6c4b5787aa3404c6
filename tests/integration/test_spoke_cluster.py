"""ClusterClient against kubesim: typed errors, 409 re-read-and-retry, watches as plain dicts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from spoke.cluster import ClusterClient, errors


@pytest.fixture
def client(kubesim_server: Any, kube_cluster: str) -> Iterator[ClusterClient]:
    c = ClusterClient.from_config_dict(kubesim_server.kubeconfig(kube_cluster))
    yield c
    c.close()


def _cm(name: str, value: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"},
            "data": {"k": value}}


def test_missing_objects_and_kinds(client: ClusterClient) -> None:
    assert client.get("v1", "ConfigMap", "default", "nope") is None
    assert client.delete("v1", "ConfigMap", "default", "nope") is False
    with pytest.raises(errors.UnknownKindError, match=r"^Gadget \(example.com/v1\): the API server serves no such"):
        client.resource("example.com/v1", "Gadget")


def test_update_with_rereads_and_retries_on_conflict(client: ClusterClient) -> None:
    client.create(_cm("shared", "0"), manager="test")
    calls: list[str] = []

    def mutate(live: dict[str, Any] | None) -> dict[str, Any]:
        assert live is not None
        calls.append(live["data"]["k"])
        if len(calls) == 1:  # someone else writes between our read and our write
            client.apply(_cm("shared", "theirs"), manager="other", force=True)
        live["data"]["k"] = live["data"]["k"] + "+ours"
        return live

    result = client.update_with("v1", "ConfigMap", "default", "shared", mutate, manager="test")
    assert calls == ["0", "theirs"]  # the second attempt started from the other writer's state
    assert result["data"]["k"] == "theirs+ours"


def test_replace_with_a_stale_resource_version_is_a_conflict(client: ClusterClient) -> None:
    created = client.create(_cm("stale", "a"), manager="test")
    client.apply(_cm("stale", "b"), manager="other", force=True)
    with pytest.raises(errors.ConflictError, match=r"^ConfigMap/default/stale: .*\(HTTP 409"):
        client.replace({**created, "data": {"k": "c"}}, manager="test")


def test_watch_yields_plain_dicts_from_a_resource_version(client: ClusterClient) -> None:
    listed = client.list("v1", "ConfigMap", label_selector="team=a")
    stream = client.watch("v1", "ConfigMap", label_selector="team=a", resource_version=listed.resource_version,
                          timeout_seconds=5)
    labelled = _cm("watched", "1")
    labelled["metadata"]["labels"] = {"team": "a"}
    client.apply(_cm("unlabelled", "1"), manager="test")
    client.apply(labelled, manager="test")
    client.delete("v1", "ConfigMap", "default", "watched")
    seen = []
    for event in stream:
        if event.type != "BOOKMARK":
            seen.append((event.type, event.object["metadata"]["name"], event.object["kind"]))
        if len(seen) == 2:
            stream.close()
            break
    assert seen == [("ADDED", "watched", "ConfigMap"), ("DELETED", "watched", "ConfigMap")]
