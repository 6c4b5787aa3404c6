"""hub.render.adoption: drift paths and live values → kustomize patches, with `kubectl kustomize` as the oracle.

Each case renders a base plus a Component holding the patches `patches_for` wrote, with the real
kustomize, and checks that every drifted field now renders to its live value (and nothing else moved).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.fleet import editing
from hub.render import adoption, kustomize
from hub.tree import repofs
from protos.objects import ObjectRef

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app": "web", "app.kubernetes.io/part-of": "shop"},
                 "annotations": {"owner": "team-a"}},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [
                              {"name": "web", "image": "nginx:1.27", "args": ["--port", "8080"],
                               "env": [{"name": "MODE", "value": "prod"}, {"name": "DEBUG", "value": "0"}]},
                              {"name": "sidecar", "image": "busybox:1"}]}}},
}
CONFIGMAP: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-config"},
                             "data": {"A": "1"}}
WEB = ObjectRef("apps", "Deployment", "shop", "web")


def _drift(*changes: tuple[str, str, str], ref: ObjectRef = WEB, kind: str = "modified") -> adoption.Drifted:
    return adoption.Drifted(ref=ref, app="web", kind_of_drift=kind,
                            changes=tuple(adoption.Change(*c) for c in changes), managers=("kubectl",))


def _kustomize(tmp_path: Path, entries: list[dict[str, Any]]) -> dict[ObjectRef, dict[str, Any]]:
    """Render base (DEPLOYMENT, CONFIGMAP) + a Component of ``entries`` with kubectl; the app namespace is shop."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is the oracle of these tests and must be on PATH")
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "objects.yaml").write_text(yaml.safe_dump_all([DEPLOYMENT, CONFIGMAP]))
    (tmp_path / "base" / "kustomization.yaml").write_text("resources: [objects.yaml]\n")
    (tmp_path / "layer").mkdir()
    (tmp_path / "layer" / "kustomization.yaml").write_text(editing.new_component(entries, comment="test"))
    (tmp_path / "top").mkdir()
    # As the hub combines layers (docs/fleet-config.md "Layers"); the app namespace is stamped afterwards.
    (tmp_path / "top" / "kustomization.yaml").write_text("resources: [../base]\ncomponents: [../layer]\n")
    out = subprocess.run([kubectl, "kustomize", str(tmp_path / "top")], capture_output=True, text=True, check=True)
    oracle = list(yaml.safe_load_all(out.stdout))
    # The hub's own engine must build these patches as the oracle does (it is what the hub serves).
    native = kustomize.build(repofs.DirectoryFS(str(tmp_path)), "top",
                             options=kustomize.BuildOptions(allow_external=False))
    assert native.engine == "native" and native.objects == oracle
    objects = {}
    for obj in oracle:
        obj["metadata"].setdefault("namespace", "shop")
        objects[ObjectRef.of(obj)] = obj
    return objects


def _adopt(tmp_path: Path, drifted: adoption.Drifted, rendered: dict[str, Any] = DEPLOYMENT
           ) -> dict[ObjectRef, dict[str, Any]]:
    stamped = {**rendered, "metadata": {**rendered["metadata"], "namespace": "shop"}}
    entries = adoption.patches_for(drifted, stamped, app_namespace="shop")
    objects = _kustomize(tmp_path, entries)
    assert adoption.mismatches(objects, [drifted]) == []
    return objects


pytestmark = pytest.mark.kubectl


def test_scalar_and_keyed_list_fields_become_one_strategic_merge_patch(tmp_path: Path) -> None:
    drifted = _drift((".spec.replicas", "1", "5"),
                     ('.spec.template.spec.containers[name="web"].image', '"nginx:1.27"', '"nginx:1.28"'),
                     ('.spec.template.spec.containers[name="web"].env[name="MODE"].value', '"prod"', '"canary"'))
    entries = adoption.patches_for(drifted, {**DEPLOYMENT}, app_namespace="shop")
    assert len(entries) == 1 and entries[0]["target"] == {"group": "apps", "version": "v1",
                                                          "kind": "Deployment", "name": "web"}
    web = _adopt(tmp_path, drifted)[WEB]
    containers = web["spec"]["template"]["spec"]["containers"]
    # Merged by key: the other container and the other env var are untouched.
    assert [c["name"] for c in containers] == ["web", "sidecar"]
    assert containers[0]["env"] == [{"name": "MODE", "value": "canary"}, {"name": "DEBUG", "value": "0"}]


def test_a_map_key_with_dots_and_slashes_is_one_key(tmp_path: Path) -> None:
    drifted = _drift((".metadata.labels.app.kubernetes.io/part-of", '"shop"', '"checkout"'),
                     (".metadata.annotations.example.com/new", adoption.ABSENT, '"yes"'))
    web = _adopt(tmp_path, drifted)[WEB]
    assert web["metadata"]["labels"] == {"app": "web", "app.kubernetes.io/part-of": "checkout"}
    assert web["metadata"]["annotations"] == {"owner": "team-a", "example.com/new": "yes"}


def test_removed_map_key_and_removed_list_item_are_deleted(tmp_path: Path) -> None:
    drifted = _drift((".metadata.labels.app.kubernetes.io/part-of", '"shop"', adoption.ABSENT),
                     ('.spec.template.spec.containers[name="sidecar"]', '{"name": "sidecar"}', adoption.ABSENT),
                     ('.spec.template.spec.containers[name="web"].env[name="DEBUG"]', "{}", adoption.ABSENT))
    web = _adopt(tmp_path, drifted)[WEB]
    assert "app.kubernetes.io/part-of" not in web["metadata"]["labels"]
    assert [c["name"] for c in web["spec"]["template"]["spec"]["containers"]] == ["web"]
    assert web["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "MODE", "value": "prod"}]


def test_a_position_in_an_atomic_list_is_a_json6902_op_at_that_index(tmp_path: Path) -> None:
    drifted = _drift(('.spec.template.spec.containers[name="web"].args[1]', '"8080"', '"9090"'))
    entries = adoption.patches_for(drifted, DEPLOYMENT, app_namespace="shop")
    assert yaml.safe_load(entries[0]["patch"]) == [
        {"op": "replace", "path": "/spec/template/spec/containers/0/args/1", "value": "9090"}]
    web = _adopt(tmp_path, drifted)[WEB]
    assert web["spec"]["template"]["spec"]["containers"][0]["args"] == ["--port", "9090"]


def test_a_deleted_object_is_deleted_from_the_render(tmp_path: Path) -> None:
    ref = ObjectRef("", "ConfigMap", "shop", "web-config")
    drifted = _drift(ref=ref, kind="deleted")
    objects = _adopt(tmp_path, drifted, CONFIGMAP)
    assert ref not in objects and WEB in objects


def test_secret_data_is_refused_naming_the_field_and_convoy_seal() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
              "data": {"password": "eA=="}}
    drifted = _drift((".data.password", adoption.REDACTED, adoption.REDACTED),
                     ref=ObjectRef("", "Secret", "shop", "db"))
    with pytest.raises(adoption.AdoptError, match=r"Secret/shop/db \.data\.password: .*convoy seal"):
        adoption.patches_for(drifted, secret, app_namespace="shop")


def test_an_object_in_another_namespace_than_the_apps_is_targeted_by_namespace() -> None:
    ref = ObjectRef("apps", "Deployment", "other", "web")
    obj = {**DEPLOYMENT, "metadata": {**DEPLOYMENT["metadata"], "namespace": "other"}}
    entries = adoption.patches_for(_drift((".spec.replicas", "1", "2"), ref=ref), obj, app_namespace="shop")
    assert entries[0]["target"]["namespace"] == "other"


def test_commit_message_says_who_changed_what_and_when() -> None:
    import datetime as dt

    drifted = adoption.Drifted(WEB, "web", "modified", (adoption.Change(".spec.replicas", "1", "5"),),
                               ("kubectl",), dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC))
    message = adoption.commit_message("prod-eu-1", [drifted])
    subject, _, body = message.partition("\n\n")
    assert subject == "Adopt manual change on prod-eu-1: Deployment/web .spec.replicas"
    assert "changed by kubectl, detected 2026-01-02T03:04:05Z" in body
    assert "  .spec.replicas: 1 -> 5" in body
    assert json.loads("5") == adoption.value_at({"spec": {"replicas": 5}, "kind": "Deployment",
                                                 "apiVersion": "apps/v1"}, ".spec.replicas")


def test_a_live_value_with_a_dollar_brace_is_escaped_from_the_hubs_substitution() -> None:
    cm = {**CONFIGMAP, "metadata": {"name": "web-config", "namespace": "shop"}}
    drifted = _drift((".data.A", '"1"', '"${HOME}"'), ref=ObjectRef("", "ConfigMap", "shop", "web-config"))
    (entry,) = adoption.patches_for(drifted, cm, app_namespace="shop")
    assert yaml.safe_load(entry["patch"])["data"] == {"A": "$${HOME}"}


def test_indices_hold_when_an_item_is_removed_and_a_later_position_changed(tmp_path: Path) -> None:
    # The JSON6902 ops (indices of the rendered object) come before the strategic-merge patch that deletes
    # sidecar, and both positions of web's args change in one op list.
    drifted = _drift(('.spec.template.spec.containers[name="sidecar"]', '{"name": "sidecar"}', adoption.ABSENT),
                     ('.spec.template.spec.containers[name="web"].args[0]', '"--port"', '"--listen"'),
                     ('.spec.template.spec.containers[name="web"].args[1]', '"8080"', '"9090"'))
    web = _adopt(tmp_path, drifted)[WEB]
    assert [c["name"] for c in web["spec"]["template"]["spec"]["containers"]] == ["web"]
    assert web["spec"]["template"]["spec"]["containers"][0]["args"] == ["--listen", "9090"]


def test_a_field_the_repository_changed_since_the_drift_is_named() -> None:
    drifted = _drift((".spec.replicas", "3", "5"), (".metadata.annotations.owner", '"team-a"', '"team-b"'))
    assert adoption.moved_since({WEB: DEPLOYMENT}, [drifted]) == [
        "Deployment.apps/shop/web .spec.replicas: HEAD renders 1, the drift was measured against 3; "
        "the patch sets the live value 5"]
