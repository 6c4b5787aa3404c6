from __future__ import annotations

from pathlib import Path

import yaml

from hub.fleet import model, resolving
from hub.tree.repofs import DirectoryFS

FLEET = """
apiVersion: convoy.dev/v1alpha1
kind: Fleet
apps:
  - name: web
    path: apps/web
    dependsOn: [base]
    targets: "env in (prod,dev)"
    overlays:
      - {selector: "env=prod", path: overlays/prod}
      - {selector: "region=eu", path: overlays/eu}
      - {path: overlays/all}
    clusterLayer: clusters/{cluster}/{app}
  - name: base
    path: apps/base
  - name: gpu
    path: apps/gpu
    targets: {matchExpressions: [{key: gpu, operator: Exists}]}
"""


def _fs(tmp_path: Path) -> DirectoryFS:
    (tmp_path / "clusters/prod-eu-1/web").mkdir(parents=True)
    (tmp_path / "clusters/prod-eu-1/gpu").mkdir(parents=True)
    return DirectoryFS(tmp_path)


def test_plan_picks_targeted_apps_in_dependency_order_and_matching_layers(tmp_path: Path) -> None:
    fleet = model.parse_fleet(yaml.safe_load(FLEET))
    plans = resolving.plan_cluster(_fs(tmp_path), fleet, name="prod-eu-1", labels={"env": "prod", "region": "eu"})
    assert [plan.app.name for plan in plans] == ["base", "web"]
    web = plans[1]
    assert web.components == ("overlays/prod", "overlays/eu", "overlays/all", "clusters/prod-eu-1/web")
    assert web.cluster_layer == "clusters/prod-eu-1/web"
    assert web.layers == ("apps/web", *web.components)
    assert plans[0].components == () and plans[0].cluster_layer is None


def test_cluster_layer_only_when_its_directory_exists(tmp_path: Path) -> None:
    fleet = model.parse_fleet(yaml.safe_load(FLEET))
    plans = resolving.plan_cluster(_fs(tmp_path), fleet, name="dev-us-1", labels={"env": "dev", "region": "us"})
    web = plans[-1]
    assert web.components == ("overlays/all",) and web.cluster_layer is None


def test_untargeted_cluster_gets_only_the_apps_for_everyone(tmp_path: Path) -> None:
    fleet = model.parse_fleet(yaml.safe_load(FLEET))
    assert [a.name for a in resolving.targeted_apps(fleet, {"env": "staging"})] == ["base"]
    assert [a.name for a in resolving.targeted_apps(fleet, {"env": "staging", "gpu": ""})] == ["base", "gpu"]
