"""Drift diff, one case per YAML fixture in tests/testdata/drift, plus managed field sets."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from spoke import drift

FIXTURES = sorted((Path(__file__).parent.parent / "testdata" / "drift").glob("*.yaml"))


def _load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        data: dict[str, Any] = yaml.load(f, Loader=yaml.CSafeLoader)
    return data


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_fixture(path: Path) -> None:
    case = _load(path)
    before = copy.deepcopy(case)
    got = [{"path": d.path, "desired": d.desired, "live": d.live}
           for d in drift.diff(case["desired"], case["live"])]
    assert got == case["expect"]
    assert case == before  # pure: inputs untouched


def test_secret_values_never_leak_into_a_diff() -> None:
    for path in FIXTURES:
        case = _load(path)
        if case["desired"]["kind"] != "Secret":
            continue
        text = " ".join(str(d) for d in drift.diff(case["desired"], case["live"]))
        for secret in ("hunter2", "letmein", "admin", "aHVudGVyMg", "bGV0bWVpbg", "YWRtaW4"):
            assert secret not in text


def test_managed_paths_reads_the_apply_entry_of_the_manager_only() -> None:
    managed = [
        {"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:spec": {"f:replicas": {}}}},
        {"manager": "convoy", "operation": "Apply", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}},
                      "f:spec": {"f:template": {"f:spec": {"f:containers": {
                          'k:{"name":"web"}': {".": {}, "f:image": {}, "f:name": {}}}}},
                                 "f:finalizers": {'v:"x"': {}}, "f:args": {"i:0": {}}}}},
        {"manager": "convoy", "operation": "Apply", "subresource": "status", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:status": {"f:ok": {}}}},
    ]
    fields = drift.managed_paths(managed)
    assert fields.paths() == [
        ".metadata.labels.app",
        '.spec.template.spec.containers[name="web"]',
        '.spec.template.spec.containers[name="web"].image',
        '.spec.template.spec.containers[name="web"].name',
        '.spec.finalizers[="x"]',
        ".spec.args[0]",
    ]
    containers = fields.child("f:spec")
    assert containers is not None
    assert not drift.managed_paths(managed, manager="kubectl")  # an Update entry is not an apply set
    assert not drift.managed_paths(managed, manager="nobody")
    assert not drift.managed_paths(None)


def test_crd_schema_makes_a_custom_list_keyed() -> None:
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "parts": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"],
                  "items": {"type": "object", "properties": {"id": {"type": "string"},
                                                             "weight": {"type": "integer"}}}}}}}}
    desired = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
               "spec": {"parts": [{"id": "a", "weight": 1}, {"id": "b", "weight": 2}]}}
    live = copy.deepcopy(desired)
    live["spec"]["parts"].reverse()
    assert drift.diff(desired, live, crd_schema=schema) == []
    assert drift.diff(desired, live) != []  # untyped and no managedFields: positional


# -- who made the change (changed_by) ---------------------------------------------------------------

_CONVOY_APPLY = {"manager": "convoy", "operation": "Apply", "time": "2026-12-05T10:00:00Z",
                 "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
                     'k:{"name":"web"}': {".": {}, "f:image": {}, "f:name": {}}}}}}}}


def _entry(manager: str, fields: dict[str, Any], *, time: str, subresource: str = "",
           operation: str = "Update") -> dict[str, Any]:
    entry = {"manager": manager, "operation": operation, "time": time, "fieldsV1": fields}
    if subresource:
        entry["subresource"] = subresource
    return entry


def test_changed_by_names_the_manager_that_owns_the_drifted_field_now() -> None:
    managed = [_CONVOY_APPLY,
               _entry("kube-controller-manager", {"f:status": {"f:replicas": {}}}, time="2026-12-05T10:05:00Z",
                      subresource="status"),
               _entry("kubectl", {"f:spec": {"f:replicas": {}}}, time="2026-12-05T10:04:00Z", subresource="scale"),
               _entry("helm", {"f:metadata": {"f:labels": {"f:x": {}}}}, time="2026-12-05T10:06:00Z")]
    diffs = [drift.FieldDiff(".spec.replicas", "3", "7")]
    assert drift.changed_by(managed, diffs) == ("kubectl",)


def test_changed_by_matches_fields_inside_and_around_a_drifted_path_most_recent_first() -> None:
    image = {"f:spec": {"f:template": {"f:spec": {"f:containers": {'k:{"name":"web"}': {"f:image": {}}}}}}}
    whole = {"f:spec": {"f:template": {"f:spec": {"f:containers": {'k:{"name":"web"}': {".": {}}}}}}}
    managed = [_CONVOY_APPLY, _entry("older", whole, time="2026-12-05T10:01:00Z"),
               _entry("newer", image, time="2026-12-05T10:02:00Z", operation="Apply")]
    diffs = [drift.FieldDiff('.spec.template.spec.containers[name="web"].image', '"nginx:1"', '"nginx:2"')]
    assert drift.changed_by(managed, diffs) == ("newer", "older")
    # a drifted path (a whole item gone) that contains an owned field
    gone = [drift.FieldDiff('.spec.template.spec.containers[name="web"]', "{}", drift.ABSENT)]
    assert drift.changed_by(managed, gone) == ("newer", "older")


def test_changed_by_is_empty_when_nobody_else_owns_the_fields() -> None:
    assert drift.changed_by([_CONVOY_APPLY], [drift.FieldDiff(".spec.replicas", "3", "7")]) == ()
    assert drift.changed_by(None, [drift.FieldDiff(".spec.replicas", "3", "7")]) == ()
    # `.spec.replica` is not inside `.spec.replicas`
    managed = [_entry("x", {"f:spec": {"f:replicasExtra": {}}}, time="2026-12-05T10:00:00Z")]
    assert drift.changed_by(managed, [drift.FieldDiff(".spec.replicas", "3", "7")]) == ()
