"""The pure check "may this kustomization go to the external kustomize", one field at a time."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest
import yaml

from hub.render.kustomize import vetting
from hub.tree import repofs
from hub.tree.errors import KustomizeError, RenderError, RepoPathError, UnsupportedFeatureError

FILE = "app/kustomization.yaml"


def vet(text: str, **policy: Any) -> vetting.References:
    return vetting.vet_kustomization(yaml.safe_load(text), directory="app", file=FILE,
                                     policy=vetting.Policy(**policy))


def refusal(text: str, **policy: Any) -> RenderError:
    with pytest.raises(RenderError) as info:
        vet(text, **policy)
    assert info.value.file == FILE and "\n" not in str(info.value)
    return info.value


@pytest.mark.parametrize(("text", "expected"), [
    ("resources: [https://example.com/x.yaml]", "remote resource"),
    ("resources: ['http://169.254.169.254/latest/meta-data']", "remote resource"),
    ("resources: ['git@github.com:org/repo.git']", "remote resource"),
    ("resources: ['github.com/org/repo/deploy?ref=v1']", "remote resource"),
    ("bases: ['https://example.com/base']", "remote resource"),
    ("components: ['https://example.com/component']", "remote resource"),
    ("resources: [/etc/passwd]", "absolute path"),
    ("resources: [../../../../etc/passwd]", "escapes the repository root"),
    ("resources: [../.git]", "inside .git"),
    ("openapi: {path: 'https://example.com/schema.json'}", "remote resource"),
    ("crds: [/etc/crd.yaml]", "absolute path"),
    ("configurations: [../other/config.yaml]", "outside the kustomization directory"),
    ("patches: [{path: ../x.yaml}]", "outside the kustomization directory"),
    ("patchesJson6902: [{path: /etc/shadow, target: {kind: X, name: y}}]", "absolute path"),
    ("patchesStrategicMerge: [../secret.yaml]", "outside the kustomization directory"),
    ("replacements: [{path: 'http://127.0.0.1:8080/r.yaml'}]", "remote resource"),
    ("configMapGenerator: [{name: x, files: [key=/etc/passwd]}]", "absolute path"),
    ("secretGenerator: [{name: x, envs: [../../.env]}]", "escapes the repository root"),
    ("secretGenerator: [{name: x, env: /root/.env}]", "absolute path"),
])
def test_paths_leaving_the_repository_or_the_kustomization_are_refused(text: str, expected: str) -> None:
    error = refusal(text)
    assert isinstance(error, RepoPathError) and expected in str(error)


def test_the_field_is_named() -> None:
    assert str(refusal("openapi: {path: /etc/passwd}")).startswith(f"{FILE}: openapi.path: absolute path")


@pytest.mark.parametrize(("text", "feature"), [
    ("helmCharts: [{name: redis, repo: 'https://charts.example.com'}]", "helmCharts"),
    ("helmChartInflationGenerator: [{chartName: redis}]", "helmChartInflationGenerator"),
    ("helmGlobals: {chartHome: charts}", "helmGlobals"),
    ("generators:\n- |\n  apiVersion: builtin\n  kind: HelmChartInflationGenerator\n  metadata: {name: x}\n",
     "generators"),
])
def test_helm_is_refused_unless_the_hub_allows_it(text: str, feature: str) -> None:
    error = refusal(text)
    assert isinstance(error, UnsupportedFeatureError) and error.feature == feature
    assert "allow_helm" in str(error)
    assert vet(text, allow_helm=True).helm


def test_allowed_helm_still_reads_only_paths_inside_the_repository() -> None:
    refs = vet("helmCharts: [{name: web, valuesFile: values.yaml}]", allow_helm=True)
    assert refs.files == ("app/values.yaml",) and refs.chart_homes == ("app/charts",)
    assert "absolute path" in str(refusal("helmCharts: [{name: web, valuesFile: /etc/passwd}]", allow_helm=True))
    assert "remote resource" in str(refusal("helmGlobals: {chartHome: 'https://x.example/c'}", allow_helm=True))


FUNCTION = """\
transformers:
- |
  apiVersion: example.com/v1
  kind: Sleeper
  metadata:
    name: x
    annotations:
      config.kubernetes.io/function: |
        exec: {path: ./run.sh}
"""


@pytest.mark.parametrize(("text", "feature", "expected"), [
    (FUNCTION, "transformers", "is a KRM function (config.kubernetes.io/function)"),
    ("generators:\n- |\n  apiVersion: someteam.example.com/v1\n  kind: SecretsFromVault\n  metadata: {name: x}\n",
     "generators", "not a kustomize built-in but an external plugin"),
    ("validators:\n- |\n  apiVersion: v1\n  kind: ConfigMapGenerator\n  metadata: {name: x}\n",
     "validators", "external plugin"),  # a built-in kind outside apiVersion: builtin is looked up as a plugin
    ("configMapGenerator: [{name: x, kvSources: [{pluginType: go, name: vault}]}]",
     "configMapGenerator.kvSources", "plugins"),
])
def test_plugins_and_functions_are_refused_unless_the_hub_allows_them(text: str, feature: str,
                                                                       expected: str) -> None:
    error = refusal(text)
    assert isinstance(error, UnsupportedFeatureError) and error.feature == feature
    assert expected in str(error) and "allow_plugins" in str(error)
    assert vet(text, allow_plugins=True).plugins


def test_builtin_plugin_configs_pass_and_their_paths_are_checked() -> None:
    ok = ("transformers:\n- |\n  apiVersion: builtin\n  kind: PrefixSuffixTransformer\n  metadata: {name: p}\n"
          "  prefix: a-\n  fieldSpecs: [{path: metadata/name}]\n")
    refs = vet(ok)
    assert not refs.plugins and not refs.helm and refs.files == ()
    patch = ("transformers:\n- |\n  apiVersion: builtin\n  kind: PatchTransformer\n  metadata: {name: p}\n"
             "  path: /etc/passwd\n")
    assert "absolute path" in str(refusal(patch))


def test_a_safe_kustomization_lists_what_the_build_reads() -> None:
    refs = vet("""
resources: [cm.yaml, ../base]
components: [../components/x]
patches: [{path: patch.yaml}, {patch: '{kind: ConfigMap, metadata: {name: a}}'}]
patchesStrategicMerge: ['{kind: ConfigMap, metadata: {name: a}}', smp.yaml]
configMapGenerator: [{name: g, files: [k=data/file.txt], envs: [app.env]}]
replacements: [{path: replacements.yaml}]
crds: [crd.json]
openapi: {path: schema.json}
generators: [gen.yaml]
buildMetadata: [originAnnotations]
""")
    assert refs.resources == ("app/cm.yaml", "base") and refs.components == ("components/x",)
    assert set(refs.files) == {"app/patch.yaml", "app/smp.yaml", "app/data/file.txt", "app/app.env",
                               "app/replacements.yaml", "app/crd.json", "app/schema.json"}
    assert refs.plugin_paths == (("generators", "app/gen.yaml"),)
    assert not refs.helm and not refs.plugins


def test_unknown_fields_and_wrong_shapes_are_errors() -> None:
    assert "unknown field 'resourcez'" in str(refusal("resourcez: [a.yaml]"))
    assert isinstance(refusal("resources: a.yaml"), KustomizeError)


def _tree(root: pathlib.Path, files: dict[str, str]) -> repofs.DirectoryFS:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return repofs.DirectoryFS(root)


def test_the_walk_checks_every_kustomization_and_collects_exactly_the_files_read(tmp_path: pathlib.Path) -> None:
    fs = _tree(tmp_path, {"app/kustomization.yaml": "resources: [base, cm.yaml]\nsortOptions: {order: fifo}\n",
                          "app/cm.yaml": "kind: ConfigMap\n",
                          "app/base/kustomization.yaml": "resources: [d.yaml]\n",
                          "app/base/d.yaml": "kind: Deployment\n",
                          "app/unrelated.yaml": "kind: Secret\n",
                          "other/kustomization.yaml": "resources: []\n"})
    tree = vetting.vet_tree(fs, directory="app")
    assert set(tree.files) == {"app/kustomization.yaml", "app/cm.yaml", "app/base/kustomization.yaml",
                               "app/base/d.yaml"}
    _tree(tmp_path, {"app/base/kustomization.yaml": "resources: [d.yaml]\nhelmCharts: [{name: x}]\n"})
    with pytest.raises(UnsupportedFeatureError) as info:
        vetting.vet_tree(fs, directory="app")
    assert info.value.file == "app/base/kustomization.yaml"


def test_the_walk_bounds_sizes_and_symlink_loops(tmp_path: pathlib.Path) -> None:
    fs = _tree(tmp_path, {"app/kustomization.yaml": "resources: [cm.yaml]\n", "app/cm.yaml": "x: " + "y" * 2000})
    with pytest.raises(KustomizeError, match="over the 1000-byte limit"):
        vetting.vet_tree(fs, directory="app", policy=vetting.Policy(max_file_bytes=1000))
    _tree(tmp_path, {"app/kustomization.yaml": "resources: [loop]\n"})
    (tmp_path / "app" / "loop").symlink_to(".")
    with pytest.raises(KustomizeError, match="nest more than"):
        vetting.vet_tree(fs, directory="app")


def test_directory_symlinks_that_reach_one_tree_many_times_are_refused_not_copied(tmp_path: pathlib.Path) -> None:
    # Each level names the next one twice, through two symlinks: 2^15 paths to the same two files.
    files = {"app/kustomization.yaml": "buildMetadata: [managedByLabel]\nresources: [d0]\n",
             "app/d15/kustomization.yaml": "resources: [cm.yaml]\n", "app/d15/cm.yaml": "kind: ConfigMap\n"}
    files.update({f"app/d{level}/kustomization.yaml": "resources: [a, b]\n" for level in range(15)})
    fs = _tree(tmp_path, files)
    for level in range(15):
        for name in ("a", "b"):
            (tmp_path / "app" / f"d{level}" / name).symlink_to(f"../d{level + 1}")
    with pytest.raises(KustomizeError, match="reaches more than 500 kustomizations; refused"):
        vetting.vet_tree(fs, directory="app")
