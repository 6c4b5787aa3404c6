"""ignoreDifferences (issue 21 part 2): fleet.yaml parsing with clear errors, the bundle form per cluster,
path syntax and matching (keyed list items, ~1 escaping), and what the spoke compares and applies."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from hub.fleet import model
from hub.fleet.model import FleetConfigError
from hub.render import bundles as render_bundles
from protos import ignoring
from spoke import drift

FLEET = """
apiVersion: convoy.dev/v1alpha1
kind: Fleet
apps:
  - name: web
    path: apps/web/base
    namespace: shop
    ignoreDifferences:
      - {group: apps, kind: Deployment, name: web, jsonPointers: [/spec/replicas]}
      - kind: MutatingWebhookConfiguration
        group: admissionregistration.k8s.io
        fieldPaths: ['.webhooks[name="inject.example.com"].clientConfig.caBundle']
        selector: {matchLabels: {env: prod}}
      - {kind: ConfigMap, group: "", jsonPointers: [/data/LOG_LEVEL], clusters: [dev-eu-1]}
"""


def _fleet(text: str) -> model.Fleet:
    return model.parse_fleet(yaml.safe_load(text))


def _with_entry(entry: str) -> str:
    return FLEET + f"      - {entry}\n"


def test_entries_parse_and_reach_only_the_clusters_they_pick() -> None:
    web = _fleet(FLEET).app("web")
    assert len(web.ignore_differences) == 3
    deployment = {"kind": "Deployment", "group": "apps", "name": "web", "jsonPointers": ["/spec/replicas"]}
    assert web.ignore_entries("dev-eu-1", {"env": "dev"}) == [
        deployment, {"kind": "ConfigMap", "group": "", "jsonPointers": ["/data/LOG_LEVEL"]}]
    assert web.ignore_entries("prod-eu-1", {"env": "prod"}) == [
        deployment, {"kind": "MutatingWebhookConfiguration", "group": "admissionregistration.k8s.io",
                     "fieldPaths": ['.webhooks[name="inject.example.com"].clientConfig.caBundle']}]


def test_the_bundle_app_entry_carries_them_only_when_set() -> None:
    plain = render_bundles.app_header(name="db", namespace=None, depends_on=(), drift_policy=None)
    assert "ignoreDifferences" not in plain  # apps without any keep their digests
    entry = {"kind": "Deployment", "jsonPointers": ["/spec/replicas"]}
    header = render_bundles.app_header(name="web", namespace="shop", depends_on=(), drift_policy=None,
                                       ignore_differences=[entry])
    assert header["ignoreDifferences"] == [entry]


@pytest.mark.parametrize(("entry", "field", "message"), [
    ("{kind: Deployment, jsonPointers: [spec/replicas]}", "apps[0].ignoreDifferences[3]",
     "'spec/replicas' is not a JSON pointer"),
    ("{kind: Deployment, jsonPointers: ['/a/~2b']}", "apps[0].ignoreDifferences[3]", "'~' must be followed by 0"),
    ("{kind: Deployment, fieldPaths: ['.spec.containers[name=web]']}", "apps[0].ignoreDifferences[3]",
     "is not a JSON value"),
    ("{kind: Deployment, fieldPaths: ['.spec[']}", "apps[0].ignoreDifferences[3]", "is never closed"),
    ("{kind: Deployment}", "apps[0].ignoreDifferences[3]", "names no field"),
    ("{jsonPointers: [/spec/replicas]}", "apps[0].ignoreDifferences[3]", "kind is required"),
    ("{kind: Deployment, jsonPointers: [/metadata]}", "apps[0].ignoreDifferences[3]", "Convoy needs"),
    ("{kind: Deployment, jsonPointer: [/spec/replicas]}", "apps[0].ignoreDifferences[3].jsonPointer",
     "unknown field"),
    ("{kind: Deployment, jsonPointers: [/spec/replicas], clusters: [Bad_Name]}",
     "apps[0].ignoreDifferences[3].clusters[0]", "is not a cluster name"),
])
def test_bad_entries_are_refused_naming_the_file_the_app_and_the_field(entry: str, field: str, message: str) -> None:
    with pytest.raises(FleetConfigError) as raised:
        _fleet(_with_entry(entry))
    text = str(raised.value)
    assert "fleet.yaml" in text and field in text and message in text, text
    if field.endswith("ignoreDifferences[3]"):  # a path or entry problem also names the app
        assert "app 'web'" in text, text


def test_json_pointer_escapes_and_field_path_elements() -> None:
    assert ignoring.parse_json_pointer("/metadata/annotations/example.com~1owner~0x") == (
        ("segment", "metadata"), ("segment", "annotations"), ("segment", "example.com/owner~x"))
    assert ignoring.parse_field_path('.spec.ports[port=80,protocol="TCP"].nodePort[0].x[="a,b"]') == (
        ("field", "spec"), ("field", "ports"), ("key", {"port": 80, "protocol": "TCP"}), ("field", "nodePort"),
        ("index", 0), ("field", "x"), ("value", "a,b"))


WEBHOOK: dict[str, Any] = {
    "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
    "metadata": {"name": "inject", "annotations": {"example.com/owner": "team-a", "keep": "1"}},
    "webhooks": [{"name": "a.example.com", "clientConfig": {"caBundle": "QUE="}},
                 {"name": "inject.example.com", "clientConfig": {"caBundle": "R0lU", "url": "https://x"}}],
}


def _rule(**kwargs: Any) -> ignoring.Rule:
    return ignoring.parse_rule({"kind": "MutatingWebhookConfiguration", **kwargs})


def test_without_removes_a_keyed_list_items_field_and_an_escaped_key_only() -> None:
    rule = _rule(fieldPaths=['.webhooks[name="inject.example.com"].clientConfig.caBundle'],
                 jsonPointers=["/metadata/annotations/example.com~1owner"])
    out = ignoring.without(WEBHOOK, [rule])
    assert out["webhooks"] == [{"name": "a.example.com", "clientConfig": {"caBundle": "QUE="}},
                               {"name": "inject.example.com", "clientConfig": {"url": "https://x"}}]
    assert out["metadata"]["annotations"] == {"keep": "1"}
    assert WEBHOOK["webhooks"][1]["clientConfig"]["caBundle"] == "R0lU"  # the manifest itself is untouched


def test_rules_match_by_group_kind_name_and_namespace() -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"}}
    assert ignoring.parse_rule({"kind": "Deployment", "jsonPointers": ["/spec/replicas"]}).matches(deployment)
    for other in ({"group": ""}, {"group": "extensions"}, {"name": "api"}, {"namespace": "prod"},
                  {"kind": "StatefulSet"}):
        rule = ignoring.parse_rule({"kind": "Deployment", "jsonPointers": ["/spec/replicas"], **other})
        assert not rule.matches(deployment), other


def _deployment(replicas: int, managed: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "apps/v1", "kind": "Deployment",
                           "metadata": {"name": "web", "namespace": "shop", "annotations": {"rev": "1"}},
                           "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                               {"name": "web", "image": "nginx:1"}]}}}}
    if managed is not None:
        obj["metadata"]["managedFields"] = managed
    return obj


def _entry(manager: str, operation: str, fields: dict[str, Any], subresource: str = "") -> dict[str, Any]:
    entry = {"manager": manager, "operation": operation, "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
             "fieldsV1": fields}
    if subresource:
        entry["subresource"] = subresource
    return entry


REPLICAS = ignoring.parse_rule({"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]})
CONVOY_FIELDS = {"f:metadata": {"f:annotations": {"f:rev": {}}},
                 "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                     'k:{"name":"web"}': {".": {}, "f:image": {}, "f:name": {}}}}}}}


def test_an_ignored_field_is_not_drift() -> None:
    live = _deployment(5, [_entry("convoy", "Apply", CONVOY_FIELDS)])
    desired = _deployment(2)
    assert [d.path for d in drift.diff(desired, live)] == [".spec.replicas"]
    assert drift.diff(ignoring.without(desired, [REPLICAS]), live) == []


def test_for_apply_creates_with_the_git_value() -> None:
    assert ignoring.for_apply(_deployment(2), None, [REPLICAS], manager="convoy")["spec"]["replicas"] == 2


def test_for_apply_leaves_out_a_field_another_manager_owns() -> None:
    convoy_without = {"f:metadata": CONVOY_FIELDS["f:metadata"], "f:spec": {"f:template": CONVOY_FIELDS["f:spec"]
                                                                           ["f:template"]}}
    live = _deployment(5, [_entry("convoy", "Apply", convoy_without),
                           _entry("kubectl", "Update", {"f:spec": {"f:replicas": {}}}, subresource="scale")])
    out = ignoring.for_apply(_deployment(2), live, [REPLICAS], manager="convoy")
    assert "replicas" not in out["spec"] and out["spec"]["template"] == _deployment(2)["spec"]["template"]


def test_for_apply_keeps_a_field_only_convoy_owns_at_its_live_value() -> None:
    # Applying without it would make the API server delete it (its sole owner gave it up).
    live = _deployment(3, [_entry("convoy", "Apply", CONVOY_FIELDS)])
    assert ignoring.for_apply(_deployment(2), live, [REPLICAS], manager="convoy")["spec"]["replicas"] == 3


def test_for_apply_leaves_out_a_field_nobody_owns() -> None:
    live = _deployment(3, [])
    assert "replicas" not in ignoring.for_apply(_deployment(2), live, [REPLICAS], manager="convoy")["spec"]


def test_bundle_rules_by_app_report_a_bad_entry_and_keep_the_good_ones() -> None:
    bundle = {"apps": [{"name": "web", "ignoreDifferences": [
        {"kind": "Deployment", "jsonPointers": ["/spec/replicas"]}, {"kind": "Deployment", "fieldPaths": ["x"]}]}]}
    rules, problems = ignoring.rules_by_app(bundle)
    assert [r.json_pointers for r in rules["web"]] == [("/spec/replicas",)]
    assert len(problems) == 1 and "app web: ignoreDifferences[1]" in problems[0] and "'x'" in problems[0]


def test_a_json_pointer_number_is_a_list_position_and_a_missing_path_changes_nothing() -> None:
    out = ignoring.without(WEBHOOK, [_rule(jsonPointers=["/webhooks/1/clientConfig/caBundle", "/webhooks/7/name",
                                                         "/spec/absent"])])
    assert out["webhooks"][1]["clientConfig"] == {"url": "https://x"}
    assert out["webhooks"][0] == WEBHOOK["webhooks"][0] and "spec" not in out
