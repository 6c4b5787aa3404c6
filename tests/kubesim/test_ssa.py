"""Server-side apply and managed fields: the cases `kubectl apply --server-side` users meet."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubesim import fieldsets, managedfields
from kubesim.apply import ApplyConflictError, Conflict, record_update, server_side_apply
from kubesim.defaults import apply_defaults
from protos.k8s_schema import schema_for

DEPLOYMENTS = schema_for("apps", "Deployment")
CONFIGMAPS = schema_for("", "ConfigMap")
T0, T1, T2, T3 = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z", "2026-01-01T00:03:00Z"


def deployment(replicas: int = 2, *, labels: dict[str, str] | None = None, containers: list[Any] | None = None,
               **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": labels if labels is not None else {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": containers if containers is not None else [
                    {"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]},
            },
            **spec,
        },
    }


def apply(live: dict[str, Any] | None, config: dict[str, Any], manager: str = "kubectl", *, force: bool = False,
          now: str = T0, schema: Any = DEPLOYMENTS, api_version: str = "apps/v1") -> dict[str, Any]:
    result = server_side_apply(live, config, manager=manager, force=force, api_version=api_version,
                               schema=schema, now=now)
    # The API server defaults the result of every write; defaulted fields stay unowned.
    group, _, version = api_version.rpartition("/")
    apply_defaults(group, version, result["kind"], result)
    return result


def update(old: dict[str, Any] | None, new: dict[str, Any], manager: str = "OpenAPI-Generator", *,
           now: str = T1, subresource: str | None = None, schema: Any = DEPLOYMENTS) -> dict[str, Any]:
    new = copy.deepcopy(new)
    new["metadata"]["managedFields"] = record_update(old, new, manager=manager, api_version="apps/v1",
                                                     subresource=subresource, schema=schema, now=now)
    return new


def entries(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["manager"] + "/" + e["operation"]: e for e in obj["metadata"].get("managedFields", [])}


def test_create_records_the_applied_fields_in_fieldsv1() -> None:
    created = apply(None, deployment())
    assert created["metadata"]["managedFields"] == [{
        "manager": "kubectl",
        "operation": "Apply",
        "apiVersion": "apps/v1",
        "time": T0,
        "fieldsType": "FieldsV1",
        "fieldsV1": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {'k:{"name":"web"}': {
                        ".": {}, "f:image": {}, "f:name": {},
                        "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}},
                    }}},
                },
            },
        },
    }]
    assert created["spec"]["revisionHistoryLimit"] == 10  # defaulted, and owned by nobody


def test_reapplying_the_same_manifest_changes_nothing() -> None:
    created = apply(None, deployment())
    again = apply(created, deployment(), now=T3)
    assert again == created


def test_update_takes_changed_fields_and_apply_then_conflicts() -> None:
    created = apply(None, deployment())
    scaled = copy.deepcopy(created)
    scaled["spec"]["replicas"] = 5
    scaled = update(created, scaled)
    owners = entries(scaled)
    assert owners["OpenAPI-Generator/Update"]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in owners["kubectl/Apply"]["fieldsV1"]["f:spec"]

    with pytest.raises(ApplyConflictError) as raised:
        apply(scaled, deployment(replicas=3), now=T2)
    assert raised.value.conflicts == [Conflict('"OpenAPI-Generator" using apps/v1', ".spec.replicas")]
    assert raised.value.status_body() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'Apply failed with 1 conflict: conflict with "OpenAPI-Generator" using apps/v1: .spec.replicas',
        "reason": "Conflict",
        "details": {"causes": [{"reason": "FieldManagerConflict",
                                "message": 'conflict with "OpenAPI-Generator" using apps/v1',
                                "field": ".spec.replicas"}]},
        "code": 409,
    }


def test_several_conflicts_are_grouped_by_manager() -> None:
    created = apply(None, deployment(), manager="ops")
    with pytest.raises(ApplyConflictError) as raised:
        apply(created, deployment(replicas=4, labels={"app": "other"},
                                  containers=[{"name": "web", "image": "nginx:2", "ports": [{"containerPort": 80}]}]),
              manager="ci", now=T1)
    assert str(raised.value) == (
        'Apply failed with 3 conflicts: conflicts with "ops":\n'
        "- .metadata.labels.app\n"
        "- .spec.replicas\n"
        '- .spec.template.spec.containers[name="web"].image'
    )
    assert [c["field"] for c in raised.value.status_body()["details"]["causes"]] == [
        ".metadata.labels.app", ".spec.replicas", '.spec.template.spec.containers[name="web"].image']


def test_force_takes_ownership_and_drops_emptied_managers() -> None:
    created = apply(None, deployment())
    scaled = copy.deepcopy(created)
    scaled["spec"]["replicas"] = 5
    scaled = update(created, scaled)
    forced = apply(scaled, deployment(replicas=3), force=True, now=T2)
    assert forced["spec"]["replicas"] == 3
    assert set(entries(forced)) == {"kubectl/Apply"}
    assert "f:replicas" in entries(forced)["kubectl/Apply"]["fieldsV1"]["f:spec"]
    assert entries(forced)["kubectl/Apply"]["time"] == T2


def test_equal_values_are_shared_not_conflicting() -> None:
    created = apply(None, deployment())
    shared = apply(created, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                             "spec": {"replicas": 2}}, manager="hpa-sync", now=T1)
    owners = entries(shared)
    assert owners["hpa-sync/Apply"]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    assert "time" not in owners["hpa-sync/Apply"]  # the object did not change: no time, as upstream
    assert "f:replicas" in owners["kubectl/Apply"]["fieldsV1"]["f:spec"]


def test_dropped_field_is_pruned_unless_co_owned() -> None:
    created = apply(None, deployment(labels={"app": "web", "team": "a", "tier": "front"}))
    co_owned = apply(created, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {
        "name": "web", "labels": {"tier": "front"}}}, manager="other", now=T1)
    pruned = apply(co_owned, deployment(labels={"app": "web"}), now=T2)
    assert pruned["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert entries(pruned)["kubectl/Apply"]["fieldsV1"]["f:metadata"] == {"f:labels": {"f:app": {}}}
    assert pruned["spec"]["revisionHistoryLimit"] == 10  # unowned defaults are not pruned


def test_dropped_list_item_and_struct_are_pruned() -> None:
    two = [{"name": "web", "image": "nginx"}, {"name": "sidecar", "image": "envoy"}]
    created = apply(None, deployment(containers=two, strategy={"type": "RollingUpdate",
                                                               "rollingUpdate": {"maxSurge": 1}}))
    assert created["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": "25%"}
    narrowed = apply(created, deployment(containers=two[:1], strategy={"type": "Recreate"}), now=T1)
    assert [c["name"] for c in narrowed["spec"]["template"]["spec"]["containers"]] == ["web"]
    assert narrowed["spec"]["strategy"] == {"type": "Recreate"}


def test_removed_fields_leave_every_owner() -> None:
    created = apply(None, deployment(labels={"app": "web", "team": "a"}))
    edited = copy.deepcopy(created)
    del edited["metadata"]["labels"]["team"]
    edited = update(created, edited, manager="kubectl-edit")
    assert entries(edited)["kubectl/Apply"]["fieldsV1"]["f:metadata"] == {"f:labels": {"f:app": {}}}
    assert "kubectl-edit/Update" not in entries(edited)  # it only removed: it owns nothing


def test_first_apply_to_untracked_object_records_before_first_apply() -> None:
    live = deployment(replicas=3)
    apply_defaults("apps", "v1", "Deployment", live)
    with pytest.raises(ApplyConflictError) as raised:
        apply(live, deployment(replicas=1), now=T1)
    assert raised.value.conflicts == [Conflict('"before-first-apply" using apps/v1', ".spec.replicas")]
    adopted = apply(live, deployment(replicas=3), now=T1)
    owners = entries(adopted)
    assert set(owners) == {"kubectl/Apply", "before-first-apply/Update"}
    before = owners["before-first-apply/Update"]["fieldsV1"]
    assert before["f:spec"]["f:revisionHistoryLimit"] == {}
    assert before["f:metadata"]["f:labels"] == {".": {}, "f:app": {}}
    assert "f:name" not in before["f:metadata"]  # never owned


def test_status_is_neither_applied_nor_owned_on_the_main_resource() -> None:
    live = apply(None, deployment())
    live["status"] = {"replicas": 2}
    config = deployment()
    config["status"] = {"replicas": 99}
    result = apply(live, config, now=T1)
    assert result["status"] == {"replicas": 2}
    assert "f:status" not in entries(result)["kubectl/Apply"]["fieldsV1"]


def test_update_entries_mark_added_maps_and_items_as_members() -> None:
    created = update(None, deployment(), manager="kubectl-create", now=T0)
    fields = entries(created)["kubectl-create/Update"]["fieldsV1"]
    assert fields["f:metadata"] == {"f:labels": {".": {}, "f:app": {}}}
    assert "." not in fields["f:spec"]  # spec exists in every new object
    assert "." not in fields["f:spec"]["f:template"]
    container = fields["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    assert container["."] == {} and "f:image" in container


def test_update_of_untracked_object_stays_untracked_and_status_writes_are_separate() -> None:
    assert record_update(deployment(), deployment(replicas=4), manager="m", api_version="apps/v1",
                         subresource=None, schema=DEPLOYMENTS, now=T1) == []
    created = apply(None, deployment())
    with_status = copy.deepcopy(created)
    with_status["status"] = {"replicas": 2, "readyReplicas": 2}
    with_status = update(created, with_status, manager="kube-controller-manager", subresource="status")
    entry = entries(with_status)["kube-controller-manager/Update"]
    assert entry["subresource"] == "status"
    assert entry["fieldsV1"] == {"f:status": {"f:readyReplicas": {}, "f:replicas": {}}}
    with pytest.raises(ApplyConflictError) as raised:
        apply(with_status, {**deployment(replicas=9), "status": {"replicas": 1}}, manager="x", now=T2)
    # status is ignored on the main resource: only the spec clashes, with the applier
    assert raised.value.conflicts == [Conflict('"kubectl"', ".spec.replicas")]
    reapplied = apply(with_status, deployment(replicas=3), now=T2)
    assert entries(reapplied)["kube-controller-manager/Update"]["fieldsV1"] == entry["fieldsV1"]
    assert reapplied["status"] == {"replicas": 2, "readyReplicas": 2}


def test_updater_with_subresource_is_named_that_way() -> None:
    key = managedfields.ManagerKey.of("kcm", managedfields.UPDATE, "apps/v1", "status")
    assert managedfields.display(key) == '"kcm" with subresource "status" using apps/v1'


def test_at_most_ten_update_managers() -> None:
    obj = apply(None, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}},
                schema=CONFIGMAPS, api_version="v1")
    for n in range(12):
        new = copy.deepcopy(obj)
        new["data"] = {**new.get("data", {}), f"k{n}": "v"}
        new["metadata"]["managedFields"] = record_update(
            obj, new, manager=f"writer-{n:02d}", api_version="v1", subresource=None, schema=CONFIGMAPS,
            now=f"2026-01-01T00:{n:02d}:00Z")
        obj = new
    updaters = [e for e in obj["metadata"]["managedFields"] if e["operation"] == "Update"]
    assert len(updaters) == 10
    ancient = next(e for e in updaters if e["manager"] == "ancient-changes")
    assert ancient["fieldsV1"]["f:data"].keys() >= {"f:k0", "f:k1", "f:k2"}
    assert all(e["manager"] != "writer-00" for e in updaters)


def test_entries_are_sorted_apply_first_then_time() -> None:
    created = apply(None, deployment(), manager="zeta", now=T2)
    scaled = copy.deepcopy(created)
    scaled["spec"]["replicas"] = 7
    scaled = update(created, scaled, manager="alpha", now=T3)
    labelled = apply(scaled, {"apiVersion": "apps/v1", "kind": "Deployment",
                              "metadata": {"name": "web", "labels": {"x": "y"}}}, manager="beta", now=T3)
    assert [(e["manager"], e["operation"]) for e in labelled["metadata"]["managedFields"]] == [
        ("zeta", "Apply"), ("beta", "Apply"), ("alpha", "Update")]


def test_applied_list_items_keep_live_order_and_new_items_follow_their_neighbours() -> None:
    created = apply(None, deployment(containers=[{"name": "a", "image": "a"}, {"name": "b", "image": "b"}]))
    injected = apply(created, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                               "spec": {"template": {"spec": {"containers": [{"name": "mesh", "image": "m"}]}}}},
                     manager="injector", now=T1)
    names = [c["name"] for c in injected["spec"]["template"]["spec"]["containers"]]
    assert names == ["a", "b", "mesh"]
    reapplied = apply(injected, deployment(containers=[{"name": "a", "image": "a2"}, {"name": "b", "image": "b"}]),
                      now=T2)
    assert [c["name"] for c in reapplied["spec"]["template"]["spec"]["containers"]] == ["a", "b", "mesh"]


def test_custom_resources_are_untyped_maps_with_atomic_lists() -> None:
    widgets = schema_for("example.com", "Widget")
    config = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
              "spec": {"size": 1, "items": [{"name": "a"}], "nested": {"x": 1}}}
    created = server_side_apply(None, config, manager="m", force=False, api_version="example.com/v1",
                                schema=widgets, now=T0)
    assert created["metadata"]["managedFields"][0]["fieldsV1"] == {
        "f:spec": {".": {}, "f:items": {}, "f:nested": {".": {}, "f:x": {}}, "f:size": {}}}


def test_fieldsv1_round_trip() -> None:
    trie = {"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:ports": {'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:port": {}}},
                       "f:finalizers": {'v:"a"': {}}}}
    paths = fieldsets.from_fields_v1(trie)
    assert ("f:metadata", "f:labels") in paths and ("f:metadata",) not in paths
    assert fieldsets.to_fields_v1(paths) == {
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {"f:finalizers": {'v:"a"': {}},
                   "f:ports": {'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:port": {}}}}}
    assert fieldsets.path_string(("f:spec", 'k:{"port":80,"protocol":"TCP"}', "f:port")) == (
        '.spec[port=80,protocol="TCP"].port')
    assert fieldsets.path_string(("f:metadata", "f:finalizers", 'v:"a"')) == '.metadata.finalizers[="a"]'


def test_duplicate_keyed_items_in_an_apply_are_rejected() -> None:
    twice = [{"name": "web", "image": "a"}, {"name": "web", "image": "b"}]
    with pytest.raises(fieldsets.FieldSetError, match=r'containers: duplicate entries for key \[name="web"\]'):
        apply(None, deployment(containers=twice))


def test_crd_schema_keys_lists_and_defaults_key_fields() -> None:
    crd_schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "routes": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name", "port"],
                   "items": {"type": "object", "properties": {
                       "name": {"type": "string"}, "port": {"type": "integer", "default": 80},
                       "weight": {"type": "integer"}}}}}}}}
    routes = schema_for("example.com", "Router", crd_schema=crd_schema)
    config = {"apiVersion": "example.com/v1", "kind": "Router", "metadata": {"name": "r"},
              "spec": {"routes": [{"name": "a", "weight": 1}]}}
    created = server_side_apply(None, config, manager="m", force=False, api_version="example.com/v1",
                                schema=routes, now=T0)
    assert created["metadata"]["managedFields"][0]["fieldsV1"] == {"f:spec": {"f:routes": {
        'k:{"name":"a","port":80}': {".": {}, "f:name": {}, "f:weight": {}}}}}
    other = server_side_apply(created, {**config, "spec": {"routes": [{"name": "b", "port": 81}]}}, manager="n",
                              force=False, api_version="example.com/v1", schema=routes, now=T1)
    assert [r["name"] for r in other["spec"]["routes"]] == ["a", "b"]


def test_apply_to_the_status_subresource_owns_only_status() -> None:
    created = apply(None, deployment())
    config = {**deployment(replicas=9), "status": {"replicas": 2}}
    result = server_side_apply(created, config, manager="controller", force=False, api_version="apps/v1",
                               schema=DEPLOYMENTS, now=T1, subresource="status")
    assert result["spec"]["replicas"] == 2 and result["status"] == {"replicas": 2}
    entry = entries(result)["controller/Apply"]
    assert entry["subresource"] == "status"
    assert entry["fieldsV1"] == {"f:status": {"f:replicas": {}}}


def test_kinds_without_status_subresource_apply_status_like_any_field() -> None:
    widgets = schema_for("example.com", "Widget")
    config = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "status": {"ok": True}}
    result = server_side_apply(None, config, manager="m", force=False, api_version="example.com/v1",
                               schema=widgets, now=T0, reset_fields=())
    assert result["status"] == {"ok": True}
    assert result["metadata"]["managedFields"][0]["fieldsV1"] == {"f:status": {".": {}, "f:ok": {}}}


def _client_side_applied(config: dict[str, Any]) -> dict[str, Any]:
    """What `kubectl apply` (client-side) leaves: the annotation, and an Update entry owning everything."""
    import json

    obj = copy.deepcopy(config)
    obj["metadata"].setdefault("annotations", {})[
        "kubectl.kubernetes.io/last-applied-configuration"] = json.dumps(config, sort_keys=True) + "\n"
    apply_defaults("apps", "v1", "Deployment", obj)
    return update(None, obj, manager="kubectl-client-side-apply", now=T0)


def test_kubectl_upgrades_from_client_side_apply_without_conflicts() -> None:
    import json

    live = _client_side_applied(deployment())
    moved = deployment(containers=[{"name": "web", "image": "nginx:2", "ports": [{"containerPort": 80}]}])
    with pytest.raises(ApplyConflictError, match='conflict with "kubectl-client-side-apply" using apps/v1'):
        apply(live, moved, manager="someone-else", now=T1)
    upgraded = apply(live, moved, now=T1)
    assert upgraded["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2"
    annotation = upgraded["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    assert annotation.endswith("\n") and json.loads(annotation) == moved
    assert "f:image" in entries(upgraded)["kubectl/Apply"]["fieldsV1"]["f:spec"]["f:template"]["f:spec"][
        "f:containers"]['k:{"name":"web"}']


def test_client_side_apply_upgrade_keeps_conflicts_with_later_edits() -> None:
    live = _client_side_applied(deployment())
    edited = copy.deepcopy(live)
    edited["spec"]["replicas"] = 7
    edited = update(live, edited, manager="kubectl-edit", now=T1)
    with pytest.raises(ApplyConflictError) as raised:
        apply(edited, deployment(replicas=3,
                                 containers=[{"name": "web", "image": "nginx:2", "ports": [{"containerPort": 80}]}]),
              now=T2)
    # The image still matches the annotation, so only the edited replicas conflict.
    assert raised.value.conflicts == [Conflict('"kubectl-edit" using apps/v1', ".spec.replicas")]


def test_set_lists_merge_per_member() -> None:
    def with_finalizers(*names: str) -> dict[str, Any]:
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "finalizers": list(names)}}

    obj = apply(None, with_finalizers("a.example/x", "shared"), manager="one")
    obj = apply(obj, with_finalizers("b.example/y", "shared"), manager="two", now=T1)
    # SMD keeps the applier's order around the items it shares with the live list.
    assert obj["metadata"]["finalizers"] == ["a.example/x", "b.example/y", "shared"]
    assert entries(obj)["two/Apply"]["fieldsV1"] == {
        "f:metadata": {"f:finalizers": {'v:"b.example/y"': {}, 'v:"shared"': {}}}}
    obj = apply(obj, with_finalizers(), manager="one", now=T2)
    assert obj["metadata"]["finalizers"] == ["b.example/y", "shared"]
