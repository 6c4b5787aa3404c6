"""The native kustomize engine against ``kubectl kustomize`` as a live oracle.

Every directory of ``tests/testdata/kustomize`` is built both ways and compared as
parsed YAML: same objects, same order. A case with an ``expect.yaml`` says it is
outside the native subset (``feature:``): the engine must fall back with that
reason and still give the oracle's result.
"""

from __future__ import annotations

import pathlib
import subprocess
from typing import Any

import pytest
import yaml

from hub.render import repofs
from hub.render.errors import UnsupportedFeatureError
from hub.render.kustomize import BuildOptions, build, build_layers

CORPUS = pathlib.Path(__file__).resolve().parents[1] / "testdata" / "kustomize"
CASES = sorted(path.name for path in CORPUS.iterdir() if path.is_dir())


def oracle(kubectl: str, directory: pathlib.Path) -> list[dict[str, Any]]:
    proc = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc is not None]


def expectation(case: str) -> dict[str, Any]:
    path = CORPUS / case / "expect.yaml"
    return yaml.safe_load(path.read_text()) if path.exists() else {}


def names(objects: list[dict[str, Any]]) -> list[str]:
    return [f"{obj.get('kind')}/{obj.get('metadata', {}).get('namespace', '')}/{obj['metadata']['name']}"
            for obj in objects]


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 40


@pytest.mark.kubectl
@pytest.mark.parametrize("case", CASES)
def test_native_build_equals_kubectl_kustomize(case: str, kubectl: str) -> None:
    expected = oracle(kubectl, CORPUS / case)
    result = build(repofs.DirectoryFS(CORPUS), case)
    feature = expectation(case).get("feature")
    if feature:
        assert result.engine == "external"
        assert result.external_reason is not None and result.external_reason.startswith(f"{feature} in ")
    else:
        assert result.engine == "native", result.external_reason
    assert names(result.objects) == names(expected)
    assert result.objects == expected


@pytest.mark.parametrize("case", [case for case in CASES if expectation(case).get("feature")])
def test_unsupported_feature_without_fallback_names_feature_and_file(case: str) -> None:
    feature = expectation(case)["feature"]
    with pytest.raises(UnsupportedFeatureError) as info:
        build(repofs.DirectoryFS(CORPUS), case, options=BuildOptions(allow_external=False))
    assert info.value.feature == feature
    assert info.value.file is not None and info.value.file.startswith(case + "/")
    assert feature in str(info.value)


LAYER_CASES = [
    # (resources, components, namespace) relative to the corpus root
    (["61-layers/base"], [], None),
    (["61-layers/base"], ["61-layers/env-prod", "61-layers/region-eu"], "shop"),
    (["61-layers/base"], ["61-layers/region-eu", "61-layers/cluster-eu1"], None),
    (["61-layers/base", "61-layers/extra.yaml"], ["61-layers/env-prod", "61-layers/cluster-eu1"], "shop-eu1"),
]


@pytest.mark.kubectl
@pytest.mark.parametrize(("resources", "components", "namespace"), LAYER_CASES)
def test_build_layers_equals_kubectl_on_the_same_kustomization(
        resources: list[str], components: list[str], namespace: str | None, kubectl: str,
        tmp_path: pathlib.Path) -> None:
    # The synthetic kustomization written to disk beside the corpus, then built by the oracle.
    site = tmp_path / "repo"
    repofs.materialize(repofs.DirectoryFS(CORPUS), site)
    kustomization: dict[str, Any] = {"resources": resources}
    if components:
        kustomization["components"] = components
    if namespace:
        kustomization["namespace"] = namespace
    (site / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    expected = oracle(kubectl, site)
    (site / "kustomization.yaml").unlink()
    result = build_layers(repofs.DirectoryFS(site), resources=resources, components=components, namespace=namespace)
    assert result.engine == "native"
    assert result.objects == expected


@pytest.mark.kubectl
def test_external_fallback_reads_a_git_commit_not_the_disk(kubectl: str, tmp_path: pathlib.Path) -> None:
    import git

    case = "58-external-feature-in-base"
    root = tmp_path / "repo"
    repofs.materialize(repofs.DirectoryFS(CORPUS / case), root / case)
    repo = git.Repo.init(root)
    repo.git.add(A=True)
    actor = git.Actor("t", "t@example.com")
    sha = str(repo.index.commit("fleet", author=actor, committer=actor).hexsha)
    expected = oracle(kubectl, root / case)
    # An uncommitted edit must not reach the external build of the commit.
    (root / case / "kustomization.yaml").write_text("namePrefix: dirty-\nresources:\n- base\n")
    result = build(repofs.GitTreeFS(repo, sha), case, options=BuildOptions(external_command=(kubectl, "kustomize")))
    assert result.engine == "external"
    assert result.external_reason == f"replacements in {case}/base/kustomization.yaml"
    assert result.objects == expected
