from __future__ import annotations

from pathlib import Path

import pytest

from hub.fleet import clusters
from hub.fleet.clusters import ClusterConfigError
from hub.tree.repofs import DirectoryFS


def _write(root: Path, files: dict[str, str]) -> DirectoryFS:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return DirectoryFS(root)


def test_declared_clusters_read_labels_and_vars(tmp_path: Path) -> None:
    fs = _write(tmp_path, {
        "clusters/prod-eu-1/cluster.yaml": "labels: {env: prod, region: eu}\nvars: {owner: team-eu, port: 8080}\n",
        "clusters/dev-1/cluster.yaml": "apiVersion: convoy.dev/v1alpha1\nkind: Cluster\n",
        "clusters/layer-only/web/kustomization.yaml": "kind: Component\n",
    })
    found = clusters.declared_clusters(fs)
    assert sorted(found) == ["dev-1", "prod-eu-1"], "a directory without cluster.yaml declares nothing"
    prod = found["prod-eu-1"]
    assert prod.labels == {"env": "prod", "region": "eu"}
    assert prod.vars == {"owner": "team-eu", "port": "8080"}
    assert prod.error is None and prod.file == "clusters/prod-eu-1/cluster.yaml"
    assert found["dev-1"].labels == {}


def test_no_clusters_directory_means_no_declared_clusters(tmp_path: Path) -> None:
    assert clusters.declared_clusters(_write(tmp_path, {"fleet.yaml": ""})) == {}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("labels: {env: prod\n", "clusters/bad/cluster.yaml"),
        ("lables: {env: prod}\n", "lables: unknown field"),
        ("labels: {canary: true}\n", "quote it"),
        ("labels: {env: 'white space'}\n", "not a valid label value"),
        ("vars: {cluster_name: x}\n", "'cluster_name' is reserved"),
        ("vars: {label_env: x}\n", "'label_env' is reserved"),
        ("vars: {'my-var': x}\n", "not a valid variable name"),
        ("kind: Fleet\n", "kind: must be 'Cluster'"),
        ("- a\n- b\n", "not a Kubernetes object"),
    ],
)
def test_a_broken_cluster_yaml_is_that_cluster_s_error_only(tmp_path: Path, text: str, fragment: str) -> None:
    fs = _write(tmp_path, {"clusters/bad/cluster.yaml": text,
                           "clusters/good/cluster.yaml": "labels: {env: dev}\n"})
    found = clusters.declared_clusters(fs)
    assert found["good"].error is None and found["good"].labels == {"env": "dev"}
    error = found["bad"].error
    assert isinstance(error, ClusterConfigError)
    assert error.file == "clusters/bad/cluster.yaml"
    assert fragment in str(error)
    info = clusters.cluster_info("bad", decl=found["bad"])
    assert info.config_error is error


def test_invalid_cluster_directory_name(tmp_path: Path) -> None:
    found = clusters.declared_clusters(_write(tmp_path, {"clusters/Prod_EU/cluster.yaml": "labels: {}\n"}))
    assert found["Prod_EU"].error is not None and "not a valid cluster name" in str(found["Prod_EU"].error)


def test_git_wins_when_labels_conflict() -> None:
    merged = clusters.merge_labels({"env": "dev", "zone": "a"}, {"env": "prod", "region": "eu"})
    assert merged == {"env": "prod", "zone": "a", "region": "eu"}
    decl = clusters.ClusterDecl(name="c", labels={"env": "prod"}, vars={"x": "1"}, file="f")
    info = clusters.cluster_info("c", registered_labels={"env": "dev", "gpu": "yes"}, decl=decl)
    assert info.labels == {"env": "prod", "gpu": "yes"} and info.vars == {"x": "1"}
    assert clusters.cluster_info("new", registered_labels={"env": "dev"}).labels == {"env": "dev"}


def test_all_clusters_unites_declared_and_registered() -> None:
    declared = {"a": clusters.ClusterDecl(name="a", labels={"env": "prod"}, vars={}, file="clusters/a/cluster.yaml")}
    infos = clusters.all_clusters(declared, {"b": {"env": "dev"}, "a": {"env": "dev", "zone": "1"}})
    assert [(i.name, dict(i.labels)) for i in infos] == [("a", {"env": "prod", "zone": "1"}), ("b", {"env": "dev"})]
