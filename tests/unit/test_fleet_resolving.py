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


def test_a_shared_selection_memo_gives_every_cluster_the_plan_it_would_get_alone(tmp_path: Path) -> None:
    fleet = model.parse_fleet(yaml.safe_load(FLEET))
    fs = _fs(tmp_path)
    memo = resolving.SelectionMemo(fleet)
    # Label sets that differ only in keys no selector reads share an entry; absent, empty and set keys
    # (Exists, In, the app-level targets) must each still be told apart.
    clusters = [
        ("prod-eu-1", {"env": "prod", "region": "eu", "team": "a"}),
        ("prod-eu-2", {"env": "prod", "region": "eu", "team": "b"}),
        ("dev-us-1", {"env": "dev", "region": "us"}),
        ("dev-us-2", {"env": "dev", "region": "us", "gpu": ""}),
        ("dev-us-3", {"env": "dev", "region": "us", "gpu": "a100"}),
        ("staging-1", {"env": "staging"}),
        ("bare-1", {}),
    ]
    for _ in range(2):  # the second pass is served from the memo
        for name, labels in clusters:
            assert resolving.plan_cluster(fs, fleet, name=name, labels=labels, memo=memo) == \
                resolving.plan_cluster(fs, fleet, name=name, labels=labels), name
    gpu = resolving.plan_cluster(fs, fleet, name="dev-us-2", labels={"env": "dev", "gpu": ""}, memo=memo)
    assert [plan.app.name for plan in gpu] == ["base", "web", "gpu"]


def test_a_selection_memo_made_for_another_fleet_is_not_used(tmp_path: Path) -> None:
    fleet = model.parse_fleet(yaml.safe_load(FLEET))
    other = model.parse_fleet(yaml.safe_load(FLEET.replace('targets: "env in (prod,dev)"', 'targets: "env=qa"')))
    memo = resolving.SelectionMemo(fleet)
    labels = {"env": "qa"}
    fs = _fs(tmp_path)
    assert [p.app.name for p in resolving.plan_cluster(fs, fleet, name="qa-1", labels=labels,
                                                       memo=memo)] == ["base"]
    assert [p.app.name for p in resolving.plan_cluster(fs, other, name="qa-1", labels=labels,
                                                       memo=memo)] == ["base", "web"]
