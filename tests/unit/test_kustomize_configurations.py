"""``configurations`` in the native kustomize engine: parsing, kustomize's merge rules, and where they apply.

``82-configurations`` checks every kind of field spec against ``kubectl kustomize``; these pin the rules.
"""

from __future__ import annotations

import pathlib
import textwrap
from typing import Any

import pytest

from hub.render.kustomize import build, configurations
from hub.render.kustomize.resources import FieldSpec
from hub.tree import repofs
from hub.tree.errors import KustomizeError, RepoPathError

WIDGET = """\
apiVersion: example.com/v1
kind: Widget
metadata:
  name: w
spec:
  configName: settings
"""


def write(root: pathlib.Path, files: dict[str, str]) -> repofs.DirectoryFS:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content))
    return repofs.DirectoryFS(root)


def spec(path: str, kind: str = "", *, create: bool = False) -> FieldSpec:
    return FieldSpec(path=tuple(path.split("/")), kind=kind, create=create)


def test_merge_keeps_base_and_drops_specs_already_there() -> None:
    merged = configurations.merge_field_specs(
        [spec("metadata/labels", "Widget")], [spec("metadata/labels"), spec("spec/labels", "Widget")])
    # kustomize's effectivelyEquals: an any-kind spec selects the Widget one, so it counts as present.
    assert merged == (spec("metadata/labels", "Widget"), spec("spec/labels", "Widget"))
    # ...but a kind-specific spec is not "already there" because of an any-kind one.
    assert len(configurations.merge_field_specs([spec("metadata/labels")], [spec("metadata/labels", "W")])) == 2


def test_merge_refuses_specs_that_differ_only_in_create() -> None:
    with pytest.raises(KustomizeError, match="conflicting fieldspecs in commonLabels: metadata/labels"):
        configurations.DEFAULT.merge(configurations.TransformerConfig(common_labels=(spec("metadata/labels"),)),
                                     file="c.yaml")


def test_name_references_merge_by_target_and_sort_as_kustomize() -> None:
    custom = configurations.parse_configuration({"nameReference": [
        {"kind": "ConfigMap", "version": "v1", "fieldSpecs": [{"path": "spec/configName", "kind": "Widget"}]},
        {"kind": "Gadget", "group": "example.com", "fieldSpecs": [{"path": "spec/gadget", "kind": "Widget"}]},
    ]}, file="c.yaml")
    merged = configurations.DEFAULT.merge(custom)
    config_map = next(entry for entry in merged.name_reference if entry.kind == "ConfigMap")
    assert config_map.referrers[-1] == spec("spec/configName", "Widget")
    kinds = [entry.kind for entry in merged.name_reference]
    assert kinds.index("ServiceAccount") < kinds.index("ConfigMap") < kinds.index("Deployment") < kinds.index("Gadget")


@pytest.mark.parametrize(("raw", "message"), [
    ({"commonLabel": []}, "unknown field 'commonLabel'"),
    ({"images": [{"path": "spec/image", "apiVersion": "v1"}]}, "images: unknown field 'apiVersion'"),
    ({"images": [{"path": "spec/image", "create": "yes please"}]}, "create must be true or false"),
    ({"images": {"path": "spec/image"}}, "images must be a list of field specs"),
])
def test_parse_configuration_is_strict(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(KustomizeError, match=message):
        configurations.parse_configuration(raw, file="c.yaml")


def test_parse_configuration_matches_keys_case_insensitively() -> None:
    parsed = configurations.parse_configuration({"Images": [{"Path": "spec/image", "Kind": "Widget"}]}, file="c")
    assert parsed.images == (spec("spec/image", "Widget"),)


def test_a_base_configuration_fixes_references_in_the_overlay(tmp_path: pathlib.Path) -> None:
    fs = write(tmp_path, {
        "base/w.yaml": WIDGET,
        "base/config.yaml": "nameReference:\n- kind: ConfigMap\n  version: v1\n  fieldSpecs:\n"
                            "  - {path: spec/configName, kind: Widget}\n",
        "base/kustomization.yaml": "resources: [w.yaml]\nconfigurations: [config.yaml]\n",
        "app/kustomization.yaml": "resources: [../base]\nconfigMapGenerator:\n- name: settings\n  literals: [a=b]\n",
    })
    objects = build(fs, "app").objects
    config_map = next(obj for obj in objects if obj["kind"] == "ConfigMap")
    widget = next(obj for obj in objects if obj["kind"] == "Widget")
    assert widget["spec"]["configName"] == config_map["metadata"]["name"] != "settings"


@pytest.mark.parametrize(("configs", "error", "message"), [
    ("[../elsewhere.yaml]", RepoPathError, "configurations file '../elsewhere.yaml' is outside the kustomization"),
    ("[missing.yaml]", KustomizeError, "configurations file 'missing.yaml' does not exist"),
])
def test_configuration_files_are_read_like_kustomize(tmp_path: pathlib.Path, configs: str,
                                                     error: type[Exception], message: str) -> None:
    fs = write(tmp_path, {"elsewhere.yaml": "images: []\n", "app/w.yaml": WIDGET,
                          "app/kustomization.yaml": f"resources: [w.yaml]\nconfigurations: {configs}\n"})
    with pytest.raises(error, match=message):
        build(fs, "app")


def test_conflicting_configuration_names_its_file(tmp_path: pathlib.Path) -> None:
    fs = write(tmp_path, {"app/w.yaml": WIDGET, "app/c.yaml": "commonLabels:\n- path: metadata/labels\n",
                          "app/kustomization.yaml": "resources: [w.yaml]\nconfigurations: [c.yaml]\n"})
    with pytest.raises(KustomizeError) as info:
        build(fs, "app")
    assert info.value.file == "app/c.yaml"
    assert "conflicting fieldspecs" in str(info.value)


def test_labels_fields_that_conflict_with_the_selector_specs_are_refused(tmp_path: pathlib.Path) -> None:
    # kubectl: "failed to merge labels: conflicting fieldspecs" (the built-in Deployment selector spec creates).
    fs = write(tmp_path, {"app/w.yaml": WIDGET, "app/kustomization.yaml": (
        "resources: [w.yaml]\nlabels:\n- pairs: {a: b}\n  includeSelectors: true\n"
        "  fields:\n  - {path: spec/selector/matchLabels, kind: Deployment}\n")})
    with pytest.raises(KustomizeError, match="conflicting fieldspecs in labels: spec/selector/matchLabels"):
        build(fs, "app")
