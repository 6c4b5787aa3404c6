"""kustomize's strategic merge (kyaml merge2, prepend): the rules a user sees in `kubectl kustomize` output."""

from __future__ import annotations

from typing import Any

import pytest

from hub.render.kustomize import merging


def deployment(containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"spec": {"containers": containers, **spec}}}}


def merged(obj: dict[str, Any], patch: dict[str, Any], group: str = "apps", kind: str = "Deployment") -> Any:
    return merging.merge(obj, patch, merging.schema_for(group, kind))


def containers_of(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["spec"]["template"]["spec"]["containers"]  # type: ignore[no-any-return]


def test_patch_elements_come_first_then_the_objects_others() -> None:
    obj = deployment([{"name": "web", "image": "nginx",
                       "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                      {"name": "metrics", "image": "exporter"}])
    patch = deployment([{"name": "proxy", "image": "envoy"},
                        {"name": "web", "env": [{"name": "C", "value": "3"}, {"name": "A", "value": "10"}]}])
    result = containers_of(merged(obj, patch))
    assert [c["name"] for c in result] == ["proxy", "web", "metrics"]
    assert result[1]["env"] == [{"name": "C", "value": "3"}, {"name": "A", "value": "10"}, {"name": "B", "value": "2"}]
    assert result[1]["image"] == "nginx"


def test_lists_without_merge_strategy_are_replaced() -> None:
    obj = deployment([{"name": "web", "image": "nginx", "args": ["a", "b"]}],
                     tolerations=[{"key": "x", "operator": "Exists"}])
    patch = deployment([{"name": "web", "args": ["c"]}], tolerations=[{"key": "y", "operator": "Exists"}])
    result = merged(obj, patch)
    assert containers_of(result)[0]["args"] == ["c"]
    assert result["spec"]["template"]["spec"]["tolerations"] == [{"key": "y", "operator": "Exists"}]


def test_directives_and_nulls() -> None:
    obj = deployment([{"name": "web", "image": "nginx", "resources": {"limits": {"cpu": "1"}}},
                      {"name": "old", "image": "x"}], nodeSelector={"a": "b"})
    patch = deployment([{"name": "old", "$patch": "delete"}, {"name": "web", "resources": {"$patch": "delete"}}],
                       nodeSelector=None)
    result = merged(obj, patch)
    assert containers_of(result) == [{"name": "web", "image": "nginx"}]
    assert "nodeSelector" not in result["spec"]["template"]["spec"]
    replaced = merged(deployment([{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]),
                      deployment([{"$patch": "replace"}, {"name": "c", "image": "z"}]))
    assert containers_of(replaced) == [{"name": "c", "image": "z"}]
    assert merged(deployment([]), {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                                   "$patch": "delete"}) is None


def test_multi_key_lists_keep_the_objects_elements_after_new_ones() -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"ports": [{"port": 80, "name": "http"}, {"port": 53, "protocol": "UDP", "name": "dns"}]}}
    patch = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
             "spec": {"ports": [{"port": 443, "name": "https"}, {"port": 80, "targetPort": 8080}]}}
    result = merged(svc, patch, "", "Service")
    assert result["spec"]["ports"] == [{"port": 443, "name": "https"},
                                       {"port": 80, "name": "http", "targetPort": 8080},
                                       {"port": 53, "protocol": "UDP", "name": "dns"}]


def test_scalar_sets_union_patch_first() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["a", "b"]}}
    patch = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["c", "a"]}}
    assert merged(obj, patch, "", "ConfigMap")["metadata"]["finalizers"] == ["c", "a", "b"]


def test_custom_resources_merge_maps_and_replace_lists() -> None:
    obj = {"apiVersion": "ex.com/v1", "kind": "Thing", "metadata": {"name": "t"},
           "spec": {"items": [{"name": "a", "v": 1}, {"name": "b", "v": 2}], "m": {"x": 1, "y": 2}}}
    patch = {"apiVersion": "ex.com/v1", "kind": "Thing", "metadata": {"name": "t"},
             "spec": {"items": [{"name": "a", "v": 9}], "m": {"y": None, "z": 3}}}
    result = merged(obj, patch, "ex.com", "Thing")
    assert result["spec"] == {"items": [{"name": "a", "v": 9}], "m": {"x": 1, "z": 3}}


def test_the_patch_is_not_changed_and_kind_conflicts_are_errors() -> None:
    patch = deployment([{"name": "web", "$patch": "delete"}], nodeSelector={"$patch": "replace", "a": "b"})
    before = repr(patch)
    merged(deployment([{"name": "web", "image": "x"}]), patch)
    assert repr(patch) == before
    with pytest.raises(merging.MergeError, match="the patch has a"):
        merged(deployment([{"name": "web", "image": "x"}]), deployment("not-a-list"))  # type: ignore[arg-type]
    with pytest.raises(merging.MergeError, match="unknown patch strategy"):
        merged(deployment([]), {**deployment([]), "$patch": "explode"})
