"""The render pipeline on real Git repositories made by the tests: results, sharing, incrementality."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import git
import pytest

from bench import fleetgen
from hub.fleet import clusters, model
from hub.render import pipeline
from hub.tree import repofs
from protos import bundle
from tests.integration.hub_harness import commit_files, sample_repo

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "fleet-config"


def render_all(renderer: pipeline.Renderer, fs: repofs.RepoFS) -> pipeline.FleetRender:
    return renderer.render_fleet(fs, clusters.all_clusters(clusters.declared_clusters(fs)))


def objects_of(result: pipeline.ClusterRender) -> dict[str, dict[str, Any]]:
    assert result.bundle is not None, [str(e) for e in result.errors]
    return {f"{o['kind']}/{o['metadata'].get('namespace', '')}/{o['metadata']['name']}": o
            for o in result.bundle["objects"]}


def test_sample_fleet_from_git_renders_every_cluster_with_its_layers(tmp_path: Path) -> None:
    repo, sha = sample_repo(tmp_path)
    result = render_all(pipeline.Renderer(), repofs.GitTreeFS(repo, sha))
    assert result.fleet_error is None
    assert sorted(result.clusters) == ["dev-eu-1", "prod-ap-1", "prod-eu-1", "prod-us-1", "staging-eu-1"]
    assert all(r.ok for r in result.clusters.values())

    prod_eu = result.clusters["prod-eu-1"]
    assert prod_eu.apps == ("platform", "widgets", "web")
    objs = objects_of(prod_eu)
    config = objs["ConfigMap/shop/web-config"]["data"]
    assert config["CLUSTER_NAME"] == "prod-eu-1"
    assert config["REGION"] == "eu" and config["DATA_LOCATION"] == "eu-storage"
    assert config["GREETING"] == "Hello from Convoy", "the default applies when the var is not set"
    assert config["LITERAL"] == "${not_substituted}", "$${x} escapes"
    deployment = objs["Deployment/shop/web"]
    assert deployment["spec"]["replicas"] == 3
    assert deployment["metadata"]["annotations"]["demo.convoy.dev/owner"] == "team-eu", "per-cluster layer + vars"
    assert objs["Widget/widgets/default"]["spec"] == {"owner": "prod-eu-1", "size": "large", "tier": "prod"}
    for obj in prod_eu.bundle["objects"] if prod_eu.bundle else []:
        assert obj["metadata"]["labels"][bundle.LABEL_MANAGED_BY] == "convoy"
        assert obj["metadata"]["labels"][bundle.LABEL_APP] in prod_eu.apps
    kinds = [o["kind"] for o in prod_eu.bundle["objects"]] if prod_eu.bundle else []
    assert kinds[:4] == ["Namespace", "CustomResourceDefinition", "Namespace", "Namespace"]
    assert kinds.index("ClusterRole") < kinds.index("ServiceAccount") < kinds.index("Widget") < kinds.index("ConfigMap")
    assert prod_eu.bundle is not None and [a["name"] for a in prod_eu.bundle["apps"]] == ["platform", "widgets", "web"]
    assert prod_eu.bundle["apps"][2] == {"name": "web", "namespace": "shop", "dependsOn": ["platform", "widgets"],
                                         "driftPolicy": "correct"}
    assert prod_eu.data == bundle.encode(prod_eu.bundle) and prod_eu.digest == bundle.digest_of(prod_eu.data)

    dev = objects_of(result.clusters["dev-eu-1"])
    assert dev["Deployment/shop/web"]["spec"]["replicas"] == 1
    assert "annotations" not in dev["Deployment/shop/web"]["metadata"], "no per-cluster layer on dev-eu-1"
    assert dev["ConfigMap/shop/web-config"]["data"]["GREETING"] == "Hello from dev"
    assert dev["Deployment/shop/web"]["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27-dev"
    assert (objects_of(result.clusters["prod-us-1"])["ConfigMap/shop/web-config"]["data"]["DATA_LOCATION"]
            == "us-storage")
    assert len({r.digest for r in result.clusters.values()}) == 5


def test_git_commit_and_directory_give_the_same_digests(tmp_path: Path) -> None:
    repo, sha = sample_repo(tmp_path)
    from_git = render_all(pipeline.Renderer(), repofs.GitTreeFS(repo, sha))
    from_dir = render_all(pipeline.Renderer(), repofs.DirectoryFS(SAMPLE))
    assert {n: r.digest for n, r in from_git.clusters.items()} == {n: r.digest for n, r in from_dir.clusters.items()}


_DIGEST_SCRIPT = """
import json, sys
from hub.fleet import clusters
from hub.render import pipeline
from hub.tree import repofs
fs = repofs.DirectoryFS(sys.argv[1])
result = pipeline.Renderer().render_fleet(fs, clusters.all_clusters(clusters.declared_clusters(fs)))
print(json.dumps({name: r.digest for name, r in result.clusters.items()}))
"""


def test_digests_are_stable_across_processes_and_hash_seeds() -> None:
    seen = []
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", _DIGEST_SCRIPT, str(SAMPLE)], env=env, check=True,
                             capture_output=True, text=True, cwd=ROOT).stdout
        seen.append(json.loads(out))
    in_process = render_all(pipeline.Renderer(), repofs.DirectoryFS(SAMPLE))
    assert seen[0] == seen[1] == seen[2] == {n: r.digest for n, r in in_process.clusters.items()}
    assert all(d and d.startswith("sha256:") for d in seen[0].values())


def test_registered_labels_merge_with_git_and_new_clusters_need_no_directory(tmp_path: Path) -> None:
    repo, sha = sample_repo(tmp_path)
    fs = repofs.GitTreeFS(repo, sha)
    declared = clusters.declared_clusters(fs)
    infos = clusters.all_clusters(declared, {"prod-us-1": {"env": "dev", "team": "a"},
                                             "prod-sa-9": {"env": "prod", "region": "us"}})
    result = pipeline.Renderer().render_fleet(fs, infos)
    assert result.clusters["prod-us-1"].labels == {"env": "prod", "region": "us", "team": "a"}, "Git wins"
    newcomer = result.clusters["prod-sa-9"]
    assert newcomer.ok and newcomer.apps == ("platform", "widgets", "web")
    assert objects_of(newcomer)["ConfigMap/shop/web-config"]["data"]["CLUSTER_NAME"] == "prod-sa-9"


def test_render_cluster_matches_render_fleet(tmp_path: Path) -> None:
    repo, sha = sample_repo(tmp_path)
    fs = repofs.GitTreeFS(repo, sha)
    fleet = model.load_fleet(fs)
    info = clusters.cluster_info("prod-ap-1", decl=clusters.declared_clusters(fs)["prod-ap-1"])
    single = pipeline.Renderer().render_cluster(fs, fleet, info)
    assert single.digest == render_all(pipeline.Renderer(), fs).clusters["prod-ap-1"].digest


# -- sharing and incrementality, counted ----------------------------------------------------------------


def _generated(tmp_path: Path, spec: fleetgen.FleetSpec) -> tuple[fleetgen.GeneratedFleet, git.Repo]:
    generated = fleetgen.generate(tmp_path / "gen", spec)
    return generated, git.Repo(generated.root)


def _distinct_layer_lists(spec: fleetgen.FleetSpec) -> int:
    combos = {(fleetgen.cluster_labels(spec, i)["env"], fleetgen.cluster_labels(spec, i)["region"])
              for i in range(spec.clusters)}
    # every app: one build per (env, region); app-0 also one per cluster that has its own layer
    return spec.apps * len(combos) + min(spec.cluster_layers, spec.clusters)


def test_clusters_sharing_layers_share_one_kustomize_render(tmp_path: Path) -> None:
    spec = fleetgen.FleetSpec(clusters=60, apps=3, cluster_layers=4)
    generated, repo = _generated(tmp_path, spec)
    renderer = pipeline.Renderer()
    result = render_all(renderer, repofs.GitTreeFS(repo, generated.head or "HEAD"))
    assert all(r.ok for r in result.clusters.values())
    assert len(result.clusters) == 60
    assert renderer.renders_done == _distinct_layer_lists(spec) == 3 * 15 + 4
    assert result.stats.kustomize_renders == renderer.renders_done
    assert result.stats.kustomize_cache_hits == 60 * 3 - renderer.renders_done
    # Same revision again: nothing is rendered, every cluster comes from the cache as is.
    again = render_all(renderer, repofs.GitTreeFS(repo, generated.head or "HEAD"))
    assert renderer.renders_done == _distinct_layer_lists(spec)
    assert again.stats.cluster_renders == 0 and again.stats.cluster_cache_hits == 60
    assert all(again.clusters[n] is result.clusters[n] for n in result.clusters)


def test_a_commit_re_renders_only_the_clusters_whose_inputs_changed(tmp_path: Path) -> None:
    spec = fleetgen.FleetSpec(clusters=60, apps=3, cluster_layers=4)
    generated, repo = _generated(tmp_path, spec)
    renderer = pipeline.Renderer()
    before = render_all(renderer, repofs.GitTreeFS(repo, generated.head or "HEAD"))
    builds_before = renderer.renders_done

    sha = fleetgen.commit_region_change(generated.root, "eu")
    after = render_all(renderer, repofs.GitTreeFS(repo, sha))

    eu = {name for name in before.clusters if after.clusters[name].labels["region"] == "eu"}
    assert 0 < len(eu) < 60
    # app-0's eu overlay changed: one build per env for eu, plus eu clusters with their own app-0 layer.
    eu_layers = sum(1 for i in range(min(spec.cluster_layers, spec.clusters))
                    if fleetgen.cluster_labels(spec, i)["region"] == "eu")
    assert renderer.renders_done - builds_before == len(spec.envs) + eu_layers
    assert after.stats.cluster_renders == len(eu)
    for name in before.clusters:
        if name in eu:
            assert after.clusters[name].digest != before.clusters[name].digest
            assert after.clusters[name].inputs_key != before.clusters[name].inputs_key
        else:
            assert after.clusters[name] is before.clusters[name], name


def test_a_change_outside_any_layer_renders_nothing(tmp_path: Path) -> None:
    spec = fleetgen.FleetSpec(clusters=12, apps=2, cluster_layers=2)
    generated, repo = _generated(tmp_path, spec)
    renderer = pipeline.Renderer()
    render_all(renderer, repofs.GitTreeFS(repo, generated.head or "HEAD"))
    builds = renderer.renders_done
    sha = commit_files(generated.root, {"README.md": "# docs only\n"})
    result = render_all(renderer, repofs.GitTreeFS(repo, sha))
    assert renderer.renders_done == builds
    assert result.stats.cluster_renders == 0


def test_a_cluster_var_change_re_renders_that_cluster_only_without_kustomize(tmp_path: Path) -> None:
    repo, sha = sample_repo(tmp_path)
    renderer = pipeline.Renderer()
    before = render_all(renderer, repofs.GitTreeFS(repo, sha))
    builds = renderer.renders_done
    text = (Path(repo.working_dir) / "clusters/prod-ap-1/cluster.yaml").read_text()
    sha2 = commit_files(Path(repo.working_dir), {
        "clusters/prod-ap-1/cluster.yaml": text.replace("Konnichiwa from Convoy", "Hello, Tokyo")})
    after = render_all(renderer, repofs.GitTreeFS(repo, sha2))
    assert renderer.renders_done == builds, "a var is a substitution input, not a kustomize input"
    assert after.stats.cluster_renders == 1
    assert objects_of(after.clusters["prod-ap-1"])["ConfigMap/shop/web-config"]["data"]["GREETING"] == "Hello, Tokyo"
    assert after.clusters["prod-us-1"] is before.clusters["prod-us-1"]


@pytest.mark.parametrize("engine_files", [{"apps/web/base/extra.yaml": None}])
def test_deleting_a_file_a_build_read_invalidates_it(tmp_path: Path, engine_files: dict[str, None]) -> None:
    repo, sha = sample_repo(tmp_path)
    renderer = pipeline.Renderer()
    render_all(renderer, repofs.GitTreeFS(repo, sha))
    work = Path(repo.working_dir)
    kustomization = (work / "apps/web/base/kustomization.yaml").read_text()
    sha2 = commit_files(work, {"apps/web/base/kustomization.yaml": kustomization.replace(
        "  - service.yaml\n", "  - service.yaml\n  - extra.yaml\n"),
        "apps/web/base/extra.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n"})
    with_extra = render_all(renderer, repofs.GitTreeFS(repo, sha2))
    assert "ConfigMap/shop/extra" in objects_of(with_extra.clusters["dev-eu-1"])
    sha3 = commit_files(work, engine_files)
    broken = render_all(renderer, repofs.GitTreeFS(repo, sha3))
    error = broken.clusters["dev-eu-1"].errors[0]
    assert error.app == "web" and "extra.yaml" in error.message


def test_partial_renders_between_commits_keep_the_cache_warm(tmp_path: Path) -> None:
    """The hub renders a newly registered cluster on its own; that must not cost the fleet its cache."""
    spec = fleetgen.FleetSpec(clusters=30, apps=2, cluster_layers=3)
    generated, repo = _generated(tmp_path, spec)
    renderer = pipeline.Renderer()
    fs = repofs.GitTreeFS(repo, generated.head or "HEAD")
    infos = clusters.all_clusters(clusters.declared_clusters(fs))
    renderer.render_fleet(fs, infos)
    for info in infos[:5]:
        renderer.render_fleet(fs, [info])
    builds = renderer.renders_done
    sha = fleetgen.commit_region_change(generated.root, "us")
    after = render_all(renderer, repofs.GitTreeFS(repo, sha))
    us = sum(1 for r in after.clusters.values() if r.labels["region"] == "us")
    assert after.stats.cluster_renders == us
    assert renderer.renders_done - builds == len(spec.envs) + sum(
        1 for i in range(spec.cluster_layers) if fleetgen.cluster_labels(spec, i)["region"] == "us")


def test_the_cache_stays_bounded_over_many_commits(tmp_path: Path) -> None:
    spec = fleetgen.FleetSpec(clusters=150, apps=1, cluster_layers=150)
    generated, repo = _generated(tmp_path, spec)
    renderer = pipeline.Renderer()
    for _ in range(4):
        sha = fleetgen.commit_all_clusters_change(generated.root)
        render_all(renderer, repofs.GitTreeFS(repo, sha))
    assert len(renderer._clusters) <= 2 * 150 + 10
    assert sum(len(c) for c in renderer._builds.values()) <= 2 * (150 + 15)
