"""The sample fleet-config/ the demo and the tests run on: it validates clean and is what it claims to be."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml
from click.testing import CliRunner

from hub.cli import cli
from hub.fleet import clusters, model, resolving
from hub.render import kustomize, pipeline
from hub.tree import repofs

SAMPLE = Path(__file__).resolve().parents[2] / "fleet-config"


def _render() -> pipeline.FleetRender:
    fs = repofs.DirectoryFS(SAMPLE)
    return pipeline.Renderer().render_fleet(fs, clusters.all_clusters(clusters.declared_clusters(fs)))


def test_convoy_validate_passes_on_the_sample() -> None:
    result = CliRunner().invoke(cli, ["validate", str(SAMPLE)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "5 clusters" in result.stdout


def test_sample_has_what_the_demo_needs() -> None:
    fs = repofs.DirectoryFS(SAMPLE)
    declared = clusters.declared_clusters(fs)
    assert len(declared) >= 5
    assert {d.labels["env"] for d in declared.values()} == {"dev", "staging", "prod"}
    assert all("region" in d.labels and d.error is None for d in declared.values())
    result = _render()
    kinds_by_app: dict[str, set[str]] = {}
    layered = set()
    for render in result.clusters.values():
        assert render.ok, render.errors
        assert render.bundle is not None
        for obj in render.bundle["objects"]:
            kinds_by_app.setdefault(obj["metadata"]["labels"]["convoy.dev/app"], set()).add(obj["kind"])
        for plan in resolving.plan_cluster(fs, model.load_fleet(fs), name=render.cluster, labels=render.labels):
            if plan.cluster_layer:
                layered.add(render.cluster)
        text = yaml.safe_dump(render.bundle)
        assert "${" not in text.replace("${not_substituted}", ""), "every variable is substituted"
        assert render.cluster in text
    assert {"CustomResourceDefinition", "Widget"} <= kinds_by_app["widgets"]
    assert {"Deployment", "Service", "ConfigMap"} <= kinds_by_app["web"]
    assert {"ClusterRole", "Namespace"} <= kinds_by_app["platform"]
    assert layered == {"prod-eu-1"}
    fleet = result.fleet
    assert fleet is not None and fleet.rollout is not None
    assert [wave.name for wave in fleet.rollout.waves] == ["dev", "staging", "canary"]
    assert fleet.rollout.wave_of(declared["prod-eu-1"].labels).name == "canary"
    assert fleet.rollout.wave_of(declared["prod-us-1"].labels).name == "rest"


def test_the_prod_overlay_reaches_every_prod_cluster_through_their_own_layers() -> None:
    """The per-cluster layer adds to what the prod overlay set; it must not replace it (the canary is prod too)."""
    result = _render()
    prod = sorted(name for name, render in result.clusters.items() if render.labels.get("env") == "prod")
    assert "prod-eu-1" in prod
    for name in prod:
        bundle = result.clusters[name].bundle
        assert bundle is not None
        web = next(obj for obj in bundle["objects"] if obj["kind"] == "Deployment" and obj["metadata"]["name"] == "web")
        annotations = web["metadata"].get("annotations", {})
        assert annotations.get("demo.convoy.dev/tier") == "production", (name, annotations)
    eu1 = result.clusters["prod-eu-1"].bundle
    assert eu1 is not None
    web = next(obj for obj in eu1["objects"] if obj["kind"] == "Deployment")
    assert web["metadata"]["annotations"]["demo.convoy.dev/owner"] == "team-eu"   # its own layer still applies


def test_convoy_validate_warns_about_nothing_on_the_sample() -> None:
    result = CliRunner().invoke(cli, ["validate", str(SAMPLE)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr, result.stderr


def test_sample_layers_build_as_kubectl_kustomize_builds_them(tmp_path: Path, kubectl: str) -> None:
    """Every distinct layer list of the sample, native engine vs the oracle (before substitution)."""
    fs = repofs.DirectoryFS(SAMPLE)
    fleet = model.load_fleet(fs)
    layer_lists = set()
    for decl in clusters.declared_clusters(fs).values():
        for plan in resolving.plan_cluster(fs, fleet, name=decl.name, labels=decl.labels):
            layer_lists.add((plan.app.path, plan.components))
    assert len(layer_lists) == 9
    for index, (base, components) in enumerate(sorted(layer_lists)):
        work = tmp_path / f"case{index}"
        shutil.copytree(SAMPLE, work)
        (work / "kustomization.yaml").write_text(yaml.safe_dump({"resources": [base],
                                                                  "components": list(components)}))
        oracle = [doc for doc in yaml.safe_load_all(subprocess.run(
            [kubectl, "kustomize", str(work)], check=True, capture_output=True, text=True).stdout) if doc]
        native = kustomize.build_layers(fs, resources=[base], components=components).objects
        assert native == oracle, (base, components)
