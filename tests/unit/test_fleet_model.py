from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import yaml

from hub.fleet import model
from hub.fleet.model import EmptyWave, FleetConfigError, MaxUnavailable, MinReady, OnFailure
from protos.status import DriftPolicy

BASE = """
apiVersion: convoy.dev/v1alpha1
kind: Fleet
apps:
  - name: web
    path: apps/web/base
    namespace: shop
    dependsOn: [crds]
    targets: {matchLabels: {env: prod}}
    overlays:
      - {selector: "region=eu", path: overlays/eu}
      - {selector: {matchExpressions: [{key: region, operator: In, values: [us]}]}, path: ./overlays/us/}
    clusterLayer: clusters/{cluster}/{app}
    driftPolicy: report
    rollout: {bakeTime: 1m}
  - name: crds
    path: apps/crds
rollout:
  maxUnavailable: 25%
  bakeTime: 30s
  progressDeadline: 5m
  onFailure: rollback
  waves:
    - {name: canary, selector: {matchLabels: {canary: "true"}}, maxUnavailable: 0}
    - {name: eu, selector: "region=eu", onFailure: pause}
"""


def _data(text: str = BASE) -> Any:
    return yaml.safe_load(text)


def test_parse_full_fleet() -> None:
    fleet = model.parse_fleet(_data())
    assert [app.name for app in fleet.apps] == ["crds", "web"], "apps come in dependsOn order"
    web = fleet.app("web")
    assert web.path == "apps/web/base"
    assert web.namespace == "shop"
    assert web.targets.matches({"env": "prod"}) and not web.targets.matches({"env": "dev"})
    assert [overlay.path for overlay in web.overlays] == ["overlays/eu", "overlays/us"]
    assert web.overlays[1].selector.matches({"region": "us"})
    assert web.cluster_layer_path("prod-eu-1") == "clusters/prod-eu-1/web"
    assert web.drift_policy is DriftPolicy.REPORT
    crds = fleet.app("crds")
    assert crds.targets.is_everything and crds.namespace is None and crds.drift_policy is None

    rollout = fleet.rollout
    assert rollout is not None
    assert rollout.max_unavailable == MaxUnavailable(percent=25)
    assert rollout.bake_time == dt.timedelta(seconds=30)
    assert rollout.progress_deadline == dt.timedelta(minutes=5)
    assert rollout.on_failure is OnFailure.ROLLBACK
    canary, eu = rollout.waves
    assert canary.max_unavailable.allowed(10) == 0 and canary.on_failure is OnFailure.ROLLBACK
    assert eu.max_unavailable.allowed(10) == 2 and eu.on_failure is OnFailure.PAUSE
    assert rollout.wave_of({"canary": "true", "region": "eu"}).name == "canary"
    assert rollout.wave_of({"region": "eu"}).name == "eu"
    assert rollout.wave_of({"region": "us"}).name == "rest"
    # The app override changes only the bake time and keeps the fleet's waves and the rest.
    override = fleet.rollout_for("web")
    assert override is not None and override.bake_time == dt.timedelta(minutes=1)
    assert override.waves == rollout.waves and override.on_failure is OnFailure.ROLLBACK
    assert fleet.rollout_for("crds") is rollout


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), ("1.5m", 90), (0, 0), ("0", 0), (45, 45)],
)
def test_durations(text: object, expected: float) -> None:
    assert model.parse_duration(text, field="x").total_seconds() == expected


@pytest.mark.parametrize("text", ["30", "5 minutes", "-5s", "m", "", True, "5m3"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(FleetConfigError, match=r"rollout\.bakeTime"):
        model.parse_duration(text, field="rollout.bakeTime")


def _broken(path: list[Any], value: Any) -> Any:
    data = _data()
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        (["aps"], [], "aps: unknown field"),
        (["apps", 0, "overlay"], [], "apps[0].overlay: unknown field"),
        (["apps", 0, "overlays", 0, "selectr"], {}, "apps[0].overlays[0].selectr: unknown field"),
        (["apps", 0, "name"], "Web_App", "apps[0].name: 'Web_App' is not a valid app name"),
        (["apps", 0, "path"], _DELETE, "apps[0].path: is required"),
        (["apps", 0, "path"], "/etc/passwd", "apps[0].path: absolute path"),
        (["apps", 0, "path"], "../outside", "apps[0].path: path '../outside' escapes"),
        (["apps", 0, "path"], "https://example.com/repo", "apps[0].path: remote resource"),
        (["apps", 0, "dependsOn"], ["nope"], "apps[0].dependsOn: unknown app 'nope'"),
        (["apps", 0, "dependsOn"], ["web"], "depends on itself"),
        (["apps", 0, "clusterLayer"], "clusters/{name}", "apps[0].clusterLayer"),
        (["apps", 0, "driftPolicy"], "ignore", "apps[0].driftPolicy: 'ignore' is not one of correct, report"),
        (["apps", 0, "targets"], {"matchLabels": {"env": True}}, "apps[0].targets.matchLabels.env"),
        (["apps", 1, "name"], "web", "apps[1].name: app 'web' is declared twice"),
        (["apiVersion"], "convoy.dev/v1", "apiVersion: must be 'convoy.dev/v1alpha1'"),
        (["kind"], "Fleets", "kind: must be 'Fleet'"),
        (["rollout", "onFailure"], "retry", "rollout.onFailure: 'retry' is not one of pause, rollback"),
        (["rollout", "maxUnavailable"], "150%", "rollout.maxUnavailable"),
        (["rollout", "waves", 0, "selector"], _DELETE, "rollout.waves[0].selector: is required"),
        (["rollout", "waves", 1, "name"], "canary", "rollout.waves[1].name: wave 'canary' is declared twice"),
        (["rollout", "waves", 0, "wait"], "5s", "rollout.waves[0].wait: unknown field"),
        (["apps", 0, "rollout", "bakeTme"], "1m", "apps[0].rollout.bakeTme: unknown field"),
        (["rollout", "minReady"], 0, "rollout.minReady: 0 is less than 1: a wave passes only when"),
        (["rollout", "waves", 1, "minReady"], "0%", "rollout.waves[1].minReady: '0%' is neither a count"),
        (["rollout", "waves", 0, "minReady"], True, "rollout.waves[0].minReady: True is neither"),
        (["rollout", "emptyWave"], "ignore", "rollout.emptyWave: 'ignore' is not one of stop, skip"),
        (["apps", 0, "rollout", "emptyWave"], "pass", "apps[0].rollout.emptyWave: 'pass' is not one of stop"),
    ],
)
def test_invalid_fleet_names_file_and_field(path: list[Any], value: Any, fragment: str) -> None:
    with pytest.raises(FleetConfigError) as caught:
        model.parse_fleet(_broken(path, value))
    assert caught.value.file == "fleet.yaml"
    assert str(caught.value).startswith("fleet.yaml: ")
    assert fragment in str(caught.value)


def test_min_ready_and_empty_wave_per_rollout_and_per_wave() -> None:
    data = _data()
    assert data["rollout"].setdefault("minReady", 2) == 2
    data["rollout"]["waves"][0].update(minReady="50%", emptyWave="skip")
    rollout = model.parse_fleet(data).rollout
    assert rollout is not None
    canary, eu = rollout.waves
    assert (canary.min_ready, canary.empty_wave) == (MinReady(percent=50), EmptyWave.SKIP)
    assert (eu.min_ready, eu.empty_wave) == (MinReady(count=2), EmptyWave.STOP)        # the rollout's, default
    assert rollout.implicit_wave().min_ready == MinReady(count=2)
    plain = model.parse_fleet(_data()).rollout
    assert plain is not None and plain.min_ready is None and plain.empty_wave is EmptyWave.STOP


def test_dependency_cycle_is_named() -> None:
    data = _data()
    data["apps"][1]["dependsOn"] = ["web"]
    with pytest.raises(FleetConfigError, match=r"dependsOn cycle: (web -> crds -> web|crds -> web -> crds)"):
        model.parse_fleet(data)


def test_dependency_order_keeps_declared_order_among_independent_apps() -> None:
    data = {"apiVersion": "convoy.dev/v1alpha1", "kind": "Fleet", "apps": [
        {"name": "c", "path": "c", "dependsOn": ["a"]}, {"name": "b", "path": "b"}, {"name": "a", "path": "a"}]}
    assert [app.name for app in model.parse_fleet(data).apps] == ["b", "a", "c"]


def test_external_builds_are_denied_unless_fleet_yaml_allows_them() -> None:
    fleet = model.parse_fleet(yaml.safe_load(BASE))
    assert fleet.render.external is model.ExternalBuilds.DENY
    allowed = model.parse_fleet({**yaml.safe_load(BASE), "render": {"external": "allow"}})
    assert allowed.render.external is model.ExternalBuilds.ALLOW
    with pytest.raises(FleetConfigError, match=r"^fleet.yaml: render.external: 'yes' is not one of deny, allow$"):
        model.parse_fleet({**yaml.safe_load(BASE), "render": {"external": "yes"}})
    with pytest.raises(FleetConfigError, match=r"render.helm: unknown field"):
        model.parse_fleet({**yaml.safe_load(BASE), "render": {"helm": "allow"}})


# -- approval gates -----------------------------------------------------------------------------

def _fleet_with_wave(**wave: object) -> dict[str, object]:
    return {"apiVersion": "convoy.dev/v1alpha1", "kind": "Fleet", "apps": [{"name": "web", "path": "apps/web"}],
            "rollout": {"waves": [{"name": "prod", "selector": {}, **wave}]}}


def _approval(**wave: object) -> model.Approval | None:
    rollout = model.parse_fleet(_fleet_with_wave(**wave)).rollout
    assert rollout is not None
    return rollout.waves[0].approval


def test_wave_approval_forms() -> None:
    assert _approval() is None and _approval(approval="none") is None
    assert _approval(approval="required") == model.Approval()
    gate = _approval(approval={"required": True, "paths": ["apps/web/**", "fleet.yaml"],
                               "approvers": ["alice", "bob"]})
    assert gate is not None
    assert gate == model.Approval(paths=("apps/web/**", "fleet.yaml"), approvers=("alice", "bob"))
    assert gate.matching(["apps/api/k.yaml"]) == ()
    assert gate.matching(["apps/web/base/deploy.yaml", "README.md"]) == ("apps/web/base/deploy.yaml",)
    assert gate.matching(None) is None        # changed paths unknown: approval needed


@pytest.mark.parametrize(("approval", "message"), [
    ("maybe", "rollout.waves[0].approval: 'maybe' is not one of required, none, or a mapping"),
    ({"required": "yes"}, "rollout.waves[0].approval.required: must be true or false, not 'yes'"),
    ({"required": True, "paths": ["/etc/x"]}, "rollout.waves[0].approval.paths[0]: '/etc/x' must be relative"),
    ({"required": True, "paths": ["../x"]}, "rollout.waves[0].approval.paths[0]: '../x' must be relative"),
    ({"required": True, "paths": []}, "rollout.waves[0].approval.paths: must list at least one path glob"),
    ({"required": True, "approvers": ["Alice"]},
     "rollout.waves[0].approval.approvers[0]: 'Alice' is not an admin credential name"),
    ({"required": False, "approvers": ["alice"]}, "approval.required: paths and approvers need required: true"),
    ({"required": True, "who": ["alice"]}, "rollout.waves[0].approval.who: unknown field"),
])
def test_wave_approval_errors_name_the_field(approval: object, message: str) -> None:
    with pytest.raises(model.FleetConfigError) as caught:
        model.parse_fleet(_fleet_with_wave(approval=approval))
    assert message in str(caught.value)


@pytest.mark.parametrize(("pattern", "path", "matches"), [
    ("apps/web/**", "apps/web/deploy.yaml", True),
    ("apps/web/**", "apps/web/overlays/prod/patch.yaml", True),
    ("apps/web/**", "apps/webshop/deploy.yaml", False),
    ("apps/web", "apps/web/deploy.yaml", True),           # a directory covers what is under it
    ("fleet.yaml", "fleet.yaml", True),
    ("fleet.yaml", "clusters/a/fleet.yaml", False),
    ("*.yaml", "fleet.yaml", True),
    ("*.yaml", "apps/web/deploy.yaml", False),            # * stays within one segment
    ("**/*.yaml", "apps/web/deploy.yaml", True),
    ("apps/*/base/**", "apps/api/base/k.yaml", True),
    ("apps/?eb/**", "apps/web/k.yaml", True),
])
def test_approval_path_globs(pattern: str, path: str, matches: bool) -> None:
    assert model.path_matches(pattern, path) is matches
