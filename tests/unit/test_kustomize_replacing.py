"""``replacements`` in the native engine: field paths, values and types, and one clear error per mistake.

What kubectl agrees with is checked live in ``tests/integration/test_kustomize_oracle.py`` (cases 55 and 69);
these cases pin the details and the errors without the oracle.
"""

from __future__ import annotations

import pathlib
import textwrap
from typing import Any

import pytest

from hub.render.kustomize import BuildOptions, build
from hub.render.kustomize.replacing import split_field_path
from hub.tree import repofs
from hub.tree.errors import KustomizeError

OBJECTS = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: src
data:
  port: "8080"
  host: db.shop.svc
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  template:
    spec:
      containers:
      - name: web
        image: nginx:1.25
      - name: web-proxy
        image: envoy:1.0
"""


def build_with(tmp_path: pathlib.Path, replacements: str, files: dict[str, str] | None = None) -> list[dict[str, Any]]:
    root = tmp_path / "app"
    root.mkdir(exist_ok=True)
    (root / "objects.yaml").write_text(OBJECTS)
    (root / "kustomization.yaml").write_text("resources: [objects.yaml]\nreplacements:\n"
                                             + textwrap.indent(textwrap.dedent(replacements), "  "))
    for name, text in (files or {}).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    result = build(repofs.DirectoryFS(tmp_path), "app", options=BuildOptions())
    assert result.engine == "native"
    return result.objects


def deployment(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return next(obj for obj in objects if obj["kind"] == "Deployment")


def error_of(tmp_path: pathlib.Path, replacements: str, files: dict[str, str] | None = None) -> str:
    with pytest.raises(KustomizeError) as info:
        build_with(tmp_path, replacements, files)
    message = str(info.value)
    assert message.startswith("app/") and "\n" not in message
    return message


@pytest.mark.parametrize(("path", "parts"), [
    ("metadata.name", ["metadata", "name"]),
    ("spec.containers.[name=web].image", ["spec", "containers", "[name=web]", "image"]),
    ("spec.containers.[name=a.b.c].image", ["spec", "containers", "[name=a.b.c]", "image"]),
    ("metadata.annotations.[example.com/x]", ["metadata", "annotations", "example.com/x"]),
    (r"metadata.labels.a\.b", ["metadata", "labels", "a.b"]),
    (".spec.x", ["spec", "x"]),
])
def test_field_paths_split_as_kyaml_does(path: str, parts: list[str]) -> None:
    assert split_field_path(path) == parts


def test_a_number_target_stays_a_number_and_a_string_stays_a_string(tmp_path: pathlib.Path) -> None:
    objects = build_with(tmp_path, """\
        - source: {kind: ConfigMap, name: src, fieldPath: data.port}
          targets:
          - select: {kind: Deployment}
            fieldPaths: [spec.replicas, "spec.template.spec.containers.[name=web].name", spec.paused]
            options: {create: true}
        """)
    spec = deployment(objects)["spec"]
    assert spec["replicas"] == 8080
    assert spec["template"]["spec"]["containers"][0]["name"] == "8080"
    assert spec["paused"] == 8080  # a created field reads the value as plain YAML, as kustomize does


def test_list_match_is_an_unanchored_pattern_in_targets(tmp_path: pathlib.Path) -> None:
    objects = build_with(tmp_path, """\
        - source: {kind: ConfigMap, name: src, fieldPath: data.host, options: {delimiter: ".", index: 1}}
          targets:
          - select: {kind: Deployment}
            fieldPaths: ["spec.template.spec.containers.[name=web].image"]
            options: {delimiter: ":", index: 1}
        """)
    images = [c["image"] for c in deployment(objects)["spec"]["template"]["spec"]["containers"]]
    assert images == ["nginx:shop", "envoy:shop"]


def test_delimiter_index_out_of_range_appends_or_prepends(tmp_path: pathlib.Path) -> None:
    objects = build_with(tmp_path, """\
        - source: {kind: ConfigMap, name: src, fieldPath: data.port}
          targets:
          - select: {kind: Deployment}
            fieldPaths: [spec.template.spec.containers.0.image]
            options: {delimiter: "-", index: 5}
          - select: {kind: Deployment}
            fieldPaths: [spec.template.spec.containers.1.image]
            options: {delimiter: "-", index: -1}
        """)
    images = [c["image"] for c in deployment(objects)["spec"]["template"]["spec"]["containers"]]
    assert images == ["nginx:1.25-8080", "8080-envoy:1.0"]


def test_a_mapping_replaces_a_mapping_and_wildcards_reach_every_element(tmp_path: pathlib.Path) -> None:
    objects = build_with(tmp_path, """\
        - source: {kind: ConfigMap, name: src, fieldPath: data}
          targets:
          - select: {kind: Deployment}
            fieldPaths: [spec.template.spec.containers.*.env]
            options: {create: true}
        """)
    containers = deployment(objects)["spec"]["template"]["spec"]["containers"]
    assert [c["env"] for c in containers] == [{"port": "8080", "host": "db.shop.svc"}] * 2


def test_a_replacements_file_may_hold_one_replacement_or_a_list(tmp_path: pathlib.Path) -> None:
    objects = build_with(tmp_path, "- path: one.yaml\n- path: many.yaml\n", {
        "app/one.yaml": "source: {kind: ConfigMap, name: src}\n"
                        "targets: [{select: {kind: Deployment}, fieldPaths: [metadata.labels.from], "
                        "options: {create: true}}]\n",
        "app/many.yaml": "- source: {kind: Deployment, name: web, fieldPath: metadata.labels.from}\n"
                         "  targets: [{select: {kind: ConfigMap}, fieldPaths: [data.from], options: {create: true}}]\n",
    })
    assert deployment(objects)["metadata"]["labels"] == {"from": "src"}
    assert next(obj for obj in objects if obj["kind"] == "ConfigMap")["data"]["from"] == "src"


@pytest.mark.parametrize(("replacements", "files", "expected"), [
    ("- source: {kind: Secret, name: nope}\n  targets: [{select: {kind: Deployment}}]\n", None,
     "replacements: nothing selected by source Secret/nope"),
    ("- source: {version: v1}\n  targets: [{select: {kind: ConfigMap}}]\n", None,
     "replacements: several objects match source (anything)"),
    ("- source: {kind: ConfigMap, name: src, fieldPath: data.nope}\n  targets: [{select: {kind: Deployment}}]\n",
     None, "fieldPath 'data.nope' is missing for replacement source ConfigMap/src"),
    ("- source: {kind: ConfigMap, name: src, fieldPath: data.port}\n"
     "  targets: [{select: {kind: Deployment}, fieldPaths: [spec.nope]}]\n", None,
     "unable to find field 'spec.nope' in Deployment.apps/web"),
    ("- source: {kind: ConfigMap, name: src, fieldPath: data.port, options: {delimiter: '-', index: 2}}\n"
     "  targets: [{select: {kind: Deployment}}]\n", None, "options.index 2 is out of bounds for value '8080'"),
    ("- source: {kind: ConfigMap, name: src, fieldPath: data}\n"
     "  targets: [{select: {kind: Deployment}, fieldPaths: [spec.template], options: {delimiter: '-'}}]\n", None,
     "delimiter option can only be used with scalar nodes"),
    ("- source: {kind: ConfigMap, name: src, fieldPath: data.host}\n"
     "  targets: [{select: {kind: Deployment}, fieldPaths: [spec.replicas]}]\n", None,
     "cannot set field 'spec.replicas' in Deployment.apps/web: the field is an integer and 'db.shop.svc' is not"),
    ("- source: {kind: ConfigMap, name: src}\n", None, "must specify a source and at least one target"),
    ("- source: {kind: ConfigMap, name: src}\n  targets: [{fieldPaths: [a]}]\n", None,
     "must specify resources to select"),
    ("- source: {kind: ConfigMap, nmae: src}\n  targets: [{select: {kind: Deployment}}]\n", None,
     "replacements[0].source: unknown field 'nmae'"),
    ("- path: r.yaml\n  source: {kind: ConfigMap}\n", {"app/r.yaml": "[]\n"},
     "cannot specify both path and inline replacement"),
    ("- path: ../outside.yaml\n", {"outside.yaml": "[]\n"}, "is outside the kustomization directory"),
    ("- path: missing.yaml\n", None, "replacements file 'missing.yaml' does not exist"),
    ("- source: {kind: Deployment, fieldPath: spec.template.spec.containers.*.image}\n"
     "  targets: [{select: {kind: ConfigMap}}]\n", None, "wildcard is not supported in a source"),
])
def test_mistakes_are_one_clear_line(tmp_path: pathlib.Path, replacements: str, files: dict[str, str] | None,
                                     expected: str) -> None:
    assert expected in error_of(tmp_path, replacements, files)
