"""Bad input to the kustomize engine: each case a RenderError naming the file and what is wrong."""

from __future__ import annotations

import os
import pathlib
import textwrap

import pytest

from hub.render.kustomize import BuildOptions, build, build_layers, load_yaml_documents
from hub.tree import repofs
from hub.tree.errors import KustomizeError, RenderError, RepoPathError, UnsupportedFeatureError

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  a: b\n"


def write(root: pathlib.Path, files: dict[str, str]) -> repofs.DirectoryFS:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content))
    return repofs.DirectoryFS(root)


def error_of(fs: repofs.RepoFS, path: str, **options: object) -> RenderError:
    with pytest.raises(RenderError) as info:
        build(fs, path, options=BuildOptions(**options))  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    assert "Traceback" not in message
    return info.value


def test_invalid_yaml_names_file_and_line(tmp_path: pathlib.Path) -> None:
    fs = write(tmp_path, {"app/kustomization.yaml": "resources: [cm.yaml]\n",
                          "app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n"})
    error = error_of(fs, "app")
    assert isinstance(error, KustomizeError)
    assert error.file == "app/cm.yaml"
    assert "invalid YAML at line" in str(error)


def test_invalid_kustomization_yaml(tmp_path: pathlib.Path) -> None:
    fs = write(tmp_path, {"app/kustomization.yaml": "resources:\n  - a\n - b\n"})
    error = error_of(fs, "app")
    assert error.file == "app/kustomization.yaml"
    assert "invalid YAML" in str(error)


def test_unknown_kustomization_field(tmp_path: pathlib.Path) -> None:
    fs = write(tmp_path, {"app/kustomization.yaml": "resources: []\nnamePrefx: typo-\n"})
    error = error_of(fs, "app")
    assert "unknown field 'namePrefx'" in str(error)
    assert error.file == "app/kustomization.yaml"


def test_missing_base(tmp_path: pathlib.Path) -> None:
    fs = write(tmp_path, {"overlay/kustomization.yaml": "resources:\n- ../base\n"})
    error = error_of(fs, "overlay")
    assert isinstance(error, KustomizeError)
    assert error.file == "overlay/kustomization.yaml"
    assert "'../base' does not exist" in str(error)


def test_missing_component(tmp_path: pathlib.Path) -> None:
    fs = write(tmp_path, {"app/kustomization.yaml": "components:\n- ../components/nope\n"})
    error = error_of(fs, "app")
    assert "component 'components/nope' does not exist" in str(error)


def test_directory_without_kustomization(tmp_path: pathlib.Path) -> None:
    fs = write(tmp_path, {"app/kustomization.yaml": "resources:\n- ../plain\n", "plain/cm.yaml": CM.format(name="x")})
    assert "'plain' has no kustomization file" in str(error_of(fs, "app"))


def test_component_cycle(tmp_path: pathlib.Path) -> None:
    component = "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\ncomponents:\n- ../{other}\n"
    fs = write(tmp_path, {"app/kustomization.yaml": "components:\n- ../c1\n",
                          "c1/kustomization.yaml": component.format(other="c2"),
                          "c2/kustomization.yaml": component.format(other="c1")})
    error = error_of(fs, "app")
    assert "cycle of kustomizations: c1 -> c2 -> c1" in str(error)


def test_resource_cycle(tmp_path: pathlib.Path) -> None:
    fs = write(tmp_path, {"a/kustomization.yaml": "resources:\n- ../b\n",
                          "b/kustomization.yaml": "resources:\n- ../a\n"})
    assert "cycle of kustomizations: a -> b -> a" in str(error_of(fs, "a"))


def test_component_listed_as_resource_and_back(tmp_path: pathlib.Path) -> None:
    fs = write(tmp_path, {"app/kustomization.yaml": "resources:\n- ../comp\n",
                          "other/kustomization.yaml": "components:\n- ../base\n",
                          "base/kustomization.yaml": "resources: []\n",
                          "comp/kustomization.yaml": "kind: Component\nnamePrefix: c-\n"})
    assert "is a Component" in str(error_of(fs, "app"))
    assert "its kind is Kustomization, not Component" in str(error_of(fs, "other"))


def test_path_escaping_the_root(tmp_path: pathlib.Path) -> None:
    fs = write(tmp_path / "repo", {"app/kustomization.yaml": "resources:\n- ../../outside\n"})
    (tmp_path / "outside").mkdir()
    error = error_of(fs, "app")
    assert isinstance(error, RepoPathError)
    assert "escapes the repository root" in str(error)
    assert error.file == "app/kustomization.yaml"


def test_absolute_path(tmp_path: pathlib.Path) -> None:
    fs = write(tmp_path, {"app/kustomization.yaml": f"resources:\n- {tmp_path}/app/cm.yaml\n",
                          "app/cm.yaml": CM.format(name="x")})
    error = error_of(fs, "app")
    assert isinstance(error, RepoPathError)
    assert "absolute path" in str(error)


def test_symlink_escaping_the_root(tmp_path: pathlib.Path) -> None:
    (tmp_path / "secret.yaml").write_text(CM.format(name="stolen"))
    fs = write(tmp_path / "repo", {"app/kustomization.yaml": "resources:\n- cm.yaml\n"})
    os.symlink(tmp_path / "secret.yaml", tmp_path / "repo" / "app" / "cm.yaml")
    error = error_of(fs, "app")
    assert isinstance(error, RepoPathError)
    assert "escapes the repository root" in str(error)


@pytest.mark.parametrize("url", ["https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v5.5.0",
                                 "github.com/org/repo/base", "git@github.com:org/repo.git//base",
                                 "https://raw.githubusercontent.com/org/repo/main/cm.yaml"])
def test_remote_resource_is_refused_and_never_fetched(tmp_path: pathlib.Path, url: str) -> None:
    fs = write(tmp_path, {"app/kustomization.yaml": f"resources:\n- {url}\n"})
    error = error_of(fs, "app")
    assert isinstance(error, RepoPathError)
    assert "remote resource" in str(error) and "refused" in str(error)


def test_yaml_alias_bomb_is_refused(tmp_path: pathlib.Path) -> None:
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata:", "  name: bomb", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    fs = write(tmp_path, {"app/kustomization.yaml": "resources: [bomb.yaml]\n",
                          "app/bomb.yaml": "\n".join(lines) + "\n"})
    error = error_of(fs, "app")
    assert "alias bomb" in str(error)
    assert error.file == "app/bomb.yaml"


def test_small_aliases_are_fine() -> None:
    docs = load_yaml_documents(b"kind: X\nmetadata: {name: a}\nx: &v [1, 2]\ny: *v\n", file="f.yaml")
    assert docs[0]["y"] == [1, 2]


def test_non_mapping_document(tmp_path: pathlib.Path) -> None:
    fs = write(tmp_path, {"app/kustomization.yaml": "resources: [list.yaml]\n", "app/list.yaml": "- a\n- b\n"})
    assert "not a Kubernetes object" in str(error_of(fs, "app"))


def test_object_without_name(tmp_path: pathlib.Path) -> None:
    fs = write(tmp_path, {"app/kustomization.yaml": "resources: [cm.yaml]\n",
                          "app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n"})
    assert "has no metadata.name" in str(error_of(fs, "app"))


def test_same_object_twice(tmp_path: pathlib.Path) -> None:
    fs = write(tmp_path, {"app/kustomization.yaml": "resources: [a.yaml, b.yaml]\n",
                          "app/a.yaml": CM.format(name="dup"), "app/b.yaml": CM.format(name="dup")})
    assert "ConfigMap/dup is defined twice" in str(error_of(fs, "app"))


def test_patch_without_target_object(tmp_path: pathlib.Path) -> None:
    fs = write(tmp_path, {"app/kustomization.yaml": "resources: [a.yaml]\npatches:\n- path: p.yaml\n",
                          "app/a.yaml": CM.format(name="a"), "app/p.yaml": CM.format(name="zzz")})
    assert "no resource matches strategic merge patch ConfigMap/zzz" in str(error_of(fs, "app"))


def test_file_outside_the_kustomization_directory_is_refused_by_default(tmp_path: pathlib.Path) -> None:
    fs = write(tmp_path, {"app/kustomization.yaml": "resources: [../shared/cm.yaml]\n",
                          "shared/cm.yaml": CM.format(name="shared")})
    assert "load restrictor" in str(error_of(fs, "app"))
    result = build(fs, "app", options=BuildOptions(load_restrictor_root_only=False))
    assert [obj["metadata"]["name"] for obj in result.objects] == ["shared"]


def test_oversized_yaml(tmp_path: pathlib.Path) -> None:
    fs = write(tmp_path, {"app/kustomization.yaml": "resources: [cm.yaml]\n",
                          "app/cm.yaml": CM.format(name="big") + "  pad: " + "x" * 5000 + "\n"})
    assert "over the 1024-byte limit" in str(error_of(fs, "app", max_yaml_bytes=1024))


def test_unsupported_feature_without_external_tool(tmp_path: pathlib.Path) -> None:
    fs = write(tmp_path, {"app/kustomization.yaml": "resources: [base]\n",
                          "app/base/kustomization.yaml": "helmCharts:\n- name: redis\n  repo: https://charts.example.com\n"})
    with pytest.raises(UnsupportedFeatureError) as info:
        build(fs, "app", options=BuildOptions(allow_external=False))
    assert info.value.feature == "helmCharts"
    assert info.value.file == "app/base/kustomization.yaml"
    assert str(info.value).startswith("app/base/kustomization.yaml: helmCharts is outside the native")


def test_unsupported_feature_when_no_tool_is_on_path(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = write(tmp_path, {"app/kustomization.yaml": "buildMetadata: [originAnnotations]\n"})
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(UnsupportedFeatureError, match="neither kustomize nor kubectl is on PATH") as info:
        build(fs, "app", options=BuildOptions(allow_external=True))
    assert info.value.feature == "buildMetadata"


def test_external_builds_are_off_by_default(tmp_path: pathlib.Path) -> None:
    fs = write(tmp_path, {"app/kustomization.yaml": "buildMetadata: [originAnnotations]\n"})
    with pytest.raises(UnsupportedFeatureError, match="external builds are not allowed") as info:
        build(fs, "app")
    assert info.value.feature == "buildMetadata" and info.value.file == "app/kustomization.yaml"


def test_external_tool_failure_is_one_clear_line(tmp_path: pathlib.Path) -> None:
    tool = tmp_path / "bin" / "fake-kustomize"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\necho 'Error: accumulating resources: boom' >&2\necho second line >&2\nexit 1\n")
    tool.chmod(0o755)
    fs = write(tmp_path / "repo", {"app/kustomization.yaml": "buildMetadata: [originAnnotations]\n"})
    error = error_of(fs, "app", allow_external=True, external_command=(str(tool),))
    assert "external" in str(error) and "boom" in str(error)


def test_build_layers_missing_component(tmp_path: pathlib.Path) -> None:
    fs = write(tmp_path, {"base/kustomization.yaml": "resources: [cm.yaml]\n", "base/cm.yaml": CM.format(name="a")})
    with pytest.raises(KustomizeError, match="component 'overlays/prod' does not exist"):
        build_layers(fs, resources=["base"], components=["overlays/prod"])


def test_generator_errors(tmp_path: pathlib.Path) -> None:
    fs = write(tmp_path, {"a/kustomization.yaml": "configMapGenerator:\n- name: x\n  literals: [k=1, k=2]\n",
                          "b/kustomization.yaml": "configMapGenerator:\n- name: x\n  files: [missing.txt]\n",
                          "c/kustomization.yaml": "configMapGenerator:\n- name: x\n  behavior: merge\n"
                                                  "  literals: [k=1]\n"})
    assert "illegally repeats the key 'k'" in str(error_of(fs, "a"))
    assert "'missing.txt' does not exist" in str(error_of(fs, "b"))
    assert "behavior merge needs it in a base" in str(error_of(fs, "c"))


def test_an_env_line_without_a_value_is_empty_never_the_hubs_environment(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # kustomize v5.5 gives such a line the empty value (older releases read their own environment).
    monkeypatch.setenv("FROM_HOST_ENV", "hub-secret")
    fs = write(tmp_path, {"d/kustomization.yaml": "configMapGenerator:\n- name: x\n  envs: [e.env]\n",
                          "d/e.env": "FROM_HOST_ENV\n=skipped\nexport A=1\n"})
    result = build(fs, "d")
    assert result.objects[0]["data"] == {"FROM_HOST_ENV": "", "export A": "1"}
    assert result.warnings == ("d/kustomization.yaml: ConfigMap x: 'export A' is not a valid ConfigMap key "
                               "(letters, digits, '-', '_', '.'); the API server will refuse it",)


def test_same_base_reached_twice(tmp_path: pathlib.Path) -> None:
    fs = write(tmp_path, {"app/kustomization.yaml": "resources: [../a, ../b]\n",
                          "a/kustomization.yaml": "resources: [../base]\n",
                          "b/kustomization.yaml": "resources: [../base]\n",
                          "base/kustomization.yaml": "resources: [cm.yaml]\n",
                          "base/cm.yaml": CM.format(name="shared")})
    error = error_of(fs, "app")
    assert "ConfigMap/shared is defined twice" in str(error)
    assert error.file == "base/cm.yaml"


def test_unquoted_numbers_where_kustomize_wants_strings(tmp_path: pathlib.Path) -> None:
    fs = write(tmp_path, {"a/kustomization.yaml": "images:\n- name: nginx\n  newTag: 1.20\n",
                          "b/kustomization.yaml": "replicas:\n- name: web\n  count: '3'\n",
                          "c/kustomization.yaml": "commonLabels:\n  enabled: true\n"})
    assert "newTag of nginx must be a string (quote it), not 1.2" in str(error_of(fs, "a"))
    assert "integer count" in str(error_of(fs, "b"))
    assert "commonLabels.enabled must be a string (quote it)" in str(error_of(fs, "c"))


def test_kustomization_booleans_are_yaml_1_1_as_in_kustomize(tmp_path: pathlib.Path) -> None:
    # kustomize reads kustomization files with go-yaml v2: `yes`, `on`, `y` are booleans there, so
    # an unquoted one where a label value belongs is an error, while manifests keep them as strings.
    fs = write(tmp_path, {"a/kustomization.yaml": "resources: [cm.yaml]\ncommonLabels:\n  sidecar: on\n",
                          "a/cm.yaml": CM.format(name="x") + "  flag: on\n",
                          "b/kustomization.yaml": "resources: [cm.yaml]\ncommonLabels:\n  sidecar: 'on'\n",
                          "b/cm.yaml": CM.format(name="x") + "  flag: on\n"})
    assert "commonLabels.sidecar must be a string (quote it), not True" in str(error_of(fs, "a"))
    [obj] = build(fs, "b").objects
    assert obj["metadata"]["labels"] == {"sidecar": "on"}
    assert obj["data"]["flag"] == "on"


def test_empty_kustomization_is_a_layer_that_changes_nothing(tmp_path: pathlib.Path) -> None:
    # kustomize refuses these ("kustomization.yaml is empty"); a placeholder overlay is legitimate in a fleet.
    fs = write(tmp_path, {"app/kustomization.yaml": "resources: [cm.yaml]\ncomponents: [../placeholder]\n",
                          "app/cm.yaml": CM.format(name="x"),
                          "placeholder/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\n"
                                                            "kind: Component\n",
                          "empty/kustomization.yaml": ""})
    assert [obj["metadata"]["name"] for obj in build(fs, "app").objects] == ["x"]
    assert build(fs, "empty").objects == []


def test_a_kustomization_with_another_api_version_is_refused_as_kustomize_does(tmp_path: pathlib.Path) -> None:
    fs = write(tmp_path, {"a/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1\nresources: []\n",
                          "c/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Component\n"})
    assert str(error_of(fs, "a")) == ("a/kustomization.yaml: apiVersion for Kustomization should be "
                                      "kustomize.config.k8s.io/v1beta1, not 'kustomize.config.k8s.io/v1'")
    assert "apiVersion for Component should be kustomize.config.k8s.io/v1alpha1" in str(error_of(fs, "c"))


@pytest.mark.parametrize(("sort_options", "expected"), [
    ("{}", "the field 'sortOptions.order' must be one of [fifo, legacy]"),
    ("{order: random}", "the field 'sortOptions.order' must be one of [fifo, legacy]"),
    ("{order: fifo, legacySortOptions: {orderFirst: [Service]}}",
     "the field 'sortOptions.legacySortOptions' is set but the selected sort order is 'fifo', not 'legacy'"),
])
def test_sort_options_mistakes_are_refused_as_kustomize_does(tmp_path: pathlib.Path, sort_options: str,
                                                              expected: str) -> None:
    fs = write(tmp_path, {"a/kustomization.yaml": f"sortOptions: {sort_options}\nresources: []\n"})
    assert str(error_of(fs, "a")) == f"a/kustomization.yaml: {expected}"


def test_a_key_written_twice_in_a_manifest_is_refused_as_kubectl_does(tmp_path: pathlib.Path) -> None:
    fs = write(tmp_path, {"app/kustomization.yaml": "resources: [cm.yaml]\n",
                          "app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: '1'\n"
                                         "  a: '2'\n"})
    assert str(error_of(fs, "app")) == ("app/cm.yaml: invalid YAML at line 7, column 3: mapping key 'a' already "
                                        "defined")


def test_in_a_kustomization_file_the_last_of_two_keys_wins_as_in_kustomize(tmp_path: pathlib.Path) -> None:
    fs = write(tmp_path, {"app/kustomization.yaml": "namePrefix: a-\nresources: [cm.yaml]\nnamePrefix: b-\n",
                          "app/cm.yaml": CM.format(name="x")})
    assert build(fs, "app").objects[0]["metadata"]["name"] == "b-x"
