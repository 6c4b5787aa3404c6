"""hub.fleet.editing: fleet.yaml and kustomization line edits keep every comment and parse to what was meant."""

from __future__ import annotations

import pytest
import yaml

from hub.fleet import editing

FLEET = """\
# The fleet. Comments stay.
apps:
  # the addon
  - name: platform
    path: apps/platform/base   # trailing comment
    overlays:
      - selector: {matchLabels: {env: prod}}
        path: apps/platform/overlays/prod

  - name: web
    path: apps/web/base
    overlays: [{selector: "env=dev", path: apps/web/overlays/dev}]

rollout:
  waves: []
"""

ENTRY = {"target": {"group": "apps", "version": "v1", "kind": "Deployment", "name": "web"},
         "patch": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 5"}


def test_a_field_is_added_to_the_named_app_only_and_comments_stay() -> None:
    edited = editing.add_app_field(FLEET, "platform", "clusterLayer", "clusters/{cluster}/{app}")
    apps = yaml.safe_load(edited)["apps"]
    assert apps[0]["clusterLayer"] == "clusters/{cluster}/{app}" and "clusterLayer" not in apps[1]
    assert [line for line in edited.splitlines() if "#" in line] == [
        line for line in FLEET.splitlines() if "#" in line]
    assert yaml.safe_load(edited)["rollout"] == {"waves": []}


def test_an_overlay_is_appended_to_a_block_list_and_a_flow_list_is_refused_by_name() -> None:
    edited = editing.add_app_overlay(FLEET, "platform", "env=prod,region in (eu)", "apps/platform/overlays/adopted/x")
    overlays = yaml.safe_load(edited)["apps"][0]["overlays"]
    assert overlays[-1] == {"selector": "env=prod,region in (eu)", "path": "apps/platform/overlays/adopted/x"}
    assert len(overlays) == 2
    with pytest.raises(editing.EditError, match="app web's overlays are written in flow style"):
        editing.add_app_overlay(FLEET, "web", "env=prod", "apps/web/overlays/adopted/x")
    with pytest.raises(editing.EditError, match=r"fleet\.yaml: no block entry `- name: shop`"):
        editing.add_app_field(FLEET, "shop", "clusterLayer", "x")


def test_patches_are_appended_to_an_existing_component_or_its_patches_created() -> None:
    existing = ("# layer comment\napiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
                "patches:\n  - path: first.yaml   # keep\nreplicas: []\n")
    edited = editing.add_patches(existing, [ENTRY], where="clusters/a/web/kustomization.yaml")
    document = yaml.safe_load(edited)
    assert document["patches"][0] == {"path": "first.yaml"} and document["replicas"] == []
    assert document["patches"][1]["target"] == ENTRY["target"]
    assert yaml.safe_load(document["patches"][1]["patch"])["spec"] == {"replicas": 5}
    assert edited.startswith("# layer comment\n") and "# keep" in edited
    bare = editing.add_patches("kind: Component\n", [ENTRY], where="k.yaml")
    assert len(yaml.safe_load(bare)["patches"]) == 1
    created = yaml.safe_load(editing.new_component([ENTRY], comment="why"))
    assert created["kind"] == "Component" and created["patches"][0]["patch"] == ENTRY["patch"]
