"""Fields a later layer drops: the pure comparison, and `convoy validate` warning on a real fleet directory."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hub.cli import cli
from hub.fleet import clusters, model
from hub.render import layering
from hub.tree import repofs
from protos.objects import ObjectRef


def deployment(**metadata: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", **metadata},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [
                {"name": "web", "image": "nginx", "env": [{"name": "A", "value": "1"}]},
                {"name": "sidecar", "image": "envoy"}]}}}}


WEB = ObjectRef("apps", "Deployment", "", "web")


def test_a_replaced_map_drops_the_keys_it_does_not_repeat() -> None:
    before = [deployment(annotations={"tier": "prod", "demo.dev/owner": "a"})]
    after = [deployment(annotations={"demo.dev/owner": "b"})]
    assert layering.dropped_fields(before, after) == [
        layering.DroppedField(WEB, "metadata.annotations.tier")]


def test_added_and_changed_fields_are_not_drops() -> None:
    before = [deployment(annotations={"a": "1"})]
    after = [deployment(annotations={"a": "2", "b": "3"}, labels={"x": "y"})]
    after[0]["spec"]["replicas"] = 5
    assert layering.dropped_fields(before, after) == []


def test_named_list_elements_and_their_fields_are_compared_by_name() -> None:
    before = [deployment()]
    after = [deployment()]
    containers = after[0]["spec"]["template"]["spec"]["containers"]
    containers.reverse()                      # order alone is no drop
    del containers[0]                         # the sidecar is gone
    del containers[0]["env"]                  # and web's env
    found = {drop.field for drop in layering.dropped_fields(before, after)}
    assert found == {"spec.template.spec.containers[sidecar]", "spec.template.spec.containers[web].env"}


def test_objects_only_on_one_side_and_keys_with_dots_are_named_well() -> None:
    before = [deployment(annotations={"demo.convoy.dev/tier": "prod"}),
              {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "gone"}}]
    after = [deployment()]
    assert layering.dropped_fields(before, after) == [
        layering.DroppedField(WEB, "metadata.annotations"),
    ]
    after = [deployment(annotations={})]
    assert [d.field for d in layering.dropped_fields(before, after)] == [
        "metadata.annotations['demo.convoy.dev/tier']"]


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


TRAP = """\
    apiVersion: kustomize.config.k8s.io/v1alpha1
    kind: Component
    patches:
      - target: {kind: Deployment, name: web}
        patch: |-
          - op: add
            path: /metadata/annotations
            value: {owner: me}
    """


@pytest.fixture
def fleet_dir(tmp_path: Path) -> Path:
    write(tmp_path, {
        "fleet.yaml": """\
            apiVersion: convoy.dev/v1alpha1
            kind: Fleet
            apps:
              - name: web
                path: base
                namespace: shop
                overlays:
                  - {selector: {matchLabels: {env: prod}}, path: prod}
                clusterLayer: clusters/{cluster}/{app}
            """,
        "base/kustomization.yaml": "resources: [deployment.yaml]\n",
        "base/deployment.yaml": """\
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: web}
            spec:
              template:
                spec:
                  containers: [{name: web, image: nginx}]
            """,
        "prod/kustomization.yaml": """\
            apiVersion: kustomize.config.k8s.io/v1alpha1
            kind: Component
            commonAnnotations: {tier: production}
            """,
        "clusters/big/cluster.yaml": "apiVersion: convoy.dev/v1alpha1\nkind: Cluster\nlabels: {env: prod}\n",
        "clusters/big/web/kustomization.yaml": TRAP,
        "clusters/small/cluster.yaml": "apiVersion: convoy.dev/v1alpha1\nkind: Cluster\nlabels: {env: prod}\n",
    })
    return tmp_path


def test_layer_warnings_name_cluster_app_object_field_and_layer(fleet_dir: Path) -> None:
    fs = repofs.DirectoryFS(fleet_dir)
    warnings = layering.layer_warnings(fs, model.load_fleet(fs),
                                       clusters.all_clusters(clusters.declared_clusters(fs)))
    assert [(w.cluster, w.app, w.ref, w.field, w.layer) for w in warnings] == [
        ("big", "web", WEB, "metadata.annotations.tier", "clusters/big/web/kustomization.yaml")]
    assert str(warnings[0]).startswith("cluster big: app web: Deployment.apps/web: "
                                       "clusters/big/web/kustomization.yaml drops metadata.annotations.tier")


def test_validate_warns_on_stderr_and_still_exits_0(fleet_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["validate", str(fleet_dir)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stderr.strip().splitlines() == [
        "warning: cluster big: app web: Deployment.apps/web: clusters/big/web/kustomization.yaml drops "
        "metadata.annotations.tier, which an earlier layer set (a patch that replaces a whole map or list?)"]
    assert "warning" not in result.stdout


def test_validate_still_fails_on_errors_with_warnings_around(fleet_dir: Path) -> None:
    write(fleet_dir, {"clusters/small/web/kustomization.yaml": "kind: Component\nresources: [missing.yaml]\n"})
    result = CliRunner().invoke(cli, ["validate", str(fleet_dir)], catch_exceptions=False)
    assert result.exit_code == 1
    assert "drops metadata.annotations.tier" in result.stderr and "1 of 2 clusters failed" in result.stderr
