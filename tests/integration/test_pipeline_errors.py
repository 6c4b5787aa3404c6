"""Every bad input of issue 3 is a per-cluster, per-app error that names the file; other clusters render."""

from __future__ import annotations

import os
from pathlib import Path

import git
import pytest

from hub.fleet import clusters
from hub.render import pipeline
from hub.tree import repofs
from tests.integration.hub_harness import commit_files

FLEET = """\
apiVersion: convoy.dev/v1alpha1
kind: Fleet
apps:
  - name: good
    path: apps/good
    namespace: good
  - name: bad
    path: apps/bad
    namespace: bad
    targets: {matchLabels: {env: prod}}
    overlays:
      - {selector: {matchLabels: {env: prod}}, path: apps/bad-overlay}
"""

GOOD_FILES = {
    "fleet.yaml": FLEET,
    "apps/good/kustomization.yaml": "resources: [cm.yaml]\n",
    "apps/good/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: good}\ndata: {who: '${cluster_name}'}\n",
    "apps/bad/kustomization.yaml": "resources: [cm.yaml]\n",
    "apps/bad/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\ndata: {k: v}\n",
    "apps/bad-overlay/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n",
    "clusters/dev-1/cluster.yaml": "labels: {env: dev}\n",
    "clusters/prod-1/cluster.yaml": "labels: {env: prod}\n",
    "clusters/prod-2/cluster.yaml": "labels: {env: prod}\n",
}

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))


def _render(repo_dir: Path, sha: str, limits: pipeline.RenderLimits = pipeline.RenderLimits()
            ) -> pipeline.FleetRender:
    fs = repofs.GitTreeFS(git.Repo(repo_dir), sha)
    return pipeline.Renderer(limits=limits).render_fleet(fs, clusters.all_clusters(clusters.declared_clusters(fs)))


@pytest.fixture
def fleet_repo(tmp_path: Path) -> Path:
    repo_dir = tmp_path / "fleet"
    commit_files(repo_dir, GOOD_FILES, "good fleet")
    return repo_dir


def test_the_good_fleet_renders(fleet_repo: Path) -> None:
    result = _render(fleet_repo, "HEAD")
    assert all(r.ok for r in result.clusters.values())
    assert result.clusters["prod-1"].apps == ("good", "bad") and result.clusters["dev-1"].apps == ("good",)


CASES = {
    "invalid YAML": ({"apps/bad/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [unclosed\n"},
                     "apps/bad/cm.yaml", ""),
    "missing base": ({"apps/bad/kustomization.yaml": "resources: [../nowhere]\n"}, "apps/bad", "nowhere"),
    "missing component": ({"fleet.yaml": FLEET.replace("path: apps/bad-overlay", "path: apps/no-such-overlay")},
                          "fleet.yaml", "no-such-overlay"),
    "component loop": ({"apps/bad-overlay/kustomization.yaml":
                        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\ncomponents: [../loop]\n",
                        "apps/loop/kustomization.yaml":
                        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
                        "components: [../bad-overlay]\n"}, None, "cycle"),
    "path escaping the root": ({"apps/bad/kustomization.yaml": "resources: [../../../etc]\n"}, "apps/bad",
                               "escapes"),
    "absolute path": ({"apps/bad/kustomization.yaml": "resources: [/etc/passwd]\n"}, "apps/bad", "absolute"),
    "remote URL resource": ({"apps/bad/kustomization.yaml":
                             "resources: [https://github.com/kubernetes-sigs/kustomize//examples/helloWorld]\n"},
                            "apps/bad", "remote"),
    "YAML alias bomb": ({"apps/bad/cm.yaml": BOMB}, "apps/bad/cm.yaml", "alias"),
    "undefined variable": ({"apps/bad/cm.yaml":
                            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\ndata: {k: '${nope}'}\n"},
                           None, "ConfigMap/bad/bad: data.k: undefined variable ${nope}"),
    "two objects with one identity": ({"apps/bad/cm.yaml":
                                       "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: good, namespace: good}\n"},
                                      None, "app good (apps/good) and app bad (apps/bad + apps/bad-overlay)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_fails_only_the_clusters_it_reaches(fleet_repo: Path, case: str) -> None:
    good = _render(fleet_repo, "HEAD")
    files, file_fragment, message_fragment = CASES[case]
    sha = commit_files(fleet_repo, files, case)
    result = _render(fleet_repo, sha)
    assert result.fleet_error is None
    dev = result.clusters["dev-1"]
    assert dev.ok and dev.digest == good.clusters["dev-1"].digest, "a cluster the bad app does not reach is untouched"
    for name in ("prod-1", "prod-2"):
        broken = result.clusters[name]
        assert broken.bundle is None and broken.data is None and broken.digest is None
        assert len(broken.errors) == 1
        error = broken.errors[0]
        assert error.cluster == name and error.app == "bad"
        if file_fragment:
            assert error.file is not None and file_fragment in error.file, error
            assert file_fragment in error.message
        assert message_fragment.lower() in str(error).lower(), str(error)
        assert "\n" not in str(error) and "Traceback" not in str(error)


def test_symlink_escaping_the_repository_is_refused(fleet_repo: Path) -> None:
    os.symlink("/etc/hostname", fleet_repo / "apps/bad/cm.yaml.tmp")
    (fleet_repo / "apps/bad/cm.yaml").unlink()
    (fleet_repo / "apps/bad/cm.yaml.tmp").rename(fleet_repo / "apps/bad/cm.yaml")
    sha = commit_files(fleet_repo, {}, "symlink out")
    result = _render(fleet_repo, sha)
    assert result.clusters["dev-1"].ok
    error = result.clusters["prod-1"].errors[0]
    assert error.app == "bad" and "symlink" in error.message and "escapes" in error.message


def test_bundle_over_the_size_limit(fleet_repo: Path) -> None:
    big = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\ndata: {k: '" + "x" * 4000 + "'}\n"
    sha = commit_files(fleet_repo, {"apps/bad/cm.yaml": big})
    result = _render(fleet_repo, sha, pipeline.RenderLimits(max_bundle_bytes=3000))
    assert result.clusters["dev-1"].ok
    error = result.clusters["prod-1"].errors[0]
    assert error.app == "" and "over the 3000-byte limit" in str(error) and "cluster prod-1" in str(error)


@pytest.mark.parametrize(
    ("fleet_text", "fragment"),
    [
        (FLEET.replace("namespace: good", "namespace: good\n    nmespace: typo"), "apps[0].nmespace: unknown field"),
        (FLEET.replace("    namespace: bad\n", "    namespace: bad\n    dependsOn: [bad]\n"), "depends on itself"),
        (FLEET.replace("    namespace: good\n", "    namespace: good\n    dependsOn: [bad]\n")
         .replace("    namespace: bad\n", "    namespace: bad\n    dependsOn: [good]\n"), "dependsOn cycle"),
        ("apps: [unclosed\n", "fleet.yaml"),
    ],
)
def test_a_broken_fleet_yaml_is_a_fleet_error_never_an_exception(fleet_repo: Path, fleet_text: str,
                                                                 fragment: str) -> None:
    sha = commit_files(fleet_repo, {"fleet.yaml": fleet_text})
    result = _render(fleet_repo, sha)
    assert result.fleet_error is not None and result.fleet == None and result.clusters == {}  # noqa: E711
    assert result.fleet_error.file == "fleet.yaml"
    assert fragment in str(result.fleet_error)


def test_missing_fleet_yaml(fleet_repo: Path) -> None:
    sha = commit_files(fleet_repo, {"fleet.yaml": None})
    result = _render(fleet_repo, sha)
    assert result.fleet_error is not None and "fleet.yaml" in str(result.fleet_error)


def test_a_broken_cluster_yaml_fails_that_cluster_only(fleet_repo: Path) -> None:
    sha = commit_files(fleet_repo, {"clusters/prod-2/cluster.yaml": "labels: {env: prod}\nvar: {}\n"})
    result = _render(fleet_repo, sha)
    assert result.clusters["prod-1"].ok and result.clusters["dev-1"].ok
    error = result.clusters["prod-2"].errors[0]
    assert error.file == "clusters/prod-2/cluster.yaml" and "var: unknown field" in error.message


def test_depending_on_an_app_that_does_not_target_the_cluster(fleet_repo: Path) -> None:
    sha = commit_files(fleet_repo, {"fleet.yaml": FLEET.replace(
        "    namespace: good\n", "    namespace: good\n    dependsOn: [bad]\n")})
    result = _render(fleet_repo, sha)
    assert result.clusters["prod-1"].ok
    error = result.clusters["dev-1"].errors[0]
    assert error.app == "good" and "depends on bad, which does not target this cluster" in str(error)


def test_errors_of_several_apps_are_all_reported(fleet_repo: Path) -> None:
    sha = commit_files(fleet_repo, {"apps/good/cm.yaml": "kind: [\n", "apps/bad/cm.yaml": "kind: [\n"})
    result = _render(fleet_repo, sha)
    assert sorted(e.app for e in result.clusters["prod-1"].errors) == ["bad", "good"]


def test_an_invalid_registered_cluster_name_is_that_cluster_s_error(fleet_repo: Path) -> None:
    fs = repofs.GitTreeFS(git.Repo(fleet_repo), "HEAD")
    infos = clusters.all_clusters(clusters.declared_clusters(fs), {"../../escape": {"env": "prod"}})
    result = pipeline.Renderer().render_fleet(fs, infos)
    assert result.clusters["prod-1"].ok
    assert "not a valid cluster name" in str(result.clusters["../../escape"].errors[0])
