"""The report of ``convoy preview --format markdown|json``: grouping, redaction, waves, truncation, policies."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from typing import Any

from hub.commands import preview_report as pr
from hub.fleet import model
from hub.render import pipeline
from protos import bundle as bundles

FLEET = model.parse_fleet({
    "apiVersion": "convoy.dev/v1alpha1", "kind": "Fleet",
    "apps": [{"name": "web", "path": "apps/web"}],
    "rollout": {"waves": [{"name": "canary", "selector": {"matchLabels": {"canary": "true"}}},
                          {"name": "eu", "selector": "region=eu"}]},
})
SECRET_VALUE = "cGFzc3dvcmQtYmFzZQ=="


def _objects(cluster: str, *, image: str = "web:1", secret: str = SECRET_VALUE, extra: bool = False,
             service: bool = True) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
         "spec": {"template": {"spec": {"containers": [{"name": "main", "image": image}]}}}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-config", "namespace": "shop"},
         "data": {"CLUSTER": cluster}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
         "data": {"password": secret}},
    ]
    if service:
        objects.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"}})
    if extra:
        objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "extra", "namespace": "shop"}})
    return objects


def _cluster(name: str, labels: Mapping[str, str], objects: list[dict[str, Any]] | None,
             error: str | None = None) -> pipeline.ClusterRender:
    bundle = {"apps": [{"name": "web"}], "objects": objects} if objects is not None and not error else None
    data = bundles.encode(bundle) if bundle is not None else None
    errors = (pipeline.AppError(cluster=name, app="web", file="apps/web/kustomization.yaml", message=error),) \
        if error else ()
    return pipeline.ClusterRender(cluster=name, labels=dict(labels), apps=("web",), bundle=bundle, data=data,
                                  digest=bundles.digest_of(data) if data is not None else None,
                                  object_count=len(objects or []), errors=errors, inputs_key=name)


def _fleet(clusters: Mapping[str, pipeline.ClusterRender], fleet: model.Fleet | None = FLEET) -> pipeline.FleetRender:
    return pipeline.FleetRender(revision="r", fleet=fleet, clusters=dict(clusters), fleet_error=None,
                                stats=pipeline.RenderStats())


LABELS = {
    "prod-eu-1": {"env": "prod", "region": "eu", "canary": "true"},
    "prod-eu-2": {"env": "prod", "region": "eu"},
    "prod-us-1": {"env": "prod", "region": "us"},
    "dev-eu-1": {"env": "dev", "region": "eu"},
    "lab-1": {},
}


def _pair(change: Mapping[str, dict[str, Any]] | None = None, *, errors: Mapping[str, str] | None = None,
          removed: tuple[str, ...] = (), new: Mapping[str, Mapping[str, str]] | None = None,
          fleet: model.Fleet | None = FLEET) -> pr.Report:
    base = {name: _cluster(name, labels, _objects(name)) for name, labels in LABELS.items()}
    head = {name: _cluster(name, labels, _objects(name, **(change or {}).get(name, {})),
                           (errors or {}).get(name)) for name, labels in LABELS.items() if name not in removed}
    for name, labels in (new or {}).items():
        head[name] = _cluster(name, labels, _objects(name))
    return pr.build_report(_fleet(base), _fleet(head, fleet), base_name="main", head_name="pr-7")


def test_identical_changes_collapse_into_one_group_and_cluster_specific_ones_do_not() -> None:
    same = {"image": "web:2", "service": False}
    report = _pair({"prod-eu-1": same, "prod-eu-2": same, "prod-us-1": same, "dev-eu-1": {"extra": True}})
    assert [names for _, names in report.groups] == [("prod-eu-1", "prod-eu-2", "prod-us-1"), ("dev-eu-1",)]
    change, _ = report.groups[0]
    # Objects in ObjectRef order: the core group ("") first.
    assert [(o.ref, o.action) for o in change.objects] == [("Service/shop/web", "deleted"),
                                                          ("Deployment.apps/shop/web", "changed")]
    assert change.objects[1].fields == (pr.FieldChange("spec.template.spec.containers[0].image", '"web:1"',
                                                       '"web:2"'),)
    text = pr.to_markdown(report)
    assert "#### 3 clusters (changed): prod-eu-1, prod-eu-2, prod-us-1" in text
    assert '    spec.template.spec.containers[0].image: "web:1" → "web:2"' in text
    assert "- Service/shop/web" in text and "+ ConfigMap/shop/extra" in text
    assert "**4 of 5 clusters change** (4 changed, 0 new, 0 removed); **0 fail to render**." in text


def test_many_names_are_cut_with_a_count() -> None:
    assert pr._names([f"c-{i}" for i in range(12)]) == "c-0, c-1, c-2, c-3, c-4, … (+7)"


def test_secret_values_never_appear_only_redacted() -> None:
    report = _pair({"prod-eu-1": {"secret": "bmV3LXBhc3N3b3Jk"}})
    text = pr.to_markdown(report)
    document = json.dumps(pr.to_document(report))
    for secret in (SECRET_VALUE, "bmV3LXBhc3N3b3Jk"):
        assert secret not in text and secret not in document
    assert "    data.password: <redacted> → <redacted>" in text
    added = pr.field_changes({"kind": "Secret", "stringData": {}}, {"kind": "Secret", "stringData": {"k": "v"}})
    assert added == (pr.FieldChange("stringData.k", pr.ABSENT, pr.REDACTED),)


def test_a_sealed_secret_reads_sealed_value_changed_without_ciphertext() -> None:
    def sealed(value: str, mac: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                "data": {"password": f"ENC[AES256_GCM,data:{value},type:str]"},
                "sops": {"mac": mac, "age": [{"recipient": "age1x", "enc": "x"}]}}
    changes = pr.field_changes(sealed("AAAA", "M1"), sealed("BBBB", "M2"))
    assert changes == (pr.FieldChange("data", pr.SEALED, pr.SEALED),)
    label_change = pr.field_changes({**sealed("AAAA", "M1"), "metadata": {"name": "db", "labels": {}}},
                                    {**sealed("AAAA", "M1"), "metadata": {
                                        "name": "db", "labels": {"app.kubernetes.io/name": "web"}}})
    assert label_change == (pr.FieldChange('metadata.labels["app.kubernetes.io/name"]', pr.ABSENT, '"web"'),)


def test_long_values_are_truncated() -> None:
    (change,) = pr.field_changes({"data": {"x": "a" * 500}}, {"data": {"x": "b" * 500}})
    assert len(change.old) == pr.MAX_VALUE_CHARS and change.old.endswith("…")


def test_waves_in_order_with_only_the_clusters_that_move_and_new_clusters_outside() -> None:
    bump = {"image": "web:2"}
    report = _pair({"prod-eu-1": bump, "prod-eu-2": bump, "prod-us-1": bump, "lab-1": bump},
                   new={"prod-ap-1": {"env": "prod", "region": "ap"}})
    assert [(w.name, w.clusters) for w in report.waves] == [
        ("canary", ("prod-eu-1",)), ("eu", ("prod-eu-2",)), ("rest", ("lab-1", "prod-us-1"))]
    assert report.unwaved == ("prod-ap-1",)
    text = pr.to_markdown(report)
    assert "| 1 | canary | 1 | prod-eu-1 |\n| 2 | eu | 1 | prod-eu-2 |\n| 3 | rest | 2 | lab-1, prod-us-1 |" in text
    assert "outside the waves: prod-ap-1." in text
    document = pr.to_document(report)
    assert document["rollout"]["waves"][0] == {"name": "canary", "clusters": ["prod-eu-1"]}
    assert {c["cluster"]: c["wave"] for c in document["clusters"]}["dev-eu-1"] is None
    no_strategy = _pair({"prod-eu-1": bump}, fleet=model.parse_fleet({
        "apiVersion": "convoy.dev/v1alpha1", "kind": "Fleet", "apps": [{"name": "web", "path": "apps/web"}]}))
    assert not no_strategy.waves and "every changed cluster moves at once" in pr.to_markdown(no_strategy)


def test_areas_by_env_and_region_and_render_errors() -> None:
    report = _pair({"prod-eu-2": {"image": "web:2"}, "lab-1": {"image": "web:2"}},
                   errors={"prod-us-1": "replicas: not a number | bad"}, removed=("dev-eu-1",))
    text = pr.to_markdown(report)
    assert "| prod | eu | 1 | 0 | 0 | 0 | 2 |" in text
    assert "| (no env) | (no region) | 1 | 0 | 0 | 0 | 1 |" in text
    assert "| prod | us | 0 | 0 | 0 | 1 | 1 |" in text and "| dev | eu | 0 | 0 | 1 | 0 | 1 |" in text
    assert "### Render errors" in text
    assert "| prod-us-1 | cluster prod-us-1: app web: replicas: not a number \\| bad |" in text
    assert "**3 of 5 clusters change** (2 changed, 0 new, 1 removed); **1 fail to render**." in text
    document = pr.to_document(report)
    assert document["summary"] == {"clusters": 5, "affected": 4, "changed": 2, "new": 0, "removed": 1,
                                   "renderErrors": 1}
    assert document["renderErrors"][0]["cluster"] == "prod-us-1"


def test_exit_policies_name_what_failed() -> None:
    report = _pair({"prod-eu-1": {"service": False}, "prod-eu-2": {"secret": "eA=="}}, removed=("lab-1",),
                   errors={"dev-eu-1": "broken"})
    failures = pr.policy_failures(report, ["deletions", "secrets", "render-errors", "cluster-removals", "changes"])
    assert failures == [
        "--fail-on changes: 3 clusters change: lab-1, prod-eu-1, prod-eu-2",
        "--fail-on cluster-removals: 1 clusters are removed: lab-1",
        "--fail-on deletions: 1 objects deleted in 1 clusters: prod-eu-1",
        "--fail-on render-errors: 1 clusters fail to render: dev-eu-1",
        "--fail-on secrets: 2 Secret changes in 2 clusters: lab-1, prod-eu-2",
    ]
    assert pr.policy_failures(_pair({"prod-eu-1": {"image": "web:2"}}), ["deletions", "secrets"]) == []
    assert "**Policy failed:**\n- --fail-on deletions" in pr.to_markdown(report, failures=failures[2:])


def test_a_huge_change_is_truncated_to_the_comment_limit_with_a_note() -> None:
    base, head = {}, {}
    for index in range(400):
        name = f"c-{index:03d}"
        objects = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{n}", "namespace": "x"},
                    "data": {"k": f"{name}-{n}"}} for n in range(30)]
        base[name] = _cluster(name, {"env": "prod"}, objects)
        changed = copy.deepcopy(objects)
        for obj in changed:
            obj["data"]["k"] += "-new"
        head[name] = _cluster(name, {"env": "prod"}, changed)
    report = pr.build_report(_fleet(base), _fleet(head), base_name="a", head_name="b")
    assert len(report.groups) == 400  # every cluster's values differ
    text = pr.to_markdown(report)
    assert len(text) <= pr.MAX_MARKDOWN_CHARS
    shown = len(re.findall(r"^#### ", text, flags=re.M))
    assert 0 < shown < 400
    assert f"_Truncated to fit a 65,536-character comment: {400 - shown} of 400 change groups" in text
    assert "<details><summary>" in text  # 30 objects x 2 lines: folded
    assert text == pr.to_markdown(pr.build_report(_fleet(base), _fleet(head), base_name="a", head_name="b"))


def test_a_value_with_backticks_cannot_close_the_code_fence() -> None:
    block = pr._fence('x: "```" → "````"')
    assert block.startswith("`````diff\n") and block.endswith("\n`````")


def test_an_app_s_own_strategy_governs_when_the_change_touches_that_app() -> None:
    fleet = model.parse_fleet({
        "apiVersion": "convoy.dev/v1alpha1", "kind": "Fleet",
        "apps": [{"name": "web", "path": "apps/web",
                  "rollout": {"waves": [{"name": "us-first", "selector": "region=us"}]}},
                 {"name": "db", "path": "apps/db"}],
        "rollout": {"waves": [{"name": "canary", "selector": {"matchLabels": {"canary": "true"}}}]},
    })

    def labelled(cluster: str, app: str, image: str) -> list[dict[str, Any]]:
        return [{"apiVersion": "apps/v1", "kind": "Deployment",
                 "metadata": {"name": app, "namespace": "shop", "labels": {bundles.LABEL_APP: app}},
                 "spec": {"image": image}}]

    def render(image: str, app: str) -> pipeline.FleetRender:
        return _fleet({name: _cluster(name, labels, labelled(name, app, image)) for name, labels in LABELS.items()},
                      fleet)

    web = pr.build_report(render("1", "web"), render("2", "web"), base_name="a", head_name="b")
    assert [w.name for w in web.waves] == ["us-first", "rest"] and web.waves[0].clusters == ("prod-us-1",)
    db = pr.build_report(render("1", "db"), render("2", "db"), base_name="a", head_name="b")
    assert [w.name for w in db.waves] == ["canary", "rest"] and db.waves[0].clusters == ("prod-eu-1",)
